//! A collection's schema, Milvus-style, and its one Arrow layout.
//!
//! Every field type has exactly one Arrow type, so segments, indexes and the SQL layer agree
//! without conversions: vectors are `FixedSizeList<Float32|Float16, dim>`, binary vectors
//! `FixedSizeBinary(dim / 8)`, sparse vectors `Struct<indices: List<Int32>, values: List<Float32>>`
//! (0-based indices, strictly increasing), JSON is UTF-8 text, ARRAY a `List` of its element.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Fields, Schema as ArrowSchema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result, did_you_mean};

pub use etl_types::FieldType;

/// Name of the dynamic field: a JSON object holding keys that are not fields.
pub const DYNAMIC_FIELD: &str = "$meta";

/// Longest VARCHAR Milvus accepts.
pub const MAX_VARCHAR: u32 = 65_535;
/// Largest ARRAY capacity Milvus accepts.
pub const MAX_CAPACITY: u32 = 4_096;

/// One field of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub data_type: FieldType,
    /// Dimension of FLOAT/FLOAT16/BINARY vectors (bits for BINARY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<u32>,
    /// Longest VARCHAR (in bytes, as Milvus counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// ARRAY element type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_type: Option<FieldType>,
    /// ARRAY capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_capacity: Option<u32>,
    /// NULL allowed.
    #[serde(default)]
    pub nullable: bool,
    /// Value stored for NULL (as JSON), applied by the loader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// This field is the primary key.
    #[serde(default)]
    pub primary_key: bool,
    /// This field is the partition key.
    #[serde(default)]
    pub partition_key: bool,
}

impl Field {
    /// A field with only a name and a type; set the rest with struct update syntax.
    pub fn new(name: impl Into<String>, data_type: FieldType) -> Field {
        Field {
            name: name.into(),
            data_type,
            dim: None,
            max_length: None,
            element_type: None,
            max_capacity: None,
            nullable: false,
            default: None,
            primary_key: false,
            partition_key: false,
        }
    }

    /// The Arrow type of this field's column.
    pub fn arrow_type(&self) -> DataType {
        arrow_type(self.data_type, self.dim, self.element_type)
    }

    /// Bytes per vector of this field (dimension × element size), 0 for non-vectors.
    pub fn dim_usize(&self) -> usize {
        self.dim.unwrap_or(0) as usize
    }
}

fn arrow_type(t: FieldType, dim: Option<u32>, element: Option<FieldType>) -> DataType {
    let dim = dim.unwrap_or(0) as i32;
    match t {
        FieldType::Bool => DataType::Boolean,
        FieldType::Int8 => DataType::Int8,
        FieldType::Int16 => DataType::Int16,
        FieldType::Int32 => DataType::Int32,
        FieldType::Int64 => DataType::Int64,
        FieldType::Float => DataType::Float32,
        FieldType::Double => DataType::Float64,
        FieldType::Varchar | FieldType::Json => DataType::Utf8,
        FieldType::Array => {
            let inner = arrow_type(element.unwrap_or(FieldType::Varchar), None, None);
            DataType::List(Arc::new(ArrowField::new("item", inner, true)))
        }
        FieldType::FloatVector => DataType::FixedSizeList(
            Arc::new(ArrowField::new("item", DataType::Float32, false)),
            dim,
        ),
        FieldType::Float16Vector => DataType::FixedSizeList(
            Arc::new(ArrowField::new("item", DataType::Float16, false)),
            dim,
        ),
        FieldType::BinaryVector => DataType::FixedSizeBinary(dim / 8),
        FieldType::SparseFloatVector => sparse_type(),
    }
}

/// The Arrow layout of SPARSE_FLOAT_VECTOR.
pub fn sparse_type() -> DataType {
    DataType::Struct(sparse_fields())
}

/// The children of the sparse struct: `indices` and `values`.
pub fn sparse_fields() -> Fields {
    Fields::from(vec![
        ArrowField::new(
            "indices",
            DataType::List(Arc::new(ArrowField::new("item", DataType::Int32, false))),
            false,
        ),
        ArrowField::new(
            "values",
            DataType::List(Arc::new(ArrowField::new("item", DataType::Float32, false))),
            false,
        ),
    ])
}

/// A collection's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSchema {
    /// The fields, the primary key among them.
    pub fields: Vec<Field>,
    /// The engine assigns INT64 primary keys.
    #[serde(default)]
    pub auto_id: bool,
    /// Keys that are not fields go into the `$meta` JSON field.
    #[serde(default)]
    pub dynamic_field: bool,
    /// Shard count (kept for Milvus; the embedded engine has one writer).
    #[serde(default = "one")]
    pub shards: u32,
    /// Free-form description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn one() -> u32 {
    1
}

