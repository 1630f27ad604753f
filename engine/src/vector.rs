//! Metrics, distances and vector data.
//!
//! Distances follow pgvector, so numbers users saw in Postgres still hold: L2 is the Euclidean
//! distance (`<->`), COSINE the cosine distance `1 - cos` (`<=>`), IP the negative inner
//! product (`<#>`), HAMMING and JACCARD as `bit_hamming_ops` / `bit_jaccard_ops`. Smaller is
//! always nearer. The kernels themselves live in [`simd`], chosen for the CPU at run time.

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, FixedSizeListArray, StructArray,
};
use arrow::datatypes::{DataType, Float16Type, Float32Type, Int32Type};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::schema::{Field, FieldType};

pub mod simd;

/// A similarity metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Metric {
    /// Euclidean distance.
    L2,
    /// Negative inner product.
    Ip,
    /// Cosine distance.
    Cosine,
    /// Number of differing bits.
    Hamming,
    /// 1 − |a∧b| / |a∨b|.
    Jaccard,
}

impl Metric {
    /// Milvus' spelling.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "L2",
            Metric::Ip => "IP",
            Metric::Cosine => "COSINE",
            Metric::Hamming => "HAMMING",
            Metric::Jaccard => "JACCARD",
        }
    }

    /// Parses Milvus' spelling, case-insensitively.
    pub fn parse(s: &str) -> Option<Metric> {
        [
            Metric::L2,
            Metric::Ip,
            Metric::Cosine,
            Metric::Hamming,
            Metric::Jaccard,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(s))
    }

    /// The metrics a vector type supports.
    pub fn supported_by(self, t: FieldType) -> bool {
        match t {
            FieldType::FloatVector | FieldType::Float16Vector => {
                matches!(self, Metric::L2 | Metric::Ip | Metric::Cosine)
            }
            FieldType::BinaryVector => matches!(self, Metric::Hamming | Metric::Jaccard),
            FieldType::SparseFloatVector => self == Metric::Ip,
            _ => false,
        }
    }

    /// The metric used when none is given: COSINE for float vectors, HAMMING for binary, IP for sparse.
    pub fn default_for(t: FieldType) -> Metric {
        match t {
            FieldType::BinaryVector => Metric::Hamming,
            FieldType::SparseFloatVector => Metric::Ip,
            _ => Metric::Cosine,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Inner product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (simd::kernels().dot_f32)(a, b)
}

/// Squared Euclidean distance.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (simd::kernels().l2sq_f32)(a, b)
}

/// Euclidean norm.
#[inline]
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// The pgvector distance between two dense vectors for a float metric.
#[inline]
pub fn dense_distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => l2_squared(a, b).sqrt(),
        Metric::Ip => -dot(a, b),
        Metric::Cosine => {
            let d = norm(a) * norm(b);
            if d == 0.0 {
                f32::NAN
            } else {
                1.0 - dot(a, b) / d
            }
        }
        Metric::Hamming | Metric::Jaccard => f32::NAN,
    }
}

/// The pgvector distance between two bit strings.
#[inline]
pub fn binary_distance(metric: Metric, a: &[u8], b: &[u8]) -> f32 {
    match metric {
        Metric::Hamming => (simd::kernels().hamming)(a, b),
        Metric::Jaccard => (simd::kernels().jaccard)(a, b),
        _ => f32::NAN,
    }
}

/// Negative inner product of two sparse vectors (indices strictly increasing).
pub fn sparse_distance(ai: &[i32], av: &[f32], bi: &[i32], bv: &[f32]) -> f32 {
    let (mut i, mut j, mut s) = (0, 0, 0f32);
    while i < ai.len() && j < bi.len() {
        match ai[i].cmp(&bi[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += av[i] * bv[j];
                i += 1;
                j += 1;
            }
        }
    }
    -s
}

/// A query vector, already checked against its field.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryVector {
    /// FLOAT_VECTOR or FLOAT16_VECTOR (as f32).
    Dense(Vec<f32>),
    /// BINARY_VECTOR, packed bits, most significant bit first.
    Binary(Vec<u8>),
    /// SPARSE_FLOAT_VECTOR.
    Sparse {
        /// Strictly increasing 0-based indices.
        indices: Vec<i32>,
        /// Values.
        values: Vec<f32>,
    },
}

