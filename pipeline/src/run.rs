//! `etl run`: plan → read (parallel ranges, one snapshot) → map → bulk load (a commit and a
//! checkpoint per range) → index builds → load, per table, with a report and a job record.
//!
//! Reading, mapping and writing overlap: readers feed a bounded channel, and one writer thread
//! per collection writes segments while the readers go on. A range's rows and its checkpoint
//! are committed in the same manifest swap, so after a crash the same command skips the ranges
//! that are in and reads the rest: no row lost, none twice.

pub mod job;
pub mod map;
mod prepare;
mod rejects;
pub mod report;
pub mod target;

pub(crate) use prepare::{Prepared, fix_lines, prepare, select_tables};
use rejects::RejectsFile;
pub use report::{Phase, RunObserver, RunReport, Silent, StageSummary, TableReport, Totals};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use etl_connectors::postgres::ReadOptions;
use etl_engine::{Collection, CommitStats, Database, IndexProgress};

use crate::milvus::job::LoadRecord;
use crate::route::{Destination, Route};
use etl_mappings::{Plan, SourceTable, TablePlan};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use self::job::{Job, JobState};
use self::map::{Mapper, Reject};
use crate::error::PipelineError;
use crate::inspect::load_mapping;
use crate::source::{Source, SourceScan};
use crate::stage::manifest::{StagedCollection, StagedFile, StagedIndex};
use crate::stage::writer::StageWriter;

/// Options of `etl run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only these tables (source names or collection names).
    pub tables: Option<Vec<String>>,
    /// Rows per batch (overrides the mapping's options).
    pub batch_size: Option<usize>,
    /// Concurrent readers and tables (overrides the mapping's options).
    pub parallelism: Option<usize>,
    /// Read at most this many rows per table.
    pub row_limit: Option<u64>,
    /// Read and map a sample, write nothing.
    pub dry_run: bool,
    /// Resume the last unfinished job (the default when one exists).
    pub resume: bool,
    /// Start over: drop the collections and ignore unfinished jobs.
    pub restart: bool,
    /// Only stage, to this object-store URL (`etl stage --to`); otherwise the mapping's
    /// `target.stage` decides.
    pub stage_to: Option<String>,
    /// Largest staged file (default 512 MiB).
    pub max_file_bytes: Option<u64>,
}

const RANGES_KEY: &str = "ranges";

/// Runs a mapping file. `cancel` resolving stops the run cleanly (the job is marked Cancelled
/// and a re-run resumes it).
pub async fn run(
    mapping_path: &Path,
    opts: &RunOptions,
    observer: Arc<dyn RunObserver>,
    cancel: impl Future<Output = ()>,
) -> Result<RunReport, PipelineError> {
    let mapping = load_mapping(mapping_path)?;
    let route = crate::route::resolve(&mapping, opts.stage_to.as_deref())?;
    match &route {
        Route::Direct(Destination::Engine(dir)) => {
            run_engine(mapping_path, &mapping, dir, opts, observer, cancel).await
        }
        Route::Direct(Destination::Milvus(url)) => {
            run_milvus(&mapping, url, opts, observer, cancel).await
        }
        Route::Stage { url, for_milvus } => {
            crate::stage::stage_for(&mapping, url, opts, for_milvus.as_deref(), observer, cancel)
                .await
        }
        Route::StageThenImport { stage, into } => {
            // Stage, then import the stage: the two halves of a load that crosses machines.
            let cancel = futures::FutureExt::shared(Box::pin(cancel));
            let staged = crate::stage::stage_for(
                &mapping,
                stage,
                opts,
                route.milvus(),
                observer.clone(),
                cancel.clone(),
            )
            .await?;
            let mut report = match into {
                Destination::Milvus(server) => {
                    let import = crate::stage::ImportOptions {
                        collections: None,
                        parallelism: opts.parallelism,
                        recreate: opts.restart,
                    };
                    crate::milvus::import::import(stage, server, &import, true, observer, cancel)
                        .await?
                }
                Destination::Engine(dir) => {
                    let import = crate::stage::ImportOptions {
                        collections: None,
                        parallelism: opts.parallelism,
                        recreate: false,
                    };
                    crate::stage::import(stage, dir, &import, observer, cancel).await?
                }
            };
            report.stage = staged.stage;
            report.totals.rows_read = staged.totals.rows_read;
            report.totals.rows_rejected = staged.totals.rows_rejected;
            Ok(report)
        }
    }
}

