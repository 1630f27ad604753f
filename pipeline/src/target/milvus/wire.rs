//! Milvus' wire vocabulary: its data types, the collection schema and the index parameters a
//! server is sent for an engine schema and index spec.

use etl_connectors::milvus::proto::{
    CollectionSchema as MSchema, FieldSchema, KeyValuePair, data_type,
};
use etl_engine::{CollectionSchema, FieldType, IndexSpec, IndexType};

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