impl QueryVector {
    /// Parses a JSON query vector for a field: `[0.1, …]` for dense; `[0,1,…]` (bits) or
    /// `"0101…"` for binary; `{"3": 0.5, …}` or `{"indices": […], "values": […]}` for sparse.
    pub fn from_json(field: &Field, value: &serde_json::Value) -> Result<QueryVector> {
        let bad = |why: String| {
            EngineError::InvalidRequest(format!(
                "query vector for `{}` ({}): {why}",
                field.name, field.data_type
            ))
        };
        let dim = field.dim_usize();
        match field.data_type {
            FieldType::FloatVector | FieldType::Float16Vector => {
                let arr = value
                    .as_array()
                    .ok_or_else(|| bad("expected a JSON array of numbers".into()))?;
                let v: Vec<f32> = arr
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        x.as_f64()
                            .map(|f| f as f32)
                            .ok_or_else(|| bad(format!("element {i} is not a number: {x}")))
                    })
                    .collect::<Result<_>>()?;
                if v.len() != dim {
                    return Err(bad(format!(
                        "has {} dimensions, the field has {dim}",
                        v.len()
                    )));
                }
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(bad(format!("element {i} is not finite")));
                }
                Ok(QueryVector::Dense(v))
            }
            FieldType::BinaryVector => {
                let bits: Vec<bool> = match value {
                    serde_json::Value::String(s) => s
                        .chars()
                        .map(|c| match c {
                            '0' => Ok(false),
                            '1' => Ok(true),
                            _ => Err(bad(format!("`{c}` is not a bit"))),
                        })
                        .collect::<Result<_>>()?,
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(|x| match x.as_u64() {
                            Some(0) => Ok(false),
                            Some(1) => Ok(true),
                            _ => Err(bad(format!("`{x}` is not a bit"))),
                        })
                        .collect::<Result<_>>()?,
                    _ => {
                        return Err(bad(
                            "expected a bit string \"0101…\" or an array of 0 and 1".into(),
                        ));
                    }
                };
                if bits.len() != dim {
                    return Err(bad(format!("has {} bits, the field has {dim}", bits.len())));
                }
                Ok(QueryVector::Binary(pack_bits(&bits)))
            }
            FieldType::SparseFloatVector => {
                let obj = value
                    .as_object()
                    .ok_or_else(|| bad("expected {\"index\": value, …}".into()))?;
                let mut pairs: Vec<(i32, f32)> =
                    if let (Some(i), Some(v)) = (obj.get("indices"), obj.get("values")) {
                        let i = i
                            .as_array()
                            .ok_or_else(|| bad("indices is not an array".into()))?;
                        let v = v
                            .as_array()
                            .ok_or_else(|| bad("values is not an array".into()))?;
                        if i.len() != v.len() {
                            return Err(bad("indices and values differ in length".into()));
                        }
                        i.iter()
                            .zip(v)
                            .map(|(i, v)| {
                                Ok((
                                    json_index(i).ok_or_else(|| bad(format!("bad index {i}")))?,
                                    v.as_f64().ok_or_else(|| bad(format!("bad value {v}")))? as f32,
                                ))
                            })
                            .collect::<Result<_>>()?
                    } else {
                        obj.iter()
                            .map(|(k, v)| {
                                Ok((
                                    k.parse::<i32>()
                                        .ok()
                                        .filter(|i| *i >= 0)
                                        .ok_or_else(|| bad(format!("bad index `{k}`")))?,
                                    v.as_f64().ok_or_else(|| bad(format!("bad value {v}")))? as f32,
                                ))
                            })
                            .collect::<Result<_>>()?
                    };
                pairs.sort_by_key(|p| p.0);
                if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(bad("an index appears twice".into()));
                }
                Ok(QueryVector::Sparse {
                    indices: pairs.iter().map(|p| p.0).collect(),
                    values: pairs.iter().map(|p| p.1).collect(),
                })
            }
            _ => Err(bad("the field is not a vector".into())),
        }
    }
}

fn json_index(v: &serde_json::Value) -> Option<i32> {
    v.as_i64()
        .and_then(|i| i32::try_from(i).ok())
        .filter(|i| *i >= 0)
}

