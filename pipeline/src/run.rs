//! `etl run`: prepare (plan and checks) → route → target (fit, begin) → per table: read
//! (parallel ranges, one snapshot) → map → the target's sink (a commit and a checkpoint per
//! range) → the target's finish (indexes, load) → end, with a report.
//!
//! Reading, mapping and writing overlap: readers feed a bounded channel, and one writer thread
//! per table drives the target's [`TableSink`](crate::target::TableSink) while the readers go
//! on. A range's rows and its checkpoint are committed together, so after a crash the same
//! command skips the ranges that are in and reads the rest: no row lost, none twice. Nothing
//! here knows which target it writes to.

mod rejects;

use rejects::RejectsFile;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use etl_connectors::postgres::ReadOptions;
use etl_mappings::{SourceTable, TablePlan};
use futures::{FutureExt, StreamExt};
use tokio::sync::oneshot;

use crate::error::PipelineError;
use crate::inspect::load_mapping;
use crate::map::{Mapper, Reject};
use crate::prepare::{Narrowing, Prepared, prepare};
use crate::report::{Phase, RunObserver, RunReport, Step, StepClock, TableReport};
use crate::source::{Source, SourceScan};
use crate::target::dry::DryRun;
use crate::target::{
    Feed, ImportOptions, OpenTable, RANGES_KEY, RejectRows, Target, TargetOptions, WriterMsg,
    WriterThread, closed,
};

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