/// `etl run` into a Milvus server: refuses what the server's version cannot hold before
/// anything is written, and an existing collection unless `--restart` (`--recreate`).
async fn run_milvus(
    mapping: &etl_mappings::ParsedMapping,
    url: &str,
    opts: &RunOptions,
    observer: Arc<dyn RunObserver>,
    cancel: impl Future<Output = ()>,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let (client, version) = etl_connectors::milvus::MilvusClient::connect(url).await?;
    let Prepared {
        source,
        catalog,
        plan,
        mut tables,
    } = prepare(mapping, opts).await?;
    crate::milvus::fit_tables(mapping, &mut tables, url, &version).await?;
    let jobs = crate::source::beside(mapping, "_milvus_jobs");
    let mut resume = HashMap::new();
    for t in &tables {
        if opts.dry_run {
            continue;
        }
        use crate::milvus::Existing;
        match (
            crate::milvus::existing(&client, url, mapping, t, None).await?,
            opts.restart,
        ) {
            (Existing::Absent, _) => {}
            (Existing::Resume(r), false) => {
                resume.insert(t.collection.clone(), r);
            }
            (Existing::Foreign { why }, false) => {
                return Err(PipelineError::NeedsFixes {
                    table: t.source.to_string(),
                    fixes: fix_lines(&[crate::milvus::foreign_finding(&t.collection, url, why)]),
                });
            }
            _ => client.drop_collection(&t.collection).await?,
        }
    }
    let resumed = !resume.is_empty();
    let ctx = RunContext {
        source,
        sink: Sink::Milvus(MilvusSink {
            client,
            server: url.to_string(),
            jobs,
            resume,
        }),
        rejects_dir: crate::source::beside(mapping, "_rejects"),
        plan,
        catalog,
        opts: opts.clone(),
        observer,
    };
    let reports = tokio::select! {
        r = ctx.run_all(&tables) => r?,
        () = cancel => return Err(PipelineError::Cancelled),
    };
    Ok(RunReport {
        resumed,
        dry_run: opts.dry_run,
        ..RunReport::of(reports, started.elapsed().as_secs_f64())
    })
}

async fn run_engine(
    mapping_path: &Path,
    mapping: &etl_mappings::ParsedMapping,
    target: &Path,
    opts: &RunOptions,
    observer: Arc<dyn RunObserver>,
    cancel: impl Future<Output = ()>,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let target = target.to_path_buf();
    let Prepared {
        source,
        catalog,
        plan,
        tables,
    } = prepare(mapping, opts).await?;
    let db = Database::open(&target)?;
    let abs_mapping =
        std::path::absolute(mapping_path).unwrap_or_else(|_| mapping_path.to_path_buf());
    let previous = if opts.restart || opts.dry_run {
        None
    } else {
        job::unfinished_job(&target, &abs_mapping)?
    };
    let resumed = previous.is_some();
    let mut job = previous.unwrap_or_else(|| Job::new(&abs_mapping));
    if !opts.dry_run {
        if !resumed {
            // A fresh run replaces what an earlier run of these tables loaded.
            for t in &tables {
                if db.list()?.contains(&t.collection) {
                    db.drop_collection(&t.collection)?;
                }
            }
        }
        job.state = JobState::InProgress;
        job.error = None;
        job.save(&target)?;
    }
    let ctx = RunContext {
        source,
        sink: Sink::Engine(db),
        rejects_dir: target.join("_rejects"),
        plan: plan.clone(),
        catalog,
        opts: opts.clone(),
        observer,
    };
    let work = ctx.run_all(&tables);
    let outcome = tokio::select! {
        r = work => r,
        () = cancel => Err(PipelineError::Cancelled),
    };
    match outcome {
        Ok(tables) => {
            let report = RunReport {
                job_id: job.id.clone(),
                resumed,
                dry_run: opts.dry_run,
                ..RunReport::of(tables, started.elapsed().as_secs_f64())
            };
            if !opts.dry_run {
                job.report = serde_json::to_value(&report).ok();
                job.finish(&target, JobState::Successful, None)?;
            }
            Ok(report)
        }
        Err(e) => {
            if !opts.dry_run {
                let state = if matches!(e, PipelineError::Cancelled) {
                    JobState::Cancelled
                } else {
                    JobState::Failed
                };
                job.finish(&target, state, Some(e.to_string()))?;
            }
            Err(e)
        }
    }
}

