//! `etl import`: a stage into the engine. Files of a collection are fetched in parallel (each
//! to a local temporary file, hashed on the way and refused unless its SHA-256 and size match
//! the manifest), decoded from Milvus' layout, and committed one file per engine commit with a
//! checkpoint named after the stage and the file, so a re-run skips what is in (what Milvus'
//! idempotency key gives its bulk import) and importing a stage twice changes nothing. Then the
//! indexes are built and the collection loaded, as after `etl run`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use etl_connectors::store::Store;
use etl_engine::Database;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use super::layout::from_milvus;
use super::manifest::{StagedCollection, StagedFile, sha256_hex};
use super::read_manifest;
use crate::error::PipelineError;
use crate::run::job::{self, Job, JobState};
use crate::run::report::{Phase, RunObserver, RunReport, TableReport};
use crate::run::{WriterMsg, closed, index_and_load, writer_loop};

/// Options of `etl import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Only these collections.
    pub collections: Option<Vec<String>>,
    /// Files fetched and decoded at once (default 2).
    pub parallelism: Option<usize>,
    /// Drop and recreate collections that exist with other data (a Milvus target).
    pub recreate: bool,
}

/// Imports the stage at `url` into the engine directory `target`.
pub async fn import(
    url: &str,
    target: &Path,
    opts: &ImportOptions,
    observer: Arc<dyn RunObserver>,
    cancel: impl Future<Output = ()>,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let store = Store::open(url)?;
    let manifest = read_manifest(&store).await?;
    let chosen = choose(&manifest, opts.collections.as_deref())?;
    let db = Database::open(target)?;
    let job_key = PathBuf::from(format!("{url}#{}", manifest.stage_id));
    let previous = job::unfinished_job(target, &job_key)?;
    let resumed = previous.is_some();
    let mut job = previous.unwrap_or_else(|| Job::new(&job_key));
    job.state = JobState::InProgress;
    job.error = None;
    job.save(target)?;
    let tmp = target.join("_import");
    fs_err::create_dir_all(&tmp)?;
    let parallelism = opts.parallelism.unwrap_or(2).max(1);
    let work = async {
        let mut reports = Vec::new();
        for c in &chosen {
            reports.push(
                import_collection(
                    &store,
                    &db,
                    c,
                    &manifest.stage_id,
                    &tmp,
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
    let _ = std::fs::remove_dir(&tmp);
    match outcome {
        Ok(tables) => {
            let report = RunReport {
                job_id: job.id.clone(),
                resumed,
                ..RunReport::of(tables, started.elapsed().as_secs_f64())
            };
            job.report = serde_json::to_value(&report).ok();
            job.finish(target, JobState::Successful, None)?;
            Ok(report)
        }
        Err(e) => {
            let state = if matches!(e, PipelineError::Cancelled) {
                JobState::Cancelled
            } else {
                JobState::Failed
            };
            job.finish(target, state, Some(e.to_string()))?;
            Err(e)
        }
    }
}

/// The manifest's collections named (all without names); an unknown name is refused with the
/// nearest one.
pub(crate) fn choose<'a>(
    manifest: &'a super::manifest::StageManifest,
    names: Option<&[String]>,
) -> Result<Vec<&'a StagedCollection>, PipelineError> {
    let Some(names) = names else {
        return Ok(manifest.collections.iter().collect());
    };
    let mut out = Vec::new();
    for n in names {
        match manifest.collections.iter().find(|c| c.name == *n) {
            Some(c) => out.push(c),
            None => {
                return Err(PipelineError::UnknownTable {
                    table: n.clone(),
                    suggestion: manifest
                        .collections
                        .iter()
                        .map(|c| c.name.clone())
                        .min_by_key(|c| strsim::levenshtein(c, n)),
                });
            }
        }
    }
    Ok(out)
}

async fn import_collection(
    store: &Store,
    db: &Database,
    coll: &StagedCollection,
    stage_id: &str,
    tmp: &Path,
    parallelism: usize,
    observer: Arc<dyn RunObserver>,
) -> Result<TableReport, PipelineError> {
    let started = Instant::now();
    let name = coll.source_table.clone();
    observer.table_started(&name, Some(coll.rows));
    observer.phase(&name, Phase::Reading);
    let key_prefix = format!("stage/{stage_id}/");
    if db.list()?.contains(&coll.name) {
        // A collection that an earlier load of something else filled is replaced, as a
        // fresh `etl run` replaces it; one this stage was importing into is resumed.
        let existing = db.collection(&coll.name)?;
        if !existing
            .manifest()
            .checkpoints
            .keys()
            .any(|k| k.starts_with(&key_prefix))
        {
            db.drop_collection(&coll.name)?;
        }
    }
    let c = db.ensure_collection(&coll.name, coll.schema.clone())?;
    let done = c.manifest().checkpoints.clone();
    let todo: Vec<StagedFile> = coll
        .files
        .iter()
        .filter(|f| !done.contains_key(&format!("{key_prefix}{}", f.path)))
        .cloned()
        .collect();
    let (tx, mut rx) = mpsc::channel::<WriterMsg>(4);
    let w = c.writer()?;
    let writer = std::thread::spawn(move || writer_loop(w, &mut rx));
    let imported = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let one = |f: StagedFile| {
        let tx = tx.clone();
        let key = format!("{key_prefix}{}", f.path);
        let schema = coll.schema.clone();
        let imported = imported.clone();
        let bytes = bytes.clone();
        let observer = observer.clone();
        let name = name.clone();
        async move {
            let (local, copied) = download(store, &f, tmp).await?;
            let file_name = format!("{}/{}", store.url.trim_end_matches('/'), f.path);
            let part = key.clone();
            let tx2 = tx.clone();
            let rows = tokio::task::spawn_blocking(move || -> Result<u64, PipelineError> {
                let result = decode(&local, &schema, &file_name, &part, &tx2);
                if copied {
                    let _ = std::fs::remove_file(&local);
                }
                result
            })
            .await
            .map_err(|e| PipelineError::Internal {
                message: e.to_string(),
            })??;
            if rows != f.rows {
                return Err(PipelineError::Usage {
                    message: format!(
                        "{}/{}: {rows} rows, the manifest says {}",
                        store.url, f.path, f.rows
                    ),
                });
            }
            let mut cp = BTreeMap::new();
            cp.insert(key.clone(), serde_json::json!({ "rows": rows }));
            let (reply, wait) = oneshot::channel();
            tx.send(WriterMsg::Commit(key, cp, reply))
                .await
                .map_err(|_| closed())?;
            wait.await.map_err(|_| closed())??;
            let total = imported.fetch_add(rows, Ordering::Relaxed) + rows;
            let b = bytes.fetch_add(f.bytes, Ordering::Relaxed) + f.bytes;
            observer.progress(&name, total, b);
            Ok::<(), PipelineError>(())
        }
    };
    let results: Vec<Result<(), PipelineError>> =
        futures::stream::iter(todo.iter().cloned().map(one))
            .buffer_unordered(parallelism)
            .collect()
            .await;
    drop(tx);
    writer.join().map_err(|_| PipelineError::Internal {
        message: "writer thread panicked".into(),
    })??;
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let specs = coll
        .indexes
        .iter()
        .map(|i| (i.field.clone(), i.spec))
        .collect();
    let index_seconds = index_and_load(
        &c,
        etl_engine::MergePolicy::default(),
        specs,
        observer.clone(),
        &name,
    )
    .await?;
    let rows = imported.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let report = TableReport {
        table: name.clone(),
        collection: coll.name.clone(),
        rows_read: rows,
        rows_written: rows,
        rows_rejected: 0,
        rows_skipped: 0,
        bytes: bytes.load(Ordering::Relaxed),
        seconds,
        rows_per_s: rows as f64 / seconds.max(1e-9),
        index_seconds,
        ranges: coll.files.len(),
        ranges_resumed: coll.files.len() - todo.len(),
        collection_rows: c.count_rows(),
        rejects_file: None,
    };
    observer.phase(&name, Phase::Done);
    observer.table_finished(&report);
    Ok(report)
}

/// A staged file as a local file whose size and SHA-256 match the manifest: read in place from
/// a `file://` stage, fetched into `dir` from any other. The flag says whether it is a copy.
pub(crate) async fn download(
    store: &Store,
    f: &StagedFile,
    dir: &Path,
) -> Result<(PathBuf, bool), PipelineError> {
    if let Some(root) = &store.local_dir {
        let path = root.join(&f.path);
        let (n, actual) = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
                use std::io::Read;
                let mut file = std::fs::File::open(&path)?;
                let mut hash = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                let mut n = 0u64;
                loop {
                    let k = file.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    hash.update(&buf[..k]);
                    n += k as u64;
                }
                Ok((n, sha256_hex(hash)))
            })
            .await
            .map_err(|e| PipelineError::Internal {
                message: e.to_string(),
            })?
            .map_err(|e| store.error(&f.path, e))?
        };
        check(store, f, n, &actual)?;
        return Ok((path, false));
    }
    let local = dir.join(f.path.replace('/', "__"));
    let mut out = tokio::fs::File::create(&local)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", local.display())))?;
    let (n, actual) = read_hashed(store, f, Some(&mut out)).await?;
    if let Err(e) = check(store, f, n, &actual) {
        let _ = tokio::fs::remove_file(&local).await;
        return Err(e);
    }
    Ok((local, true))
}

