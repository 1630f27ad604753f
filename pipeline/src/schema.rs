//! A table plan as every target sees it: the collection schema and the indexes to build after
//! the load. A leaf: plan checks, the run, verify and each target derive them here, once.

use etl_engine::{CollectionSchema, Field, FieldType, IndexSpec, IndexType};
use etl_mappings::TablePlan;

/// The engine schema of a table plan: its fields (dynamic ones folded into `$meta`).
pub fn collection_schema(tp: &TablePlan) -> CollectionSchema {
    let mut fields = Vec::new();
    let mut auto_id = false;
    // The plan lists `$meta` among its fields; it is added once, below.
    for f in tp
        .fields
        .iter()
        .filter(|f| !f.dynamic && f.name != etl_engine::schema::DYNAMIC_FIELD)
    {
        let Some(dt) = f.data_type else { continue };
        let data_type = dt;
        let element_type = f.element_type;
        auto_id |= f.auto_id;
        fields.push(Field {
            name: f.name.clone(),
            data_type,
            dim: f.dim,
            max_length: f.max_length,
            element_type,
            max_capacity: f.max_capacity,
            nullable: f.nullable,
            default: f.default.clone(),
            primary_key: f.primary_key,
            partition_key: f.partition_key,
        });
    }
    if tp.dynamic_field {
        fields.push(Field {
            nullable: true,
            ..Field::new(etl_engine::schema::DYNAMIC_FIELD, FieldType::Json)
        });
    }
    CollectionSchema {
        fields,
        auto_id,
        dynamic_field: tp.dynamic_field,
        shards: tp.shards.max(1),
        description: format!("from {}", tp.source),
    }
}

/// The indexes to build after the load, by field.
pub fn index_specs(tp: &TablePlan) -> Vec<(String, IndexSpec)> {
    let mut out = Vec::new();
    for f in tp.fields.iter().filter(|f| !f.dynamic) {
        let Some(ix) = &f.index else { continue };
        let index_type = ix.index_type;
        out.push((
            f.name.clone(),
            IndexSpec {
                index_type,
                metric: ix.metric,
                hnsw: index_type.is_graph().then(|| ix.hnsw.unwrap_or_default()),
                ivf: (index_type == IndexType::IvfFlat).then(|| ix.ivf.unwrap_or_default()),
            },
        ));
    }
    out
}
