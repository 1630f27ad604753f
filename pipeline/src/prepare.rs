//! Before a run reads: the source opened, the plan built and checked (`checks`, the same as
//! `etl plan`), the tables chosen, and a refusal quoting every required fix still open.

use etl_mappings::{Plan, SourceTable, TablePlan, build_plan};

use crate::error::PipelineError;
use crate::inspect::open_source;
use crate::source::Source;

/// What a run needs before it reads: the source, its catalog, the plan and the chosen tables
/// (refused when any still needs fixes).
pub(crate) struct Prepared {
    pub source: Source,
    pub catalog: Vec<SourceTable>,
    pub plan: Plan,
    pub tables: Vec<TablePlan>,
}

/// How a command narrows and tunes the mapping's plan (`--tables`, `--batch-size`,
/// `--parallelism`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Narrowing<'a> {
    pub tables: Option<&'a [String]>,
    pub batch_size: Option<usize>,
    pub parallelism: Option<usize>,
}

/// The source opened and the plan built, checked and narrowed; refused while a chosen table
/// still needs fixes.
pub(crate) async fn prepare(
    mapping: &etl_mappings::ParsedMapping,
    opts: Narrowing<'_>,
) -> Result<Prepared, PipelineError> {
    let (source, catalog) = open_source(mapping).await?;
    let mut plan = build_plan(mapping, &catalog)?;
    crate::checks::add_source_fixes(mapping, &mut plan, false).await?;
    crate::checks::add_target_fixes(&mut plan);
    if let Some(b) = opts.batch_size {
        plan.batch_size = b.max(1);
    }
    if let Some(p) = opts.parallelism {
        plan.parallelism = p.max(1);
    }
    let tables = select_tables(&plan, opts.tables)?;
    for t in &tables {
        if !t.required_fixes.is_empty() {
            return Err(PipelineError::needs_fixes(&t.source, &t.required_fixes));
        }
    }
    Ok(Prepared {
        source,
        catalog,
        plan,
        tables,
    })
}

/// The plan's tables a command takes (`--tables`: by collection, `schema.table` or table
/// name, in the order given), an unknown name refused with the closest table.
pub(crate) fn select_tables(
    plan: &Plan,
    names: Option<&[String]>,
) -> Result<Vec<TablePlan>, PipelineError> {
    let Some(names) = names else {
        return Ok(plan.tables.clone());
    };
    let mut out = Vec::new();
    for n in names {
        let found = plan
            .tables
            .iter()
            .find(|t| t.collection == *n || t.source.to_string() == *n || t.source.name == *n);
        match found {
            Some(t) => out.push(t.clone()),
            None => {
                return Err(PipelineError::UnknownTable {
                    table: n.clone(),
                    suggestion: plan
                        .tables
                        .iter()
                        .map(|t| t.source.to_string())
                        .min_by_key(|s| strsim::levenshtein(s, n)),
                });
            }
        }
    }
    Ok(out)
}
