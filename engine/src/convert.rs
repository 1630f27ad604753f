//! Arrow values → JSON, for hits, query rows and `--format json`.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
};
use serde_json::{Number, Value};

use crate::schema::FieldType;

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Row `r` of a column as JSON. JSON fields (UTF-8 text) are parsed back into values.
pub fn to_json(c: &dyn Array, r: usize, field_type: Option<FieldType>) -> Value {
    if c.is_null(r) {
        return Value::Null;
    }
    match c.data_type() {
        DataType::Boolean => Value::Bool(c.as_boolean().value(r)),
        DataType::Int8 => c.as_primitive::<Int8Type>().value(r).into(),
        DataType::Int16 => c.as_primitive::<Int16Type>().value(r).into(),
        DataType::Int32 => c.as_primitive::<Int32Type>().value(r).into(),
        DataType::Int64 => c.as_primitive::<Int64Type>().value(r).into(),
        DataType::Float16 => float(f64::from(c.as_primitive::<Float16Type>().value(r).to_f32())),
        DataType::Float32 => float(f64::from(c.as_primitive::<Float32Type>().value(r))),
        DataType::Float64 => float(c.as_primitive::<Float64Type>().value(r)),
        DataType::Utf8 => {
            let s = c.as_string::<i32>().value(r);
            if field_type == Some(FieldType::Json) {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
            } else {
                Value::String(s.to_string())
            }
        }
        DataType::List(_) => {
            let v = c.as_list::<i32>().value(r);
            Value::Array((0..v.len()).map(|i| to_json(v.as_ref(), i, None)).collect())
        }
        DataType::FixedSizeList(..) => {
            let v = c.as_fixed_size_list().value(r);
            Value::Array((0..v.len()).map(|i| to_json(v.as_ref(), i, None)).collect())
        }
        DataType::FixedSizeBinary(_) => {
            let bytes = c.as_fixed_size_binary().value(r);
            Value::String(bytes.iter().map(|b| format!("{b:08b}")).collect())
        }
        DataType::Struct(_) => match crate::vector::sparse_children(c.as_struct()) {
            Ok((idx, val)) => {
                let (i, v) = (idx.value(r), val.value(r));
                let (i, v) = (
                    i.as_primitive::<Int32Type>(),
                    v.as_primitive::<Float32Type>(),
                );
                Value::Object(
                    i.values()
                        .iter()
                        .zip(v.values())
                        .map(|(i, v)| (i.to_string(), float(f64::from(*v))))
                        .collect(),
                )
            }
            Err(_) => Value::Null,
        },
        DataType::Binary => Value::String(
            c.as_binary::<i32>()
                .value(r)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        ),
        _ => Value::Null,
    }
}
