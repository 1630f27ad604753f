//! One segment's vector column in the form the distance loops read: f32, f16 or packed bits in
//! one flat buffer, or sparse rows, with the rows that hold no vector.

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, FixedSizeListArray, StructArray,
};
use arrow::datatypes::{DataType, Float16Type, Float32Type, Int32Type};

use super::metric::*;
use super::query::QueryVector;
use super::rows::Rows;
use crate::error::{EngineError, Result};
use arrow::buffer::ScalarBuffer;

/// In-memory vectors of one segment's column, in the form the distance loops read, with the
/// rows whose vector is NULL (they are never hits).
#[derive(Debug, Clone)]
pub struct VectorData {
    /// The values.
    pub values: VectorValues,
    /// `Some(valid)` when some rows are NULL.
    pub valid: Option<Vec<bool>>,
}

/// The values of a vector column.
#[derive(Debug, Clone)]
pub enum VectorValues {
    /// Row-major f32 values (`dim` per row), FLOAT16 widened.
    Dense {
        /// Dimension.
        dim: usize,
        /// Values.
        values: Rows<f32>,
    },
    /// Packed bits, `bytes` per row.
    Binary {
        /// Bytes per row.
        bytes: usize,
        /// Values.
        values: Rows<u8>,
    },
    /// CSR sparse rows.
    Sparse {
        /// Row `r` is `offsets[r]..offsets[r + 1]`.
        offsets: Vec<usize>,
        /// Indices.
        indices: Vec<i32>,
        /// Values.
        values: Vec<f32>,
    },
}

impl VectorData {
    /// Reads a vector column; NULL rows are recorded and never returned as hits.
    pub fn from_array(array: &dyn Array) -> Result<VectorData> {
        let valid =
            (array.null_count() > 0).then(|| (0..array.len()).map(|r| array.is_valid(r)).collect());
        Ok(VectorData {
            values: VectorValues::from_array(array)?,
            valid,
        })
    }

    /// The rows of several parts, in order (a segment read batch by batch).
    pub fn concat(parts: Vec<VectorData>) -> Result<VectorData> {
        let mut it = parts.into_iter();
        let Some(mut out) = it.next() else {
            return Err(EngineError::InvalidRequest("no vector data".into()));
        };
        for p in it {
            let (before, added) = (out.len(), p.len());
            match (&mut out.values, p.values) {
                (VectorValues::Dense { values, .. }, VectorValues::Dense { values: v, .. }) => {
                    values.append(v)
                }
                (VectorValues::Binary { values, .. }, VectorValues::Binary { values: v, .. }) => {
                    values.append(v)
                }
                (
                    VectorValues::Sparse {
                        offsets,
                        indices,
                        values,
                    },
                    VectorValues::Sparse {
                        offsets: o,
                        indices: i,
                        values: v,
                    },
                ) => {
                    let base = indices.len();
                    offsets.extend(o.iter().skip(1).map(|x| x + base));
                    indices.extend(i);
                    values.extend(v);
                }
                _ => {
                    return Err(EngineError::InvalidRequest(
                        "vector parts of different layouts".into(),
                    ));
                }
            }
            out.valid = match (out.valid.take(), p.valid) {
                (None, None) => None,
                (a, b) => {
                    let mut v = a.unwrap_or_else(|| vec![true; before]);
                    v.extend(b.unwrap_or_else(|| vec![true; added]));
                    Some(v)
                }
            };
        }
        Ok(out)
    }

