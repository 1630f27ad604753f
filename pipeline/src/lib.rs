//! Runs: from a mapping file to a planned, loaded and verified collection. This crate wires the pure mapping model to the async connectors.

pub mod bench;
mod checks;
mod error;
mod inspect;
pub mod map;
mod prepare;
pub mod report;
pub mod route;
pub mod run;
mod schema;
mod source;
pub mod sql;
pub mod target;
#[cfg(test)]
mod testdata;
pub mod verify;

pub use target::{milvus, stage};

pub use bench::{ReadBench, bench_read};
pub use error::PipelineError;
pub use inspect::{InitRequest, InitSource, init, load_mapping, open_source, plan, read_catalog};
pub use report::{Phase, RunObserver, RunReport, Silent, TableReport};
pub use run::{RunOptions, run};
pub use source::{Source, postgres_url};
pub use target::engine::job::{Job, JobState, list_jobs, show_job};
pub use target::{Admin, Answer, ImportOptions, administer, import, search};
