//! `etl bench read`: how fast can this source be read?

use std::process::ExitCode;

use clap::{Args, Subcommand};
use etl_pipeline::bench_read;

use super::Format;

/// Arguments of `etl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchCommand,
}

/// What to measure.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Read a table through the binary-COPY reader and drop the batches.
    Read(ReadArgs),
}

/// Arguments of `etl bench read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The source database URL.
    #[arg(long)]
    pub source: String,
    /// The table (schema.table).
    #[arg(long)]
    pub table: String,
    /// Concurrent readers, all in one snapshot.
    #[arg(long, default_value_t = 1)]
    pub partitions: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let BenchCommand::Read(r) = args.what;
    let m = bench_read(&r.source, &r.table, r.partitions).await?;
    let text = match r.format {
        Format::Json => format!("{}\n", serde_json::to_string(&m)?),
        Format::Table => format!(
            "rows {}  bytes {}  seconds {:.3}  rows/s {:.0}  MB/s {:.1}  (partitions {})\n",
            m.rows, m.bytes, m.seconds, m.rows_per_s, m.mb_per_s, r.partitions
        ),
    };
    super::out(&text)?;
    Ok(ExitCode::SUCCESS)
}