    /// Whether row `r` has a vector.
    #[inline]
    pub fn is_valid(&self, r: usize) -> bool {
        self.valid.as_ref().is_none_or(|v| v[r])
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The distance from `q` to row `r` (NaN for a NULL vector).
    #[inline]
    pub fn distance(&self, metric: Metric, q: &QueryVector, r: usize) -> f32 {
        if self.is_valid(r) {
            self.values.distance(metric, q, r)
        } else {
            f32::NAN
        }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.values.memory_bytes() + self.valid.as_ref().map_or(0, Vec::len)
    }

    /// The given rows as an Arrow column of `data_type` (the field's layout), so a search can
    /// return its hits as a batch without reading the segment again.
    pub fn take_arrow(&self, rows: &[u32], data_type: &DataType) -> Result<ArrayRef> {
        use arrow::array::{Float32Array, Int32Array, ListArray};
        use arrow::buffer::{NullBuffer, OffsetBuffer};
        let nulls = self
            .valid
            .as_ref()
            .map(|v| NullBuffer::from(rows.iter().map(|r| v[*r as usize]).collect::<Vec<bool>>()));
        let bad = || {
            EngineError::InvalidRequest(format!("vector data do not fit the layout {data_type}"))
        };
        match (&self.values, data_type) {
            (VectorValues::Dense { dim, values }, DataType::FixedSizeList(item, d)) => {
                let mut out = Vec::with_capacity(rows.len() * dim);
                for r in rows {
                    out.extend_from_slice(values.row(*r as usize));
                }
                let flat: ArrayRef = std::sync::Arc::new(Float32Array::from(out));
                // FLOAT16 was widened exactly; narrowing gives the stored bits back.
                let flat = if item.data_type() == &DataType::Float32 {
                    flat
                } else {
                    arrow::compute::cast(&flat, item.data_type())?
                };
                Ok(std::sync::Arc::new(FixedSizeListArray::try_new(
                    item.clone(),
                    *d,
                    flat,
                    nulls,
                )?))
            }
            (VectorValues::Binary { bytes, values }, DataType::FixedSizeBinary(w))
                if *w as usize == *bytes =>
            {
                let mut out = Vec::with_capacity(rows.len() * bytes);
                for r in rows {
                    out.extend_from_slice(values.row(*r as usize));
                }
                Ok(std::sync::Arc::new(FixedSizeBinaryArray::try_new(
                    *w,
                    out.into(),
                    nulls,
                )?))
            }
            (
                VectorValues::Sparse {
                    offsets,
                    indices,
                    values,
                },
                DataType::Struct(fields),
            ) if fields.len() == 2 => {
                let mut lens = Vec::with_capacity(rows.len());
                let (mut idx, mut val) = (Vec::new(), Vec::new());
                for r in rows {
                    let (s, e) = (offsets[*r as usize], offsets[*r as usize + 1]);
                    lens.push(e - s);
                    idx.extend_from_slice(&indices[s..e]);
                    val.extend_from_slice(&values[s..e]);
                }
                let item = |i: usize| match fields[i].data_type() {
                    DataType::List(f) => Ok(f.clone()),
                    _ => Err(bad()),
                };
                let offs = OffsetBuffer::<i32>::from_lengths(lens);
                let idx: ArrayRef = std::sync::Arc::new(ListArray::try_new(
                    item(0)?,
                    offs.clone(),
                    std::sync::Arc::new(Int32Array::from(idx)),
                    None,
                )?);
                let val: ArrayRef = std::sync::Arc::new(ListArray::try_new(
                    item(1)?,
                    offs,
                    std::sync::Arc::new(Float32Array::from(val)),
                    None,
                )?);
                Ok(std::sync::Arc::new(StructArray::try_new(
                    fields.clone(),
                    vec![idx, val],
                    nulls,
                )?))
            }
            _ => Err(bad()),
        }
    }

    /// Row `r` as JSON, as [`crate::convert::to_json`] writes the Arrow column: numbers for
    /// dense vectors, a bit string for binary, `{"index": value}` for sparse, null for NULL.
    pub fn row_json(&self, r: usize) -> serde_json::Value {
        use serde_json::Value;
        let num =
            |f: f32| serde_json::Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number);
        if !self.is_valid(r) {
            return Value::Null;
        }
        match &self.values {
            VectorValues::Dense { values, .. } => {
                Value::Array(values.row(r).iter().map(|x| num(*x)).collect())
            }
            VectorValues::Binary { values, .. } => {
                Value::String(values.row(r).iter().map(|b| format!("{b:08b}")).collect())
            }
            VectorValues::Sparse {
                offsets,
                indices,
                values,
            } => {
                let (s, e) = (offsets[r], offsets[r + 1]);
                Value::Object(
                    indices[s..e]
                        .iter()
                        .zip(&values[s..e])
                        .map(|(i, v)| (i.to_string(), num(*v)))
                        .collect(),
                )
            }
        }
    }
}

