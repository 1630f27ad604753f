//! Validation: a parsed mapping plus the source's catalog become a typed [`Plan`], or a located
//! [`MappingError`]. Columns the rules cannot map on their own become [`Finding`]s under
//! `required_fixes`, so `etl plan` can list every one of them at once instead of stopping at the
//! first.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::catalog::{SourceColumn, SourceTable, VectorIndexMethod};
use crate::error::{MappingError, closest};
use crate::ident::{QualifiedName, is_valid_name, sanitize_name};
use crate::model::{FieldSpec, IndexSpec, OnNull, TableSpec};
use crate::parse::{Locator, ParsedMapping};
use crate::rules::{
    MAX_ARRAY_CAPACITY, MAX_VARCHAR_LENGTH, Note, Severity, TypeChoice, check_override,
    default_rule, primary_key_type,
};
use crate::types::{DataType, IndexType, Metric, PgKind, PgType};

/// The name of the JSON field that holds dynamic fields.
pub const DYNAMIC_FIELD_NAME: &str = "$meta";
/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;
/// Default concurrent readers.
pub const DEFAULT_PARALLELISM: usize = 2;

/// A validated mapping: what every table becomes.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// One entry per table, in mapping order (catalog order when the mapping lists none).
    pub tables: Vec<TablePlan>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Concurrent readers.
    pub parallelism: usize,
    /// Most rows in one engine segment: ranges are written as segments of at most this many
    /// rows, then merged up to it before the indexes are built.
    pub max_segment_rows: u64,
}

/// Rows per engine segment unless the mapping says otherwise (about a Milvus segment's size
/// for 768-d rows; one graph per segment).
pub const DEFAULT_MAX_SEGMENT_ROWS: u64 = 1 << 20;

impl Plan {
    /// Whether any table has a required fix left.
    pub fn has_required_fixes(&self) -> bool {
        self.tables.iter().any(|t| !t.required_fixes.is_empty())
    }
}

/// Something the user must decide (a required fix) or may want to know (a suggestion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The column concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// What is the matter.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// How the primary key is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrimaryKey {
    /// A source column is the key.
    Column {
        /// The target field.
        field: String,
        /// The source column.
        column: String,
    },
    /// An added INT64 field the engine fills.
    Auto {
        /// The added field.
        field: String,
    },
}

impl TablePlan {
    /// Whether the collection's key is the source's own single-column primary key, whose
    /// values a read in one snapshot never repeats.
    pub fn key_is_the_sources(&self) -> bool {
        matches!(&self.primary_key, PrimaryKey::Column { column, .. }
            if self.source_key.len() == 1 && self.source_key[0] == *column)
    }
}

impl PrimaryKey {
    /// The primary key field's name.
    pub fn field(&self) -> &str {
        match self {
            PrimaryKey::Column { field, .. } | PrimaryKey::Auto { field } => field,
        }
    }
}

/// Where a field's index settings come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum IndexOrigin {
    /// The mapping file names it.
    Mapping,
    /// Copied from the source's own pgvector index.
    Source {
        /// The pgvector index.
        index: String,
    },
    /// The default for the field's type.
    Default,
}

pub use etl_types::{HnswParams, IvfParams};

/// An index to build after the load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexPlan {
    /// The kind.
    #[serde(rename = "type")]
    pub index_type: IndexType,
    /// The metric, for vector indexes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// HNSW parameters, for HNSW.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hnsw: Option<HnswParams>,
    /// IVF parameters, for IVF_FLAT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ivf: Option<IvfParams>,
    /// Why these settings.
    pub origin: IndexOrigin,
}

