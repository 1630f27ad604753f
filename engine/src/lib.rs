//! The embedded vector engine: durable collections of immutable Arrow segments, indexes built
//! after the load, load/release, filtered similarity search, query and get.
//!
//! Synchronous by design (no tokio): callers that are async run it on a blocking thread.

pub mod collection;
pub mod convert;
pub mod database;
pub mod direct;
pub mod error;
pub mod fault;
pub mod filter;
pub mod fsutil;
pub mod index;
pub mod manifest;
pub mod schema;
pub mod segment;
pub mod vector;

pub use collection::{
    BulkWriter, Collection, CommitStats, Hit, IndexProgress, LoadState, MergePolicy, MergeStats,
    QueryRequest, SearchRequest, SegmentScan,
};
pub use database::Database;
pub use error::{EngineError, Result};
pub use index::{HnswParams, IndexSpec, IndexType, IvfParams};
pub use schema::{CollectionSchema, Field, FieldType};
pub use vector::{Metric, QueryVector};
