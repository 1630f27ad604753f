//! `etl stage` and `etl import`: a mapping's collections as Parquet files in Milvus'
//! bulk-import layout on an object store, and such a stage into the engine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use etl_pipeline::ImportOptions;
use etl_pipeline::RunOptions;
use etl_pipeline::route::TargetUrl;

use super::Format;
use super::run::{ctrl_c, observer, print_report};

/// Arguments of `etl stage`.
#[derive(Debug, Args)]
pub struct StageArgs {
    /// The mapping file.
    pub mapping: PathBuf,
    /// Where to stage: file:///abs/dir, s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix (credentials from the environment: AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, …).
    #[arg(long)]
    pub to: String,
    /// Only these tables (source or collection names), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<String>>,
    /// Largest file, in bytes (default 512 MiB).
    #[arg(long)]
    pub max_file_size: Option<u64>,
    /// Concurrent readers and tables.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Format of the final report on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn stage(a: StageArgs) -> anyhow::Result<ExitCode> {
    let opts = RunOptions {
        tables: a.tables,
        parallelism: a.parallelism,
        stage_to: Some(a.to),
        max_file_bytes: a.max_file_size,
        ..RunOptions::default()
    };
    let report = etl_pipeline::run(&a.mapping, &opts, observer(a.quiet), ctrl_c()).await?;
    print_report(&report, quiet_format(a.quiet, a.format), None)?;
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `etl import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The stage's URL (as given to `etl stage --to`).
    #[arg(long)]
    pub from: String,
    /// The engine's target directory, or a Milvus server (`milvus://host:19530`, which reads
    /// the staged files itself: a file:// stage on its machine or its own s3:// bucket).
    #[arg(long)]
    pub target: PathBuf,
    /// Drop and recreate Milvus collections that exist with other data.
    #[arg(long)]
    pub recreate: bool,
    /// Only these collections, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub collections: Option<Vec<String>>,
    /// Files fetched and decoded at once.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Format of the final report on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    let opts = ImportOptions {
        collections: a.collections,
        parallelism: a.parallelism,
        recreate: a.recreate,
        replace_own: false,
    };
    let target = TargetUrl::parse(&a.target);
    let report = etl_pipeline::import(&a.from, &target, &opts, observer(a.quiet), ctrl_c()).await?;
    print_report(&report, quiet_format(a.quiet, a.format), None)?;
    Ok(ExitCode::SUCCESS)
}

/// --quiet prints nothing on success, unless the JSON report was asked for.
fn quiet_format(quiet: bool, format: Format) -> Option<Format> {
    (!quiet || format == Format::Json).then_some(format)
}