impl std::fmt::Display for IndexPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.index_type)?;
        if let Some(m) = self.metric {
            write!(f, "({m}")?;
            if let Some(h) = self.hnsw {
                write!(f, ", M={}, ef_construction={}", h.m, h.ef_construction)?;
            }
            if let Some(v) = self.ivf {
                write!(f, ", nlist={}, nprobe={}", v.nlist, v.nprobe)?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// One target field.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FieldPlan {
    /// The field's name in the collection.
    pub name: String,
    /// The source column; `None` for an added auto-ID key or the `$meta` field.
    pub source: Option<String>,
    /// The source column's type.
    pub pg_type: Option<PgType>,
    /// The target type; `None` while a required fix is open.
    pub data_type: Option<DataType>,
    /// Vector dimension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dim: Option<u32>,
    /// VARCHAR length limit (of elements, for ARRAY).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// ARRAY element type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element_type: Option<DataType>,
    /// ARRAY capacity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_capacity: Option<u32>,
    /// Whether NULL is stored.
    pub nullable: bool,
    /// Replaces NULLs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// What a NULL row becomes where NULL cannot be stored.
    #[serde(skip_serializing_if = "OnNull::is_reject")]
    pub on_null: OnNull,
    /// The primary key.
    pub primary_key: bool,
    /// Filled by the engine.
    pub auto_id: bool,
    /// The partition key.
    pub partition_key: bool,
    /// Packed into `$meta` rather than stored as a field.
    pub dynamic: bool,
    /// The index built after the load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexPlan>,
    /// Remarks for the user.
    pub notes: Vec<Note>,
}

impl FieldPlan {
    /// The target type with its parameters, as reports show it: `FLOAT_VECTOR(768)`,
    /// `VARCHAR(512)`, `ARRAY<INT32>[4096]`.
    pub fn type_display(&self) -> String {
        let Some(t) = self.data_type else {
            return "?".into();
        };
        match t {
            DataType::Varchar => {
                format!("VARCHAR({})", self.max_length.unwrap_or(MAX_VARCHAR_LENGTH))
            }
            DataType::Array => format!(
                "ARRAY<{}>[{}]",
                self.element_type.map_or("?", DataType::name),
                self.max_capacity.unwrap_or(MAX_ARRAY_CAPACITY)
            ),
            t if t.is_dense_vector() => match self.dim {
                Some(d) => format!("{t}({d})"),
                None => format!("{t}(?)"),
            },
            t => t.to_string(),
        }
    }
}

/// One table and the collection it becomes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TablePlan {
    /// The source table.
    #[serde(serialize_with = "ser_display")]
    pub source: QualifiedName,
    /// The collection.
    pub collection: String,
    /// The mapping's `where`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Fields in collection order: the primary key first.
    pub fields: Vec<FieldPlan>,
    /// How the key is made.
    pub primary_key: PrimaryKey,
    /// The source's own primary key columns (kept as fields under an auto ID), for verify.
    pub source_key: Vec<String>,
    /// Whether the collection has a `$meta` dynamic field.
    pub dynamic_field: bool,
    /// Shard count.
    pub shards: u32,
    /// Rejected rows tolerated.
    pub max_rejects: u64,
    /// Columns left out by `exclude`.
    pub excluded: Vec<String>,
    /// Whether the source is partitioned.
    pub partitioned: bool,
    /// Row estimate from statistics.
    pub estimated_rows: Option<u64>,
    /// What must be decided before a run.
    pub required_fixes: Vec<Finding>,
    /// What the user may want to change.
    pub suggestions: Vec<Finding>,
    /// Into a Postgres-compatible target: the columns keep their Postgres types, and
    /// `collection` is the target table (`schema.table`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keeps_postgres_types: bool,
}

