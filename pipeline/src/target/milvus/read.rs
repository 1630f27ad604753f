//! A Milvus collection read back as Arrow, for `etl verify`: pages of rows in primary-key
//! order (`pk > last LIMIT n`, which the server answers sorted by key), each field's data
//! turned into the Arrow type the engine would hold it as. A page's row count and the
//! collection's count are checked against each other by the caller, so a server that
//! answered out of order fails loudly instead of skipping rows.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, Float64Array,
    Int32Array, Int64Array, ListArray, RecordBatch, StringArray, new_empty_array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema};
use etl_connectors::milvus::MilvusClient;
use etl_connectors::milvus::proto::{Field as MField, FieldData, ScalarField, Scalars, Vectors};
use etl_engine::{CollectionSchema, FieldType};

use crate::error::PipelineError;

/// Bytes of row data asked for per page.
const PAGE_BYTES: usize = 16 << 20;
/// The server's largest result window (`limit` + `offset`).
const MAX_PAGE_ROWS: usize = 16_384;

fn bad(field: &str, reason: impl std::fmt::Display) -> PipelineError {
    PipelineError::Internal {
        message: format!("reading field `{field}` back from Milvus: {reason}"),
    }
}

/// The rows of a collection, page by page in primary-key order.
pub struct Pager {
    client: MilvusClient,
    collection: String,
    key: etl_engine::Field,
    /// The fields returned, as Arrow columns in this order.
    fields: Vec<etl_engine::Field>,
    page_rows: usize,
    cursor: Option<String>,
    done: bool,
}

impl Pager {
    /// Pages `collection` (of `schema`), returning the fields named in `columns` in that order.
    pub fn new(
        client: MilvusClient,
        collection: &str,
        schema: &CollectionSchema,
        columns: &[String],
    ) -> Result<Pager, PipelineError> {
        let key = schema
            .fields
            .iter()
            .find(|f| f.primary_key)
            .cloned()
            .ok_or_else(|| bad(collection, "the schema has no primary key"))?;
        let mut fields = Vec::with_capacity(columns.len());
        for c in columns {
            let f = schema
                .fields
                .iter()
                .find(|f| &f.name == c)
                .ok_or_else(|| bad(c, "not in the collection schema"))?;
            fields.push(f.clone());
        }
        let row_bytes: usize = fields
            .iter()
            .map(|f| match f.data_type {
                FieldType::FloatVector => f.dim_usize() * 4,
                FieldType::BinaryVector => f.dim_usize() / 8,
                FieldType::Varchar | FieldType::Json | FieldType::Array => 256,
                _ => 8,
            })
            .sum::<usize>()
            .max(1);
        Ok(Pager {
            client,
            collection: collection.to_string(),
            key,
            fields,
            page_rows: (PAGE_BYTES / row_bytes).clamp(64, MAX_PAGE_ROWS),
            cursor: None,
            done: false,
        })
    }

    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<RecordBatch>, PipelineError> {
        if self.done {
            return Ok(None);
        }
        let expr = match &self.cursor {
            None if self.key.data_type == FieldType::Varchar => {
                format!("{} >= \"\"", self.key.name)
            }
            // The server's parser cannot read i64::MIN (it negates 9223372036854775808); a key
            // of exactly i64::MIN is left out and the caller's count check reports it.
            None => format!("{} >= {}", self.key.name, i64::MIN + 1),
            Some(c) => format!("{} > {c}", self.key.name),
        };
        let mut output: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
        if !output.contains(&self.key.name) {
            output.push(self.key.name.clone());
        }
        let data = self
            .client
            .query(
                &self.collection,
                &expr,
                &output,
                Some(self.page_rows as u64),
            )
            .await?;
        let key_data = data
            .iter()
            .find(|d| d.field_name == self.key.name)
            .ok_or_else(|| bad(&self.key.name, "the key was not returned"))?;
        let keys = to_arrow(key_data, &self.key)?;
        let rows = keys.len();
        if rows < self.page_rows {
            self.done = true;
        }
        if rows == 0 {
            return Ok(None);
        }
        self.cursor = Some(literal(&keys, rows - 1, self.key.data_type));
        let mut columns = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let d = data
                .iter()
                .find(|d| {
                    d.field_name == f.name
                        || (d.is_dynamic && f.name == etl_engine::schema::DYNAMIC_FIELD)
                })
                .ok_or_else(|| bad(&f.name, "not returned by the query"))?;
            columns.push(to_arrow(d, f)?);
        }
        let schema = Arc::new(Schema::new(
            self.fields
                .iter()
                .map(|f| ArrowField::new(&f.name, f.arrow_type(), true))
                .collect::<Vec<_>>(),
        ));
        RecordBatch::try_new(schema, columns)
            .map(Some)
            .map_err(|e| bad(&self.collection, e))
    }
}

