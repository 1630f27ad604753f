//! Sources and sinks. The live Postgres source reads its catalog for the planner and (later)
//! its rows through binary COPY into Arrow batches.
//!
//! Everything here is async and runs on tokio; the engine crate stays synchronous.

pub mod dump;
mod error;
pub mod files;
pub mod milvus;
pub mod postgres;
pub mod store;

pub use error::ConnectorError;
