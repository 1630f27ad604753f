//! A real Milvus as the target: what its version can hold (asked of the server, refused up
//! front), the collection schema and index parameters it is sent, and how NULLs are written
//! to a server without nullable fields. [`write`] inserts batches, [`read`] pages collections
//! back as Arrow for `etl verify`, [`import`] loads a stage through the server's bulk import.

pub mod import;
pub mod job;
pub mod read;
pub mod search;
pub mod write;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray, new_empty_array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast, is_null, take};
use datafusion::arrow::datatypes::DataType as ArrowType;
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

/// What a server of `version` (`v2.3.5-lite`) cannot hold in `schema`, one line each.
pub fn unsupported(
    schema: &CollectionSchema,
    indexes: &[(String, IndexSpec)],
    version: &str,
) -> Vec<String> {
    let old = version_before(version, 2, 4);
    let mut out = Vec::new();
    for (field, spec) in indexes {
        if spec.index_type == IndexType::HnswSq && version_before(version, 2, 5) {
            out.push(format!(
                "`{field}` has an HNSW_SQ index: Milvus {version} has no HNSW_SQ (2.5 and later do); use `type: HNSW`"
            ));
        }
    }
    let vectors: Vec<&etl_engine::Field> = schema
        .fields
        .iter()
        .filter(|f| f.data_type.is_vector())
        .collect();
    if vectors.is_empty() {
        out.push(
            "no vector field: every Milvus collection needs one; exclude the table from this mapping, or load it into the embedded engine (`target: { engine: DIR }`), which holds tables without vectors".to_string(),
        );
    }
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
    // Nullable fields are not declared to any version yet (see `holds_nulls`), so this holds
    // for every server, not only those before 2.4.
    let _ = version;
    let mut changed = Vec::new();
    for f in &mut tp.fields {
        if f.nullable && f.data_type.is_some_and(|d| d.is_vector()) {
            f.nullable = false;
            changed.push(f.source.clone().unwrap_or_else(|| f.name.clone()));
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

/// Whether NULL scalars are sent to a server of `version` as NULL. Nullable fields came in
/// Milvus 2.5, but this client does not declare them yet (their schema fields are not in the
/// 2.3 API it was checked against), so every version gets the stand-ins.
pub fn holds_nulls(_version: &str) -> bool {
    false
}

/// The value a NULL in a scalar field of `t` is written as on a server without NULLs.
pub fn null_stand_in(t: FieldType) -> &'static str {
    match t {
        FieldType::Bool => "false",
        FieldType::Varchar => "''",
        FieldType::Json => "{}",
        FieldType::Array => "[]",
        _ => "0",
    }
}

/// `batch` with every NULL in a scalar field replaced by its stand-in ([`null_stand_in`]): what
/// a Milvus without nullable fields holds. The writer, the stage bound for such a server and
/// `etl verify` all apply it, so verify compares what was meant to be written.
pub fn fill_nulls(
    batch: &RecordBatch,
    schema: &CollectionSchema,
) -> Result<RecordBatch, PipelineError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    let mut changed = false;
    for (i, c) in batch.columns().iter().enumerate() {
        let name = batch.schema().field(i).name().clone();
        let field = schema.fields.iter().find(|f| f.name == name);
        match field {
            Some(f) if has_nulls(c) && !f.data_type.is_vector() => {
                columns.push(
                    fill_column(c, f.data_type).map_err(|e| PipelineError::Internal {
                        message: format!("field `{name}`: {e}"),
                    })?,
                );
                changed = true;
            }
            _ => columns.push(c.clone()),
        }
    }
    if !changed {
        return Ok(batch.clone());
    }
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| PipelineError::Internal {
        message: e.to_string(),
    })
}

/// Whether a column holds a NULL, counting NULL elements inside arrays.
fn has_nulls(c: &ArrayRef) -> bool {
    c.null_count() > 0
        || c.as_any()
            .downcast_ref::<ListArray>()
            .is_some_and(|l| l.values().null_count() > 0)
}