/// Where a run's mapped rows go.
pub(crate) enum Sink {
    /// The embedded engine.
    Engine(Database),
    /// Staged Parquet files.
    Stage(StageSink),
    /// A Milvus server.
    Milvus(MilvusSink),
}

/// A Milvus server being loaded by inserts.
pub(crate) struct MilvusSink {
    pub client: etl_connectors::milvus::MilvusClient,
    /// Its URL as the mapping gives it.
    pub server: String,
    /// Where the load records are kept.
    pub jobs: PathBuf,
    /// The unfinished loads to resume, by collection.
    pub resume: HashMap<String, LoadRecord>,
}

/// A stage being written.
pub(crate) struct StageSink {
    pub store: etl_connectors::store::Store,
    pub max_file_bytes: u64,
    pub staged: Mutex<Vec<StagedCollection>>,
    /// NULL scalars written as their stand-ins: the stage is bound for a Milvus without NULLs.
    pub fill_nulls: bool,
}

pub(crate) struct RunContext {
    pub source: Source,
    pub sink: Sink,
    pub rejects_dir: PathBuf,
    pub plan: Plan,
    pub catalog: Vec<SourceTable>,
    pub opts: RunOptions,
    pub observer: Arc<dyn RunObserver>,
}

pub(crate) enum WriterMsg {
    Write(String, RecordBatch),
    Commit(
        String,
        BTreeMap<String, serde_json::Value>,
        oneshot::Sender<Result<CommitStats, PipelineError>>,
    ),
}

impl RunContext {
    /// Runs a table; when its source data turns out to be unreadable (a corrupt or truncated
    /// dump), drops what was loaded of it: running again cannot get further, so nothing
    /// half-loaded is left looking like a collection.
    /// Runs `tables`, several at a time.
    pub(crate) async fn run_all(
        &self,
        tables: &[TablePlan],
    ) -> Result<Vec<TableReport>, PipelineError> {
        let concurrency = self.plan.parallelism.clamp(1, tables.len().max(1));
        let reports: Vec<Result<TableReport, PipelineError>> =
            futures::stream::iter(tables.iter().map(|t| self.run_table_or_discard(t)))
                .buffer_unordered(concurrency)
                .collect()
                .await;
        reports.into_iter().collect()
    }

    async fn run_table_or_discard(&self, tp: &TablePlan) -> Result<TableReport, PipelineError> {
        let result = self.run_table(tp).await;
        if let (Err(e), Sink::Engine(db)) = (&result, &self.sink)
            && e.is_bad_source_data()
            && !self.opts.dry_run
            && db.list()?.contains(&tp.collection)
        {
            tracing::warn!(
                table = %tp.source,
                "dropping the partly loaded collection {}: its source data is unreadable",
                tp.collection
            );
            db.drop_collection(&tp.collection)?;
        }
        result
    }

