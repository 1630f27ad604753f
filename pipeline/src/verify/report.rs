//! What `etl verify` reports: MOLT Verify's counters per table, the differing rows shown, and
//! the observer that draws progress.

use serde::Serialize;
use serde_json::Value;

/// Options of `etl verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Only these tables (source or collection names).
    pub tables: Option<Vec<String>>,
    /// Concurrent readers (overrides the mapping's options).
    pub parallelism: Option<usize>,
    /// Differences listed per table.
    pub max_differences: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            tables: None,
            parallelism: None,
            max_differences: 5,
        }
    }
}

/// MOLT Verify's counters for one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Source rows read.
    pub truth_rows_seen: u64,
    /// Rows equal on both sides.
    pub success: u64,
    /// Source rows the target lacks.
    pub missing: u64,
    /// Rows on both sides that differ.
    pub mismatch: u64,
    /// Target rows the source lacks.
    pub extraneous: u64,
}

impl Counts {
    /// Whether source and target agree.
    pub fn clean(&self) -> bool {
        self.missing == 0 && self.mismatch == 0 && self.extraneous == 0
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "truth rows seen: {}, success: {}, missing: {}, mismatch: {}, extraneous: {}",
            self.truth_rows_seen, self.success, self.missing, self.mismatch, self.extraneous
        )
    }
}

/// What kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// In the source, not the target.
    Missing,
    /// In both, different.
    Mismatch,
    /// In the target, not the source.
    Extraneous,
}

/// One differing column of a mismatched row.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDifference {
    /// The collection field.
    pub column: String,
    /// The source's value, after the mapping.
    pub source: Value,
    /// The collection's value.
    pub target: Value,
}

/// One differing row.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// What kind.
    pub kind: DifferenceKind,
    /// The row's key (its values when the table has no key).
    pub key: Value,
    /// For a mismatch, the columns that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDifference>,
    /// More about it (a reject's reason, a duplicate key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The result for one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableVerify {
    /// Source table.
    pub table: String,
    /// Collection.
    pub collection: String,
    /// How rows are paired: `primary key (id)`, `source key (a, b)` or `row hash`.
    pub keyed_by: String,
    /// The counters.
    #[serde(flatten)]
    pub counts: Counts,
    /// The first differences, in key order within each kind.
    pub differences: Vec<Difference>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The result of `etl verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Per table.
    pub tables: Vec<TableVerify>,
    /// Whether every table matches.
    pub clean: bool,
}

/// Receives verify's progress; the CLI draws it.
pub trait VerifyObserver: Send + Sync {
    /// A table starts; `estimate` is the catalog's row estimate.
    fn table_started(&self, _table: &str, _estimate: Option<u64>) {}
    /// Source rows compared so far.
    fn progress(&self, _table: &str, _rows: u64) {}
    /// A table is done.
    fn table_finished(&self, _result: &TableVerify) {}
}

impl VerifyObserver for crate::report::Silent {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_print_molt_verify_spelling() {
        let c = Counts {
            truth_rows_seen: 10,
            success: 7,
            missing: 1,
            mismatch: 1,
            extraneous: 1,
        };
        assert_eq!(
            c.to_string(),
            "truth rows seen: 10, success: 7, missing: 1, mismatch: 1, extraneous: 1"
        );
        assert!(!c.clean());
        assert!(
            Counts {
                truth_rows_seen: 3,
                success: 3,
                ..Counts::default()
            }
            .clean()
        );
    }
}
