//! The embedded vector engine: durable collections of immutable Arrow segments, indexes built
//! after the load, load/release, filtered similarity search, query and get.
//!
//! Synchronous by design (no tokio): callers that are async run it on a blocking thread.

pub mod error;
pub mod filter;
pub mod fsutil;
pub mod index;
pub mod manifest;
pub mod schema;
pub mod segment;
pub mod vector;

pub use error::{EngineError, Result};
