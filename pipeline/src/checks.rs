//! What a target refuses, found before anything is read. `etl plan` shows these findings as
//! required fixes and `etl run` (through `prepare`) refuses with the very same ones, so a plan
//! that exits 0 is a run that is not refused on schema grounds: the collection schema the
//! engine and Milvus would reject, and index settings the build would reject after the load.

use etl_mappings::{Finding, Plan, TablePlan};

use crate::run::target::{collection_schema, index_specs};

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
    if !t.required_fixes.is_empty() {
        return Vec::new();
    }
    let finding = |column: Option<String>, message: String| Finding {
        column,
        message,
        fix: Some("change the mapping so the target can hold it (see the message)".into()),
    };
    let schema = match collection_schema(t) {
        Ok(s) => s,
        Err(e) => return vec![finding(None, e.to_string())],
    };
    let mut out = Vec::new();
    if let Err(e) = schema.validate(&t.collection) {
        out.push(finding(None, e.to_string()));
    }
    match index_specs(t) {
        Ok(specs) => {
            for (name, spec) in specs {
                if let Some(field) = schema.field(&name)
                    && let Err(e) = spec.checked_for(field)
                {
                    out.push(finding(Some(name), e.to_string()));
                }
            }
        }
        Err(e) => out.push(finding(None, e.to_string())),
    }
    out
}