impl CollectionSchema {
    /// Checks the rules Milvus enforces, naming the collection and the field.
    pub fn validate(&self, collection: &str) -> Result<()> {
        let bad = |reason: String| EngineError::InvalidSchema {
            collection: collection.to_string(),
            reason,
        };
        if !is_valid_name(collection) {
            return Err(bad(format!(
                "collection names are letters, digits and `_`, not starting with a digit, at most 255 characters; `{collection}` is not"
            )));
        }
        let pks: Vec<&Field> = self.fields.iter().filter(|f| f.primary_key).collect();
        match pks.as_slice() {
            [pk] if matches!(pk.data_type, FieldType::Int64 | FieldType::Varchar) => {
                if self.auto_id && pk.data_type != FieldType::Int64 {
                    return Err(bad(format!(
                        "auto_id needs an INT64 primary key, `{}` is {}",
                        pk.name, pk.data_type
                    )));
                }
                if pk.nullable {
                    return Err(bad(format!("primary key `{}` cannot be nullable", pk.name)));
                }
            }
            [pk] => {
                return Err(bad(format!(
                    "primary key `{}` must be INT64 or VARCHAR, not {}",
                    pk.name, pk.data_type
                )));
            }
            [] => return Err(bad("no primary key field".into())),
            _ => return Err(bad("more than one primary key field".into())),
        }
        // A collection without a vector field is a table: filtered, queried and joined (`etl
        // query`), not searched by similarity.
        if self.fields.iter().filter(|f| f.partition_key).count() > 1 {
            return Err(bad("more than one partition key field".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            if !seen.insert(f.name.as_str()) {
                return Err(bad(format!("field `{}` appears twice", f.name)));
            }
            if f.name != DYNAMIC_FIELD && !is_valid_name(&f.name) {
                return Err(bad(format!(
                    "field name `{}` is not letters, digits and `_`",
                    f.name
                )));
            }
            if f.name == DYNAMIC_FIELD && !(self.dynamic_field && f.data_type == FieldType::Json) {
                return Err(bad(format!(
                    "`{DYNAMIC_FIELD}` is reserved for the dynamic field"
                )));
            }
            validate_field(f).map_err(|r| bad(format!("field `{}`: {r}", f.name)))?;
        }
        Ok(())
    }

    /// The primary key field.
    pub fn primary_key(&self) -> &Field {
        // validate() guarantees exactly one; fall back to the first field.
        self.fields
            .iter()
            .find(|f| f.primary_key)
            .unwrap_or(&self.fields[0])
    }

    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// A field by name, or an error naming the collection and the closest field.
    pub fn field_or_err(&self, collection: &str, name: &str) -> Result<&Field> {
        self.field(name).ok_or_else(|| EngineError::UnknownField {
            collection: collection.to_string(),
            field: name.to_string(),
            hint: did_you_mean(name, self.fields.iter().map(|f| f.name.as_str())),
        })
    }

    /// The vector fields.
    pub fn vector_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.data_type.is_vector())
    }

    /// The Arrow schema of a segment: every field, in order.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(ArrowSchema::new(
            self.fields
                .iter()
                .map(|f| ArrowField::new(&f.name, f.arrow_type(), f.nullable))
                .collect::<Vec<_>>(),
        ))
    }
}

fn validate_field(f: &Field) -> Result<(), String> {
    match f.data_type {
        FieldType::FloatVector | FieldType::Float16Vector => match f.dim {
            Some(d) if (1..=32_768).contains(&d) => Ok(()),
            _ => Err("vector fields need a dim between 1 and 32768".into()),
        },
        FieldType::BinaryVector => match f.dim {
            Some(d) if d > 0 && d % 8 == 0 && d <= 65_536 => Ok(()),
            _ => Err("BINARY_VECTOR needs a dim that is a positive multiple of 8".into()),
        },
        FieldType::Varchar => match f.max_length {
            Some(l) if (1..=MAX_VARCHAR).contains(&l) => Ok(()),
            _ => Err(format!(
                "VARCHAR needs max_length between 1 and {MAX_VARCHAR}"
            )),
        },
        FieldType::Array => {
            match f.element_type {
                Some(e) if e.is_array_element() => {}
                _ => return Err("ARRAY needs an element_type that is BOOL, an integer, FLOAT, DOUBLE or VARCHAR".into()),
            }
            if f.element_type == Some(FieldType::Varchar) && f.max_length.is_none() {
                return Err("ARRAY of VARCHAR needs max_length".into());
            }
            match f.max_capacity {
                Some(c) if (1..=MAX_CAPACITY).contains(&c) => Ok(()),
                _ => Err(format!(
                    "ARRAY needs max_capacity between 1 and {MAX_CAPACITY}"
                )),
            }
        }
        _ => Ok(()),
    }
}

/// Collection and field names: `[A-Za-z_][A-Za-z0-9_]*`, at most 255 characters.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 255
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> CollectionSchema {
        CollectionSchema {
            fields: vec![
                Field {
                    primary_key: true,
                    ..Field::new("id", FieldType::Int64)
                },
                Field {
                    dim: Some(3),
                    ..Field::new("v", FieldType::FloatVector)
                },
            ],
            auto_id: false,
            dynamic_field: false,
            shards: 1,
            description: String::new(),
        }
    }

    #[test]
    fn validates_keys_and_vectors() {
        assert!(schema().validate("c").is_ok());
        let mut s = schema();
        s.fields[0].data_type = FieldType::Int32;
        assert!(
            s.validate("c")
                .unwrap_err()
                .to_string()
                .contains("INT64 or VARCHAR")
        );
        let mut s = schema();
        s.fields[1].dim = None;
        assert!(
            s.validate("c")
                .unwrap_err()
                .to_string()
                .contains("field `v`")
        );
        assert!(schema().validate("1bad").is_err());
    }

    #[test]
    fn types_parse_round_trip() {
        for t in FieldType::ALL {
            assert_eq!(FieldType::parse(t.name()), Some(t));
        }
        assert_eq!(
            FieldType::parse("float_vector"),
            Some(FieldType::FloatVector)
        );
    }
}
