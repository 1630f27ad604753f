//! The engine's column layout ↔ Milvus' bulk-import Parquet layout, field by field:
//! FLOAT_VECTOR `FixedSizeList<f32>` ↔ `list<float32>`; FLOAT16 and BINARY vectors ↔
//! `list<uint8>` of their raw bytes (little-endian halves; bits packed most significant
//! first, as `np.packbits`); SPARSE_FLOAT_VECTOR ↔ a JSON string
//! `{"indices":[…],"values":[…]}`; JSON (and `$meta`) as strings; ARRAY as lists; scalars as
//! they are. An auto-ID primary key is not in the files.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, FixedSizeListArray, Float16Array, Float32Array,
    Int32Array, ListArray, RecordBatch, StringArray, StringBuilder, StructArray, UInt8Array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Float16Type, Schema, SchemaRef};
use etl_engine::schema::sparse_fields;
use etl_engine::{CollectionSchema, Field, FieldType};

use crate::error::PipelineError;

fn bad(field: &str, reason: impl std::fmt::Display) -> PipelineError {
    PipelineError::Internal {
        message: format!("field `{field}`: {reason}"),
    }
}

/// The fields that appear in staged files (all but an auto-ID key).
pub fn staged_fields(schema: &CollectionSchema) -> Vec<&Field> {
    schema
        .fields
        .iter()
        .filter(|f| !(f.primary_key && schema.auto_id))
        .collect()
}

fn bytes_list() -> DataType {
    DataType::List(Arc::new(ArrowField::new("item", DataType::UInt8, false)))
}

/// The Arrow type of a field in the staged files.
fn milvus_type(f: &Field) -> DataType {
    match f.data_type {
        FieldType::FloatVector => {
            DataType::List(Arc::new(ArrowField::new("item", DataType::Float32, false)))
        }
        FieldType::Float16Vector | FieldType::BinaryVector => bytes_list(),
        FieldType::SparseFloatVector => DataType::Utf8,
        _ => f.arrow_type(),
    }
}

/// The staged files' schema.
pub fn milvus_schema(schema: &CollectionSchema) -> SchemaRef {
    Arc::new(Schema::new(
        staged_fields(schema)
            .into_iter()
            .map(|f| ArrowField::new(&f.name, milvus_type(f), f.nullable))
            .collect::<Vec<_>>(),
    ))
}

/// Rows of fixed-width byte groups as `list<uint8>`.
fn byte_rows(values: Vec<u8>, width: usize, nulls: Option<NullBuffer>, n: usize) -> ArrayRef {
    let offsets: Vec<i32> = (0..=n).map(|i| (i * width) as i32).collect();
    Arc::new(ListArray::new(
        Arc::new(ArrowField::new("item", DataType::UInt8, false)),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(UInt8Array::from(values)),
        nulls,
    ))
}