    async fn run_table(&self, tp: &TablePlan) -> Result<TableReport, PipelineError> {
        let started = Instant::now();
        let name = tp.source.to_string();
        let source = self
            .catalog
            .iter()
            .find(|s| s.name == tp.source)
            .ok_or_else(|| PipelineError::UnknownTable {
                table: name.clone(),
                suggestion: None,
            })?;
        self.observer.table_started(&name, tp.estimated_rows);
        self.observer.phase(&name, Phase::Reading);
        let schema = target::collection_schema(tp)?;
        let mapper = Arc::new(Mapper::new(tp.clone(), schema.clone()));
        let mut report = TableReport {
            table: name.clone(),
            collection: tp.collection.clone(),
            ..Default::default()
        };

        let coll = match (&self.sink, self.opts.dry_run) {
            (Sink::Engine(db), false) => {
                Some(db.ensure_collection(&tp.collection, schema.clone())?)
            }
            (Sink::Milvus(m), false) if m.resume.contains_key(&tp.collection) => None,
            (Sink::Milvus(m), false) => {
                m.client
                    .create_collection(
                        &crate::milvus::milvus_schema(&tp.collection, &schema),
                        schema.shards as i32,
                    )
                    .await?;
                // Recorded at once, so a run killed from here on finds the collection its own.
                LoadRecord {
                    server: m.server.clone(),
                    collection_id: m.client.collection_id(&tp.collection).await?,
                    ..Default::default()
                }
                .save(&LoadRecord::path(&m.jobs, &tp.collection))?;
                None
            }
            _ => None,
        };
        let mut done: BTreeMap<String, serde_json::Value> = coll
            .as_ref()
            .map(|c| c.manifest().checkpoints.clone())
            .unwrap_or_default();
        if let Sink::Milvus(m) = &self.sink
            && let Some(r) = m.resume.get(&tp.collection)
        {
            if r.ranges > 0 {
                done.insert(RANGES_KEY.into(), serde_json::json!(r.ranges));
            }
            for k in &r.done {
                done.insert(k.clone(), serde_json::json!({}));
            }
        }
        // The range count is fixed by the first run so a resumed run splits the table the same way.
        let ranges = match done.get(RANGES_KEY).and_then(|v| v.as_u64()) {
            Some(n) => n as usize,
            None if self.opts.row_limit.is_some() || self.opts.dry_run => 1,
            None => {
                let bytes = source.estimated_bytes.unwrap_or(0);
                let by_size = (bytes / (64 << 20)) as usize;
                by_size
                    .clamp(self.plan.parallelism, self.plan.parallelism * 8)
                    .max(1)
            }
        };
        let read_opts = ReadOptions {
            partitions: ranges,
            batch_rows: self.plan.batch_size,
            filter: tp.filter.clone(),
            max_bad_rows: tp.max_rejects,
            ..ReadOptions::default()
        };
        let limit = if self.opts.dry_run {
            Some(self.opts.row_limit.unwrap_or(1_000) as usize)
        } else {
            self.opts.row_limit.map(|l| l as usize)
        };
        let scan = Arc::new(
            SourceScan::open(
                &self.source,
                source,
                read_opts,
                &mapper.source_columns(),
                limit,
            )
            .await?,
        );
        let stats = scan.stats.clone();
        let parts = scan.partitions();
        report.ranges = parts;
        let key = |p: usize| format!("range/{p}/{parts}");
        let todo: Vec<usize> = (0..parts)
            .filter(|p| !done.contains_key(&key(*p)))
            .collect();
        report.ranges_resumed = parts - todo.len();

        // Rejects: one JSON-lines file per table, appended to on resume.
        let rejects_path = self.rejects_dir.join(format!("{}.jsonl", tp.collection));
        // Keep the rejects of committed ranges only: the others are read again.
        let keep: HashSet<String> = if self.opts.dry_run {
            HashSet::new()
        } else {
            done.keys()
                .filter(|k| k.starts_with("range/"))
                .cloned()
                .collect()
        };
        let rejects = Arc::new(Mutex::new(RejectsFile::open(rejects_path.clone(), &keep)?));
        let rejected = Arc::new(AtomicU64::new(0));
        let skipped = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));

        // One writer thread per collection: the engine is synchronous.
        let (tx, mut rx) = mpsc::channel::<WriterMsg>(4);
        let writer = match (&coll, &self.sink) {
            (Some(c), _) => {
                let c = c.clone();
                let w = c.writer()?.with_segment_rows(self.plan.max_segment_rows);
                Some(std::thread::spawn(move || {
                    writer_loop(w, &mut rx).map(|()| Vec::new())
                }))
            }
            (None, Sink::Milvus(m)) if !self.opts.dry_run => {
                let client = m.client.clone();
                let path = LoadRecord::path(&m.jobs, &tp.collection);
                let resumed = m.resume.get(&tp.collection).cloned();
                // Rows of a resumed range may be there already: replaced by key, not doubled.
                let upsert = resumed.is_some();
                let mut record = match resumed {
                    Some(r) => r,
                    None => LoadRecord {
                        server: m.server.clone(),
                        collection_id: client.collection_id(&tp.collection).await?,
                        ..Default::default()
                    },
                };
                record.ranges = parts;
                record.save(&path)?;
                let handle = tokio::runtime::Handle::current();
                let name = tp.collection.clone();
                let schema = schema.clone();
                Some(std::thread::spawn(move || {
                    crate::milvus::write::milvus_loop(
                        client,
                        handle,
                        name,
                        schema,
                        (path, record),
                        upsert,
                        &mut rx,
                    )
                }))
            }
            (None, Sink::Stage(s)) if !self.opts.dry_run => {
                let w = StageWriter::new(
                    s.store.clone(),
                    &tp.collection,
                    schema.clone(),
                    s.max_file_bytes,
                    tokio::runtime::Handle::current(),
                );
                let fill = s.fill_nulls.then(|| schema.clone());
                Some(std::thread::spawn(move || stage_loop(w, fill, &mut rx)))
            }
            _ => {
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                None
            }
        };
        let first_commit = done.is_empty() && coll.is_some();
        let table_rows = AtomicU64::new(0);
        let read_part = |p: usize| {
            let scan = scan.clone();
            let tx = tx.clone();
            let mapper = mapper.clone();
            let rejects = rejects.clone();
            let rejected = rejected.clone();
            let skipped = skipped.clone();
            let written = written.clone();
            let stats = stats.clone();
            let observer = self.observer.clone();
            let name = name.clone();
            let table_rows = &table_rows;
            let part_key = key(p);
            let max_rejects = tp.max_rejects;
            let rejects_path = rejects_path.clone();
            async move {
                let mut stream = scan.execute(p)?;
                let mut part_rows = 0u64;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(PipelineError::from_datafusion)?;
                    part_rows += batch.num_rows() as u64;
                    table_rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    let (mapped, mut bad) = mapper.map(&batch)?;
                    bad.extend(stats.take_bad_rows(p).into_iter().map(Reject::unreadable));
                    if !bad.is_empty() {
                        let skips = bad.iter().filter(|r| r.reason.is_skip()).count() as u64;
                        let refused = bad.len() as u64 - skips;
                        skipped.fetch_add(skips, Ordering::Relaxed);
                        let total = rejected.fetch_add(refused, Ordering::Relaxed) + refused;
                        rejects
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .append(&name, &part_key, &bad)?;
                        if total > max_rejects {
                            return Err(PipelineError::TooManyRejects {
                                table: name.clone(),
                                rejected: total,
                                max: max_rejects,
                                file: rejects_path.display().to_string(),
                            });
                        }
                    }
                    written.fetch_add(mapped.num_rows() as u64, Ordering::Relaxed);
                    if mapped.num_rows() > 0 {
                        tx.send(WriterMsg::Write(part_key.clone(), mapped))
                            .await
                            .map_err(|_| closed())?;
                    }
                    observer.progress(
                        &name,
                        table_rows.load(Ordering::Relaxed),
                        stats.bytes.load(Ordering::Relaxed),
                    );
                }
                let mut cp = BTreeMap::new();
                cp.insert(part_key.clone(), serde_json::json!({ "rows": part_rows }));
                if first_commit {
                    cp.insert(RANGES_KEY.to_string(), serde_json::json!(parts));
                }
                let (reply, wait) = oneshot::channel();
                tx.send(WriterMsg::Commit(part_key, cp, reply))
                    .await
                    .map_err(|_| closed())?;
                wait.await.map_err(|_| closed())??;
                Ok::<(), PipelineError>(())
            }
        };
        let concurrency = self.plan.parallelism.max(1);
        let results: Vec<Result<(), PipelineError>> =
            futures::stream::iter(todo.iter().map(|p| read_part(*p)))
                .buffer_unordered(concurrency)
                .collect()
                .await;
        drop(tx);
        let mut staged_files = Vec::new();
        if let Some(h) = writer {
            staged_files = h.join().map_err(|_| PipelineError::Internal {
                message: "writer thread panicked".into(),
            })??;
        }
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        report.rows_read = table_rows.load(Ordering::Relaxed);
        report.rows_written = written.load(Ordering::Relaxed);
        report.rows_rejected = rejected.load(Ordering::Relaxed);
        report.rows_skipped = skipped.load(Ordering::Relaxed);
        report.bytes = stats.bytes.load(Ordering::Relaxed);
        if report.rows_rejected + report.rows_skipped > 0
            || rejects.lock().unwrap_or_else(|e| e.into_inner()).lines > 0
        {
            report.rejects_file = Some(rejects_path.display().to_string());
        }

        if let Some(c) = &coll {
            let merge = etl_engine::MergePolicy {
                max_rows: self.plan.max_segment_rows,
                ..etl_engine::MergePolicy::default()
            };
            report.index_seconds = index_and_load(
                c,
                merge,
                target::index_specs(tp)?,
                self.observer.clone(),
                &name,
            )
            .await?;
            report.collection_rows = c.count_rows();
        }
        if let (Sink::Milvus(MilvusSink { client, jobs, .. }), false) =
            (&self.sink, self.opts.dry_run)
        {
            client.flush(&tp.collection).await?;
            (report.index_seconds, report.collection_rows) = crate::milvus::finish(
                client,
                &tp.collection,
                &target::index_specs(tp)?,
                self.observer.as_ref(),
                &name,
            )
            .await?;
            let path = LoadRecord::path(jobs, &tp.collection);
            if let Some(mut r) = LoadRecord::read(&path) {
                r.finished = true;
                r.save(&path)?;
            }
        }
        if let (Sink::Stage(s), false) = (&self.sink, self.opts.dry_run) {
            let indexes = target::index_specs(tp)?
                .into_iter()
                .map(|(field, spec)| StagedIndex { field, spec })
                .collect();
            s.staged
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(StagedCollection {
                    name: tp.collection.clone(),
                    source_table: tp.source.to_string(),
                    schema,
                    indexes,
                    rows: staged_files.iter().map(|f| f.rows).sum(),
                    files: staged_files,
                });
        }
        report.seconds = started.elapsed().as_secs_f64();
        report.rows_per_s = report.rows_read as f64 / report.seconds.max(1e-9);
        self.observer.phase(&name, Phase::Done);
        self.observer.table_finished(&report);
        Ok(report)
    }
}

