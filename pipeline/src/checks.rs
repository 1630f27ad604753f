//! What a run would refuse, found before anything is read. `etl plan` shows these findings as
//! required fixes and `etl run` (through `prepare`) refuses with the very same ones, so a plan
//! that exits 0 is a run that is not refused on schema grounds: the collection schema the
//! engine and Milvus would reject, index settings the build would reject after the load, and
//! the rows of an untyped vector column that are of another dimension than the mapping says.

use etl_mappings::{Finding, Plan, TablePlan};

use crate::schema::{collection_schema, index_specs};

/// Adds to every table of `plan` what its target would refuse.
pub(crate) fn add_target_fixes(plan: &mut Plan) {
    for t in &mut plan.tables {
        let fixes = schema_fixes(t);
        t.required_fixes.extend(fixes);
    }
}

/// The schema and index problems of one table (none while its plan still has open fixes: the
/// schema is checked once they are fixed).
fn schema_fixes(t: &TablePlan) -> Vec<Finding> {
    // A table kept in Postgres types has no collection schema: its target checks it.
    if t.keeps_postgres_types || !t.required_fixes.is_empty() {
        return Vec::new();
    }
    let finding = |column: Option<String>, message: String| Finding {
        column,
        message,
        fix: Some("change the mapping so the target can hold it (see the message)".into()),
    };
    let schema = collection_schema(t);
    let mut out = Vec::new();
    if let Err(e) = schema.validate(&t.collection) {
        out.push(finding(None, e.to_string()));
    }
    for (name, spec) in index_specs(t) {
        if let Some(field) = schema.field(&name)
            && let Err(e) = spec.checked_for(field)
        {
            out.push(finding(Some(name), e.to_string()));
        }
    }
    out
}

/// What a live source's rows say that its catalog does not, for vector columns declared
/// without a dimension (`embedding vector`): with no `dim:` yet, the open fix lists the
/// dimensions found; with one, rows of other dimensions beyond the table's `max_rejects` would
/// fail the run, so they are a required fix here. `etl plan` counts both (`count_other_dims`);
/// `etl run`, which would otherwise scan a table an extra time before reading it, only names
/// the dimensions in a refusal it is making anyway (and counts the rejects as it reads).
pub(crate) async fn add_source_fixes(
    mapping: &etl_mappings::ParsedMapping,
    plan: &mut Plan,
    count_other_dims: bool,
) -> Result<(), crate::error::PipelineError> {
    use etl_mappings::PgKind;
    // A `where:` is sent to a live server; dumps and files are read whole.
    if mapping.file.source.postgres.is_none() {
        for t in plan.tables.iter_mut() {
            if let Some(f) = &t.filter {
                t.required_fixes.push(Finding {
                    column: None,
                    message: format!("`where: {f}` needs a live Postgres source; a dump or a file is read whole"),
                    fix: Some("remove `where:` (filter on the target after the load), or read from the live database".into()),
                });
            }
        }
    }
    // A Postgres target takes a column of any dimension as it is.
    if mapping.file.source.postgres.is_none() || mapping.file.target.postgres.is_some() {
        return Ok(());
    }
    let untyped = |f: &etl_mappings::FieldPlan| {
        (count_other_dims || f.dim.is_none())
            && f.pg_type.as_ref().is_some_and(|t| {
                matches!(
                    t.kind,
                    PgKind::Vector { dim: None } | PgKind::HalfVec { dim: None }
                )
            })
    };
    if !plan.tables.iter().any(|t| t.fields.iter().any(untyped)) {
        return Ok(());
    }
    let url = crate::source::postgres_url(mapping)?;
    let client = etl_connectors::postgres::connect(&url).await?;
    for t in &mut plan.tables {
        let mut found_fixes = Vec::new();
        for f in t.fields.iter().filter(|f| untyped(f)) {
            let Some(column) = f.source.as_deref() else {
                continue;
            };
            let found = etl_connectors::postgres::vector_dims(
                &client,
                &t.source,
                column,
                t.filter.as_deref(),
            )
            .await?;
            let list = found
                .iter()
                .map(|(d, n)| format!("{d} ({n} rows)"))
                .collect::<Vec<_>>()
                .join(", ");
            match f.dim {
                None => {
                    for fix in t
                        .required_fixes
                        .iter_mut()
                        .filter(|x| x.column.as_deref() == Some(column))
                    {
                        if !list.is_empty() {
                            fix.message
                                .push_str(&format!("; the rows have dimension {list}"));
                        }
                    }
                }
                Some(d) => {
                    let others: i64 = found.iter().filter(|(x, _)| *x != d).map(|(_, n)| n).sum();
                    if others > 0 && others as u64 > t.max_rejects {
                        found_fixes.push(Finding {
                            column: Some(column.to_string()),
                            message: format!(
                                "{others} rows are not of dimension {d} (the rows have dimension {list}); they would be rejected, more than max_rejects = {}",
                                t.max_rejects
                            ),
                            fix: Some(format!(
                                "keep one dimension with `where: \"vector_dims({}) = {d}\"` on the table (a collection per dimension), or set `max_rejects: {others}` to set the others aside",
                                etl_mappings::quote_if_needed(column)
                            )),
                        });
                    }
                }
            }
        }
        t.required_fixes.extend(found_fixes);
    }
    Ok(())
}