/// An engine batch (the mapper's output: every field but an auto-ID key) in the staged layout.
pub fn to_milvus(
    batch: &RecordBatch,
    schema: &CollectionSchema,
    target: &SchemaRef,
) -> Result<RecordBatch, PipelineError> {
    let n = batch.num_rows();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for f in staged_fields(schema) {
        let Some(c) = batch.column_by_name(&f.name) else {
            cols.push(datafusion::arrow::array::new_null_array(&milvus_type(f), n));
            continue;
        };
        let out: ArrayRef = match f.data_type {
            FieldType::FloatVector => {
                let fsl = c
                    .as_fixed_size_list_opt()
                    .ok_or_else(|| bad(&f.name, "not a fixed-size list"))?;
                let dim = fsl.value_length() as usize;
                let offsets: Vec<i32> = (0..=n).map(|i| (i * dim) as i32).collect();
                Arc::new(ListArray::new(
                    Arc::new(ArrowField::new("item", DataType::Float32, false)),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    fsl.values().clone(),
                    fsl.nulls().cloned(),
                ))
            }
            FieldType::Float16Vector => {
                let fsl = c
                    .as_fixed_size_list_opt()
                    .ok_or_else(|| bad(&f.name, "not a fixed-size list"))?;
                let dim = fsl.value_length() as usize;
                let halves = fsl.values().as_primitive::<Float16Type>();
                let mut bytes = Vec::with_capacity(halves.len() * 2);
                for h in halves.values().iter() {
                    bytes.extend_from_slice(&h.to_le_bytes());
                }
                byte_rows(bytes, dim * 2, fsl.nulls().cloned(), n)
            }
            FieldType::BinaryVector => {
                let b = c
                    .as_any()
                    .downcast_ref::<FixedSizeBinaryArray>()
                    .ok_or_else(|| bad(&f.name, "not fixed-size binary"))?;
                let width = b.value_length() as usize;
                byte_rows(b.value_data().to_vec(), width, b.nulls().cloned(), n)
            }
            FieldType::SparseFloatVector => {
                let s = c
                    .as_struct_opt()
                    .ok_or_else(|| bad(&f.name, "not a struct"))?;
                let idx = s
                    .column_by_name("indices")
                    .and_then(|a| a.as_list_opt::<i32>().cloned());
                let val = s
                    .column_by_name("values")
                    .and_then(|a| a.as_list_opt::<i32>().cloned());
                let (Some(idx), Some(val)) = (idx, val) else {
                    return Err(bad(&f.name, "sparse struct without indices/values"));
                };
                let mut out = StringBuilder::new();
                for r in 0..n {
                    if s.is_null(r) {
                        out.append_null();
                        continue;
                    }
                    let i = idx.value(r);
                    let v = val.value(r);
                    let i = i.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
                    let v = v.as_primitive::<datafusion::arrow::datatypes::Float32Type>();
                    let json = serde_json::json!({
                        "indices": i.values().iter().map(|x| *x as u32).collect::<Vec<_>>(),
                        "values": v.values().iter().copied().collect::<Vec<_>>(),
                    });
                    out.append_value(json.to_string());
                }
                Arc::new(out.finish())
            }
            _ => c.clone(),
        };
        cols.push(out);
    }
    RecordBatch::try_new(target.clone(), cols).map_err(|e| PipelineError::Internal {
        message: format!("staging a batch: {e}"),
    })
}

