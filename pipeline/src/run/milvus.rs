//! `etl run` into a real Milvus: the collection created from the resolved schema (refused up
//! front when the server's version cannot hold it), the mapped batches inserted over gRPC in
//! requests kept under the server's message limit (retried with backoff), then the indexes
//! built and waited for, and the collection loaded.

use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, FixedSizeBinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType as ArrowType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
};
use etl_connectors::milvus::MilvusClient;
use etl_connectors::milvus::proto::{
    ArrayArray, BoolArray, BytesArray, CollectionSchema as MSchema, DoubleArray, Field as MField,
    FieldData, FieldSchema, FloatArray, IntArray, KeyValuePair, LongArray, ScalarField, Scalars,
    StringArray, VectorField, Vectors, data_type,
};
use etl_engine::{CollectionSchema, FieldType, IndexSpec, IndexType};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::{CommitStats, WriterMsg};
use crate::error::PipelineError;

/// Bytes of column data per insert request (the server takes 64 MiB messages by default).
const MAX_REQUEST_BYTES: usize = 32 << 20;

fn wire_type(t: FieldType) -> i32 {
    match t {
        FieldType::Bool => data_type::BOOL,
        FieldType::Int8 => data_type::INT8,
        FieldType::Int16 => data_type::INT16,
        FieldType::Int32 => data_type::INT32,
        FieldType::Int64 => data_type::INT64,
        FieldType::Float => data_type::FLOAT,
        FieldType::Double => data_type::DOUBLE,
        FieldType::Varchar => data_type::VARCHAR,
        FieldType::Json => data_type::JSON,
        FieldType::Array => data_type::ARRAY,
        FieldType::FloatVector => data_type::FLOAT_VECTOR,
        FieldType::Float16Vector => data_type::FLOAT16_VECTOR,
        FieldType::BinaryVector => data_type::BINARY_VECTOR,
        FieldType::SparseFloatVector => data_type::SPARSE_FLOAT_VECTOR,
    }
}

