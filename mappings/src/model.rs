//! The mapping file as written: serde structs that mirror the YAML one to one and reject keys
//! they do not know. Nothing here is validated beyond its shape; [`crate::plan`] turns these
//! into a typed [`crate::Plan`] against the source's catalog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The current (and only) mapping format version.
pub const MAPPING_VERSION: u32 = 1;

/// A whole `mapping.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// Format version; must be [`MAPPING_VERSION`].
    pub version: u32,
    /// Where rows come from.
    pub source: SourceSpec,
    /// Where they go.
    pub target: TargetSpec,
    /// The tables to move; empty means every table of the source.
    #[serde(default)]
    pub tables: Vec<TableSpec>,
    /// Run settings.
    #[serde(default)]
    pub options: OptionsSpec,
}

/// Exactly one source kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// A live server: `postgres://user@host:5432/db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// A pg_dump file (plain or custom format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<String>,
    /// CSV files: a path, glob or object-store URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<String>,
    /// Parquet files: a path, glob or object-store URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parquet: Option<String>,
}

/// One or more targets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The embedded engine's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// An object-store URL to stage Parquet files under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// A Milvus server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milvus: Option<String>,
    /// A Postgres-compatible database (`postgres://…`): tables keep their Postgres types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
    /// The Postgres target's SQL dialect (default `postgres`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialect: Option<Dialect>,
    /// What a Postgres target does with a table that already exists (default `fail`; tables
    /// may override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_exists: Option<IfExists>,
}

/// The SQL a Postgres-compatible target speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL and wire-compatible services that accept its DDL (Neon, Azure, …).
    #[default]
    Postgres,
    /// CockroachDB.
    Cockroachdb,
}

/// What happens to a target table that already exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IfExists {
    /// Refuse unless it is empty (a required fix in `etl plan`).
    #[default]
    Fail,
    /// Empty it first (its definition stays).
    Truncate,
    /// Add the rows to it (its columns must take the source's types).
    Append,
    /// Drop it and create it from the source's definition.
    Replace,
}

impl IfExists {
    /// The word in a mapping.
    pub fn name(self) -> &'static str {
        match self {
            IfExists::Fail => "fail",
            IfExists::Truncate => "truncate",
            IfExists::Append => "append",
            IfExists::Replace => "replace",
        }
    }
}

/// One source table and how it becomes a collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// `schema.table`, Postgres quoting rules.
    pub source: String,
    /// The collection's name; default: the table name made valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// A Postgres target's table (`schema.table`, quoting as for sources); default: the
    /// source's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A Postgres target: this table's `if_exists` (default: the target's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_exists: Option<IfExists>,
    /// Columns not to move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// A SQL condition on the source rows.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Per-column settings; unlisted columns follow the default rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldSpec>,
    /// Force (`true`) or forbid (`false`) an added auto-ID primary key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_id: Option<bool>,
    /// Keep a `$meta` JSON field for fields marked `dynamic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_field: Option<bool>,
    /// Shard count of the collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// How many rejected rows the run tolerates for this table (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rejects: Option<u64>,
}

/// Settings for one column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The source column.
    pub source: String,
    /// The field's name; default: the column name made valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A type override (`INT64`, `VARCHAR`, `FLOAT_VECTOR`, …).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    /// Vector dimension, where the column's type does not declare it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<u32>,
    /// VARCHAR length limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// ARRAY element type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_type: Option<String>,
    /// ARRAY capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_capacity: Option<u32>,
    /// Whether NULL is allowed; default: as the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    /// The value used for NULLs (a list of numbers for a dense vector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// What a row whose value is NULL becomes when the field cannot hold NULL: `reject`
    /// (the default: to the rejects file, counted against `max_rejects`) or `skip` (left out,
    /// counted in the report, not a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_null: Option<OnNull>,
    /// Make this field the primary key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<bool>,
    /// Make this field the partition key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<bool>,
    /// Pack this column into the `$meta` dynamic field instead of a field of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<bool>,
    /// The index to build on this field after the load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexSpec>,
}

/// What happens to a row whose value is NULL where the field cannot hold NULL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNull {
    /// To the rejects file, counted against the table's `max_rejects`.
    #[default]
    Reject,
    /// Left out on purpose: listed in the rejects file and counted in the report as skipped,
    /// never a failure, and not a difference for `etl verify`.
    Skip,
}

impl OnNull {
    /// Whether this is the default (`reject`).
    pub fn is_reject(&self) -> bool {
        *self == OnNull::Reject
    }
}

/// An index as written in the mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// `HNSW`, `FLAT`, `BIN_FLAT`, `SPARSE_INVERTED_INDEX`, `STL_SORT`, `INVERTED`.
    #[serde(rename = "type")]
    pub index_type: String,
    /// `L2`, `IP`, `COSINE`, `HAMMING`, `JACCARD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Build parameters, e.g. `M` and `ef_construction`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// Run settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsSpec {
    /// Rows per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Concurrent readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<usize>,
    /// Most rows in one segment of the embedded engine (each segment gets its own graph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_segment_rows: Option<u64>,
    /// A Postgres target's `maintenance_work_mem` for its index builds (e.g. `2GB`: pgvector's
    /// HNSW builds far faster when the graph fits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_work_mem: Option<String>,
    /// A Postgres target's `max_parallel_maintenance_workers` for its index builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_maintenance_workers: Option<u32>,
}