/// Reads a staged file from the store, hashing it and copying it to `out` when given; returns
/// its size and SHA-256.
async fn read_hashed(
    store: &Store,
    f: &StagedFile,
    mut out: Option<&mut tokio::fs::File>,
) -> Result<(u64, String), PipelineError> {
    let got = store
        .store
        .get(&store.path(&f.path))
        .await
        .map_err(|e| store.error(&f.path, e))?;
    let mut stream = got.into_stream();
    let mut hash = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| store.error(&f.path, e))?;
        hash.update(&chunk);
        n += chunk.len() as u64;
        if let Some(out) = out.as_deref_mut() {
            out.write_all(&chunk).await?;
        }
    }
    if let Some(out) = out {
        out.flush().await?;
    }
    Ok((n, sha256_hex(hash)))
}

/// Checks a staged file's size and SHA-256 against the manifest by reading it through (for a
/// server that reads the file itself, so nothing is kept here).
pub(crate) async fn check_in_place(store: &Store, f: &StagedFile) -> Result<(), PipelineError> {
    let (n, actual) = read_hashed(store, f, None).await?;
    check(store, f, n, &actual)
}

/// Refuses a file whose size or hash is not the manifest's.
fn check(store: &Store, f: &StagedFile, n: u64, actual: &str) -> Result<(), PipelineError> {
    if actual != f.sha256 || n != f.bytes {
        return Err(PipelineError::Checksum {
            file: format!("{}/{}", store.url.trim_end_matches('/'), f.path),
            expected: format!("{} bytes, sha256 {}", f.bytes, f.sha256),
            actual: format!("{n} bytes, sha256 {actual}"),
        });
    }
    Ok(())
}

/// Decodes a local staged file into the writer as part `part`; returns its rows.
fn decode(
    local: &Path,
    schema: &etl_engine::CollectionSchema,
    file_name: &str,
    part: &str,
    tx: &mpsc::Sender<WriterMsg>,
) -> Result<u64, PipelineError> {
    let bad = |e: &dyn std::fmt::Display| PipelineError::Usage {
        message: format!("{file_name}: not a readable Parquet file ({e})"),
    };
    let file = std::fs::File::open(local)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(&e))?
        .with_batch_size(2048)
        .build()
        .map_err(|e| bad(&e))?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        rows += batch.num_rows() as u64;
        let mapped = from_milvus(&batch, schema, file_name)?;
        tx.blocking_send(WriterMsg::Write(part.to_string(), mapped))
            .map_err(|_| closed())?;
    }
    Ok(rows)
}
