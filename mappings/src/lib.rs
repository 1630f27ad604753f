//! The mapping model: what a `mapping.yaml` says, how it is validated against a source's
//! catalog, and the default rules that turn Postgres types into vector-engine field types.
//!
//! This crate is pure: no I/O, no async. Connectors describe source tables as
//! [`SourceTable`]s; [`build_plan`] turns a [`ParsedMapping`] and those tables into a [`Plan`].
//!
//! ```
//! use etl_mappings::{parse_mapping, DataType, PgKind, default_rule};
//!
//! let text = "version: 1\nsource:\n  postgres: postgres://localhost/db\ntarget:\n  engine: ./data\n";
//! let parsed = parse_mapping(text, "mapping.yaml", &|_| None).unwrap();
//! assert_eq!(parsed.file.target.engine.as_deref(), Some("./data"));
//! let rule = default_rule(&PgKind::HalfVec { dim: Some(384) }).unwrap();
//! assert_eq!(rule.data_type, DataType::Float16Vector);
//! ```

mod catalog;
mod error;
mod ident;
mod model;
mod parse;
mod plan;
mod render;
mod rules;
mod types;

pub use catalog::{
    SourceColumn, SourceTable, SourceVectorIndex, VectorIndexMethod, metric_of_opclass,
};
pub use error::{Location, MappingError, NameProblem, closest};
pub use ident::{
    MAX_NAME_LEN, QualifiedName, is_valid_name, quote_ident, quote_if_needed, quote_literal,
    sanitize_name,
};
pub use model::{
    Dialect, FieldSpec, IfExists, IndexSpec, MAPPING_VERSION, MappingFile, OnNull, OptionsSpec,
    SourceSpec, TableSpec, TargetSpec,
};
pub use parse::{Locator, ParsedMapping, expand_env, parse_mapping};
pub use plan::{
    DEFAULT_BATCH_SIZE, DEFAULT_PARALLELISM, DYNAMIC_FIELD_NAME, FieldPlan, Finding, HnswParams,
    IndexOrigin, IndexPlan, Plan, PrimaryKey, TablePlan, build_plan,
};
pub use render::{InitOptions, render_mapping};
pub use rules::{
    MAX_ARRAY_CAPACITY, MAX_DOUBLE_NUMERIC_PRECISION, MAX_VARCHAR_LENGTH, Note, RequiredFix,
    Severity, TypeChoice, check_override, default_rule, primary_key_type,
};
pub use types::{DataType, IndexType, Metric, PgKind, PgType};