fn ser_display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Validates `mapping` against `catalog` (every table the source has, or at least those the
/// mapping names).
pub fn build_plan(mapping: &ParsedMapping, catalog: &[SourceTable]) -> Result<Plan, MappingError> {
    let loc = &mapping.locator;
    let specs: Vec<TableSpec> = if mapping.file.tables.is_empty() {
        catalog
            .iter()
            .map(|t| TableSpec {
                source: t.name.display_for_mapping(),
                ..TableSpec::default()
            })
            .collect()
    } else {
        mapping.file.tables.clone()
    };
    let mut tables = Vec::with_capacity(specs.len());
    let mut collections: BTreeMap<String, String> = BTreeMap::new();
    for spec in &specs {
        let name = QualifiedName::parse(&spec.source)?;
        let Some(table) = catalog.iter().find(|t| t.name == name) else {
            let names: Vec<String> = catalog
                .iter()
                .map(|t| t.name.display_for_mapping())
                .collect();
            return Err(MappingError::UnknownTable {
                at: loc.table(&spec.source),
                table: spec.source.clone(),
                suggestion: closest(&spec.source, names.iter().map(String::as_str)).or_else(|| {
                    closest(&name.name, catalog.iter().map(|t| t.name.name.as_str())).and_then(
                        |n| {
                            catalog
                                .iter()
                                .find(|t| t.name.name == n)
                                .map(|t| t.name.display_for_mapping())
                        },
                    )
                }),
            });
        };
        let mut plan = TablePlanner { spec, table, loc }.plan()?;
        if mapping.file.target.postgres.is_some() {
            keep_postgres_types(&mut plan, spec, table);
            tables.push(plan);
            continue;
        }
        // Two tables of the same name in different schemas (`vecs.docs`, `public.docs`) would
        // both become collection `docs`: the user names one of them.
        if let Some(first) = collections.get(&plan.collection) {
            let suggested = format!("{}_{}", plan.source.schema, plan.source.name)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>();
            plan.required_fixes.push(Finding {
                column: None,
                message: format!(
                    "collection `{}` would hold both {first} and {}",
                    plan.collection, plan.source
                ),
                fix: Some(format!(
                    "give one of them its own name, e.g. `collection: {suggested}` under `- source: {}`",
                    plan.source.display_for_mapping()
                )),
            });
        } else {
            collections.insert(plan.collection.clone(), plan.source.to_string());
        }
        tables.push(plan);
    }
    Ok(Plan {
        tables,
        batch_size: mapping
            .file
            .options
            .batch_size
            .unwrap_or(DEFAULT_BATCH_SIZE)
            .max(1),
        parallelism: mapping
            .file
            .options
            .parallelism
            .unwrap_or(DEFAULT_PARALLELISM)
            .max(1),
        max_segment_rows: mapping
            .file
            .options
            .max_segment_rows
            .unwrap_or(DEFAULT_MAX_SEGMENT_ROWS)
            .max(1),
    })
}

/// Into a Postgres-compatible target every column keeps its Postgres type and nullability
/// (the target checks what it cannot hold): the collection rules' findings do not apply, and
/// the fields stay only to name the columns read and compared.
fn keep_postgres_types(plan: &mut TablePlan, spec: &TableSpec, table: &SourceTable) {
    plan.required_fixes.clear();
    plan.suggestions.clear();
    plan.keeps_postgres_types = true;
    plan.collection = match spec.target.as_deref().map(QualifiedName::parse) {
        Some(Ok(t)) => t.to_string(),
        _ => table.name.to_string(),
    };
    for f in &mut plan.fields {
        if let Some(c) = f.source.as_deref().and_then(|s| table.column(s)) {
            f.nullable = c.nullable;
            f.default = None;
            f.dynamic = false;
        }
    }
    if !spec.fields.is_empty() {
        plan.required_fixes.push(Finding {
            column: spec.fields.first().map(|f| f.source.clone()),
            message: "`fields:` settings are for collections; into a Postgres target every column keeps its type, name and constraints".into(),
            fix: Some(format!(
                "remove `fields:` under `- source: {}` (use `exclude:` to leave columns out)",
                spec.source
            )),
        });
    }
}

struct TablePlanner<'a> {
    spec: &'a TableSpec,
    table: &'a SourceTable,
    loc: &'a Locator,
}

