//! `etl import`: a stage into the engine. Files of a collection are fetched in parallel (each
//! to a local temporary file, hashed on the way and refused unless its SHA-256 and size match
//! the manifest), decoded from Milvus' layout, and committed one file per engine commit with a
//! checkpoint named after the stage and the file, so a re-run skips what is in (what Milvus'
//! idempotency key gives its bulk import) and importing a stage twice changes nothing. Then the
//! indexes are built and the collection loaded, as after `etl run`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use etl_connectors::store::Store;
use etl_engine::Database;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};

use super::job::Job;
use super::{EngineSink, index_and_load};
use crate::error::PipelineError;
use crate::report::{Phase, RunObserver, RunReport, Step, StepClock, TableReport};
use crate::target::stage::dense::read_staged;
use crate::target::stage::fetch::{Local, check_local, choose, local, read_manifest};
use crate::target::stage::follow::{Staged, StagedRx, unfinished};
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
    let store = Store::open(url)?;
    let manifest = read_manifest(&store).await?;
    let chosen = choose(&manifest, opts.collections.as_deref())?;
    let session = Session::start(store, target, &manifest.stage_id, opts)?;
    let work = async {
        let mut reports = Vec::new();
        for c in chosen {
            let files = futures::stream::iter(c.files.clone());
            reports.push(
                session
                    .collection(c.clone(), files, observer.clone())
                    .await?,
            );
        }
        Ok(reports)
    };
    let outcome = tokio::select! {
        r = work => r,
        () = cancel => Err(PipelineError::Cancelled),
    };
    session.end(outcome)
}

/// Imports the stage at `url` as the same command writes it: each collection's import starts
/// when the stage opens it, each file is fetched, checked and committed as soon as the stage
/// has finished it, and a collection's indexes are built when its last file is in (while the
/// stage may still write others). Progress is shown as `<table> (import)` beside the stage's.
pub(super) async fn import_following(
    url: &str,
    target: &Path,
    mut staged: StagedRx,
    opts: &ImportOptions,
    observer: Arc<dyn RunObserver>,
    cancel: BoxFuture<'static, ()>,
) -> Result<RunReport, PipelineError> {
    let store = Store::open(url)?;
    let stage_id = match staged.recv().await {
        Some(Staged::Begun { stage_id }) => stage_id,
        _ => return Err(unfinished()),
    };
    // One file at a time: the stage shares the cores (measured below in BENCHMARKS.md).
    let one_at_a_time = ImportOptions {
        parallelism: Some(1),
        ..opts.clone()
    };
    let session = Session::start(store, target, &stage_id, &one_at_a_time)?;
    let observer: Arc<dyn RunObserver> = Arc::new(Importing(observer));
    let work = async {
        let mut files: HashMap<String, mpsc::UnboundedSender<StagedFile>> = HashMap::new();
        let mut running = FuturesUnordered::new();
        let mut reports = Vec::new();
        let mut complete = false;
        loop {
            tokio::select! {
                event = staged.recv(), if !complete => match event {
                    Some(Staged::Opened(c)) => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        files.insert(c.name.clone(), tx);
                        let arrivals = futures::stream::unfold(rx, |mut rx| async move {
                            rx.recv().await.map(|f| (f, rx))
                        });
                        running.push(session.collection(c, arrivals, observer.clone()));
                    }
                    Some(Staged::File { collection, file }) => {
                        if let Some(tx) = files.get(&collection) {
                            let _ = tx.send(file);
                        }
                    }
                    Some(Staged::Closed { collection }) => {
                        files.remove(&collection);
                    }
                    Some(Staged::Done) => {
                        complete = true;
                        files.clear();
                    }
                    Some(Staged::Begun { .. }) => {}
                    None => return Err(unfinished()),
                },
                Some(report) = running.next(), if !running.is_empty() => reports.push(report?),
                else => break,
            }
        }
        reports.sort_by(|a: &TableReport, b| a.collection.cmp(&b.collection));
        Ok(reports)
    };
    let outcome = tokio::select! {
        r = work => r,
        () = cancel => Err(PipelineError::Cancelled),
    };
    session.end(outcome)
}

/// An import's progress under `<table> (import)`, so it shows beside the stage's own.
struct Importing(Arc<dyn RunObserver>);

impl Importing {
    fn name(table: &str) -> String {
        format!("{table} (import)")
    }
}

impl RunObserver for Importing {
    fn table_started(&self, table: &str, estimate: Option<u64>) {
        self.0.table_started(&Self::name(table), estimate);
    }
    fn progress(&self, table: &str, rows: u64, bytes: u64) {
        self.0.progress(&Self::name(table), rows, bytes);
    }
    fn phase(&self, table: &str, phase: Phase) {
        self.0.phase(&Self::name(table), phase);
    }
    fn table_finished(&self, report: &TableReport) {
        self.0.table_finished(&TableReport {
            table: Self::name(&report.table),
            ..report.clone()
        });
    }
}

