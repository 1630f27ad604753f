//! `etl index build`: build (or rebuild) an index after the load, with progress.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use etl_engine::{Database, HnswParams, IndexSpec, IndexType, IvfParams, Metric};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{Format, out};

/// Arguments of `etl index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    pub what: IndexCommand,
}

/// Index operations.
#[derive(Debug, clap::Subcommand)]
pub enum IndexCommand {
    /// Build an index on a field (vector or scalar) for every segment that lacks it.
    Build(BuildArgs),
}

/// Arguments of `etl index build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The engine's target directory.
    #[arg(long)]
    pub target: PathBuf,
    /// The collection.
    #[arg(long)]
    pub collection: String,
    /// The field (default: the collection's only vector field).
    #[arg(long)]
    pub field: Option<String>,
    /// Index type: HNSW, FLAT, BIN_FLAT, SPARSE_INVERTED_INDEX, STL_SORT, INVERTED
    /// (default: HNSW for float vectors, BIN_FLAT for binary, SPARSE_INVERTED_INDEX for sparse,
    /// STL_SORT for numbers, INVERTED otherwise).
    #[arg(long = "type")]
    pub index_type: Option<String>,
    /// Metric: L2, IP, COSINE (float), HAMMING, JACCARD (binary), IP (sparse).
    #[arg(long)]
    pub metric: Option<String>,
    /// Build parameters as JSON, e.g. '{"M": 16, "efConstruction": 200}'.
    #[arg(long)]
    pub params: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(args: IndexArgs) -> anyhow::Result<ExitCode> {
    let IndexCommand::Build(a) = args.what;
    let c = Database::open_existing(&a.target)?.collection(&a.collection)?;
    let field = match &a.field {
        Some(f) => c.schema().field_or_err(c.name(), f)?.clone(),
        None => c.vector_field(None)?.clone(),
    };
    let index_type = match &a.index_type {
        Some(t) => IndexType::parse(t).ok_or_else(|| usage(format!("unknown index type `{t}`; use HNSW, HNSW_SQ, IVF_FLAT, FLAT, BIN_FLAT, SPARSE_INVERTED_INDEX, STL_SORT or INVERTED")))?,
        None => IndexType::default_for(field.data_type),
    };
    let metric = a
        .metric
        .as_deref()
        .map(|m| {
            Metric::parse(m).ok_or_else(|| {
                usage(format!(
                    "unknown metric `{m}`; use L2, IP, COSINE, HAMMING or JACCARD"
                ))
            })
        })
        .transpose()?;
    let (hnsw, ivf) = match (&a.params, index_type) {
        (Some(p), IndexType::IvfFlat) => (None, Some(parse_ivf_params(p)?)),
        (Some(p), _) => (Some(parse_params(p)?), None),
        (None, IndexType::Hnsw | IndexType::HnswSq) => (Some(HnswParams::default()), None),
        (None, IndexType::IvfFlat) => (None, Some(IvfParams::default())),
        (None, _) => (None, None),
    };
    let spec = IndexSpec {
        index_type,
        metric,
        hnsw,
        ivf,
    };
    let bar = if a.format == Format::Table {
        ProgressBar::new(c.count_rows())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("indexing {}.{}", c.name(), field.name));
    let seconds = c.create_index(&field.name, spec, &|p| {
        bar.set_length(p.total_rows);
        bar.set_position(p.done_rows);
    })?;
    bar.finish_and_clear();
    let spec = c.manifest().indexes.get(&field.name).copied();
    match a.format {
        Format::Json => out(&format!(
            "{}\n",
            json!({"collection": c.name(), "field": field.name, "index": spec, "rows": c.count_rows(), "build_seconds": seconds})
        ))?,
        Format::Table => out(&format!(
            "built {} on {}.{} ({} rows) in {seconds:.2} s\n",
            spec.map(|s| format!(
                "{} {}",
                s.index_type,
                s.metric.map(|m| m.name()).unwrap_or("")
            ))
            .unwrap_or_default()
            .trim(),
            c.name(),
            field.name,
            c.count_rows()
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `{"M": 16, "efConstruction": 200}`; Milvus' names and pgvector's (`m`, `ef_construction`).
fn parse_params(p: &str) -> anyhow::Result<HnswParams> {
    let obj = params_object(p)?;
    let mut out = HnswParams::default();
    for (k, v) in &obj {
        let n = v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| usage(format!("--params `{k}` must be a positive integer")))?;
        match k.as_str() {
            "M" | "m" => out.m = n,
            "efConstruction" | "ef_construction" => out.ef_construction = n,
            other => {
                return Err(usage(format!(
                    "--params: unknown key `{other}`; use M and efConstruction"
                )));
            }
        }
    }
    Ok(out)
}

/// `{"nlist": 1024, "nprobe": 16}`; pgvector's names (`lists`, `probes`) too.
fn parse_ivf_params(p: &str) -> anyhow::Result<IvfParams> {
    let mut out = IvfParams::default();
    for (k, v) in &params_object(p)? {
        let n = v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| usage(format!("--params `{k}` must be a positive integer")))?;
        match k.as_str() {
            "nlist" | "lists" => out.nlist = n,
            "nprobe" | "probes" => out.nprobe = n,
            other => {
                return Err(usage(format!(
                    "--params: unknown key `{other}`; use nlist and nprobe"
                )));
            }
        }
    }
    Ok(out)
}

/// `--params` as a JSON object, or a usage error.
pub fn params_object(p: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(p) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(usage("--params must be a JSON object".into())),
        Err(e) => Err(usage(format!("--params is not JSON: {e}"))),
    }
}

/// A user error in the arguments (exit code 2).
pub fn usage(msg: String) -> anyhow::Error {
    anyhow::Error::new(etl_engine::EngineError::InvalidRequest(msg))
}
