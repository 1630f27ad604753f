//! The embedded engine as a target: a directory of collections. A run is a job recorded in
//! the directory (`_jobs/`), resumed by the same mapping until it succeeds; each range is one
//! engine commit whose manifest swap carries the range's checkpoint, so the rows and the
//! record that they are in cannot disagree. After the load the small segments are merged, the
//! indexes built on every core and the collection loaded. [`import`] loads a stage the same
//! way, one commit per staged file.

mod admin;
mod import;
pub mod job;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use etl_engine::{
    BulkWriter, Collection, CollectionSchema, Database, Hit, IndexProgress, IndexSpec, IndexType,
    MergePolicy, SearchRequest,
};
use etl_mappings::{ParsedMapping, TablePlan};
use futures::StreamExt;
use futures::future::BoxFuture;

use self::job::Job;
use super::stage::follow::StagedRx;
use super::{
    Admin, Answer, Begun, Checkpoint, CollectionReader, EachBatch, ImportOptions, OpenTable,
    TableSink, Target, TargetOptions,
};
use crate::error::PipelineError;
use crate::report::{Phase, Phases, RunObserver, RunReport, TableReport};

/// The engine at a directory.
pub struct EngineTarget {
    dir: PathBuf,
    /// The mapping file, absolute: the key of its jobs.
    mapping: Option<PathBuf>,
    opts: TargetOptions,
    /// Opened by `begin`.
    db: Option<Database>,
    job: Option<Job>,
}

impl EngineTarget {
    /// The engine at `dir`, for a run of `mapping` (none for `etl import`, search and verify).
    pub fn new(dir: &Path, mapping: Option<&ParsedMapping>, opts: &TargetOptions) -> Self {
        let mapping = mapping.map(|m| {
            let p = PathBuf::from(m.locator.file());
            std::path::absolute(&p).unwrap_or(p)
        });
        EngineTarget {
            dir: dir.to_path_buf(),
            mapping,
            opts: opts.clone(),
            db: None,
            job: None,
        }
    }

    fn db(&self) -> Result<&Database, PipelineError> {
        self.db.as_ref().ok_or_else(|| PipelineError::Internal {
            message: "the engine target is used before `begin`".into(),
        })
    }
}

#[async_trait]
impl Target for EngineTarget {
    async fn begin(&mut self, tables: &[TablePlan]) -> Result<Begun, PipelineError> {
        let db = Database::open(&self.dir)?;
        let key = self
            .mapping
            .clone()
            .ok_or_else(|| PipelineError::Internal {
                message: "a run of the engine target without a mapping".into(),
            })?;
        let (job, resumed) = Job::start(&self.dir, &key, self.opts.restart)?;
        if !resumed {
            // A fresh run replaces what an earlier run of these tables loaded.
            let present = db.list()?;
            for t in tables.iter().filter(|t| present.contains(&t.collection)) {
                db.drop_collection(&t.collection)?;
            }
        }
        self.db = Some(db);
        self.job = Some(job);
        Ok(Begun { resumed })
    }

    async fn open_table(
        &self,
        table: &TablePlan,
        schema: &CollectionSchema,
    ) -> Result<OpenTable, PipelineError> {
        let c = self
            .db()?
            .ensure_collection(&table.collection, schema.clone())?;
        let mut writer = c.writer()?.with_segment_rows(self.opts.max_segment_rows);
        if table.key_is_the_sources() {
            // Read in one snapshot, the source's own primary key repeats no value: the writer
            // need not remember keys to replace (a resumed table, with rows in, still does).
            writer = writer.assume_unique_keys();
        }
        Ok(OpenTable {
            checkpoints: c.manifest().checkpoints.clone(),
            sink: Box::new(EngineSink(writer)),
        })
    }

    async fn finish_table(
        &self,
        table: &TablePlan,
        report: &mut TableReport,
        observer: Arc<dyn RunObserver>,
    ) -> Result<(), PipelineError> {
        let c = self.db()?.collection(&table.collection)?;
        let merge = MergePolicy {
            max_rows: self.opts.max_segment_rows,
            ..MergePolicy::default()
        };
        let specs = crate::schema::index_specs(table);
        index_and_load(&c, merge, specs, observer, report).await?;
        report.collection_rows = c.count_rows();
        Ok(())
    }

    async fn discard_table(&self, table: &TablePlan) -> Result<(), PipelineError> {
        let db = self.db()?;
        if db.list()?.contains(&table.collection) {
            tracing::warn!(
                table = %table.source,
                "dropping the partly loaded collection {}: its source data is unreadable",
                table.collection
            );
            db.drop_collection(&table.collection)?;
        }
        Ok(())
    }

    async fn end(
        &mut self,
        outcome: Result<&mut RunReport, &PipelineError>,
    ) -> Result<(), PipelineError> {
        match &mut self.job {
            Some(job) => job.end(&self.dir, outcome),
            None => Ok(()),
        }
    }

    fn rejects_dir(&self) -> PathBuf {
        self.dir.join("_rejects")
    }

