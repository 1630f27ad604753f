//! A stage into a real Milvus through its own bulk import: one `Import` call per staged file
//! (the server takes one Parquet file per call), the files checked against the manifest's size
//! and SHA-256 first, each task polled to its end with progress shown, then the indexes built
//! and the collection loaded.
//!
//! Resume needs no local state: the server keeps its import tasks. The collection's
//! description names the stage it is loaded from, and on a second run every file with a task
//! in that collection (same collection id) is skipped when the task completed, waited for when
//! it is still running (an import outlives a killed `etl`), and imported again when it failed.
//! So a killed import re-run ends with each row exactly once, and a finished one changes
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use etl_connectors::milvus::proto::GetImportStateResponse;
use etl_connectors::milvus::{MilvusClient, import_info, import_state};
use etl_connectors::store::Store;
use futures::StreamExt;
use object_store::ObjectStoreExt;

use crate::error::PipelineError;
use crate::report::{Phase, RunObserver, RunReport, TableReport};
use crate::target::ImportOptions;
use crate::target::stage::fetch::{check_in_place, choose, read_manifest};
use crate::target::stage::manifest::StagedCollection;

/// The description a collection imported from a stage carries.
pub fn stage_marker(stage_url: &str, stage_id: &str) -> String {
    format!("etl: staged import of {stage_url} ({stage_id})")
}

/// Whether a collection's description says it was imported from the stage at `stage_url`.
pub fn from_stage(description: &str, stage_url: &str) -> bool {
    description.starts_with(&format!("etl: staged import of {stage_url} ("))
}

/// Imports the stage at `url` into the Milvus at `milvus_url`. `opts.replace_own` lets a
/// collection imported from an earlier stage at the same URL be replaced (what `etl run` does
/// when it stages again); other existing collections need `opts.recreate`.
pub(super) async fn import(
    url: &str,
    milvus_url: &str,
    opts: &ImportOptions,
    observer: Arc<dyn RunObserver>,
    cancel: futures::future::BoxFuture<'static, ()>,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let store = Store::open(url)?;
    let manifest = read_manifest(&store).await?;
    let chosen = choose(&manifest, opts.collections.as_deref())?;
    let (client, version) = MilvusClient::connect(milvus_url).await?;
    for c in &chosen {
        // A nullable vector is fine if the files hold no NULL there; a file that does fails
        // on the server with its name and the server's reason.
        let mut schema = c.schema.clone();
        for f in &mut schema.fields {
            if f.data_type.is_vector() {
                f.nullable = false;
            }
        }
        let indexes: Vec<(String, etl_engine::IndexSpec)> = c
            .indexes
            .iter()
            .map(|i| (i.field.clone(), i.spec))
            .collect();
        super::refuse_unsupported(
            &schema,
            &indexes,
            &c.source_table,
            &c.name,
            milvus_url,
            &version,
        )?;
        let nullable = super::nullable_scalars(&c.schema);
        if !super::holds_nulls(&version) && !nullable.is_empty() {
            tracing::warn!(
                collection = %c.name,
                "the stage may hold NULLs in {}: Milvus {version} stores them as its zero values (and fails on NULL JSON); stage with `etl stage` from a mapping whose target names this Milvus to have them written as `etl plan` says",
                nullable.join(", ")
            );
        }
    }
    let parallelism = opts.parallelism.unwrap_or(2).max(1);
    let work = async {
        let mut reports = Vec::new();
        for c in &chosen {
            let marker = stage_marker(&store.url, &manifest.stage_id);
            reports.push(
                import_collection(
                    &client,
                    &store,
                    c,
                    &marker,
                    opts.replace_own,
                    opts.recreate,
                    parallelism,
                    observer.clone(),
                )
                .await?,
            );
        }
        Ok::<Vec<TableReport>, PipelineError>(reports)
    };
    let outcome = tokio::select! {
        r = work => r,
        () = cancel => Err(PipelineError::Cancelled),
    };
    let tables = outcome?;
    Ok(RunReport {
        job_id: manifest.stage_id.clone(),
        resumed: tables.iter().any(|t| t.ranges_resumed > 0),
        ..RunReport::of(tables, started.elapsed().as_secs_f64())
    })
}

