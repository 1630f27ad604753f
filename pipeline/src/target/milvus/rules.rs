//! What a Milvus server of a given version can hold, asked of the server and applied before
//! anything is written: types and indexes of newer versions, NULL vectors, and whether a
//! collection already there is this mapping's. Each rule is a finding `etl plan` prints as a
//! required fix and `etl run`, `etl stage` and the staged import refuse with.

use etl_engine::{CollectionSchema, FieldType, IndexSpec, IndexType};

use super::{import, job};
use crate::error::PipelineError;

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

/// Whether NULL scalars are sent to a server of `version` as NULL. Nullable fields came in
/// Milvus 2.5, but this client does not declare them yet (their schema fields are not in the
/// 2.3 API it was checked against), so every version gets the stand-ins.
pub fn holds_nulls(_version: &str) -> bool {
    false
}

/// Makes the planned tables fit a server of `version`: nullable vectors become non-nullable
/// on servers without NULL vectors, and what it still cannot hold (NULL vectors the source
/// has, types and indexes of newer versions) is refused, naming the table and collection,
/// before anything is written, with the findings `etl plan` prints.
pub async fn fit_tables(
    mapping: &etl_mappings::ParsedMapping,
    tables: &mut [etl_mappings::TablePlan],
    url: &str,
    version: &str,
) -> Result<(), PipelineError> {
    for (t, fixes) in tables
        .iter()
        .zip(null_vector_fixes(mapping, tables, version).await?)
    {
        if !fixes.is_empty() {
            return Err(PipelineError::needs_fixes(&t.source, &fixes));
        }
    }
    for t in tables.iter_mut() {
        relax_null_vectors(t, version);
    }
    for t in tables.iter() {
        let schema = crate::schema::collection_schema(t);
        let indexes = crate::schema::index_specs(t);
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
    let keyed = !crate::schema::collection_schema(t).auto_id;
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
    tables: &[etl_mappings::TablePlan],
    version: &str,
) -> Result<Vec<Vec<etl_mappings::Finding>>, PipelineError> {
    // One connection for every table that needs counting (a table with open fixes is checked
    // once they are fixed).
    let mut client = None;
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let fields = if t.required_fixes.is_empty() {
            undecided_null_vectors(t)
        } else {
            Vec::new()
        };
        if fields.is_empty() {
            out.push(Vec::new());
            continue;
        }
        let columns: Vec<String> = fields.iter().filter_map(|f| f.source.clone()).collect();
        let counts: Vec<Option<u64>> = if mapping.file.source.postgres.is_some() {
            let c = match client.take() {
                Some(c) => c,
                None => {
                    let url = crate::source::postgres_url(mapping)?;
                    etl_connectors::postgres::connect(&url).await?
                }
            };
            let counts =
                etl_connectors::postgres::null_counts(&c, &t.source, &columns, t.filter.as_deref())
                    .await?;
            client = Some(c);
            counts.into_iter().map(Some).collect()
        } else {
            vec![None; columns.len()]
        };
        out.push(null_findings(&fields, &columns, counts, version));
    }
    Ok(out)
}

/// The findings for the NULL vectors counted (`None`: not counted) in `columns`.
fn null_findings(
    fields: &[&etl_mappings::FieldPlan],
    columns: &[String],
    counts: Vec<Option<u64>>,
    version: &str,
) -> Vec<etl_mappings::Finding> {
    fields
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
        .collect()
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
    Err(PipelineError::needs_fixes(
        format!("{table} (collection `{collection}`)"),
        &fixes,
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(version_before("v2.3.5-lite", 2, 4));
        assert!(!version_before("v2.4.0", 2, 4));
        assert!(!version_before("v2.5.1", 2, 5));
    }
}
