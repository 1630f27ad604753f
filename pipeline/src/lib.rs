//! Runs: from a mapping file to a planned, loaded and verified collection. This crate wires the pure mapping model to the async connectors.

pub mod bench;
mod checks;
mod error;
mod inspect;
pub mod milvus;
pub mod route;
pub mod run;
mod source;
pub mod sql;
pub mod stage;
#[cfg(test)]
mod testdata;
pub mod verify;

pub use bench::{ReadBench, bench_read};
pub use error::PipelineError;
pub use inspect::{
    InitRequest, InitSource, init, load_mapping, open_source, plan, postgres_url, read_catalog,
};
pub use run::job::{Job, JobState, list_jobs, show_job};
pub use run::{Phase, RunObserver, RunOptions, RunReport, Silent, TableReport, run};
pub use source::Source;