/// Runs a mapping file: prepare, resolve the route, open the target, fit, begin, run the
/// tables, end; then, on a staged route, import the stage. `cancel` resolving stops the run
/// cleanly (the target records it as cancelled and a re-run resumes it).
pub async fn run(
    mapping_path: &Path,
    opts: &RunOptions,
    observer: Arc<dyn RunObserver>,
    cancel: impl Future<Output = ()> + Send + 'static,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let mapping = load_mapping(mapping_path)?;
    let route = crate::route::resolve(&mapping, opts.stage_to.as_deref())?;
    let cancel = cancel.boxed().shared();
    let Prepared {
        source,
        catalog,
        plan,
        mut tables,
    } = prepare(
        &mapping,
        Narrowing {
            tables: opts.tables.as_deref(),
            batch_size: opts.batch_size,
            parallelism: opts.parallelism,
        },
    )
    .await?;
    // A stage imported by the same command tells the import each file as it finishes it.
    let import_after = route.import_after().filter(|_| !opts.dry_run);
    let (follow, staged) = import_after
        .map(|_| crate::target::stage::follow::channel())
        .unzip();
    let target_opts = TargetOptions {
        restart: opts.restart,
        some_tables: opts.tables.is_some(),
        max_file_bytes: opts.max_file_bytes,
        max_segment_rows: plan.max_segment_rows,
        source: source.label(),
        dump: source.dump(),
        follow,
    };
    let mut target = crate::target::open(&route.writes(), Some(&mapping), &target_opts)?;
    if opts.dry_run {
        target = Box::new(DryRun(target));
    }
    let ctx = RunContext {
        source,
        target,
        parallelism: plan.parallelism,
        batch_size: plan.batch_size,
        catalog,
        opts: opts.clone(),
        observer: observer.clone(),
    };
    let (Some((stage, into)), Some(staged)) = (import_after, staged) else {
        return ctx.write(&mut tables, started, cancel).await;
    };
    // The second half of a load that crosses machines: the stage into its destination, file by
    // file while the stage is written where the destination can (the import's failure stops
    // the stage).
    let import = ImportOptions {
        collections: None,
        parallelism: opts.parallelism,
        recreate: opts.restart,
        replace_own: true,
    };
    let importer = crate::target::open(
        into,
        Some(&mapping),
        &TargetOptions {
            follow: None,
            ..target_opts.clone()
        },
    )?;
    drop(target_opts);
    let (failed, import_failed) = oneshot::channel::<()>();
    let importing = async {
        let r = importer
            .import_following(
                stage,
                staged,
                &import,
                observer.clone(),
                cancel.clone().boxed(),
            )
            .await;
        if r.is_err() {
            let _ = failed.send(());
        }
        r
    };
    let stage_cancel = {
        let cancel = cancel.clone();
        async move {
            tokio::select! {
                () = cancel => {}
                Ok(()) = import_failed => {}
            }
        }
    }
    .boxed()
    .shared();
    // The context (and the stage's end of the events) is dropped when the stage ends: an
    // import still waiting then learns the stage stopped.
    let staging = ctx.write(&mut tables, started, stage_cancel);
    let (staged, imported) = tokio::join!(staging, importing);
    // The import's own error explains more than the stage's cancellation it caused.
    let (staged, mut report) = match (staged, imported) {
        (_, Err(e)) if !matches!(e, PipelineError::Cancelled) => return Err(e),
        (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
        (Ok(staged), Ok(report)) => (staged, report),
    };
    // Where the time went, both halves: the source read, mapped and staged, then the files read
    // and written into the destination, indexed and loaded.
    for t in &mut report.tables {
        if let Some(s) = staged.tables.iter().find(|s| s.table == t.table) {
            t.phases.add(&s.phases);
        }
    }
    report.stage = staged.stage;
    report.totals.rows_read = staged.totals.rows_read;
    report.totals.rows_rejected = staged.totals.rows_rejected;
    Ok(report)
}

/// What the tables of a run share.
struct RunContext {
    source: Source,
    target: Box<dyn Target>,
    parallelism: usize,
    batch_size: usize,
    catalog: Vec<SourceTable>,
    opts: RunOptions,
    observer: Arc<dyn RunObserver>,
}

impl RunContext {
    /// The writing half of a run: fit, begin, the tables, end.
    async fn write(
        mut self,
        tables: &mut [TablePlan],
        started: Instant,
        cancel: impl Future<Output = ()>,
    ) -> Result<RunReport, PipelineError> {
        self.target.fit(tables).await?;
        let begun = self.target.begin(tables).await?;
        let outcome = tokio::select! {
            r = self.run_all(tables) => r,
            () = cancel => Err(PipelineError::Cancelled),
        };
        let mut outcome = outcome.map(|tables| RunReport {
            resumed: begun.resumed,
            ..RunReport::of(tables, started.elapsed().as_secs_f64())
        });
        self.target.end(outcome.as_mut().map_err(|e| &*e)).await?;
        outcome
    }

    /// Runs `tables`, several at a time.
    pub(crate) async fn run_all(
        &self,
        tables: &[TablePlan],
    ) -> Result<Vec<TableReport>, PipelineError> {
        let concurrency = self.parallelism.clamp(1, tables.len().max(1));
        let reports: Vec<Result<TableReport, PipelineError>> =
            futures::stream::iter(tables.iter().map(|t| self.run_table_or_discard(t)))
                .buffer_unordered(concurrency)
                .collect()
                .await;
        reports.into_iter().collect()
    }

    /// Runs a table; when its source data turns out to be unreadable (a corrupt or truncated
    /// dump), the target drops what was loaded of it: running again cannot get further, so
    /// nothing half-loaded is left looking like a collection.
    async fn run_table_or_discard(&self, tp: &TablePlan) -> Result<TableReport, PipelineError> {
        let result = self.run_table(tp).await;
        if let Err(e) = &result
            && e.is_bad_source_data()
        {
            self.target.discard_table(tp).await?;
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
        let schema = crate::schema::collection_schema(tp);
        let mapper = Arc::new(Mapper::new(tp.clone(), schema.clone()));
        let mut report = TableReport {
            table: name.clone(),
            collection: tp.collection.clone(),
            ..Default::default()
        };
        let OpenTable {
            checkpoints: done,
            sink,
        } = self.target.open_table(tp, &schema).await?;
        // The range count is fixed by the first run so a resumed run splits the table the same way.
        let ranges = match done.get(RANGES_KEY).and_then(|v| v.as_u64()) {
            Some(n) => n as usize,
            None if self.opts.row_limit.is_some() || self.opts.dry_run => 1,
            None => {
                let bytes = source.estimated_bytes.unwrap_or(0);
                let by_size = (bytes / (64 << 20)) as usize;
                by_size.clamp(self.parallelism, self.parallelism * 8).max(1)
            }
        };
        // A target that takes the wire format gets the source's field bytes as they are.
        let wire = self.target.feed() == Feed::Wire;
        let read_opts = ReadOptions {
            partitions: ranges,
            batch_rows: self.batch_size,
            filter: tp.filter.clone(),
            max_bad_rows: tp.max_rejects,
            wire,
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
        tracing::debug!(table = %name, at = started.elapsed().as_secs_f64(), "scan planned");
        let stats = scan.stats.clone();
        let parts = scan.partitions();
        report.ranges = parts;
        let key = |p: usize| format!("range/{p}/{parts}");
        let todo: Vec<usize> = (0..parts)
            .filter(|p| !done.contains_key(&key(*p)))
            .collect();
        report.ranges_resumed = parts - todo.len();

        // Rejects: one JSON-lines file per table, appended to on resume.
        let rejects_path = self
            .target
            .rejects_dir()
            .join(format!("{}.jsonl", tp.collection));
        // Keep the rejects of committed ranges only: the others are read again.
        let keep: HashSet<String> = done
            .keys()
            .filter(|k| k.starts_with("range/"))
            .cloned()
            .collect();
        let rejects = Arc::new(Mutex::new(RejectsFile::open(rejects_path.clone(), &keep)?));
        let rejected = Arc::new(AtomicU64::new(0));
        let skipped = Arc::new(AtomicU64::new(0));
        let written = Arc::new(AtomicU64::new(0));
        // One way rejected rows are recorded, from the mapper or refused by the destination.
        let record: RejectRows = {
            let (rejects, rejected, skipped) = (rejects.clone(), rejected.clone(), skipped.clone());
            let (name, max_rejects, file) = (
                name.clone(),
                tp.max_rejects,
                rejects_path.display().to_string(),
            );
            Arc::new(move |range: &str, bad: Vec<Reject>| {
                if bad.is_empty() {
                    return Ok(());
                }
                let skips = bad.iter().filter(|r| r.reason.is_skip()).count() as u64;
                let refused = bad.len() as u64 - skips;
                skipped.fetch_add(skips, Ordering::Relaxed);
                let total = rejected.fetch_add(refused, Ordering::Relaxed) + refused;
                rejects
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .append(&name, range, &bad)?;
                if total > max_rejects {
                    return Err(PipelineError::TooManyRejects {
                        table: name.clone(),
                        rejected: total,
                        max: max_rejects,
                        file: file.clone(),
                    });
                }
                Ok(())
            })
        };
        let mut sink = sink;
        sink.report_rejects_to(record.clone());

        // One writer thread per table: the engine is synchronous, and async targets block
        // on their runtime there, off the readers' threads.
        let clock = Arc::new(StepClock::default());
        let (tx, writer) = WriterThread::spawn(sink, clock.clone());
        let first_commit = !done.contains_key(RANGES_KEY);
        let table_rows = AtomicU64::new(0);
        let read_part = |p: usize| {
            let scan = scan.clone();
            let tx = tx.clone();
            let mapper = mapper.clone();
            let record = record.clone();
            let written = written.clone();
            let stats = stats.clone();
            let observer = self.observer.clone();
            let name = name.clone();
            let table_rows = &table_rows;
            let clock = clock.clone();
            let part_key = key(p);
            async move {
                let mut stream = scan.execute(p)?;
                let mut part_rows = 0u64;
                loop {
                    let waited = Instant::now();
                    let Some(batch) = stream.next().await else {
                        break;
                    };
                    clock.add(Step::Read, waited.elapsed());
                    let batch = batch.map_err(PipelineError::from_datafusion)?;
                    part_rows += batch.num_rows() as u64;
                    table_rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                    let (mapped, mut bad) = if wire {
                        (batch, Vec::new())
                    } else {
                        clock.time(Step::Map, || mapper.map(&batch))?
                    };
                    bad.extend(stats.take_bad_rows(p).into_iter().map(Reject::unreadable));
                    record(&part_key, bad)?;
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
                // The reader goes on to its next range while the writer commits this one
                // (waiting here had each reader idle while the writer drained the queue and
                // finished the segment, once per range); the commits are awaited at the end.
                let (reply, wait) = oneshot::channel();
                tx.send(WriterMsg::Commit(part_key, cp, reply))
                    .await
                    .map_err(|_| closed())?;
                Ok::<_, PipelineError>(wait)
            }
        };
        let concurrency = self.parallelism.max(1);
        let results: Vec<Result<_, PipelineError>> =
            futures::stream::iter(todo.iter().map(|p| read_part(*p)))
                .buffer_unordered(concurrency)
                .collect()
                .await;
        tracing::debug!(table = %name, at = started.elapsed().as_secs_f64(), "ranges read");
        drop(tx);
        let mut committed = Ok(());
        for wait in results {
            match wait {
                Ok(wait) => match wait.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => committed = committed.and(Err(e)),
                    Err(_) => committed = committed.and(Err(closed())),
                },
                Err(e) => committed = committed.and(Err(e)),
            }
        }
        writer.join()?;
        tracing::debug!(table = %name, at = started.elapsed().as_secs_f64(), "ranges committed");
        committed?;
        report.phases = clock.phases();
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

        self.target
            .finish_table(tp, &mut report, self.observer.clone())
            .await?;
        tracing::debug!(table = %name, at = started.elapsed().as_secs_f64(), "finished");
        report.seconds = started.elapsed().as_secs_f64();
        report.rows_per_s = report.rows_read as f64 / report.seconds.max(1e-9);
        self.observer.phase(&name, Phase::Done);
        self.observer.table_finished(&report);
        Ok(report)
    }
}
