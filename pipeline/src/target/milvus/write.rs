//! Batches into a Milvus collection over gRPC: columns as the server's field data, requests
//! kept under its message limit, rate limits and dropped connections retried with backoff.
//! Upserts instead of inserts where rows may already be there (a resumed range of a keyed
//! table).

use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, FixedSizeBinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
};
use etl_connectors::milvus::MilvusClient;
use etl_connectors::milvus::proto::{
    ArrayArray, BoolArray, BytesArray, DoubleArray, Field as MField, FieldData, FloatArray,
    IntArray, LongArray, ScalarField, Scalars, StringArray, VectorField, Vectors,
};
use etl_engine::{CollectionSchema, FieldType};
use tokio::runtime::Handle;

use super::job::LoadRecord;
use super::wire::wire_type;
use crate::error::PipelineError;
use crate::target::{Checkpoint, RANGES_KEY, TableSink};

/// Bytes of column data per insert request (the server takes 64 MiB messages by default).
const MAX_REQUEST_BYTES: usize = 32 << 20;

fn bad(field: &str, reason: impl std::fmt::Display) -> PipelineError {
    PipelineError::Internal {
        message: format!("field `{field}`: {reason}"),
    }
}

/// Column `c` as Milvus field data. Milvus 2.3 has no NULL: a NULL scalar is written as the
/// type's zero value (as its own bulk import does for VARCHAR).
fn column(f: &etl_engine::Field, c: &ArrayRef) -> Result<FieldData, PipelineError> {
    let t = wire_type(f.data_type);
    let scalars = |data: Scalars| Some(MField::Scalars(ScalarField { data: Some(data) }));
    let field = match f.data_type {
        FieldType::FloatVector => {
            let l = c
                .as_fixed_size_list_opt()
                .ok_or_else(|| bad(&f.name, "not a fixed-size list"))?;
            let values = l
                .values()
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| bad(&f.name, "vector values are not float32"))?;
            let start = l.offset() * l.value_length() as usize;
            let data = values.values()[start..start + l.len() * l.value_length() as usize].to_vec();
            Some(MField::Vectors(VectorField {
                dim: i64::from(l.value_length()),
                data: Some(Vectors::Float(FloatArray { data })),
            }))
        }
        FieldType::BinaryVector => {
            let b = c
                .as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .ok_or_else(|| bad(&f.name, "not fixed-size binary"))?;
            let data: Vec<u8> = (0..b.len()).flat_map(|i| b.value(i).to_vec()).collect();
            Some(MField::Vectors(VectorField {
                dim: i64::from(b.value_length()) * 8,
                data: Some(Vectors::Binary(data)),
            }))
        }
        FieldType::Float16Vector | FieldType::SparseFloatVector => {
            return Err(bad(
                &f.name,
                "this vector type is not written to Milvus here",
            ));
        }
        _ => scalars(scalar_data(
            &f.name,
            f.data_type,
            f.element_type,
            c.as_ref(),
        )?),
    };
    Ok(FieldData {
        r#type: t,
        field_name: f.name.clone(),
        field,
        is_dynamic: f.name == etl_engine::schema::DYNAMIC_FIELD,
    })
}