    async fn reader(
        &self,
        table: &mut TablePlan,
        _schema: &CollectionSchema,
        _columns: &[String],
        projection: &[usize],
    ) -> Result<Option<Box<dyn CollectionReader>>, PipelineError> {
        // An existing directory only: a mistyped path must not read as "every row missing".
        let db = Database::open_existing(&self.dir)?;
        if !db.list()?.contains(&table.collection) {
            return Ok(None);
        }
        Ok(Some(Box::new(EngineReader {
            collection: db.collection(&table.collection)?,
            projection: projection.to_vec(),
        })))
    }

    async fn import(
        &self,
        stage: &str,
        opts: &ImportOptions,
        observer: Arc<dyn RunObserver>,
        cancel: BoxFuture<'static, ()>,
    ) -> Result<RunReport, PipelineError> {
        import::import(stage, &self.dir, opts, observer, cancel).await
    }

    async fn import_following(
        &self,
        stage: &str,
        staged: StagedRx,
        opts: &ImportOptions,
        observer: Arc<dyn RunObserver>,
        cancel: BoxFuture<'static, ()>,
    ) -> Result<RunReport, PipelineError> {
        import::import_following(stage, &self.dir, staged, opts, observer, cancel).await
    }

    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<Vec<Hit>>, PipelineError> {
        Ok(Database::open_existing(&self.dir)?
            .collection(collection)?
            .search(request)?)
    }

    async fn administer(&self, command: &Admin) -> Result<Answer, PipelineError> {
        admin::administer(&self.dir, command)
    }
}

/// A collection's bulk writer: a range's batches into segments, its commit one manifest swap.
pub(crate) struct EngineSink(pub BulkWriter);

impl TableSink for EngineSink {
    fn write(&mut self, range: &str, batch: &RecordBatch) -> Result<(), PipelineError> {
        Ok(self.0.write_part(range, batch)?)
    }

    fn commit(&mut self, range: &str, checkpoint: Checkpoint) -> Result<(), PipelineError> {
        self.0.commit_part(range, checkpoint)?;
        Ok(())
    }

    fn close(self: Box<Self>) -> Result<(), PipelineError> {
        Ok(())
    }
}

/// A collection's segments read in parallel, projected to the compared columns.
struct EngineReader {
    collection: Collection,
    projection: Vec<usize>,
}

#[async_trait]
impl CollectionReader for EngineReader {
    async fn scan(&self, parallelism: usize, each: EachBatch) -> Result<u64, PipelineError> {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = futures::stream::iter(self.collection.scan().into_iter().map(|s| {
            let (each, stop, projection) = (each.clone(), stop.clone(), self.projection.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut rows = 0u64;
                    for batch in s.batches(Some(&projection))? {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let batch = batch?;
                        rows += batch.num_rows() as u64;
                        if each(&batch)? {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok::<u64, PipelineError>(rows)
                })
                .await
                .map_err(|e| PipelineError::Internal {
                    message: e.to_string(),
                })?
            }
        }))
        .buffer_unordered(parallelism.max(1))
        .collect::<Vec<_>>()
        .await;
        reads.into_iter().sum()
    }
}

/// Merges the collection's small segments, builds the indexes on it (every core, off the async
/// threads), then loads it; counts the seconds of each into `phases` (and the index build's
/// into `index_seconds`).
pub(crate) async fn index_and_load(
    c: &Collection,
    merge: MergePolicy,
    specs: Vec<(String, IndexSpec)>,
    observer: Arc<dyn RunObserver>,
    report: &mut TableReport,
) -> Result<(), PipelineError> {
    let name = report.table.clone();
    observer.phase(&name, Phase::Indexing);
    let c = c.clone();
    let phases = tokio::task::spawn_blocking(move || {
        let mut phases = Phases::default();
        // One graph (IVF lists, inverted index) per large segment, not one per source range.
        // Exact search (FLAT) reads every row whatever the segments: nothing to rewrite for.
        let per_segment = specs.iter().any(|(_, s)| {
            s.index_type.is_vector()
                && !matches!(s.index_type, IndexType::Flat | IndexType::BinFlat)
        });
        if per_segment {
            let merged = c.merge_segments(merge, &|rows| observer.progress(&name, rows, 0))?;
            tracing::info!(
                collection = %name,
                before = merged.segments_before,
                after = merged.segments_after,
                rows = merged.rows_rewritten,
                seconds = merged.seconds,
                "segments merged"
            );
            phases.merge = merged.seconds;
        }
        for (field, spec) in specs {
            let progress = |p: IndexProgress| observer.progress(&name, p.done_rows, 0);
            phases.index += c.create_index(&field, spec, &progress)?;
        }
        observer.phase(&name, Phase::Loading);
        let loading = std::time::Instant::now();
        c.load()?;
        phases.load = loading.elapsed().as_secs_f64();
        Ok::<Phases, PipelineError>(phases)
    })
    .await
    .map_err(|e| PipelineError::Internal {
        message: e.to_string(),
    })??;
    report.index_seconds = phases.index;
    report.phases.merge = phases.merge;
    report.phases.index = phases.index;
    report.phases.load = phases.load;
    Ok(())
}