/// One import of a stage into an engine directory: its job record and the files' scratch space.
struct Session {
    store: Store,
    db: Database,
    target: std::path::PathBuf,
    stage_id: String,
    job: Job,
    resumed: bool,
    tmp: std::path::PathBuf,
    parallelism: usize,
    started: Instant,
}

impl Session {
    fn start(
        store: Store,
        target: &Path,
        stage_id: &str,
        opts: &ImportOptions,
    ) -> Result<Session, PipelineError> {
        let db = Database::open(target)?;
        let job_key = Path::new(&format!("{}#{stage_id}", store.url)).to_path_buf();
        let (job, resumed) = Job::start(target, &job_key, false)?;
        let tmp = target.join("_import");
        fs_err::create_dir_all(&tmp)?;
        Ok(Session {
            store,
            db,
            target: target.to_path_buf(),
            stage_id: stage_id.to_string(),
            job,
            resumed,
            tmp,
            parallelism: opts.parallelism.unwrap_or(2).max(1),
            started: Instant::now(),
        })
    }

    /// Records the job's outcome: the collections' reports, or what stopped them.
    fn end(
        mut self,
        outcome: Result<Vec<TableReport>, PipelineError>,
    ) -> Result<RunReport, PipelineError> {
        let _ = std::fs::remove_dir(&self.tmp);
        let mut outcome = outcome.map(|tables| RunReport {
            resumed: self.resumed,
            ..RunReport::of(tables, self.started.elapsed().as_secs_f64())
        });
        self.job
            .end(&self.target, outcome.as_mut().map_err(|e| &*e))?;
        outcome
    }

    /// Imports the collection `coll`, file by file as `files` yields them (those an earlier
    /// run of this stage committed are skipped), then builds its indexes and loads it.
    async fn collection(
        &self,
        coll: StagedCollection,
        files: impl futures::Stream<Item = StagedFile>,
        observer: Arc<dyn RunObserver>,
    ) -> Result<TableReport, PipelineError> {
        let (store, db, tmp) = (&self.store, &self.db, self.tmp.as_path());
        let started = Instant::now();
        let name = coll.source_table.clone();
        observer.table_started(&name, (coll.rows > 0).then_some(coll.rows));
        observer.phase(&name, Phase::Reading);
        let key_prefix = format!("stage/{}/", self.stage_id);
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
        let (mut seen, mut resumed) = (0usize, 0usize);
        let todo = files.filter(|f| {
            seen += 1;
            let committed = done.contains_key(&format!("{key_prefix}{}", f.path));
            resumed += usize::from(committed);
            std::future::ready(!committed)
        });
        let clock = Arc::new(StepClock::default());
        let mut bulk = c.writer()?;
        if coll.unique_keys {
            // As for `etl run`: the source's own key, staged from one snapshot.
            bulk = bulk.assume_unique_keys();
        }
        let (tx, writer) = WriterThread::spawn(Box::new(EngineSink(bulk)), clock.clone());
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
                let got = local(store, &f, tmp).await?;
                clock.add(Step::Read, fetching.elapsed());
                let part = key.clone();
                let tx2 = tx.clone();
                let clock2 = clock.clone();
                let (store2, f2) = (store.clone(), f.clone());
                let rows = tokio::task::spawn_blocking(move || -> Result<u64, PipelineError> {
                    let result = decode(&store2, &f2, &got, &schema, &part, &tx2, &clock2);
                    if got.copy {
                        let _ = std::fs::remove_file(&got.path);
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
        let results: Vec<Result<(), PipelineError>> = todo
            .map(one)
            .buffer_unordered(self.parallelism)
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
            ranges: seen,
            ranges_resumed: resumed,
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
}

/// Decodes the local copy of staged file `f` into the writer as part `part` (hashing it at
/// the same time on a thread of its own when it is not checked yet: the rows are committed
/// only once the file is); returns its rows.
fn decode(
    store: &Store,
    f: &StagedFile,
    got: &Local,
    schema: &etl_engine::CollectionSchema,
    part: &str,
    tx: &mpsc::Sender<WriterMsg>,
    clock: &StepClock,
) -> Result<u64, PipelineError> {
    let file_name = format!("{}/{}", store.url.trim_end_matches('/'), f.path);
    std::thread::scope(|s| {
        let checking = (!got.checked).then(|| s.spawn(|| check_local(store, f, &got.path)));
        let mut each = |batch| {
            tx.blocking_send(WriterMsg::Write(part.to_string(), batch))
                .map_err(|_| closed())
        };
        let started = Instant::now();
        let read = read_staged(&got.path, schema, &file_name, 2048, &mut each);
        clock.add(Step::Read, started.elapsed());
        // A file that fails its checksum is reported as that, whatever its decoding said.
        if let Some(h) = checking {
            h.join().map_err(|_| PipelineError::Internal {
                message: format!("{file_name}: the checksum thread panicked"),
            })??;
        }
        read
    })
}