/// Row `r` of a key column as a Milvus expression literal.
fn literal(keys: &ArrayRef, r: usize, t: FieldType) -> String {
    match t {
        FieldType::Varchar => {
            let s = keys
                .as_any()
                .downcast_ref::<StringArray>()
                .map(|a| a.value(r))
                .unwrap_or("");
            let mut out = String::with_capacity(s.len() + 2);
            out.push('"');
            for ch in s.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        _ => keys
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| a.value(r).to_string())
            .unwrap_or_default(),
    }
}

/// One field's data as an Arrow array of the type the engine holds `f` as.
pub fn to_arrow(d: &FieldData, f: &etl_engine::Field) -> Result<ArrayRef, PipelineError> {
    let target = f.arrow_type();
    match &d.field {
        Some(MField::Vectors(v)) => {
            let dim = v.dim as i32;
            match &v.data {
                Some(Vectors::Float(x)) => {
                    let item = Arc::new(ArrowField::new("item", DataType::Float32, false));
                    FixedSizeListArray::try_new(
                        item,
                        dim,
                        Arc::new(Float32Array::from(x.data.clone())),
                        None,
                    )
                    .map(|a| Arc::new(a) as ArrayRef)
                    .map_err(|e| bad(&f.name, e))
                }
                Some(Vectors::Binary(b)) => {
                    let width = (dim / 8).max(1) as usize;
                    FixedSizeBinaryArray::try_from_iter(b.chunks(width))
                        .map(|a| Arc::new(a) as ArrayRef)
                        .map_err(|e| bad(&f.name, e))
                }
                _ => Err(bad(&f.name, "this vector type is not read back")),
            }
        }
        Some(MField::Scalars(ScalarField { data: Some(s) })) => {
            let a = scalars(&f.name, s, f.element_type)?;
            if a.data_type() == &target {
                Ok(a)
            } else {
                cast(&a, &target).map_err(|e| bad(&f.name, e))
            }
        }
        _ => Ok(new_empty_array(&target)),
    }
}

fn scalars(name: &str, s: &Scalars, element: Option<FieldType>) -> Result<ArrayRef, PipelineError> {
    Ok(match s {
        Scalars::Bool(x) => Arc::new(BooleanArray::from(x.data.clone())),
        Scalars::Int(x) => Arc::new(Int32Array::from(x.data.clone())),
        Scalars::Long(x) => Arc::new(Int64Array::from(x.data.clone())),
        Scalars::Float(x) => Arc::new(Float32Array::from(x.data.clone())),
        Scalars::Double(x) => Arc::new(Float64Array::from(x.data.clone())),
        Scalars::String(x) => Arc::new(StringArray::from(x.data.clone())),
        Scalars::Json(x) => Arc::new(StringArray::from(
            x.data
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>(),
        )),
        Scalars::Array(x) => {
            let elem = element.unwrap_or(FieldType::Varchar);
            let item_type = etl_engine::Field::new("item", elem).arrow_type();
            let mut parts: Vec<ArrayRef> = Vec::with_capacity(x.data.len());
            let mut offsets = vec![0i32];
            for row in &x.data {
                let a = match &row.data {
                    Some(s) => {
                        let a = scalars(name, s, None)?;
                        cast(&a, &item_type).map_err(|e| bad(name, e))?
                    }
                    None => new_empty_array(&item_type),
                };
                offsets.push(offsets[offsets.len() - 1] + a.len() as i32);
                parts.push(a);
            }
            let values = if parts.is_empty() {
                new_empty_array(&item_type)
            } else {
                concat(&parts.iter().map(|a| a.as_ref()).collect::<Vec<_>>())
                    .map_err(|e| bad(name, e))?
            };
            Arc::new(
                ListArray::try_new(
                    Arc::new(ArrowField::new("item", item_type, true)),
                    OffsetBuffer::new(offsets.into()),
                    values,
                    None,
                )
                .map_err(|e| bad(name, e))?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_keys_become_literals_the_server_parses() {
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["a\"b\\c\nd\te\u{1}"]));
        assert_eq!(
            literal(&keys, 0, FieldType::Varchar),
            "\"a\\\"b\\\\c\\nd\\te\\u0001\""
        );
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![-5]));
        assert_eq!(literal(&ints, 0, FieldType::Int64), "-5");
    }
}