fn scalar_data(
    name: &str,
    t: FieldType,
    element: Option<FieldType>,
    c: &dyn Array,
) -> Result<Scalars, PipelineError> {
    let ints = |c: &dyn Array| -> Result<Vec<i32>, PipelineError> {
        Ok(match c.data_type() {
            ArrowType::Int8 => c
                .as_primitive_opt::<Int8Type>()
                .ok_or_else(|| bad(name, "not Int8Type"))?
                .iter()
                .map(|v| i32::from(v.unwrap_or(0)))
                .collect(),
            ArrowType::Int16 => c
                .as_primitive_opt::<Int16Type>()
                .ok_or_else(|| bad(name, "not Int16Type"))?
                .iter()
                .map(|v| i32::from(v.unwrap_or(0)))
                .collect(),
            ArrowType::Int32 => c
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| bad(name, "not Int32Type"))?
                .iter()
                .map(|v| v.unwrap_or(0))
                .collect(),
            other => return Err(bad(name, format!("{other} is not an integer column"))),
        })
    };
    Ok(match t {
        FieldType::Bool => Scalars::Bool(BoolArray {
            data: c
                .as_boolean_opt()
                .ok_or_else(|| bad(name, "not a boolean column"))?
                .iter()
                .map(|v| v.unwrap_or(false))
                .collect(),
        }),
        FieldType::Int8 | FieldType::Int16 | FieldType::Int32 => {
            Scalars::Int(IntArray { data: ints(c)? })
        }
        FieldType::Int64 => Scalars::Long(LongArray {
            data: c
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| bad(name, "not Int64Type"))?
                .iter()
                .map(|v| v.unwrap_or(0))
                .collect(),
        }),
        FieldType::Float => Scalars::Float(FloatArray {
            data: c
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| bad(name, "not Float32Type"))?
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect(),
        }),
        FieldType::Double => Scalars::Double(DoubleArray {
            data: c
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| bad(name, "not Float64Type"))?
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect(),
        }),
        FieldType::Varchar => Scalars::String(StringArray {
            data: c
                .as_string_opt::<i32>()
                .ok_or_else(|| bad(name, "not a string column"))?
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect(),
        }),
        FieldType::Json => Scalars::Json(BytesArray {
            data: c
                .as_string_opt::<i32>()
                .ok_or_else(|| bad(name, "not a string column"))?
                .iter()
                .map(|v| v.unwrap_or("{}").as_bytes().to_vec())
                .collect(),
        }),
        FieldType::Array => {
            let l = c
                .as_list_opt::<i32>()
                .ok_or_else(|| bad(name, "not a list column"))?;
            let elem = element.unwrap_or(FieldType::Varchar);
            let mut data = Vec::with_capacity(l.len());
            for i in 0..l.len() {
                let v = if l.is_null(i) {
                    datafusion::arrow::array::new_empty_array(&l.value_type())
                } else {
                    l.value(i)
                };
                data.push(ScalarField {
                    data: Some(scalar_data(name, elem, None, v.as_ref())?),
                });
            }
            Scalars::Array(ArrayArray {
                data,
                element_type: wire_type(elem),
            })
        }
        other => return Err(bad(name, format!("{other} is not a scalar"))),
    })
}

/// The batch's rows split so each insert stays under the message limit.
fn chunks(batch: &RecordBatch) -> Vec<RecordBatch> {
    let bytes = batch.get_array_memory_size().max(1);
    let parts = bytes.div_ceil(MAX_REQUEST_BYTES).max(1);
    let rows = batch.num_rows().div_ceil(parts).max(1);
    (0..batch.num_rows())
        .step_by(rows)
        .map(|at| batch.slice(at, rows.min(batch.num_rows() - at)))
        .collect()
}

/// A collection being loaded by inserts, on the writer thread: each batch inserted (rate limits
/// and dropped connections retried with backoff); a range's commit is an acknowledgement,
/// recorded in the load record.
pub(crate) struct MilvusSink {
    pub client: MilvusClient,
    pub handle: Handle,
    pub collection: String,
    pub schema: CollectionSchema,
    /// The fields sent (an auto ID is the server's).
    pub fields: Vec<etl_engine::Field>,
    pub record_path: std::path::PathBuf,
    pub record: LoadRecord,
    /// Rows of a resumed range may be there already: replaced by key, not doubled.
    pub upsert: bool,
}

impl MilvusSink {
    pub(crate) fn new(
        client: MilvusClient,
        collection: &str,
        schema: &CollectionSchema,
        (record_path, record): (std::path::PathBuf, LoadRecord),
        upsert: bool,
    ) -> Self {
        MilvusSink {
            client,
            handle: Handle::current(),
            collection: collection.to_string(),
            fields: schema
                .fields
                .iter()
                .filter(|f| !(f.primary_key && schema.auto_id))
                .cloned()
                .collect(),
            schema: schema.clone(),
            record_path,
            record,
            upsert,
        }
    }
}

