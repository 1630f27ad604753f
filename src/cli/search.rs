//! `etl search`: filtered similarity search from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use etl_engine::{Metric, SearchRequest};
use etl_pipeline::route::TargetUrl;
use serde_json::Value;

use super::index::{params_object, usage};
use super::{Format, out};

/// Arguments of `etl search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The engine's target directory, or a Milvus server (`milvus://host:19530`).
    #[arg(long)]
    pub target: PathBuf,
    /// The collection.
    #[arg(long)]
    pub collection: String,
    /// The vector field (default: the only one).
    #[arg(long)]
    pub field: Option<String>,
    /// Query vector as JSON: '[0.1, …]' (float), '"0101…"' or '[0,1,…]' (binary),
    /// '{"3": 0.5}' (sparse). Repeat for several queries.
    #[arg(long = "vector", required = true)]
    pub vectors: Vec<String>,
    /// Hits per query.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Hits to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// A Milvus filter expression, e.g. 'category == "books" and price < 20'.
    #[arg(long)]
    pub filter: Option<String>,
    /// Fields to return with each hit, comma-separated (`*` for all scalar fields).
    #[arg(long, value_delimiter = ',')]
    pub output_fields: Vec<String>,
    /// Metric (must match the index's).
    #[arg(long)]
    pub metric: Option<String>,
    /// Search parameters as JSON: '{"ef": 128, "nprobe": 16, "radius": 0.5, "range_filter": 0.1}'.
    #[arg(long)]
    pub params: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(a: SearchArgs) -> anyhow::Result<ExitCode> {
    let vectors: Vec<Value> = a
        .vectors
        .iter()
        .map(|v| {
            serde_json::from_str(v)
                .map_err(|e| usage(format!("--vector is not JSON ({e}): {}", clip(v))))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut req = SearchRequest {
        field: a.field.clone(),
        vectors,
        limit: a.limit,
        offset: a.offset,
        filter: a.filter.clone(),
        output_fields: a
            .output_fields
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        ..Default::default()
    };
    if let Some(m) = &a.metric {
        req.metric = Some(Metric::parse(m).ok_or_else(|| usage(format!("unknown metric `{m}`")))?);
    }
    if let Some(p) = &a.params {
        for (k, v) in &params_object(p)? {
            let num = v
                .as_f64()
                .ok_or_else(|| usage(format!("--params `{k}` must be a number")))?;
            match k.as_str() {
                "ef" | "ef_search" => req.ef = Some(num as usize),
                "nprobe" | "probes" => req.nprobe = Some(num as usize),
                "radius" => req.radius = Some(num as f32),
                "range_filter" => req.range_filter = Some(num as f32),
                other => {
                    return Err(usage(format!(
                        "--params: unknown key `{other}`; use ef, nprobe, radius, range_filter"
                    )));
                }
            }
        }
    }
    let target = TargetUrl::parse(&a.target);
    let results =
        super::block_on(async { etl_pipeline::search(&target, &a.collection, &req).await })?;
    match a.format {
        Format::Json => {
            let lists: Vec<Value> = results
                .iter()
                .map(|hits| Value::Array(hits.iter().map(|h| h.to_json()).collect()))
                .collect();
            let v = if lists.len() == 1 {
                lists.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(lists)
            };
            out(&format!("{v}\n"))?;
        }
        Format::Table => {
            let mut text = String::new();
            for (qi, hits) in results.iter().enumerate() {
                if results.len() > 1 {
                    text.push_str(&format!("query {qi}:\n"));
                }
                text.push_str(&format!(
                    "{:>4}  {:<24} {:>12}  {}\n",
                    "rank",
                    "id",
                    "distance",
                    req.output_fields.join("  ")
                ));
                for (i, h) in hits.iter().enumerate() {
                    let fields: Vec<String> =
                        h.fields.values().map(|v| clip(&v.to_string())).collect();
                    text.push_str(&format!(
                        "{:>4}  {:<24} {:>12.6}  {}\n",
                        i + 1 + req.offset,
                        h.id.to_string(),
                        h.distance,
                        fields.join("  ")
                    ));
                }
            }
            out(&text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn clip(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s.to_string()
    }
}