pub(crate) fn closed() -> PipelineError {
    PipelineError::Internal {
        message: "the collection writer stopped".into(),
    }
}

/// The stage's writer thread: batches into Parquet files; a range's end closes the open file.
fn stage_loop(
    mut w: StageWriter,
    fill_nulls: Option<etl_engine::CollectionSchema>,
    rx: &mut mpsc::Receiver<WriterMsg>,
) -> Result<Vec<StagedFile>, PipelineError> {
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            WriterMsg::Write(part, batch) => match &fill_nulls {
                Some(schema) => w.write(&part, &crate::milvus::fill_nulls(&batch, schema)?)?,
                None => w.write(&part, &batch)?,
            },
            WriterMsg::Commit(_, _, reply) => {
                let r = w.finish().map(|()| CommitStats::default());
                let failed = r.is_err();
                let _ = reply.send(r);
                if failed {
                    break;
                }
            }
        }
    }
    w.finish()?;
    Ok(std::mem::take(&mut w.files))
}

pub(crate) fn writer_loop(
    mut w: etl_engine::BulkWriter,
    rx: &mut mpsc::Receiver<WriterMsg>,
) -> Result<(), PipelineError> {
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            WriterMsg::Write(part, batch) => w.write_part(&part, &batch)?,
            WriterMsg::Commit(part, cp, reply) => {
                let r = w.commit_part(&part, cp).map_err(PipelineError::from);
                let failed = r.is_err();
                let _ = reply.send(r);
                if failed {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Merges the collection's small segments, builds the indexes on it (every core, off the async
/// threads), then loads it; returns the seconds spent indexing.
pub(crate) async fn index_and_load(
    c: &Collection,
    merge: etl_engine::MergePolicy,
    specs: Vec<(String, etl_engine::IndexSpec)>,
    observer: Arc<dyn RunObserver>,
    name: &str,
) -> Result<f64, PipelineError> {
    observer.phase(name, Phase::Indexing);
    let c = c.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        // One graph per large segment, not one per source range.
        let merged = c.merge_segments(merge, &|rows| observer.progress(&name, rows, 0))?;
        tracing::info!(
            collection = %name,
            before = merged.segments_before,
            after = merged.segments_after,
            rows = merged.rows_rewritten,
            seconds = merged.seconds,
            "segments merged"
        );
        let mut seconds = 0.0;
        for (field, spec) in specs {
            let progress = |p: IndexProgress| observer.progress(&name, p.done_rows, 0);
            seconds += c.create_index(&field, spec, &progress)?;
        }
        observer.phase(&name, Phase::Loading);
        c.load()?;
        Ok::<f64, PipelineError>(seconds)
    })
    .await
    .map_err(|e| PipelineError::Internal {
        message: e.to_string(),
    })?
}
