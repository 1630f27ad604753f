//! The live Postgres source: connection settings, connections, and the catalog reader.

mod catalog;
mod config;
mod connect;
mod copy;
mod decode;
mod provider;
mod reader;
mod schema;
mod text;

pub use catalog::{TypeCatalog, TypeInfo, describe_tables, list_tables, null_counts, vector_dims};
pub use config::{Env, PgUrl, ProcessEnv, TlsMode, redact_url, strip_password};
pub use connect::connect;
pub use copy::{CopyDecoder, FrameError, Tid};
pub use decode::{ColumnDecoder, ReadKind, SelectAs, read_kind, sparse_fields};
pub use provider::{
    DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, DEFAULT_MAX_RETRIES, PgScanExec, PgTableProvider,
    ReadOptions, WIRE_TEXT,
};
pub use reader::{BadRow, BlockRange, ReadSpec, ReadStats, SnapshotSession, assign, copy_sql};
pub use schema::{
    ColumnDefinition, ColumnFill, ConstraintDefinition, ConstraintKind, IndexDefinition,
    PartitionDefinition, SequenceState, TableDefinition, TypeDefinition, column_list,
    extension_state, table_definition,
};
pub use tokio_postgres::Client;