impl VectorValues {
    pub(crate) fn from_array(array: &dyn Array) -> Result<VectorValues> {
        match array.data_type() {
            DataType::FixedSizeList(_, dim) => {
                let list: &FixedSizeListArray = array.as_fixed_size_list();
                let dim = *dim as usize;
                let child = list.values();
                let offset = list.offset() * dim;
                let len = list.len() * dim;
                let mut values = Rows::new(dim);
                match child.data_type() {
                    // The column's own buffer (mapped from the segment file): no copy.
                    DataType::Float32 => values.push(
                        child
                            .as_primitive::<Float32Type>()
                            .values()
                            .slice(offset, len),
                    ),
                    DataType::Float16 => values.push(
                        child.as_primitive::<Float16Type>().values()[offset..offset + len]
                            .iter()
                            .map(|h| h.to_f32())
                            .collect(),
                    ),
                    other => {
                        return Err(EngineError::InvalidRequest(format!(
                            "vector element type {other} is not supported"
                        )));
                    }
                }
                Ok(VectorValues::Dense { dim, values })
            }
            DataType::FixedSizeBinary(bytes) => {
                let a: &FixedSizeBinaryArray = array.as_fixed_size_binary();
                let bytes = *bytes as usize;
                // The column's own buffer, no copy (a NULL row's bytes are never compared).
                let mut values = Rows::new(bytes);
                values.push(ScalarBuffer::new(
                    a.values().clone(),
                    a.offset() * bytes,
                    a.len() * bytes,
                ));
                Ok(VectorValues::Binary { bytes, values })
            }
            DataType::Struct(_) => {
                let s: &StructArray = array.as_struct();
                let (idx, val) = sparse_children(s)?;
                let mut offsets = Vec::with_capacity(s.len() + 1);
                let (mut indices, mut values) = (Vec::new(), Vec::new());
                offsets.push(0);
                for r in 0..s.len() {
                    if !s.is_null(r) {
                        let i = idx.value(r);
                        let v = val.value(r);
                        indices.extend_from_slice(i.as_primitive::<Int32Type>().values());
                        values.extend_from_slice(v.as_primitive::<Float32Type>().values());
                    }
                    offsets.push(indices.len());
                }
                Ok(VectorValues::Sparse {
                    offsets,
                    indices,
                    values,
                })
            }
            other => Err(EngineError::InvalidRequest(format!(
                "{other} is not a vector column"
            ))),
        }
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        match self {
            VectorValues::Dense { values, .. } => values.rows(),
            VectorValues::Binary { values, .. } => values.rows(),
            VectorValues::Sparse { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    /// Row `r` of dense data.
    pub fn dense_row(&self, r: usize) -> &[f32] {
        match self {
            VectorValues::Dense { values, .. } => values.row(r),
            _ => &[],
        }
    }

    /// The distance from `q` to row `r`.
    fn distance(&self, metric: Metric, q: &QueryVector, r: usize) -> f32 {
        match (self, q) {
            (VectorValues::Dense { values, .. }, QueryVector::Dense(q)) => {
                dense_distance(metric, q, values.row(r))
            }
            (VectorValues::Binary { values, .. }, QueryVector::Binary(q)) => {
                binary_distance(metric, q, values.row(r))
            }
            (
                VectorValues::Sparse {
                    offsets,
                    indices,
                    values,
                },
                QueryVector::Sparse {
                    indices: qi,
                    values: qv,
                },
            ) => {
                let (s, e) = (offsets[r], offsets[r + 1]);
                sparse_distance(qi, qv, &indices[s..e], &values[s..e])
            }
            _ => f32::NAN,
        }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        match self {
            VectorValues::Dense { values, .. } => values.values_len() * 4,
            VectorValues::Binary { values, .. } => values.values_len(),
            VectorValues::Sparse {
                offsets,
                indices,
                values,
            } => offsets.len() * 8 + indices.len() * 4 + values.len() * 4,
        }
    }
}

/// The `indices` and `values` lists of a sparse struct column.
pub fn sparse_children(
    s: &StructArray,
) -> Result<(&arrow::array::ListArray, &arrow::array::ListArray)> {
    let get = |name: &str| {
        s.column_by_name(name)
            .and_then(|c| c.as_list_opt::<i32>())
            .ok_or_else(|| {
                EngineError::InvalidRequest(format!("sparse vector column has no `{name}` list"))
            })
    };
    Ok((get("indices")?, get("values")?))
}