impl TablePlanner<'_> {
    fn unknown_column(&self, key: &str, column: &str) -> MappingError {
        MappingError::UnknownColumn {
            at: self.loc.in_table(&self.spec.source, key, Some(column)),
            table: self.spec.source.clone(),
            column: column.to_string(),
            suggestion: closest(column, self.table.columns.iter().map(|c| c.name.as_str())),
        }
    }

    fn field_loc(&self, column: &str, key: &str) -> crate::error::Location {
        let start = self.loc.in_table(&self.spec.source, "source", Some(column));
        self.loc.key_from(key, start.line).unwrap_or(start)
    }

    fn plan(&self) -> Result<TablePlan, MappingError> {
        let spec = self.spec;
        let table = self.table;
        for ex in &spec.exclude {
            if table.column(ex).is_none() {
                return Err(self.unknown_column("exclude", ex));
            }
        }
        let mut field_specs: BTreeMap<&str, &FieldSpec> = BTreeMap::new();
        for f in &spec.fields {
            if table.column(&f.source).is_none() {
                return Err(self.unknown_column("source", &f.source));
            }
            if field_specs.insert(f.source.as_str(), f).is_some() {
                return Err(MappingError::Duplicate {
                    at: self.loc.in_table(&spec.source, "source", Some(&f.source)),
                    what: "field source",
                    name: f.source.clone(),
                });
            }
            if spec.exclude.contains(&f.source) {
                return Err(MappingError::Conflict {
                    at: self.loc.in_table(&spec.source, "source", Some(&f.source)),
                    message: format!("column `{}` is both excluded and mapped", f.source),
                });
            }
        }

        let collection = match &spec.collection {
            Some(c) if is_valid_name(c) => c.clone(),
            Some(c) => {
                return Err(MappingError::InvalidValue {
                    at: self.loc.in_table(&spec.source, "collection", Some(c)),
                    key: "collection".into(),
                    value: c.clone(),
                    reason: "collection names hold letters, digits and `_`, and start with a letter or `_`".into(),
                    suggestion: Some(sanitize_name(c)),
                });
            }
            None => sanitize_name(&table.name.name),
        };

        let mut required_fixes = Vec::new();
        let mut suggestions = Vec::new();
        let key = self.choose_key(&field_specs, &mut required_fixes, &mut suggestions)?;

        let mut fields = Vec::new();
        let mut partition_key_seen = false;
        for column in &table.columns {
            if spec.exclude.contains(&column.name) {
                continue;
            }
            let fspec = field_specs.get(column.name.as_str()).copied();
            if column.generated {
                suggestions.push(Finding {
                    column: Some(column.name.clone()),
                    message: format!(
                        "generated column ({}, computed by the source from other columns): it arrives as stored values{}",
                        column.pg_type.display,
                        if column.pg_type.display == "tsvector" {
                            "; a tsvector is rebuilt by the target's own full-text machinery, not copied as text"
                        } else {
                            ""
                        }
                    ),
                    fix: Some(format!("`exclude: [{}]` leaves it out", column.name)),
                });
            }
            let is_key = matches!(&key, KeyChoice::Column(c) if *c == column.name);
            let field = self.plan_field(column, fspec, is_key, &mut required_fixes)?;
            if field.partition_key {
                if partition_key_seen {
                    return Err(MappingError::Conflict {
                        at: self.field_loc(&column.name, "partition_key"),
                        message: "a collection has at most one partition key".into(),
                    });
                }
                partition_key_seen = true;
            }
            fields.push(field);
        }

        let dynamic_field = spec.dynamic_field.unwrap_or(false) || fields.iter().any(|f| f.dynamic);
        if fields.iter().any(|f| f.dynamic) && spec.dynamic_field == Some(false) {
            return Err(MappingError::Conflict {
                at: self.loc.in_table(&spec.source, "dynamic_field", None),
                message: "fields are marked `dynamic` but `dynamic_field` is false".into(),
            });
        }

        let primary_key = match key {
            KeyChoice::Column(column) => {
                let pos = fields
                    .iter()
                    .position(|f| f.source.as_deref() == Some(column.as_str()))
                    .unwrap_or(0);
                let f = fields.remove(pos);
                let pk = PrimaryKey::Column {
                    field: f.name.clone(),
                    column,
                };
                fields.insert(0, f);
                pk
            }
            KeyChoice::Auto => {
                let name = ["id", "_id", "_auto_id"]
                    .into_iter()
                    .find(|n| !fields.iter().any(|f| f.name == *n))
                    .unwrap_or("_etl_auto_id")
                    .to_string();
                fields.insert(0, auto_id_field(&name));
                PrimaryKey::Auto { field: name }
            }
        };
        let mut seen = BTreeSet::new();
        for f in &fields {
            if !f.dynamic && !seen.insert(f.name.as_str()) {
                return Err(MappingError::Duplicate {
                    at: self.loc.in_table(&spec.source, "name", Some(&f.name)),
                    what: "field",
                    name: f.name.clone(),
                });
            }
        }
        if dynamic_field {
            fields.push(FieldPlan {
                name: DYNAMIC_FIELD_NAME.into(),
                data_type: Some(DataType::Json),
                nullable: true,
                notes: vec![Note::info("dynamic fields, packed as JSON")],
                ..FieldPlan::default()
            });
        }
        // A vector column whose type is still an open fix (no dimension yet) is a vector
        // field to be: the plan says what it lacks, not that there is none.
        let vector_pending = fields.iter().any(|f| {
            f.data_type.is_none()
                && f.pg_type.as_ref().is_some_and(|p| {
                    matches!(
                        p.kind,
                        PgKind::Vector { .. } | PgKind::HalfVec { .. } | PgKind::SparseVec { .. }
                    )
                })
        });
        if !vector_pending
            && !fields
                .iter()
                .any(|f| f.data_type.is_some_and(DataType::is_vector))
        {
            suggestions.push(Finding {
                column: None,
                message: "no vector field: the collection can be filtered and queried but not searched by similarity".into(),
                fix: None,
            });
        }
        for f in &fields {
            for n in f.notes.iter().filter(|n| n.severity == Severity::Warning) {
                suggestions.push(Finding {
                    column: f.source.clone(),
                    message: n.text.clone(),
                    fix: None,
                });
            }
        }
        Ok(TablePlan {
            source: table.name.clone(),
            collection,
            filter: spec.filter.clone(),
            fields,
            primary_key,
            source_key: table.primary_key.clone(),
            dynamic_field,
            shards: spec.shards.unwrap_or(1).max(1),
            max_rejects: spec.max_rejects.unwrap_or(0),
            excluded: spec.exclude.clone(),
            partitioned: table.partitioned,
            estimated_rows: table.estimated_rows,
            required_fixes,
            suggestions,
            keeps_postgres_types: false,
        })
    }

    fn choose_key(
        &self,
        field_specs: &BTreeMap<&str, &FieldSpec>,
        fixes: &mut Vec<Finding>,
        suggestions: &mut Vec<Finding>,
    ) -> Result<KeyChoice, MappingError> {
        let spec = self.spec;
        let table = self.table;
        let marked: Vec<&str> = field_specs
            .values()
            .filter(|f| f.primary_key == Some(true))
            .map(|f| f.source.as_str())
            .collect();
        if marked.len() > 1 {
            return Err(MappingError::Conflict {
                at: self.field_loc(marked[1], "primary_key"),
                message:
                    "a collection has one primary key; use `auto_id: true` for a composite key"
                        .into(),
            });
        }
        if let Some(col) = marked.first() {
            if spec.auto_id == Some(true) {
                return Err(MappingError::Conflict {
                    at: self.loc.in_table(&spec.source, "auto_id", None),
                    message: format!("`auto_id: true` contradicts `primary_key: true` on `{col}`"),
                });
            }
            return Ok(KeyChoice::Column((*col).to_string()));
        }
        let single = match table.primary_key.as_slice() {
            [only] => table
                .column(only)
                .filter(|c| primary_key_type(&c.pg_type.kind).is_some())
                .map(|c| c.name.clone()),
            _ => None,
        };
        if let Some(c) = single.clone().filter(|_| spec.auto_id != Some(true)) {
            if spec.exclude.contains(&c) {
                return Err(MappingError::Conflict {
                    at: self.loc.in_table(&spec.source, "exclude", Some(&c)),
                    message: format!("`{c}` is the primary key and cannot be excluded"),
                });
            }
            return Ok(KeyChoice::Column(c));
        }
        let why = match table.primary_key.len() {
            _ if single.is_some() => "`auto_id: true`".to_string(),
            0 => "no primary key".to_string(),
            1 => format!(
                "primary key `{}` is not an integer, text or uuid column",
                table.primary_key[0]
            ),
            _ => format!("composite primary key ({})", table.primary_key.join(", ")),
        };
        if spec.auto_id == Some(false) {
            fixes.push(Finding {
                column: None,
                message: format!("{why}, and `auto_id: false`"),
                fix: Some("set `auto_id: true`, or mark a unique integer or text field `primary_key: true`".into()),
            });
        } else {
            suggestions.push(Finding {
                column: None,
                message: format!(
                    "{why}: an INT64 auto-ID primary key is added{}",
                    if table.primary_key.is_empty() {
                        "; verify compares rows by a hash of the whole row"
                    } else {
                        "; the key columns stay as fields and verify matches rows by them"
                    }
                ),
                fix: None,
            });
        }
        Ok(KeyChoice::Auto)
    }
}

fn auto_id_field(name: &str) -> FieldPlan {
    FieldPlan {
        name: name.to_string(),
        data_type: Some(DataType::Int64),
        primary_key: true,
        auto_id: true,
        notes: vec![Note::info("added auto-ID primary key")],
        ..FieldPlan::default()
    }
}

/// How a table gets its primary key.
enum KeyChoice {
    Column(String),
    Auto,
}

mod field;
mod index;
#[cfg(test)]
mod tests;
