//! `etl collections` on an engine directory: a collection's rows, segments, disk use, indexes
//! (built per segment) and load state; load, release and drop.

use std::path::Path;
use std::time::Instant;

use etl_engine::{Collection, Database};
use serde_json::{Value, json};

use crate::error::PipelineError;
use crate::target::{Admin, Answer};

fn internal(e: serde_json::Error) -> PipelineError {
    PipelineError::Internal {
        message: e.to_string(),
    }
}

/// Answers `command` on the engine at `dir` (which must exist).
pub(super) fn administer(dir: &Path, command: &Admin) -> Result<Answer, PipelineError> {
    Ok(match command {
        Admin::Jobs => {
            let jobs = super::job::list_jobs(dir)?;
            let json = format!(
                "{}\n",
                serde_json::to_string_pretty(&jobs).map_err(internal)?
            );
            let mut table = format!(
                "{:<24} {:<12} {:>12}  {}\n",
                "job", "state", "started", "mapping"
            );
            for j in &jobs {
                table.push_str(&format!(
                    "{:<24} {:<12} {:>12}  {}\n",
                    j.id,
                    format!("{:?}", j.state),
                    j.started_at,
                    j.mapping
                ));
            }
            Answer { json, table }
        }
        Admin::List => {
            let db = Database::open_existing(dir)?;
            let mut rows = Vec::new();
            for name in db.list()? {
                rows.push(summary(&db.collection(&name)?));
            }
            let json = format!("{}\n", Value::Array(rows.clone()));
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
            Answer { json, table: text }
        }
        Admin::Describe(name) => {
            let c = Database::open_existing(dir)?.collection(name)?;
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
            d["schema"] = serde_json::to_value(&m.schema).map_err(internal)?;
            d["indexes"] = Value::Array(indexes);
            d["segment_list"] = Value::Array(segments);
            d["version"] = json!(m.version);
            let json = format!("{}\n", serde_json::to_string_pretty(&d).map_err(internal)?);
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
            Answer { json, table: text }
        }
        Admin::Load(name) => {
            let c = Database::open_existing(dir)?.collection(name)?;
            let started = Instant::now();
            let loaded = c.load()?;
            let seconds = started.elapsed().as_secs_f64();
            let bytes = loaded.memory_bytes();
            Answer {
                json: format!(
                    "{}\n",
                    json!({"collection": c.name(), "load_state": "Loaded", "memory_bytes": bytes, "seconds": seconds})
                ),
                table: format!(
                    "loaded {} in {seconds:.2} s, holding {:.1} MB\n",
                    c.name(),
                    bytes as f64 / 1e6
                ),
            }
        }
        Admin::Release(name) => {
            let c = Database::open_existing(dir)?.collection(name)?;
            c.release()?;
            Answer {
                json: format!(
                    "{}\n",
                    json!({"collection": c.name(), "load_state": "Unloaded"})
                ),
                table: format!("released {}\n", c.name()),
            }
        }
        Admin::Drop(name) => {
            let db = Database::open_existing(dir)?;
            db.drop_collection(name)?;
            Answer {
                json: format!("{}\n", json!({"collection": name, "dropped": true})),
                table: format!("dropped {name}\n"),
            }
        }
    })
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
