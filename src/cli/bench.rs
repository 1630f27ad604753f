//! `etl bench read`: how fast can this source be read?

use std::path::PathBuf;
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
    /// Build and sweep the engine's HNSW on raw vector files (see scripts/bench-hnsw).
    Hnsw(Box<HnswArgs>),
}

/// Arguments of `etl bench hnsw`: raw vector files (`--base --queries --truth --dim
/// --work-dir`), or a collection `etl run` loaded (`--target --collection [--field]`).
#[derive(Debug, Args)]
pub struct HnswArgs {
    /// Base vectors: little-endian f32 rows of --dim.
    #[arg(long, required_unless_present = "target")]
    pub base: Option<PathBuf>,
    /// Query vectors: little-endian f32 rows of --dim (with --target: optional, else rows of
    /// the collection are the queries).
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Exact neighbours: little-endian u32 rows of --k base row numbers.
    #[arg(long, required_unless_present = "target")]
    pub truth: Option<PathBuf>,
    /// Dimension.
    #[arg(long, required_unless_present = "target")]
    pub dim: Option<usize>,
    /// Metric: L2, IP or COSINE.
    #[arg(long, default_value = "COSINE")]
    pub metric: String,
    /// The graph index built (file mode): HNSW or HNSW_SQ (int8 codes, hits re-ranked).
    #[arg(long, default_value = "HNSW")]
    pub index: String,
    /// HNSW M.
    #[arg(long, default_value_t = 16)]
    pub m: u32,
    /// HNSW efConstruction.
    #[arg(long, default_value_t = 200)]
    pub ef_construction: u32,
    /// Search breadths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,80,160,320")]
    pub ef: Vec<usize>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Where the benchmark collection is written (emptied first).
    #[arg(long, required_unless_present = "target")]
    pub work_dir: Option<PathBuf>,
    /// A target directory holding a collection loaded by `etl run`: measure it as it is.
    #[arg(long, requires = "collection", conflicts_with_all = ["base", "truth", "work_dir"])]
    pub target: Option<PathBuf>,
    /// The collection (with --target).
    #[arg(long)]
    pub collection: Option<String>,
    /// The vector field (with --target; default: the only one).
    #[arg(long)]
    pub field: Option<String>,
    /// Rows of the collection used as queries when --queries is not given.
    #[arg(long, default_value_t = 1000)]
    pub sample: usize,
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
    let r = match args.what {
        BenchCommand::Read(r) => r,
        BenchCommand::Hnsw(h) => return hnsw(*h),
    };
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

fn hnsw(h: HnswArgs) -> anyhow::Result<ExitCode> {
    let m = match (h.target, h.collection) {
        (Some(target), Some(collection)) => {
            etl_pipeline::bench::bench_collection(&etl_pipeline::bench::CollectionBenchOptions {
                target,
                collection,
                field: h.field,
                queries: h.queries,
                sample: h.sample,
                efs: h.ef,
                k: h.k,
            })?
        }
        _ => {
            let metric = etl_engine::Metric::parse(&h.metric)
                .ok_or_else(|| anyhow::anyhow!("--metric {}: want L2, IP or COSINE", h.metric))?;
            let index = etl_engine::IndexType::parse(&h.index)
                .filter(|t| t.is_graph())
                .ok_or_else(|| anyhow::anyhow!("--index {}: want HNSW or HNSW_SQ", h.index))?;
            let need = |what: &str| anyhow::anyhow!("--{what} is required without --target");
            let opts = etl_pipeline::bench::HnswBenchOptions {
                base: h.base.ok_or_else(|| need("base"))?,
                queries: h.queries.ok_or_else(|| need("queries"))?,
                truth: h.truth.ok_or_else(|| need("truth"))?,
                dim: h.dim.ok_or_else(|| need("dim"))?,
                metric,
                index,
                m: h.m,
                ef_construction: h.ef_construction,
                efs: h.ef,
                k: h.k,
                work_dir: h.work_dir.ok_or_else(|| need("work-dir"))?,
            };
            etl_pipeline::bench::bench_hnsw(&opts)?
        }
    };
    super::out(&format!("{}\n", serde_json::to_string(&m)?))?;
    Ok(ExitCode::SUCCESS)
}
