//! Sample engine batches for the unit tests of the pure conversions (Milvus field data, the
//! staged Parquet layout): every field type, values that differ row by row, no NULLs.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Float32Type, Int32Type};
use etl_engine::{CollectionSchema, Field, FieldType};

/// A schema with a field of each type Milvus 2.3 holds (one vector field per kind given).
pub(crate) fn schema(vector: FieldType) -> CollectionSchema {
    let f = |name: &str, t: FieldType| Field::new(name, t);
    let mut fields = vec![
        Field {
            primary_key: true,
            ..f("id", FieldType::Int64)
        },
        f("b", FieldType::Bool),
        f("i8", FieldType::Int8),
        f("i16", FieldType::Int16),
        f("i32", FieldType::Int32),
        f("x", FieldType::Float),
        f("y", FieldType::Double),
        Field {
            max_length: Some(64),
            ..f("s", FieldType::Varchar)
        },
        f("j", FieldType::Json),
        Field {
            element_type: Some(FieldType::Int32),
            max_capacity: Some(8),
            ..f("a", FieldType::Array)
        },
    ];
    let dim = if vector == FieldType::BinaryVector {
        16
    } else {
        4
    };
    fields.push(Field {
        dim: Some(dim),
        ..f("v", vector)
    });
    CollectionSchema {
        fields,
        auto_id: false,
        dynamic_field: false,
        shards: 1,
        description: String::new(),
    }
}

/// `n` rows of `schema`, each field's values a function of the row.
pub(crate) fn batch(schema: &CollectionSchema, n: usize) -> RecordBatch {
    let cols: Vec<ArrayRef> = schema.fields.iter().map(|f| column(f, n)).collect();
    RecordBatch::try_new(schema.arrow_schema(), cols).unwrap()
}

fn column(f: &Field, n: usize) -> ArrayRef {
    let rows = 0..n as i64;
    let c: ArrayRef = match f.data_type {
        FieldType::Bool => Arc::new(BooleanArray::from_iter(rows.map(|r| Some(r % 3 == 0)))),
        FieldType::Int8 => Arc::new(Int8Array::from_iter_values(rows.map(|r| (r % 100) as i8))),
        FieldType::Int16 => Arc::new(Int16Array::from_iter_values(
            rows.map(|r| (r as i16).wrapping_sub(7)),
        )),
        FieldType::Int32 => Arc::new(Int32Array::from_iter_values(
            rows.map(|r| (r as i32).wrapping_mul(3)),
        )),
        FieldType::Int64 => Arc::new(Int64Array::from_iter_values(rows.map(|r| r * 1000 + 1))),
        FieldType::Float => Arc::new(Float32Array::from_iter_values(rows.map(|r| r as f32 / 4.0))),
        FieldType::Double => Arc::new(Float64Array::from_iter_values(rows.map(|r| r as f64 / 3.0))),
        FieldType::Varchar => Arc::new(StringArray::from_iter_values(
            rows.map(|r| format!("row {r} ünï \"q\"")),
        )),
        FieldType::Json => Arc::new(StringArray::from_iter_values(
            rows.map(|r| format!("{{\"k\":{r},\"t\":\"v{r}\"}}")),
        )),
        FieldType::Array => Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(rows.map(
            |r| {
                Some(
                    (0..(r % 4) as i32)
                        .map(|k| Some(k + r as i32))
                        .collect::<Vec<_>>(),
                )
            },
        ))),
        FieldType::FloatVector | FieldType::Float16Vector => {
            let dim = f.dim.unwrap_or(4) as i32;
            Arc::new(
                FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
                    rows.map(|r| {
                        Some(
                            (0..dim)
                                .map(|k| Some((r as f32 + k as f32) / 8.0))
                                .collect::<Vec<_>>(),
                        )
                    }),
                    dim,
                ),
            )
        }
        FieldType::BinaryVector => {
            let width = f.dim.unwrap_or(16) as usize / 8;
            Arc::new(
                FixedSizeBinaryArray::try_from_iter(rows.map(|r| {
                    (0..width)
                        .map(|k| (r as u8).wrapping_mul(31).wrapping_add(k as u8))
                        .collect::<Vec<u8>>()
                }))
                .unwrap(),
            )
        }
        FieldType::SparseFloatVector => unimplemented!("no sparse sample"),
    };
    cast(&c, &f.arrow_type()).unwrap()
}