/// The path the server is given for a staged file: absolute on a `file://` stage (a server on
/// this machine), the object key on an `s3://` stage (a server whose own bucket it is).
fn server_path(store: &Store, rel: &str) -> Result<String, PipelineError> {
    if let Some(root) = &store.local_dir {
        let p = std::path::absolute(root.join(rel)).unwrap_or_else(|_| root.join(rel));
        return Ok(p.display().to_string());
    }
    if store.url.starts_with("s3://") {
        return Ok(store.path(rel).to_string());
    }
    Err(PipelineError::Usage {
        message: format!(
            "{}: Milvus imports files from its own object store; stage to file:// (a server on this machine) or to the s3:// bucket the server uses",
            store.url
        ),
    })
}

#[allow(clippy::too_many_arguments)]
async fn import_collection(
    client: &MilvusClient,
    store: &Store,
    coll: &StagedCollection,
    marker: &str,
    replace_own: bool,
    recreate: bool,
    parallelism: usize,
    observer: Arc<dyn RunObserver>,
) -> Result<TableReport, PipelineError> {
    let started = Instant::now();
    let name = coll.name.clone();
    let table = coll.source_table.clone();
    observer.table_started(&table, Some(coll.rows));
    observer.phase(&table, Phase::Reading);
    let mut report = TableReport {
        table: table.clone(),
        collection: name.clone(),
        ranges: coll.files.len(),
        ..Default::default()
    };
    // The collection: ours from this stage (resume), ours from an older stage of the same URL
    // (replace when allowed), or someone else's (refuse unless --recreate).
    let mut ours = false;
    if client.has_collection(&name).await? {
        let existing = client.describe_collection(&name).await?;
        ours = existing.description == marker;
        let replace = recreate || (replace_own && from_stage(&existing.description, &store.url));
        if !ours && !replace {
            let why = if from_stage(&existing.description, &store.url) {
                "it was imported from an earlier stage at this URL"
            } else {
                "it was not imported from this stage"
            };
            return Err(PipelineError::Usage {
                message: format!(
                    "collection `{name}` already exists in Milvus at {} and {why}; run again with --recreate to drop and recreate it",
                    client.url()
                ),
            });
        }
        if !ours {
            client.drop_collection(&name).await?;
        }
    }
    if !ours {
        let mut schema = super::milvus_schema(&name, &coll.schema);
        // Milvus before 2.5 has no nullable fields; the schema sent carries no such flag.
        schema.description = marker.to_string();
        client
            .create_collection(&schema, coll.schema.shards as i32)
            .await?;
    }
    let id = client.collection_id(&name).await?;
    // The server's own record of what was imported into this collection.
    let mut tasks: HashMap<String, GetImportStateResponse> = HashMap::new();
    for t in client.list_import_tasks(&name).await? {
        if t.collection_id != id {
            continue;
        }
        if let Some(files) = import_info(&t, "files") {
            let keep = match tasks.get(files) {
                // A completed or running task wins over a failed one for the same file.
                Some(old) => !is_failed(old.state) || is_failed(t.state),
                None => false,
            };
            if !keep {
                tasks.insert(files.to_string(), t);
            }
        }
    }
    // Our own record in the stage: the server forgets finished tasks after a day.
    let recorded = ImportRecord::read(store, id).await;
    let record = tokio::sync::Mutex::new(recorded.clone());
    let rows_done = Arc::new(AtomicU64::new(0));
    let bytes_done = Arc::new(AtomicU64::new(0));
    let mut resumed = 0usize;
    let mut jobs = Vec::new();
    for f in &coll.files {
        let path = server_path(store, &f.path)?;
        match tasks.get(&path) {
            _ if recorded.files.contains(&f.path) => {
                resumed += 1;
                rows_done.fetch_add(f.rows, Ordering::Relaxed);
                bytes_done.fetch_add(f.bytes, Ordering::Relaxed);
            }
            Some(t) if t.state == import_state::COMPLETED => {
                resumed += 1;
                rows_done.fetch_add(t.row_count.max(0) as u64, Ordering::Relaxed);
                bytes_done.fetch_add(f.bytes, Ordering::Relaxed);
            }
            Some(t) if !is_failed(t.state) => {
                // Started by an earlier run and still going: waited for, not started again.
                resumed += 1;
                jobs.push((f, path, Some(t.id)));
            }
            _ => jobs.push((f, path, None)),
        }
    }
    report.ranges_resumed = resumed;
    // Collected first: a lazy map over borrowed state makes the future's Send bound too
    // general for the compiler to prove.
    let imports: Vec<_> = jobs
        .into_iter()
        .map(|(f, path, running)| {
            let (rows_done, bytes_done) = (rows_done.clone(), bytes_done.clone());
            let (observer, table, name) = (observer.clone(), table.clone(), name.clone());
            let record = &record;
            async move {
                let task = match running {
                    Some(t) => t,
                    None => {
                        // Checked against the manifest before the server sees it.
                        check_in_place(store, f).await?;
                        client.start_import(&name, &path).await?
                    }
                };
                let what = format!("importing {path} into `{name}`");
                let rows = client
                    .wait_import(task, &what, |s| {
                        let pct: f64 = import_info(s, "progress_percent")
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0.0);
                        let partial = (f.rows as f64 * pct / 100.0) as u64;
                        observer.progress(
                            &table,
                            rows_done.load(Ordering::Relaxed) + partial,
                            bytes_done.load(Ordering::Relaxed),
                        );
                    })
                    .await?;
                if rows as u64 != f.rows {
                    return Err(PipelineError::Internal {
                        message: format!(
                            "{what}: the server imported {rows} rows, the manifest says {}",
                            f.rows
                        ),
                    });
                }
                rows_done.fetch_add(f.rows, Ordering::Relaxed);
                bytes_done.fetch_add(f.bytes, Ordering::Relaxed);
                // One writer at a time, each writing the whole set.
                let mut r = record.lock().await;
                r.collection = name.clone();
                r.collection_id = id;
                r.files.insert(f.path.clone());
                r.write(store).await;
                Ok(())
            }
        })
        .collect();
    let results: Vec<Result<(), PipelineError>> = futures::stream::iter(imports)
        .buffer_unordered(parallelism)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    report.rows_read = coll.rows;
    report.rows_written = rows_done.load(Ordering::Relaxed);
    report.bytes = coll.files.iter().map(|f| f.bytes).sum();
    let indexes: Vec<(String, etl_engine::IndexSpec)> = coll
        .indexes
        .iter()
        .map(|i| (i.field.clone(), i.spec))
        .collect();
    super::finish(client, &name, &indexes, observer.as_ref(), &mut report).await?;
    report.seconds = started.elapsed().as_secs_f64();
    report.rows_per_s = report.rows_written as f64 / report.seconds.max(1e-9);
    observer.phase(&table, Phase::Done);
    observer.table_finished(&report);
    Ok(report)
}

