//! A real Milvus as the target. Here: the wire types, the collection schema and index
//! parameters it is sent, and the end of a load (indexes, load, count). `rules` holds what a
//! server's version can hold (asked of the server, refused up front, the same findings in
//! `etl plan`), `nulls` how NULLs are written to a server without nullable fields; [`write`]
//! inserts batches, [`read`] pages collections back as Arrow for `etl verify`, [`import`]
//! loads a stage through the server's bulk import.

pub mod import;
pub mod job;
mod nulls;
pub mod read;
mod rules;
pub mod search;
pub mod write;

pub use nulls::{fill_nulls, null_stand_in, nullable_scalars};
pub use rules::{
    Existing, existing, fit_tables, foreign_finding, holds_nulls, null_vector_fixes,
    refuse_unsupported, relax_null_vectors, unsupported, unsupported_findings, version_before,
};

use etl_connectors::milvus::proto::{
    CollectionSchema as MSchema, FieldSchema, KeyValuePair, data_type,
};
use etl_engine::{CollectionSchema, FieldType, IndexSpec, IndexType};

use crate::error::PipelineError;

/// The engine's field types and Milvus' wire types, one table for both directions.
const WIRE_TYPES: [(FieldType, i32); 14] = [
    (FieldType::Bool, data_type::BOOL),
    (FieldType::Int8, data_type::INT8),
    (FieldType::Int16, data_type::INT16),
    (FieldType::Int32, data_type::INT32),
    (FieldType::Int64, data_type::INT64),
    (FieldType::Float, data_type::FLOAT),
    (FieldType::Double, data_type::DOUBLE),
    (FieldType::Varchar, data_type::VARCHAR),
    (FieldType::Json, data_type::JSON),
    (FieldType::Array, data_type::ARRAY),
    (FieldType::FloatVector, data_type::FLOAT_VECTOR),
    (FieldType::Float16Vector, data_type::FLOAT16_VECTOR),
    (FieldType::BinaryVector, data_type::BINARY_VECTOR),
    (FieldType::SparseFloatVector, data_type::SPARSE_FLOAT_VECTOR),
];

/// Milvus' wire type of an engine type.
pub(crate) fn wire_type(t: FieldType) -> i32 {
    WIRE_TYPES
        .iter()
        .find(|(f, _)| *f == t)
        .map_or(0, |(_, w)| *w) // 0: the wire None; every engine type is in the table
}

/// The engine type of a Milvus wire type.
pub fn from_wire(t: i32) -> Option<FieldType> {
    WIRE_TYPES.iter().find(|(_, w)| *w == t).map(|(f, _)| *f)
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
        IndexType::IvfFlat => {
            let v = spec.ivf.unwrap_or_default();
            let binary = matches!(
                spec.metric,
                Some(etl_engine::Metric::Hamming | etl_engine::Metric::Jaccard)
            );
            let kind = if binary { "BIN_IVF_FLAT" } else { "IVF_FLAT" };
            p.push(("index_type".into(), kind.into()));
            p.push(("params".into(), format!("{{\"nlist\": {}}}", v.nlist)));
        }
        IndexType::HnswSq => {
            let h = spec.hnsw.unwrap_or_default();
            p.push(("index_type".into(), "HNSW_SQ".into()));
            p.push((
                "params".into(),
                format!(
                    "{{\"M\": {}, \"efConstruction\": {}, \"sq_type\": \"SQ8\", \"refine\": true, \"refine_type\": \"FP32\"}}",
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

/// The end of a load into Milvus: the indexes built (and waited for), the collection loaded
/// and counted, the phases shown to `observer` under `table`. Returns the seconds spent
/// indexing and the server's row count.
pub async fn finish(
    client: &etl_connectors::milvus::MilvusClient,
    collection: &str,
    indexes: &[(String, IndexSpec)],
    observer: &dyn crate::run::RunObserver,
    table: &str,
) -> Result<(f64, u64), PipelineError> {
    let started = std::time::Instant::now();
    observer.phase(table, crate::run::Phase::Indexing);
    for (field, spec) in indexes {
        if let Some(params) = index_params(spec) {
            client.create_index(collection, field, params).await?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    observer.phase(table, crate::run::Phase::Loading);
    client.load(collection).await?;
    Ok((seconds, count(client, collection).await?))
}

/// A collection's row count as the server counts it (`count(*)`).
pub async fn count(
    client: &etl_connectors::milvus::MilvusClient,
    name: &str,
) -> Result<u64, PipelineError> {
    use etl_connectors::milvus::proto::{Field, Scalars};
    let counted = client
        .query(name, "", &["count(*)".to_string()], None)
        .await?;
    Ok(counted
        .first()
        .and_then(|f| match &f.field {
            Some(Field::Scalars(s)) => match &s.data {
                Some(Scalars::Long(l)) => l.data.first().copied(),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or(0)
        .max(0) as u64)
}