/// A staged batch back in the engine's layout (its key left for the engine when auto-ID).
pub fn from_milvus(
    batch: &RecordBatch,
    schema: &CollectionSchema,
    file: &str,
) -> Result<RecordBatch, PipelineError> {
    let n = batch.num_rows();
    let wrong = |f: &Field, what: String| PipelineError::Usage {
        message: format!("{file}: field `{}` ({}): {what}", f.name, f.data_type),
    };
    let mut cols: Vec<ArrayRef> = Vec::new();
    let mut fields: Vec<ArrowField> = Vec::new();
    for f in staged_fields(schema) {
        let Some(c) = batch.column_by_name(&f.name) else {
            if f.nullable {
                continue;
            }
            return Err(wrong(f, "missing from the file".into()));
        };
        let dim = f.dim.unwrap_or(0) as usize;
        let out: ArrayRef = match f.data_type {
            FieldType::FloatVector | FieldType::Float16Vector | FieldType::BinaryVector => {
                let l = c
                    .as_list_opt::<i32>()
                    .ok_or_else(|| wrong(f, format!("expected a list, found {}", c.data_type())))?;
                let width = match f.data_type {
                    FieldType::FloatVector => dim,
                    FieldType::Float16Vector => dim * 2,
                    _ => dim / 8,
                };
                if let Some(fast) = regular_rows(l, f, width)? {
                    fields.push(ArrowField::new(&f.name, fast.data_type().clone(), true));
                    cols.push(fast);
                    continue;
                }
                let mut flat_f32: Vec<f32> = Vec::new();
                let mut flat_u8: Vec<u8> = Vec::new();
                for r in 0..n {
                    if l.is_null(r) {
                        flat_f32.extend(std::iter::repeat_n(
                            0.0,
                            if f.data_type == FieldType::FloatVector {
                                width
                            } else {
                                0
                            },
                        ));
                        flat_u8.extend(std::iter::repeat_n(
                            0,
                            if f.data_type == FieldType::FloatVector {
                                0
                            } else {
                                width
                            },
                        ));
                        continue;
                    }
                    let v = l.value(r);
                    if v.len() != width {
                        return Err(wrong(
                            f,
                            format!(
                                "row {} holds {} values where {width} are expected",
                                r + 1,
                                v.len()
                            ),
                        ));
                    }
                    match f.data_type {
                        FieldType::FloatVector => {
                            let p = v
                                .as_primitive_opt::<datafusion::arrow::datatypes::Float32Type>()
                                .ok_or_else(|| {
                                    wrong(
                                        f,
                                        format!("expected float32 items, found {}", v.data_type()),
                                    )
                                })?;
                            flat_f32.extend_from_slice(p.values());
                        }
                        _ => {
                            let p = v
                                .as_primitive_opt::<datafusion::arrow::datatypes::UInt8Type>()
                                .ok_or_else(|| {
                                    wrong(
                                        f,
                                        format!("expected uint8 items, found {}", v.data_type()),
                                    )
                                })?;
                            flat_u8.extend_from_slice(p.values());
                        }
                    }
                }
                let nulls = l.nulls().cloned();
                match f.data_type {
                    FieldType::FloatVector => Arc::new(FixedSizeListArray::new(
                        Arc::new(ArrowField::new("item", DataType::Float32, false)),
                        dim as i32,
                        Arc::new(Float32Array::from(flat_f32)),
                        nulls,
                    )),
                    FieldType::Float16Vector => {
                        let halves: Vec<half::f16> = flat_u8
                            .chunks_exact(2)
                            .map(|b| half::f16::from_le_bytes([b[0], b[1]]))
                            .collect();
                        Arc::new(FixedSizeListArray::new(
                            Arc::new(ArrowField::new("item", DataType::Float16, false)),
                            dim as i32,
                            Arc::new(Float16Array::from(halves)),
                            nulls,
                        ))
                    }
                    _ => Arc::new(
                        FixedSizeBinaryArray::try_new(width as i32, flat_u8.into(), nulls)
                            .map_err(|e| wrong(f, e.to_string()))?,
                    ),
                }
            }
            FieldType::SparseFloatVector => {
                let s = c.as_string_opt::<i32>().ok_or_else(|| {
                    wrong(f, format!("expected JSON text, found {}", c.data_type()))
                })?;
                sparse_from_json(s, f, file)?
            }
            _ => datafusion::arrow::compute::cast_with_options(
                c,
                &f.arrow_type(),
                &datafusion::arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(|e| wrong(f, e.to_string()))?,
        };
        fields.push(ArrowField::new(&f.name, out.data_type().clone(), true));
        cols.push(out);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| PipelineError::Internal {
        message: format!("{file}: {e}"),
    })
}

/// The fast path for vectors: when every row holds exactly `width` items (no nulls), the list's
/// values are the fixed-size layout already; take them without a per-row copy.
fn regular_rows(l: &ListArray, f: &Field, width: usize) -> Result<Option<ArrayRef>, PipelineError> {
    if l.null_count() > 0 || width == 0 {
        return Ok(None);
    }
    let offsets = l.value_offsets();
    if offsets.windows(2).any(|w| (w[1] - w[0]) as usize != width) {
        return Ok(None);
    }
    let start = offsets[0] as usize;
    let values = l.values().slice(start, l.len() * width);
    let item = |dt: DataType| Arc::new(ArrowField::new("item", dt, false));
    Ok(match (f.data_type, values.data_type()) {
        (FieldType::FloatVector, DataType::Float32) => Some(Arc::new(FixedSizeListArray::new(
            item(DataType::Float32),
            width as i32,
            values,
            None,
        ))),
        (FieldType::Float16Vector, DataType::UInt8) => {
            let bytes = values.as_primitive::<datafusion::arrow::datatypes::UInt8Type>();
            let halves: Vec<half::f16> = bytes
                .values()
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]))
                .collect();
            Some(Arc::new(FixedSizeListArray::new(
                item(DataType::Float16),
                (width / 2) as i32,
                Arc::new(Float16Array::from(halves)),
                None,
            )))
        }
        (FieldType::BinaryVector, DataType::UInt8) => {
            let bytes = values.as_primitive::<datafusion::arrow::datatypes::UInt8Type>();
            Some(Arc::new(
                FixedSizeBinaryArray::try_new(width as i32, bytes.values().inner().clone(), None)
                    .map_err(|e| bad(&f.name, e))?,
            ))
        }
        _ => None,
    })
}

