//! The live Postgres source: connection settings, connections, and the catalog reader.

mod catalog;
mod config;
mod connect;

pub use catalog::{TypeCatalog, TypeInfo, describe_tables, list_tables};
pub use config::{Env, PgUrl, ProcessEnv, TlsMode, redact_url, strip_password};
pub use connect::connect;