/// What a server of `version` (`v2.3.5-lite`) cannot hold in `schema`, one line each.
pub fn unsupported(schema: &CollectionSchema, version: &str) -> Vec<String> {
    let old = version_before(version, 2, 4);
    let mut out = Vec::new();
    let vectors: Vec<&etl_engine::Field> = schema
        .fields
        .iter()
        .filter(|f| f.data_type.is_vector())
        .collect();
    if old && vectors.len() > 1 {
        out.push(format!(
            "{} vector fields ({}): Milvus {version} holds one per collection (2.4 and later hold several)",
            vectors.len(),
            vectors.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    for f in &schema.fields {
        match f.data_type {
            FieldType::SparseFloatVector if old => out.push(format!(
                "`{}` is SPARSE_FLOAT_VECTOR: Milvus {version} does not support it (2.4 and later do)",
                f.name
            )),
            FieldType::Float16Vector if old => out.push(format!(
                "`{}` is FLOAT16_VECTOR: Milvus {version} stores it but searches it wrongly; map it to FLOAT_VECTOR (`type: FLOAT_VECTOR`) or use Milvus 2.4+",
                f.name
            )),
            t if t.is_vector() && f.nullable && old => out.push(format!(
                "`{}` is a nullable vector: Milvus {version} has no NULL vectors; mark it `nullable: false` (rows with NULL are then rejected) or give a `default`",
                f.name
            )),
            _ => {}
        }
    }
    out
}

/// Whether a server version (`v2.3.5-lite`) is before `major.minor`.
pub fn version_before(version: &str, major: u32, minor: u32) -> bool {
    let v: Vec<u32> = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    (
        v.first().copied().unwrap_or(0),
        v.get(1).copied().unwrap_or(0),
    ) < (major, minor)
}

/// Milvus before 2.4 has no NULL vectors: a nullable vector field becomes non-nullable, so rows
/// with a NULL there are rejected (to the rejects file, within max_rejects) rather than the
/// table refused. Returns the fields changed.
pub fn relax_null_vectors(tp: &mut etl_mappings::TablePlan, version: &str) -> Vec<String> {
    let mut changed = Vec::new();
    if version_before(version, 2, 4) {
        for f in &mut tp.fields {
            if f.nullable && f.data_type.is_some_and(|d| d.is_vector()) {
                f.nullable = false;
                changed.push(f.source.clone().unwrap_or_else(|| f.name.clone()));
            }
        }
    }
    changed
}

/// The Milvus schema of an engine schema.
pub fn milvus_schema(name: &str, schema: &CollectionSchema) -> MSchema {
    let kv = |k: &str, v: String| KeyValuePair {
        key: k.into(),
        value: v,
    };
    MSchema {
        name: name.into(),
        description: schema.description.clone(),
        auto_id: schema.auto_id,
        enable_dynamic_field: schema.dynamic_field,
        fields: schema
            .fields
            .iter()
            .filter(|f| f.name != etl_engine::schema::DYNAMIC_FIELD)
            .map(|f| {
                let mut params = Vec::new();
                if let Some(d) = f.dim {
                    params.push(kv("dim", d.to_string()));
                }
                if let Some(m) = f.max_length {
                    params.push(kv("max_length", m.to_string()));
                }
                if let Some(c) = f.max_capacity {
                    params.push(kv("max_capacity", c.to_string()));
                }
                FieldSchema {
                    name: f.name.clone(),
                    is_primary_key: f.primary_key,
                    data_type: wire_type(f.data_type),
                    type_params: params,
                    auto_id: f.primary_key && schema.auto_id,
                    element_type: f.element_type.map(wire_type).unwrap_or(0),
                    is_partition_key: f.partition_key,
                    ..Default::default()
                }
            })
            .collect(),
    }
}

/// Index parameters for `CreateIndex`, or `None` for what the server builds by itself.
pub fn index_params(spec: &IndexSpec) -> Option<Vec<(String, String)>> {
    let metric = spec.metric.map(|m| m.name().to_string());
    let mut p = vec![];
    match spec.index_type {
        IndexType::Hnsw => {
            let h = spec.hnsw.unwrap_or_default();
            p.push(("index_type".into(), "HNSW".into()));
            p.push((
                "params".into(),
                format!(
                    "{{\"M\": {}, \"efConstruction\": {}}}",
                    h.m, h.ef_construction
                ),
            ));
        }
        IndexType::Flat => p.push(("index_type".into(), "FLAT".into())),
        IndexType::BinFlat => p.push(("index_type".into(), "BIN_FLAT".into())),
        IndexType::SparseInvertedIndex => {
            p.push(("index_type".into(), "SPARSE_INVERTED_INDEX".into()))
        }
        // Scalar indexes: 2.3 has STL_SORT and Trie only; the server answers filters without.
        IndexType::StlSort | IndexType::Inverted => return None,
    }
    if let Some(m) = metric {
        p.push(("metric_type".into(), m));
    }
    Some(p)
}

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
            let values = l.values().as_primitive::<Float32Type>();
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
                .as_primitive::<Int8Type>()
                .iter()
                .map(|v| i32::from(v.unwrap_or(0)))
                .collect(),
            ArrowType::Int16 => c
                .as_primitive::<Int16Type>()
                .iter()
                .map(|v| i32::from(v.unwrap_or(0)))
                .collect(),
            ArrowType::Int32 => c
                .as_primitive::<Int32Type>()
                .iter()
                .map(|v| v.unwrap_or(0))
                .collect(),
            other => return Err(bad(name, format!("{other} is not an integer column"))),
        })
    };
    Ok(match t {
        FieldType::Bool => Scalars::Bool(BoolArray {
            data: c.as_boolean().iter().map(|v| v.unwrap_or(false)).collect(),
        }),
        FieldType::Int8 | FieldType::Int16 | FieldType::Int32 => {
            Scalars::Int(IntArray { data: ints(c)? })
        }
        FieldType::Int64 => Scalars::Long(LongArray {
            data: c
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.unwrap_or(0))
                .collect(),
        }),
        FieldType::Float => Scalars::Float(FloatArray {
            data: c
                .as_primitive::<Float32Type>()
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect(),
        }),
        FieldType::Double => Scalars::Double(DoubleArray {
            data: c
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect(),
        }),
        FieldType::Varchar => Scalars::String(StringArray {
            data: c
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect(),
        }),
        FieldType::Json => Scalars::Json(BytesArray {
            data: c
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("{}").as_bytes().to_vec())
                .collect(),
        }),
        FieldType::Array => {
            let l = c.as_list::<i32>();
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

/// The writer thread of a Milvus target: inserts each batch (retrying rate limits and dropped
/// connections with backoff); a range's commit is an acknowledgement.
pub(crate) fn milvus_loop(
    client: MilvusClient,
    handle: Handle,
    collection: String,
    schema: CollectionSchema,
    rx: &mut mpsc::Receiver<WriterMsg>,
) -> Result<Vec<super::StagedFile>, PipelineError> {
    let fields: Vec<etl_engine::Field> = schema
        .fields
        .iter()
        .filter(|f| !(f.primary_key && schema.auto_id))
        .cloned()
        .collect();
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            WriterMsg::Write(_, batch) => {
                for part in chunks(&batch) {
                    let mut data = Vec::new();
                    for f in &fields {
                        if let Some(c) = part.column_by_name(&f.name) {
                            data.push(column(f, c)?);
                        }
                    }
                    let n = part.num_rows() as u32;
                    let mut delay = Duration::from_millis(200);
                    let mut attempt = 0;
                    loop {
                        match handle.block_on(client.insert(&collection, data.clone(), n)) {
                            Ok(_) => break,
                            Err(e) if attempt < 6 && retryable(&e) => {
                                attempt += 1;
                                tracing::warn!(collection = %collection, attempt, "insert failed, retrying: {e}");
                                std::thread::sleep(delay);
                                delay = (delay * 2).min(Duration::from_secs(10));
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
            WriterMsg::Commit(_, _, reply) => {
                let _ = reply.send(Ok(CommitStats::default()));
            }
        }
    }
    Ok(Vec::new())
}

fn retryable(e: &etl_connectors::ConnectorError) -> bool {
    match e {
        etl_connectors::ConnectorError::Unreachable { .. } => true,
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