/// Packs bits, most significant first (pgvector's `bit` layout).
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, &on)| if on { b | (0x80 >> i) } else { b })
        })
        .collect()
}

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
        values: Vec<f32>,
    },
    /// Packed bits, `bytes` per row.
    Binary {
        /// Bytes per row.
        bytes: usize,
        /// Values.
        values: Vec<u8>,
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
                    values.extend(v)
                }
                (VectorValues::Binary { values, .. }, VectorValues::Binary { values: v, .. }) => {
                    values.extend(v)
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
                    let r = *r as usize;
                    out.extend_from_slice(&values[r * dim..(r + 1) * dim]);
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
                    let r = *r as usize;
                    out.extend_from_slice(&values[r * bytes..(r + 1) * bytes]);
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
            VectorValues::Dense { dim, values } => Value::Array(
                values[r * dim..(r + 1) * dim]
                    .iter()
                    .map(|x| num(*x))
                    .collect(),
            ),
            VectorValues::Binary { bytes, values } => Value::String(
                values[r * bytes..(r + 1) * bytes]
                    .iter()
                    .map(|b| format!("{b:08b}"))
                    .collect(),
            ),
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
                let values: Vec<f32> = match child.data_type() {
                    DataType::Float32 => {
                        child.as_primitive::<Float32Type>().values()[offset..offset + len].to_vec()
                    }
                    DataType::Float16 => child.as_primitive::<Float16Type>().values()
                        [offset..offset + len]
                        .iter()
                        .map(|h| h.to_f32())
                        .collect(),
                    other => {
                        return Err(EngineError::InvalidRequest(format!(
                            "vector element type {other} is not supported"
                        )));
                    }
                };
                Ok(VectorValues::Dense { dim, values })
            }
            DataType::FixedSizeBinary(bytes) => {
                let a: &FixedSizeBinaryArray = array.as_fixed_size_binary();
                let bytes = *bytes as usize;
                let mut values = Vec::with_capacity(a.len() * bytes);
                for i in 0..a.len() {
                    if a.is_null(i) {
                        values.extend(std::iter::repeat_n(0u8, bytes));
                    } else {
                        values.extend_from_slice(a.value(i));
                    }
                }
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
            VectorValues::Dense { dim, values } => values.len() / (*dim).max(1),
            VectorValues::Binary { bytes, values } => values.len() / (*bytes).max(1),
            VectorValues::Sparse { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    /// Row `r` of dense data.
    pub fn dense_row(&self, r: usize) -> &[f32] {
        match self {
            VectorValues::Dense { dim, values } => &values[r * dim..(r + 1) * dim],
            _ => &[],
        }
    }

    /// The distance from `q` to row `r`.
    fn distance(&self, metric: Metric, q: &QueryVector, r: usize) -> f32 {
        match (self, q) {
            (VectorValues::Dense { dim, values }, QueryVector::Dense(q)) => {
                dense_distance(metric, q, &values[r * dim..(r + 1) * dim])
            }
            (VectorValues::Binary { bytes, values }, QueryVector::Binary(q)) => {
                binary_distance(metric, q, &values[r * bytes..(r + 1) * bytes])
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
            VectorValues::Dense { values, .. } => values.len() * 4,
            VectorValues::Binary { values, .. } => values.len(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_of_parts_equals_the_whole() {
        let whole = VectorData {
            values: VectorValues::Sparse {
                offsets: vec![0, 2, 2, 3, 5],
                indices: vec![1, 4, 0, 2, 9],
                values: vec![0.5, -1.0, 2.0, 3.0, 4.0],
            },
            valid: Some(vec![true, false, true, true]),
        };
        let dt = crate::schema::Field::new("s", crate::schema::FieldType::SparseFloatVector)
            .arrow_type();
        let arr = whole.take_arrow(&[0, 1, 2, 3], &dt).unwrap();
        let parts = vec![
            VectorData::from_array(arr.slice(0, 1).as_ref()).unwrap(),
            VectorData::from_array(arr.slice(1, 3).as_ref()).unwrap(),
        ];
        let joined = VectorData::concat(parts).unwrap();
        assert_eq!(joined.len(), 4);
        for r in 0..4 {
            assert_eq!(joined.row_json(r), whole.row_json(r), "row {r}");
        }
        let dense = |v: Vec<f32>, valid| VectorData {
            values: VectorValues::Dense { dim: 2, values: v },
            valid,
        };
        let j = VectorData::concat(vec![
            dense(vec![1.0, 2.0], None),
            dense(vec![3.0, 4.0, 5.0, 6.0], Some(vec![false, true])),
        ])
        .unwrap();
        assert_eq!(j.valid, Some(vec![true, false, true]));
        assert_eq!(j.values.dense_row(2), &[5.0, 6.0]);
    }

    #[test]
    fn take_arrow_gives_back_the_stored_rows_of_every_layout() {
        use crate::schema::{Field, FieldType};
        use arrow::array::{Array, UInt32Array};
        let nulls = |n: usize| {
            arrow::buffer::NullBuffer::from((0..n).map(|r| r != 1).collect::<Vec<bool>>())
        };
        let fields = [
            Field {
                dim: Some(3),
                ..Field::new("f", FieldType::FloatVector)
            },
            Field {
                dim: Some(3),
                ..Field::new("h", FieldType::Float16Vector)
            },
            Field {
                dim: Some(16),
                ..Field::new("b", FieldType::BinaryVector)
            },
            Field::new("s", FieldType::SparseFloatVector),
        ];
        for f in fields {
            let dt = f.arrow_type();
            // Four rows, row 1 NULL, built through the JSON → Arrow path the engine tests use.
            let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
            let array: ArrayRef = match &dt {
                DataType::FixedSizeList(item, d) => {
                    let flat: ArrayRef =
                        std::sync::Arc::new(arrow::array::Float32Array::from(values.clone()));
                    let flat = arrow::compute::cast(&flat, item.data_type()).unwrap();
                    std::sync::Arc::new(
                        FixedSizeListArray::try_new(item.clone(), *d, flat, Some(nulls(4)))
                            .unwrap(),
                    )
                }
                DataType::FixedSizeBinary(w) => std::sync::Arc::new(
                    FixedSizeBinaryArray::try_new(
                        *w,
                        (0u8..8).collect::<Vec<u8>>().into(),
                        Some(nulls(4)),
                    )
                    .unwrap(),
                ),
                DataType::Struct(fs) => {
                    let data = VectorData {
                        values: VectorValues::Sparse {
                            offsets: vec![0, 2, 2, 3, 5],
                            indices: vec![1, 4, 0, 2, 9],
                            values: vec![0.5, -1.0, 2.0, 3.0, 4.0],
                        },
                        valid: Some(vec![true, false, true, true]),
                    };
                    let a = data.take_arrow(&[0, 1, 2, 3], &dt).unwrap();
                    assert_eq!(a.data_type(), &DataType::Struct(fs.clone()));
                    a
                }
                _ => unreachable!(),
            };
            let data = VectorData::from_array(array.as_ref()).unwrap();
            let got = data.take_arrow(&[3, 1, 0], &dt).unwrap();
            let want =
                arrow::compute::take(array.as_ref(), &UInt32Array::from(vec![3, 1, 0]), None)
                    .unwrap();
            assert_eq!(got.data_type(), want.data_type(), "{}", f.name);
            assert!(got.is_null(1) && !got.is_null(0), "{}", f.name);
            for r in [0, 2] {
                assert_eq!(
                    data.row_json([3, 1, 0][r] as usize),
                    VectorData::from_array(got.as_ref()).unwrap().row_json(r),
                    "{} row {r}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn distances_match_pgvector() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, 5.0, 6.0];
        assert!((dense_distance(Metric::L2, &a, &b) - 27f32.sqrt()).abs() < 1e-6);
        assert_eq!(dense_distance(Metric::Ip, &a, &b), -32.0);
        let cos = 1.0 - 32.0 / (14f32.sqrt() * 77f32.sqrt());
        assert!((dense_distance(Metric::Cosine, &a, &b) - cos).abs() < 1e-6);
        assert_eq!(
            binary_distance(Metric::Hamming, &[0b1010_0000], &[0b0110_0000]),
            2.0
        );
        assert!(
            (binary_distance(Metric::Jaccard, &[0b1110_0000], &[0b0110_0000]) - (1.0 - 2.0 / 3.0))
                .abs()
                < 1e-6
        );
        assert_eq!(
            sparse_distance(&[0, 3, 7], &[1.0, 2.0, 3.0], &[3, 7, 9], &[10.0, 1.0, 5.0]),
            -23.0
        );
    }

    #[test]
    fn long_vectors_use_every_lane() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let naive: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a), naive);
    }

    #[test]
    fn query_vectors_are_checked() {
        let f = Field {
            dim: Some(3),
            ..Field::new("v", FieldType::FloatVector)
        };
        assert!(QueryVector::from_json(&f, &serde_json::json!([1, 2, 3])).is_ok());
        let e = QueryVector::from_json(&f, &serde_json::json!([1, 2]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 dimensions") && e.contains("has 3"), "{e}");
        let b = Field {
            dim: Some(8),
            ..Field::new("b", FieldType::BinaryVector)
        };
        assert_eq!(
            QueryVector::from_json(&b, &serde_json::json!("10000001")).unwrap(),
            QueryVector::Binary(vec![0x81])
        );
        let s = Field::new("s", FieldType::SparseFloatVector);
        assert_eq!(
            QueryVector::from_json(&s, &serde_json::json!({"5": 1.0, "2": 0.5})).unwrap(),
            QueryVector::Sparse {
                indices: vec![2, 5],
                values: vec![0.5, 1.0]
            }
        );
    }
}
