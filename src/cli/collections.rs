//! `etl collections list|describe|load|release|drop`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use etl_engine::{Collection, Database};
use etl_pipeline::route::TargetUrl;
use serde_json::{Value, json};

use super::{Format, out};

/// Arguments of `etl collections`.
#[derive(Debug, Args)]
pub struct CollectionsArgs {
    #[command(subcommand)]
    pub what: CollectionsCommand,
}

/// What to do with collections.
#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// List the collections of a target directory.
    List(Target),
    /// Show a collection's schema, rows, indexes and load state.
    Describe(Named),
    /// Load a collection's indexes and filter columns into memory; report the memory it holds.
    Load(Named),
    /// Release a loaded collection.
    Release(Named),
    /// Delete a collection and its files.
    Drop(Named),
}

/// A target directory.
#[derive(Debug, Args)]
pub struct Target {
    /// The engine's target directory, or a Milvus server (`milvus://host:19530`).
    #[arg(long)]
    pub target: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// A collection in a target directory.
#[derive(Debug, Args)]
pub struct Named {
    #[command(flatten)]
    pub target: Target,
    /// The collection.
    pub name: String,
}

/// `list`, `describe` and `drop` against a Milvus server.
fn run_milvus(url: &str, what: CollectionsCommand) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let (client, version) = etl_connectors::milvus::MilvusClient::connect(url).await?;
        match what {
            CollectionsCommand::List(t) => {
                let names = client.list_collections().await?;
                match t.format {
                    Format::Json => out(&format!(
                        "{}\n",
                        json!({"server": url, "version": version, "collections": names})
                    ))?,
                    Format::Table => out(&format!(
                        "Milvus {version} at {url}\n{}\n",
                        names.join("\n")
                    ))?,
                }
            }
            CollectionsCommand::Describe(n) => {
                let schema = client.describe_collection(&n.name).await?;
                let fields: Vec<Value> = schema
                    .fields
                    .iter()
                    .map(|f| {
                        json!({
                            "name": f.name, "data_type": f.data_type, "primary_key": f.is_primary_key,
                            "auto_id": f.auto_id, "partition_key": f.is_partition_key,
                            "params": f.type_params.iter().map(|kv| (kv.key.clone(), Value::String(kv.value.clone()))).collect::<serde_json::Map<_, _>>(),
                        })
                    })
                    .collect();
                let d = json!({"name": n.name, "server": url, "version": version, "dynamic_field": schema.enable_dynamic_field, "fields": fields});
                out(&format!("{}\n", serde_json::to_string_pretty(&d)?))?;
            }
            CollectionsCommand::Drop(n) => {
                client.drop_collection(&n.name).await?;
                out(&format!("dropped {} on {url}\n", n.name))?;
            }
            CollectionsCommand::Load(n) => {
                client.load(&n.name).await?;
                out(&format!("loaded {} on {url}\n", n.name))?;
            }
            CollectionsCommand::Release(n) => {
                client.release(&n.name).await?;
                out(&format!("released {} on {url}\n", n.name))?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run(args: CollectionsArgs) -> anyhow::Result<ExitCode> {
    let target = match &args.what {
        CollectionsCommand::List(t) => &t.target,
        CollectionsCommand::Describe(n)
        | CollectionsCommand::Load(n)
        | CollectionsCommand::Release(n)
        | CollectionsCommand::Drop(n) => &n.target.target,
    };
    if let TargetUrl::Milvus(url) = TargetUrl::parse(target) {
        return run_milvus(&url, args.what);
    }
    match args.what {
        CollectionsCommand::List(t) => {
            let db = Database::open_existing(&t.target)?;
            let mut rows = Vec::new();
            for name in db.list()? {
                rows.push(summary(&db.collection(&name)?));
            }
            match t.format {
                Format::Json => out(&format!("{}\n", Value::Array(rows)))?,
                Format::Table => {
                    let mut text = format!(
                        "{:<32} {:>12} {:>9} {:>12}  {}\n",
                        "collection", "rows", "segments", "disk MB", "indexes"
                    );
                    for r in &rows {
                        text.push_str(&format!(
                            "{:<32} {:>12} {:>9} {:>12.1}  {}\n",
                            r["name"].as_str().unwrap_or(""),
                            r["rows"].as_u64().unwrap_or(0),
                            r["segments"].as_u64().unwrap_or(0),
                            r["disk_bytes"].as_f64().unwrap_or(0.0) / 1e6,
                            r["indexes"]
                                .as_array()
                                .map(|a| a
                                    .iter()
                                    .filter_map(|i| i.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "))
                                .unwrap_or_default()
                        ));
                    }
                    out(&text)?;
                }
            }
        }
        CollectionsCommand::Describe(n) => {
            let c = Database::open_existing(&n.target.target)?.collection(&n.name)?;
            let m = c.manifest();
            let indexes: Vec<Value> = m
                .indexes
                .iter()
                .map(|(field, spec)| {
                    let built = m.segments.iter().filter(|s| s.indexes.get(field).is_some_and(|i| i.spec == *spec)).count();
                    json!({"field": field, "index_type": spec.index_type, "metric": spec.metric, "params": spec.hnsw, "built_segments": built, "segments": m.segments.len()})
                })
                .collect();
            let segments: Vec<Value> = m
                .segments
                .iter()
                .map(|s| {
                    let built: serde_json::Map<String, Value> = m
                        .indexes
                        .iter()
                        .map(|(field, spec)| {
                            let state = match s.indexes.get(field) {
                                Some(ix) if ix.spec == *spec => "built",
                                Some(_) => "stale",
                                None => "pending",
                            };
                            (field.clone(), Value::String(state.into()))
                        })
                        .collect();
                    json!({"id": s.id, "rows": s.rows, "live_rows": s.live_rows(), "bytes": s.bytes, "indexes": built})
                })
                .collect();
            let mut d = summary(&c);
            d["schema"] = serde_json::to_value(&m.schema)?;
            d["indexes"] = Value::Array(indexes);
            d["segment_list"] = Value::Array(segments);
            d["version"] = json!(m.version);
            match n.target.format {
                Format::Json => out(&format!("{}\n", serde_json::to_string_pretty(&d)?))?,
                Format::Table => {
                    let mut text = format!(
                        "collection {}  rows {}  segments {}  disk {:.1} MB  load state {}  version {}\n\nfields:\n",
                        c.name(),
                        d["rows"],
                        d["segments"],
                        d["disk_bytes"].as_f64().unwrap_or(0.0) / 1e6,
                        d["load_state"].as_str().unwrap_or(""),
                        m.version
                    );
                    for f in &m.schema.fields {
                        let mut extra = Vec::new();
                        if f.primary_key {
                            extra.push(if m.schema.auto_id {
                                "primary key, auto_id".to_string()
                            } else {
                                "primary key".into()
                            });
                        }
                        if let Some(d) = f.dim {
                            extra.push(format!("dim {d}"));
                        }
                        if let Some(l) = f.max_length {
                            extra.push(format!("max_length {l}"));
                        }
                        if let Some(e) = f.element_type {
                            extra.push(format!(
                                "of {e}, max_capacity {}",
                                f.max_capacity.unwrap_or(0)
                            ));
                        }
                        if f.nullable {
                            extra.push("nullable".into());
                        }
                        if f.partition_key {
                            extra.push("partition key".into());
                        }
                        text.push_str(&format!(
                            "  {:<28} {:<20} {}\n",
                            f.name,
                            f.data_type.name(),
                            extra.join(", ")
                        ));
                    }
                    text.push_str("\nindexes:\n");
                    for i in d["indexes"].as_array().into_iter().flatten() {
                        text.push_str(&format!(
                            "  {:<28} {:<22} {:<8} {}  built {}/{}\n",
                            i["field"].as_str().unwrap_or(""),
                            i["index_type"].as_str().unwrap_or(""),
                            i["metric"].as_str().unwrap_or("-"),
                            if i["params"].is_null() {
                                String::new()
                            } else {
                                i["params"].to_string()
                            },
                            i["built_segments"],
                            i["segments"]
                        ));
                    }
                    text.push_str(&format!(
                        "\nsegments:\n  {:>8} {:>12} {:>12} {:>10}  indexes\n",
                        "id", "rows", "live rows", "MB"
                    ));
                    for s in d["segment_list"].as_array().into_iter().flatten() {
                        let states = s["indexes"]
                            .as_object()
                            .map(|o| {
                                o.iter()
                                    .map(|(f, st)| format!("{f} {}", st.as_str().unwrap_or("")))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default();
                        text.push_str(&format!(
                            "  {:>8} {:>12} {:>12} {:>10.1}  {}\n",
                            s["id"],
                            s["rows"],
                            s["live_rows"],
                            s["bytes"].as_f64().unwrap_or(0.0) / 1e6,
                            states
                        ));
                    }
                    out(&text)?;
                }
            }
        }
        CollectionsCommand::Load(n) => {
            let c = Database::open_existing(&n.target.target)?.collection(&n.name)?;
            let started = Instant::now();
            let loaded = c.load()?;
            let seconds = started.elapsed().as_secs_f64();
            let bytes = loaded.memory_bytes();
            match n.target.format {
                Format::Json => out(&format!(
                    "{}\n",
                    json!({"collection": c.name(), "load_state": "Loaded", "memory_bytes": bytes, "seconds": seconds})
                ))?,
                Format::Table => out(&format!(
                    "loaded {} in {seconds:.2} s, holding {:.1} MB\n",
                    c.name(),
                    bytes as f64 / 1e6
                ))?,
            }
        }
        CollectionsCommand::Release(n) => {
            let c = Database::open_existing(&n.target.target)?.collection(&n.name)?;
            c.release()?;
            if n.target.format == Format::Json {
                out(&format!(
                    "{}\n",
                    json!({"collection": c.name(), "load_state": "Unloaded"})
                ))?;
            } else {
                out(&format!("released {}\n", c.name()))?;
            }
        }
        CollectionsCommand::Drop(n) => {
            let db = Database::open_existing(&n.target.target)?;
            db.drop_collection(&n.name)?;
            if n.target.format == Format::Json {
                out(&format!(
                    "{}\n",
                    json!({"collection": n.name, "dropped": true})
                ))?;
            } else {
                out(&format!("dropped {}\n", n.name))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(c: &Collection) -> Value {
    let m = c.manifest();
    json!({
        "name": c.name(),
        "rows": m.live_rows(),
        "segments": m.segments.len(),
        "disk_bytes": c.disk_bytes(),
        "load_state": if c.wants_loaded() { "Loaded" } else { "Unloaded" },
        "indexes": m.indexes.iter().map(|(f, s)| format!("{f}: {}", s.index_type)).collect::<Vec<_>>(),
    })
}
