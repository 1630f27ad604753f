//! Runs: from a mapping file to a planned (and, in later stages, loaded and verified)
//! collection. This crate wires the pure mapping model to the async connectors.

mod error;
mod inspect;

pub use error::PipelineError;
pub use inspect::{InitRequest, init, load_mapping, plan, postgres_url, read_catalog};