impl TableSink for MilvusSink {
    fn write(&mut self, _range: &str, batch: &RecordBatch) -> Result<(), PipelineError> {
        let keyed = !self.schema.auto_id;
        // The stand-ins `etl plan` shows and `etl verify` expects, defined once.
        let batch = super::fill_nulls(batch, &self.schema)?;
        for part in chunks(&batch) {
            let mut data = Vec::new();
            for f in &self.fields {
                if let Some(c) = part.column_by_name(&f.name) {
                    data.push(column(f, c)?);
                }
            }
            let n = part.num_rows() as u32;
            let mut delay = Duration::from_millis(200);
            let mut attempt = 0;
            let mut upsert = self.upsert;
            loop {
                let (client, name) = (&self.client, &self.collection);
                let sent = if upsert {
                    self.handle.block_on(client.upsert(name, data.clone(), n))
                } else {
                    self.handle.block_on(client.insert(name, data.clone(), n))
                };
                match sent {
                    Ok(_) => break,
                    Err(e) if attempt < 6 && retryable(&e, keyed) => {
                        attempt += 1;
                        // A dropped connection may have delivered the request: sent again by
                        // key, its rows are replaced rather than doubled.
                        upsert |= keyed;
                        tracing::warn!(collection = %name, attempt, "insert failed, retrying: {e}");
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    fn commit(&mut self, range: &str, checkpoint: Checkpoint) -> Result<(), PipelineError> {
        // Every insert of the range was acknowledged: the server has its rows.
        if let Some(n) = checkpoint.get(RANGES_KEY).and_then(|v| v.as_u64()) {
            self.record.ranges = n as usize;
        }
        self.record.done.insert(range.to_string());
        self.record.save(&self.record_path)
    }

    fn close(self: Box<Self>) -> Result<(), PipelineError> {
        Ok(())
    }
}

/// Whether a failed write is sent again: rate limits and quotas (the server refused it); a
/// dropped connection only for a keyed collection (sent again as an upsert: an auto-ID
/// collection would get the rows twice if the first request was applied).
fn retryable(e: &etl_connectors::ConnectorError, keyed: bool) -> bool {
    match e {
        etl_connectors::ConnectorError::Unreachable { .. } => keyed,
        etl_connectors::ConnectorError::Milvus { reason, .. } => {
            let r = reason.to_ascii_lowercase();
            r.contains("rate limit")
                || r.contains("too many")
                || r.contains("deny to write")
                || r.contains("quota")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use datafusion::arrow::array::StringArray;

    /// Arrow → Milvus field data → Arrow gives back the same column, for every type written.
    #[test]
    fn field_data_round_trips_every_type() {
        for vector in [FieldType::FloatVector, FieldType::BinaryVector] {
            let schema = testdata::schema(vector);
            let batch = testdata::batch(&schema, 7);
            for (f, c) in schema.fields.iter().zip(batch.columns()) {
                let data = column(f, c).unwrap();
                assert_eq!(data.field_name, f.name);
                let back = super::super::read::to_arrow(&data, f).unwrap();
                assert_eq!(back.as_ref(), c.as_ref(), "{} ({})", f.name, f.data_type);
            }
        }
    }

    /// Milvus 2.3 has no NULL: a NULL scalar is sent as the type's zero value.
    #[test]
    fn a_null_scalar_is_sent_as_its_zero_value() {
        let f = etl_engine::Field {
            max_length: Some(8),
            ..etl_engine::Field::new("s", FieldType::Varchar)
        };
        let c: ArrayRef = std::sync::Arc::new(StringArray::from(vec![Some("a"), None]));
        let back = super::super::read::to_arrow(&column(&f, &c).unwrap(), &f).unwrap();
        let back = back.as_string::<i32>();
        assert_eq!(
            (back.value(0), back.value(1), back.null_count()),
            ("a", "", 0)
        );
    }
}
