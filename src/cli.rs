//! Argument parsing and dispatch. Each subcommand lives in its own module under `cli/`.

mod bench;
mod collections;
mod index;
mod init;
mod plan;
mod progress;
mod query;
mod run;
mod search;
mod stage;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use etl_connectors::ConnectorError;
use etl_engine::EngineError;
use etl_pipeline::PipelineError;

/// Move PostgreSQL data, pgvector columns above all, into a vector search engine, then search
/// and verify it.
#[derive(Debug, Parser)]
#[command(name = "etl", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Output format of reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// JSON for machines.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a live database's catalog and write a complete mapping file.
    Init(init::InitArgs),
    /// Connect, inspect and validate a mapping; print what every column becomes.
    Plan(plan::PlanArgs),
    /// Migrate: read, map, load, index and load the collections a mapping names.
    Run(run::RunArgs),
    /// List or show runs recorded in a target directory.
    Jobs(run::JobsArgs),
    /// Measure how fast a source can be read.
    Bench(bench::BenchArgs),
    /// List, describe, load, release or drop the engine's collections.
    Collections(collections::CollectionsArgs),
    /// Build indexes after the load.
    Index(index::IndexArgs),
    /// Filtered similarity search over a collection.
    Search(search::SearchArgs),
    /// SQL over collections, with pgvector's distance functions and index search.
    Query(query::QueryArgs),
    /// Compare source and target row by row (MOLT Verify's counters); exit 0 only when clean.
    Verify(verify::VerifyArgs),
    /// Write a mapping's collections as Parquet files in Milvus' bulk-import layout to an
    /// object store (file://, s3://, gs://, az://), with a manifest written last.
    Stage(stage::StageArgs),
    /// Load a stage written by `etl stage` into the engine, file by file, resumable.
    Import(stage::ImportArgs),
}

/// Sets up tracing on stderr.
pub fn init_tracing(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ETL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init(args) => init::run(args).await,
        Command::Plan(args) => plan::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Jobs(args) => run::jobs(args),
        Command::Verify(args) => verify::run(args).await,
        Command::Stage(args) => stage::stage(args).await,
        Command::Import(args) => stage::import(args).await,
        Command::Query(args) => query::run(args).await,
        // The engine is synchronous; these commands own the process, so they run it directly.
        Command::Collections(args) => collections::run(args),
        Command::Index(args) => index::run(args),
        Command::Search(args) => search::run(args),
    }
}

/// Exit code 2 for what the user must correct (the file, the arguments, the connection);
/// 1 for failures while working.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if let Some(e) = err.downcast_ref::<EngineError>() {
        return if e.is_user_error() { 2 } else { 1 };
    }
    match err.downcast_ref::<PipelineError>() {
        Some(PipelineError::Mapping(_))
        | Some(PipelineError::UnknownTable { .. })
        | Some(PipelineError::UnsupportedSource { .. })
        | Some(PipelineError::Io(_))
        | Some(PipelineError::Usage { .. })
        | Some(PipelineError::NeedsFixes { .. })
        | Some(PipelineError::Checksum { .. }) => 2,
        Some(PipelineError::Engine(e)) if e.is_user_error() => 2,
        Some(PipelineError::Engine(_)) => 1,
        Some(PipelineError::TooManyRejects { .. }) | Some(PipelineError::Cancelled) => 1,
        Some(PipelineError::DataFusion { .. }) | Some(PipelineError::Internal { .. }) => 1,
        Some(PipelineError::Connector(c)) => match c {
            ConnectorError::BadUrl { .. }
            | ConnectorError::Unreachable { .. }
            | ConnectorError::Auth { .. }
            | ConnectorError::Tls { .. }
            | ConnectorError::PermissionDenied { .. }
            | ConnectorError::TableNotFound { .. }
            | ConnectorError::HotStandby { .. }
            | ConnectorError::Dump { .. } => 2,
            ConnectorError::Store { .. } | ConnectorError::Milvus { .. } => 1,
            ConnectorError::StatementTimeout { .. }
            | ConnectorError::RecoveryConflict { .. }
            | ConnectorError::Query { .. }
            | ConnectorError::SnapshotLost { .. }
            | ConnectorError::Decode { .. }
            | ConnectorError::RetriesExhausted { .. } => 1,
        },
        None => 1,
    }
}

/// Whether the error is stdout closing under us (`etl plan | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes to stdout, turning a closed pipe into an error the caller can ignore.
/// Runs `f` to completion from a synchronous command on the CLI's multi-threaded runtime
/// (the commands that serve the engine are synchronous; a Milvus target is async).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

pub fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// A mapping file argument.
pub type MappingPath = PathBuf;