fn fill_column(
    c: &ArrayRef,
    t: FieldType,
) -> Result<ArrayRef, datafusion::arrow::error::ArrowError> {
    let one: ArrayRef = match (t, c.data_type()) {
        (_, ArrowType::Boolean) => Arc::new(BooleanArray::from(vec![false])),
        (FieldType::Json, ArrowType::Utf8) => Arc::new(StringArray::from(vec!["{}"])),
        (_, ArrowType::Utf8) => Arc::new(StringArray::from(vec![""])),
        (_, ArrowType::List(item)) => {
            // NULL elements inside the arrays first, then NULL arrays.
            if let Some(list) = c.as_any().downcast_ref::<ListArray>()
                && list.values().null_count() > 0
            {
                let values = fill_column(list.values(), FieldType::Varchar)?;
                let filled: ArrayRef = Arc::new(ListArray::try_new(
                    item.clone(),
                    list.offsets().clone(),
                    values,
                    list.nulls().cloned(),
                )?);
                if filled.null_count() == 0 {
                    return Ok(filled);
                }
                return fill_column(&filled, t);
            }
            Arc::new(ListArray::try_new(
                item.clone(),
                OffsetBuffer::new(vec![0i32, 0].into()),
                new_empty_array(item.data_type()),
                None,
            )?)
        }
        (_, other) => cast(&(Arc::new(Int64Array::from(vec![0i64])) as ArrayRef), other)?,
    };
    let zeros = take(
        &one,
        &datafusion::arrow::array::UInt32Array::from(vec![0u32; c.len()]),
        None,
    )?;
    datafusion::arrow::compute::kernels::zip::zip(&is_null(c)?, &zeros, c)
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

/// Makes the planned tables fit a server of `version`: nullable vectors become non-nullable
/// on servers without NULL vectors, and what it still cannot hold (NULL vectors the source
/// has, types and indexes of newer versions) is refused, naming the table and collection,
/// before anything is written. The findings are [`server_fixes`]'s, the plan's own.
pub async fn fit_tables(
    mapping: &etl_mappings::ParsedMapping,
    tables: &mut [etl_mappings::TablePlan],
    url: &str,
    version: &str,
) -> Result<(), PipelineError> {
    for t in tables.iter() {
        let fixes = null_vector_fixes(mapping, t, version).await?;
        if !fixes.is_empty() {
            return Err(PipelineError::NeedsFixes {
                table: t.source.to_string(),
                fixes: crate::run::fix_lines(&fixes),
            });
        }
    }
    for t in tables.iter_mut() {
        relax_null_vectors(t, version);
    }
    for t in tables.iter() {
        let schema = crate::run::target::collection_schema(t)?;
        let indexes = crate::run::target::index_specs(t)?;
        refuse_unsupported(
            &schema,
            &indexes,
            &t.source.to_string(),
            &t.collection,
            url,
            version,
        )?;
    }
    Ok(())
}

/// What a collection already on the server under a table's collection name is to a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Existing {
    /// Nothing there.
    Absent,
    /// This mapping's unfinished direct load of keyed rows: resumed (or dropped by `--recreate`).
    Resume(job::LoadRecord),
    /// Ours to replace: an unfinished auto-ID load (nothing to upsert by), or an import from
    /// an earlier stage at the same URL.
    Replace,
    /// Not ours: only `--recreate` drops it. `why` says how it is not.
    Foreign {
        /// Why it is not this mapping's.
        why: &'static str,
    },
}

