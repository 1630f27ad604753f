//! `etl init`: write a complete mapping from a live catalog.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use etl_pipeline::{InitRequest, init};

/// Arguments of `etl init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The source database, e.g. postgres://user@host:5432/db (password from PGPASSWORD or
    /// ~/.pgpass; it is never written into the mapping).
    #[arg(long)]
    pub source: String,
    /// Only these tables (schema.table, comma-separated); default: every user table.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// The engine directory to write into the mapping.
    #[arg(long, default_value = "./data")]
    pub target: String,
    /// Write the mapping here instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

pub async fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let yaml = init(&InitRequest {
        source: args.source,
        tables: args.tables,
        target: args.target,
    })
    .await?;
    match args.output {
        Some(path) => {
            fs_err::write(&path, yaml).map_err(etl_pipeline::PipelineError::Io)?;
            eprintln!(
                "wrote {}; check it with `etl plan {}`",
                path.display(),
                path.display()
            );
        }
        None => super::out(&yaml)?,
    }
    Ok(ExitCode::SUCCESS)
}
