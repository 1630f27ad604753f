//! What the planner needs to know about a source table. Connectors fill these in from the live
//! catalog or a dump's DDL; the planner never talks to a source itself.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ident::QualifiedName;
use crate::types::{Metric, PgType};

/// A source column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceColumn {
    /// Its name, exactly as in the catalog.
    pub name: String,
    /// Its type (domains resolved to their base).
    pub pg_type: PgType,
    /// `false` when declared `NOT NULL` (or part of the primary key).
    pub nullable: bool,
    /// `GENERATED ALWAYS AS (…) STORED`: computed by the source from other columns.
    #[serde(default)]
    pub generated: bool,
}

/// The access method of a pgvector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorIndexMethod {
    /// `USING hnsw`
    Hnsw,
    /// `USING ivfflat`
    Ivfflat,
}

/// A pgvector index on one column, as the source has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceVectorIndex {
    /// The index's name.
    pub name: String,
    /// The indexed column.
    pub column: String,
    /// hnsw or ivfflat.
    pub method: VectorIndexMethod,
    /// From the operator class (`vector_cosine_ops` → COSINE); `None` for L1, which the
    /// engine does not index.
    pub metric: Option<Metric>,
    /// The operator class name.
    pub opclass: String,
    /// `m`, `ef_construction`, `lists` from `reloptions`.
    pub options: BTreeMap<String, String>,
}

/// A source table as the planner sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceTable {
    /// Schema and name.
    pub name: QualifiedName,
    /// Columns in catalog order.
    pub columns: Vec<SourceColumn>,
    /// Primary key columns in key order; empty when there is none.
    pub primary_key: Vec<String>,
    /// Whether it is a partitioned table (read as one table, through its leaves).
    pub partitioned: bool,
    /// Estimated row count from statistics, when known.
    pub estimated_rows: Option<u64>,
    /// Estimated size in bytes, when known.
    pub estimated_bytes: Option<u64>,
    /// pgvector indexes on single columns.
    pub vector_indexes: Vec<SourceVectorIndex>,
}

impl SourceTable {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&SourceColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Maps an operator class to the metric it orders by.
pub fn metric_of_opclass(opclass: &str) -> Option<Metric> {
    let suffix = opclass.rsplit_once('_').map_or(opclass, |(head, _)| head);
    if suffix.ends_with("_l2") {
        Some(Metric::L2)
    } else if suffix.ends_with("_ip") {
        Some(Metric::Ip)
    } else if suffix.ends_with("_cosine") {
        Some(Metric::Cosine)
    } else if suffix.ends_with("_hamming") {
        Some(Metric::Hamming)
    } else if suffix.ends_with("_jaccard") {
        Some(Metric::Jaccard)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opclasses_give_metrics() {
        assert_eq!(metric_of_opclass("vector_cosine_ops"), Some(Metric::Cosine));
        assert_eq!(metric_of_opclass("halfvec_l2_ops"), Some(Metric::L2));
        assert_eq!(metric_of_opclass("sparsevec_ip_ops"), Some(Metric::Ip));
        assert_eq!(metric_of_opclass("bit_hamming_ops"), Some(Metric::Hamming));
        assert_eq!(metric_of_opclass("bit_jaccard_ops"), Some(Metric::Jaccard));
        assert_eq!(metric_of_opclass("vector_l1_ops"), None);
    }
}