/// Classifies the collection `t` would be loaded into, for a direct load (`stage` `None`) or
/// an import of the stage at `stage`: the one decision `etl plan` reports and `etl run`,
/// `etl stage` and the staged import act on.
pub async fn existing(
    client: &etl_connectors::milvus::MilvusClient,
    url: &str,
    mapping: &etl_mappings::ParsedMapping,
    t: &etl_mappings::TablePlan,
    stage: Option<&str>,
) -> Result<Existing, PipelineError> {
    if !client.has_collection(&t.collection).await? {
        return Ok(Existing::Absent);
    }
    if let Some(stage) = stage {
        let description = client.describe_collection(&t.collection).await?.description;
        return Ok(if import::from_stage(&description, stage) {
            Existing::Replace
        } else {
            Existing::Foreign {
                why: "it was not imported from this stage",
            }
        });
    }
    let jobs = crate::source::beside(mapping, "_milvus_jobs");
    let record = job::LoadRecord::read(&job::LoadRecord::path(&jobs, &t.collection))
        .filter(|r| r.server == url);
    let id = client.collection_id(&t.collection).await?;
    let keyed = !crate::run::target::collection_schema(t)?.auto_id;
    Ok(
        match record.filter(|r| r.collection_id == id && !r.finished) {
            Some(r) if keyed => Existing::Resume(r),
            Some(_) => Existing::Replace,
            None => Existing::Foreign {
                why: "it is not an unfinished load of this mapping",
            },
        },
    )
}

/// The finding for a collection that is not ours: what `etl plan` shows (a required fix,
/// unless planned with `--recreate`) and what `etl run` refuses with.
pub fn foreign_finding(collection: &str, url: &str, why: &str) -> etl_mappings::Finding {
    etl_mappings::Finding {
        column: None,
        message: format!("collection `{collection}` already exists in Milvus at {url} and {why}"),
        fix: Some(
            "`etl run --recreate` drops and recreates it (plan with `--recreate` to check that run), or give the table another `collection:` name".into(),
        ),
    }
}

/// The vector fields of `t` that may hold NULL, with no `default:` and no `on_null: skip` to
/// say what a NULL becomes.
fn undecided_null_vectors(t: &etl_mappings::TablePlan) -> Vec<&etl_mappings::FieldPlan> {
    t.fields
        .iter()
        .filter(|f| {
            f.nullable
                && f.data_type.is_some_and(|d| d.is_vector())
                && f.default.is_none()
                && f.on_null.is_reject()
                && f.source.is_some()
        })
        .collect()
}

/// NULL vectors a Milvus of `version` cannot hold, as required fixes: a nullable vector column
/// without a `default:` or `on_null:` whose source rows hold NULLs (counted, one query, for a
/// live source; for a dump or files, where counting means reading the table, the choice is
/// asked for). `etl plan` shows them; `etl run` and `etl stage` refuse with them.
pub async fn null_vector_fixes(
    mapping: &etl_mappings::ParsedMapping,
    t: &etl_mappings::TablePlan,
    version: &str,
) -> Result<Vec<etl_mappings::Finding>, PipelineError> {
    let fields = undecided_null_vectors(t);
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    let columns: Vec<String> = fields.iter().filter_map(|f| f.source.clone()).collect();
    let counts: Vec<Option<u64>> = if mapping.file.source.postgres.is_some() {
        let client =
            etl_connectors::postgres::connect(&crate::inspect::postgres_url(mapping)?).await?;
        etl_connectors::postgres::null_counts(&client, &t.source, &columns, t.filter.as_deref())
            .await?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; columns.len()]
    };
    Ok(fields
        .iter()
        .zip(columns.iter().zip(counts))
        .filter(|(_, (_, n))| *n != Some(0))
        .map(|(f, (column, n))| {
            let how_many = match n {
                Some(n) => format!("{n} rows have a NULL `{column}`"),
                None => format!("`{column}` may hold NULLs (a dump or files are not counted)"),
            };
            etl_mappings::Finding {
                column: Some(column.clone()),
                message: format!("{how_many}; Milvus {version} has no NULL vectors"),
                fix: Some(format!(
                    "choose what a NULL row becomes: `where: \"{q} IS NOT NULL\"` on the table, `on_null: skip` on the field (rows left out and counted in the report), or a `default:` vector of {} numbers",
                    f.dim.map_or("the field's dimension".to_string(), |d| d.to_string()),
                    q = etl_mappings::quote_if_needed(column),
                )),
            }
        })
        .collect())
}