fn sparse_from_json(s: &StringArray, f: &Field, file: &str) -> Result<ArrayRef, PipelineError> {
    let mut idx_off = vec![0i32];
    let mut idx = Vec::new();
    let mut vals = Vec::new();
    let mut valid = Vec::with_capacity(s.len());
    for r in 0..s.len() {
        if s.is_null(r) {
            valid.push(false);
            idx_off.push(idx.len() as i32);
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(s.value(r)).map_err(|e| PipelineError::Usage {
                message: format!("{file}: field `{}` row {}: not JSON ({e})", f.name, r + 1),
            })?;
        let pairs: Vec<(i64, f64)> = match (&v["indices"], &v["values"]) {
            (serde_json::Value::Array(i), serde_json::Value::Array(x)) => i
                .iter()
                .zip(x)
                .map(|(a, b)| (a.as_i64().unwrap_or(-1), b.as_f64().unwrap_or(f64::NAN)))
                .collect(),
            _ => v
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, b)| (k.parse().unwrap_or(-1), b.as_f64().unwrap_or(f64::NAN)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        for (i, x) in pairs {
            idx.push(i32::try_from(i).map_err(|_| PipelineError::Usage {
                message: format!(
                    "{file}: field `{}` row {}: bad sparse index {i}",
                    f.name,
                    r + 1
                ),
            })?);
            vals.push(x as f32);
        }
        valid.push(true);
        idx_off.push(idx.len() as i32);
    }
    let offsets = OffsetBuffer::new(ScalarBuffer::from(idx_off));
    let indices = ListArray::new(
        Arc::new(ArrowField::new("item", DataType::Int32, false)),
        offsets.clone(),
        Arc::new(Int32Array::from(idx)),
        None,
    );
    let values = ListArray::new(
        Arc::new(ArrowField::new("item", DataType::Float32, false)),
        offsets,
        Arc::new(Float32Array::from(vals)),
        None,
    );
    Ok(Arc::new(StructArray::new(
        sparse_fields(),
        vec![Arc::new(indices), Arc::new(values)],
        Some(NullBuffer::from(valid)),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    /// An engine batch staged in Milvus' layout and read back is the same batch, for every
    /// field type and each dense vector kind (halfvec and bits as raw bytes in the stage).
    #[test]
    fn the_staged_layout_round_trips_every_type() {
        for vector in [
            FieldType::FloatVector,
            FieldType::Float16Vector,
            FieldType::BinaryVector,
        ] {
            let schema = testdata::schema(vector);
            let batch = testdata::batch(&schema, 9);
            let staged = to_milvus(&batch, &schema, &milvus_schema(&schema)).unwrap();
            assert_eq!(staged.num_rows(), 9);
            if vector != FieldType::FloatVector {
                // FLOAT16 and BINARY vectors are staged as lists of their bytes.
                let v = staged.column_by_name("v").unwrap();
                assert_eq!(v.data_type(), &bytes_list(), "{vector}");
            }
            let back = from_milvus(&staged, &schema, "f.parquet").unwrap();
            for (f, (a, b)) in schema
                .fields
                .iter()
                .zip(back.columns().iter().zip(batch.columns()))
            {
                assert_eq!(a.as_ref(), b.as_ref(), "{vector}: {}", f.name);
            }
        }
    }

    /// A staged file whose vectors have another dimension is refused naming file and field.
    #[test]
    fn a_staged_vector_of_another_dimension_is_refused() {
        let schema = testdata::schema(FieldType::FloatVector);
        let staged = to_milvus(
            &testdata::batch(&schema, 3),
            &schema,
            &milvus_schema(&schema),
        )
        .unwrap();
        let mut other = schema.clone();
        if let Some(v) = other.fields.iter_mut().find(|f| f.name == "v") {
            v.dim = Some(5);
        }
        let err = from_milvus(&staged, &other, "f.parquet")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.parquet") && err.contains("`v`"), "{err}");
    }
}