/// The files of a stage imported into one Milvus collection (by its id), kept in the stage at
/// `_imports/milvus-<collection id>.json`. Best effort: a stage that cannot be written to still
/// imports, resumed from the server's task list alone.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct ImportRecord {
    collection: String,
    collection_id: i64,
    files: std::collections::BTreeSet<String>,
}

impl ImportRecord {
    fn rel(id: i64) -> String {
        format!("_imports/milvus-{id}.json")
    }

    async fn read(store: &Store, id: i64) -> ImportRecord {
        let rel = Self::rel(id);
        let Ok(got) = store.store.get(&store.path(&rel)).await else {
            return ImportRecord::default();
        };
        match got.bytes().await {
            Ok(b) => serde_json::from_slice::<ImportRecord>(&b)
                .ok()
                .filter(|r| r.collection_id == id)
                .unwrap_or_default(),
            Err(_) => ImportRecord::default(),
        }
    }

    async fn write(&self, store: &Store) {
        let rel = Self::rel(self.collection_id);
        let body = match serde_json::to_vec_pretty(self) {
            Ok(b) => b,
            Err(_) => return,
        };
        if let Err(e) = store
            .store
            .put(&store.path(&rel), object_store::PutPayload::from(body))
            .await
        {
            tracing::warn!(
                "{}: cannot record the imported files ({e}); a re-run relies on the server's task list",
                store.url
            );
        }
    }
}

fn is_failed(state: i32) -> bool {
    matches!(
        state,
        import_state::FAILED | import_state::FAILED_AND_CLEANED
    )
}