/// Refuses, naming the table and collection, a schema the server's version cannot hold.
pub fn refuse_unsupported(
    schema: &CollectionSchema,
    indexes: &[(String, IndexSpec)],
    table: &str,
    collection: &str,
    url: &str,
    version: &str,
) -> Result<(), PipelineError> {
    let fixes = unsupported_findings(schema, indexes, url, version);
    if fixes.is_empty() {
        return Ok(());
    }
    Err(PipelineError::NeedsFixes {
        table: format!("{table} (collection `{collection}`)"),
        fixes: crate::run::fix_lines(&fixes),
    })
}

/// What a server of `version` cannot hold of a collection, as the required fixes `etl plan`
/// shows and `etl run` refuses with.
pub fn unsupported_findings(
    schema: &CollectionSchema,
    indexes: &[(String, IndexSpec)],
    url: &str,
    version: &str,
) -> Vec<etl_mappings::Finding> {
    unsupported(schema, indexes, version)
        .into_iter()
        .map(|problem| etl_mappings::Finding {
            column: None,
            message: format!("Milvus at {url}: {problem}"),
            fix: Some("map the column to a type this server holds, or load a newer Milvus".into()),
        })
        .collect()
}

/// The nullable scalar fields of a schema (the primary key never is).
pub fn nullable_scalars(schema: &CollectionSchema) -> Vec<&str> {
    schema
        .fields
        .iter()
        .filter(|f| f.nullable && !f.data_type.is_vector() && !f.primary_key)
        .map(|f| f.name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int32Array};
    use datafusion::arrow::datatypes::{Field as ArrowField, Int32Type, Schema};

    #[test]
    fn nulls_become_the_stand_ins_the_plan_names() {
        let mut schema = CollectionSchema {
            fields: Vec::new(),
            auto_id: false,
            dynamic_field: false,
            shards: 1,
            description: String::new(),
        };
        for (n, t) in [
            ("n", FieldType::Int32),
            ("s", FieldType::Varchar),
            ("j", FieldType::Json),
        ] {
            let mut f = etl_engine::Field::new(n, t);
            f.nullable = true;
            schema.fields.push(f);
        }
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                ArrowField::new("n", ArrowType::Int32, true),
                ArrowField::new("s", ArrowType::Utf8, true),
                ArrowField::new("j", ArrowType::Utf8, true),
            ])),
            vec![
                Arc::new(Int32Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec![Some("x"), None])),
                Arc::new(StringArray::from(vec![Some("[1]"), None])),
            ],
        )
        .unwrap();
        let out = fill_nulls(&batch, &schema).unwrap();
        assert_eq!(out.column(0).as_primitive::<Int32Type>().values(), &[7, 0]);
        assert_eq!(out.column(1).as_string::<i32>().value(1), "");
        assert_eq!(out.column(2).as_string::<i32>().value(1), "{}");
        assert_eq!(out.column(2).as_string::<i32>().value(0), "[1]");
        assert!(out.columns().iter().all(|c| c.null_count() == 0));
        assert_eq!(null_stand_in(FieldType::Varchar), "''");
        // NULL elements inside arrays, and NULL arrays.
        let mut a = etl_engine::Field::new("a", FieldType::Array);
        a.element_type = Some(FieldType::Int32);
        a.nullable = true;
        schema.fields.push(a);
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![ArrowField::new(
                "a",
                list.data_type().clone(),
                true,
            )])),
            vec![Arc::new(list)],
        )
        .unwrap();
        let out = fill_nulls(&batch, &schema).unwrap();
        let l = out.column(0).as_list::<i32>();
        assert_eq!(l.null_count(), 0);
        assert_eq!(l.value(0).as_primitive::<Int32Type>().values(), &[1, 0]);
        assert_eq!(l.value(1).len(), 0);
        assert!(version_before("v2.3.5-lite", 2, 4));
        assert!(!version_before("v2.4.0", 2, 4));
    }
}
