//! `etl import`: a stage into the engine. Files of a collection are fetched in parallel (each
//! to a local temporary file, hashed on the way and refused unless its SHA-256 and size match
//! the manifest), decoded from Milvus' layout, and committed one file per engine commit with a
//! checkpoint named after the stage and the file, so a re-run skips what is in (what Milvus'
//! idempotency key gives its bulk import) and importing a stage twice changes nothing. Then the
//! indexes are built and the collection loaded, as after `etl run`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use etl_connectors::store::Store;
use etl_engine::Database;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::job::Job;
use super::{EngineSink, index_and_load};
use crate::error::PipelineError;
use crate::report::{Phase, RunObserver, RunReport, Step, StepClock, TableReport};
use crate::target::stage::fetch::{choose, download, read_manifest};
use crate::target::stage::layout::from_milvus;
use crate::target::stage::manifest::{StagedCollection, StagedFile};
use crate::target::{ImportOptions, WriterMsg, WriterThread, closed};

/// Imports the stage at `url` into the engine directory `target`.
pub(super) async fn import(
    url: &str,
    target: &Path,
    opts: &ImportOptions,
    observer: Arc<dyn RunObserver>,
    cancel: BoxFuture<'static, ()>,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let store = Store::open(url)?;
    let manifest = read_manifest(&store).await?;
    let chosen = choose(&manifest, opts.collections.as_deref())?;
    let db = Database::open(target)?;
    let job_key = Path::new(&format!("{url}#{}", manifest.stage_id)).to_path_buf();
    let (mut job, resumed) = Job::start(target, &job_key, false)?;
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
    let mut outcome = outcome.map(|tables| RunReport {
        resumed,
        ..RunReport::of(tables, started.elapsed().as_secs_f64())
    });
    job.end(target, outcome.as_mut().map_err(|e| &*e))?;
    outcome
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
    let clock = Arc::new(StepClock::default());
    let (tx, writer) = WriterThread::spawn(Box::new(EngineSink(c.writer()?)), clock.clone());
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
        let clock = clock.clone();
        async move {
            let fetching = Instant::now();
            let (local, copied) = download(store, &f, tmp).await?;
            clock.add(Step::Read, fetching.elapsed());
            let file_name = format!("{}/{}", store.url.trim_end_matches('/'), f.path);
            let part = key.clone();
            let tx2 = tx.clone();
            let clock2 = clock.clone();
            let rows = tokio::task::spawn_blocking(move || -> Result<u64, PipelineError> {
                let result = decode(&local, &schema, (&file_name, &part), &tx2, &clock2);
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
    writer.join()?;
    results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let specs = coll
        .indexes
        .iter()
        .map(|i| (i.field.clone(), i.spec))
        .collect();
    let rows = imported.load(Ordering::Relaxed);
    let mut report = TableReport {
        table: name.clone(),
        collection: coll.name.clone(),
        rows_read: rows,
        rows_written: rows,
        rows_rejected: 0,
        rows_skipped: 0,
        bytes: bytes.load(Ordering::Relaxed),
        ranges: coll.files.len(),
        ranges_resumed: coll.files.len() - todo.len(),
        phases: clock.phases(),
        ..TableReport::default()
    };
    index_and_load(
        &c,
        etl_engine::MergePolicy::default(),
        specs,
        observer.clone(),
        &mut report,
    )
    .await?;
    report.collection_rows = c.count_rows();
    report.seconds = started.elapsed().as_secs_f64();
    report.rows_per_s = rows as f64 / report.seconds.max(1e-9);
    observer.phase(&name, Phase::Done);
    observer.table_finished(&report);
    Ok(report)
}

/// Decodes a local staged file into the writer as part `part`; returns its rows.
fn decode(
    local: &Path,
    schema: &etl_engine::CollectionSchema,
    (file_name, part): (&str, &str),
    tx: &mpsc::Sender<WriterMsg>,
    clock: &StepClock,
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
    let mut reader = reader;
    while let Some(batch) = clock.time(Step::Read, || reader.next()) {
        let batch = batch.map_err(|e| bad(&e))?;
        rows += batch.num_rows() as u64;
        let mapped = clock.time(Step::Map, || from_milvus(&batch, schema, file_name))?;
        tx.blocking_send(WriterMsg::Write(part.to_string(), mapped))
            .map_err(|_| closed())?;
    }
    Ok(rows)
}
