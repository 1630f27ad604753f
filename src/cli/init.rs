//! `etl init`: write a complete mapping from a live catalog or a dump's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use etl_pipeline::{InitRequest, InitSource, init};

/// Arguments of `etl init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The source database, e.g. postgres://user@host:5432/db (password from PGPASSWORD or
    /// ~/.pgpass; it is never written into the mapping).
    #[arg(long, required_unless_present = "dump", conflicts_with = "dump")]
    pub source: Option<String>,
    /// A pg_dump file (plain, gzip'd plain or custom format) or directory (-Fd) to read the
    /// tables from instead of a server.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Only these tables (schema.table, comma-separated); default: every user table.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Where the mapping loads: an engine directory, or a Postgres-compatible database
    /// (`postgres://…`: tables keep their Postgres types).
    #[arg(long, default_value = "./data")]
    pub target: String,
    /// Write the mapping here instead of stdout.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

pub async fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let source = match (args.source, args.dump) {
        (Some(url), _) => InitSource::Postgres(url),
        (None, Some(path)) => InitSource::Dump(path),
        (None, None) => anyhow::bail!("give --source URL or --dump PATH"),
    };
    let yaml = init(&InitRequest {
        source,
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
