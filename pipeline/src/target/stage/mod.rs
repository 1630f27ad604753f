//! A stage as a target: a mapping's collections written as Parquet files in Milvus'
//! bulk-import layout on an object store (file, S3, GCS, Azure), with a manifest written last,
//! so an interrupted stage never names unfinished files. Bound for a Milvus, the stage follows
//! that server's rules (what it cannot hold refused first, NULL scalars written as the stand-ins
//! its import needs). The engine and Milvus targets import stages ([`fetch`] is their shared
//! read side); a stage itself neither imports nor is searched.

pub(crate) mod dense;
pub mod fetch;
pub mod follow;
pub mod layout;
pub mod manifest;
pub(crate) mod pages;
pub mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use etl_connectors::store::Store;
use etl_engine::{CollectionSchema, Hit, SearchRequest};
use etl_mappings::{ParsedMapping, Plan, TablePlan};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use self::fetch::read_manifest;
use self::follow::Staged;
use self::manifest::{
    FORMAT, MANIFEST, StageManifest, StagedCollection, StagedFile, StagedIndex, rfc3339,
};
use self::writer::{DEFAULT_MAX_FILE_BYTES, StageWriter};
use super::milvus::MilvusTarget;
use super::{
    Admin, Answer, Begun, Checkpoint, CollectionReader, OpenTable, TableSink, Target,
    TargetOptions, closed,
};
use crate::error::PipelineError;
use crate::report::{RunReport, StageSummary};

/// Deletes every object under `rel` (a missing prefix is fine).
async fn clear(store: &Store, rel: &str) -> Result<(), PipelineError> {
    let prefix = store.path(rel);
    let mut listing = store.store.list(Some(&prefix));
    let mut paths = Vec::new();
    while let Some(meta) = listing.next().await {
        match meta {
            Ok(m) => paths.push(m.location),
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => return Err(store.error(rel, e).into()),
        }
    }
    for p in paths {
        match store.store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store.error(p.as_ref(), e).into()),
        }
    }
    Ok(())
}

/// A stage being written.
pub struct StageTarget {
    url: String,
    store: Store,
    /// The Milvus whose rules the files follow.
    milvus: Option<MilvusTarget>,
    /// The same command imports the stage next: collections on the server that the import
    /// would refuse are refused now.
    import_follows: bool,
    mapping: Option<ParsedMapping>,
    opts: TargetOptions,
    /// The collections staged by this run, as their sinks close.
    staged: Arc<Mutex<Vec<StagedCollection>>>,
    /// The entries of a stage being partly restaged (`--tables`) that stay.
    kept: Vec<StagedCollection>,
    started: Instant,
    snapshot: u64,
    /// The id this stage's manifest carries (decided by `begin`, so an import that follows
    /// in the same command records its files under it as they come).
    stage_id: String,
}

impl StageTarget {
    /// The stage at `url`, bound for the Milvus at `for_milvus` when given.
    pub fn new(
        url: &str,
        for_milvus: Option<&str>,
        import_follows: bool,
        mapping: Option<&ParsedMapping>,
        opts: &TargetOptions,
    ) -> Result<Self, PipelineError> {
        Ok(StageTarget {
            url: url.to_string(),
            store: Store::open(url)?,
            milvus: for_milvus.map(|m| MilvusTarget::new(m, Some(url), mapping, opts)),
            import_follows,
            mapping: mapping.cloned(),
            opts: opts.clone(),
            staged: Arc::default(),
            kept: Vec::new(),
            started: Instant::now(),
            snapshot: 0,
            stage_id: String::new(),
        })
    }

    /// Whether NULL scalars are written as their stand-ins: bound for a Milvus without NULLs
    /// (its version is asked once, by `fit`).
    async fn fills_nulls(&self) -> Result<bool, PipelineError> {
        match &self.milvus {
            Some(m) => Ok(!m.holds_nulls().await?),
            None => Ok(false),
        }
    }

    fn not_collections(&self) -> PipelineError {
        let file = self
            .mapping
            .as_ref()
            .map(|m| m.locator.file().to_string())
            .unwrap_or_else(|| self.url.clone());
        PipelineError::Usage {
            message: format!(
                "{file}: the mapping only stages (`target: {{ stage }}`); `etl verify` compares the source with collections, so verify after `etl import`, with a mapping whose target is where the stage was imported"
            ),
        }
    }
}

#[async_trait]
impl Target for StageTarget {
    async fn check(&self, plan: &mut Plan, recreate: bool) -> Result<(), PipelineError> {
        match &self.milvus {
            Some(m) => m.check_via(plan, recreate, self.import_follows).await,
            None => Ok(()),
        }
    }

    async fn fit(&self, tables: &mut [TablePlan]) -> Result<(), PipelineError> {
        if let Some(m) = &self.milvus {
            m.fit(tables).await?;
        }
        Ok(())
    }

    async fn begin(&mut self, tables: &[TablePlan]) -> Result<Begun, PipelineError> {
        self.started = Instant::now();
        if let Some(m) = &self.milvus
            && self.import_follows
            && !self.opts.restart
        {
            // The import after this stage would refuse a collection that is not ours: say so now.
            m.refuse_foreign(tables).await?;
        }
        // Restaging some tables keeps the others' entries of the stage being replaced.
        if self.opts.some_tables
            && let Ok(old) = read_manifest(&self.store).await
        {
            self.kept = old
                .collections
                .into_iter()
                .filter(|c| !tables.iter().any(|t| t.collection == c.name))
                .collect();
        }
        // No manifest while files change: an interrupted stage never names unfinished files.
        match self.store.store.delete(&self.store.path(MANIFEST)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.store.error(MANIFEST, e).into()),
        }
        for t in tables {
            clear(&self.store, &t.collection).await?;
        }
        self.snapshot = super::engine::job::now();
        self.stage_id = format!(
            "stage-{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        follow::tell(
            self.opts.follow.as_ref(),
            Staged::Begun {
                stage_id: self.stage_id.clone(),
            },
        );
        Ok(Begun::default())
    }

    async fn open_table(
        &self,
        table: &TablePlan,
        schema: &CollectionSchema,
    ) -> Result<OpenTable, PipelineError> {
        let writer = StageWriter::new(
            self.store.clone(),
            &table.collection,
            schema.clone(),
            self.opts.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES),
            tokio::runtime::Handle::current(),
        );
        let fill = self.fills_nulls().await?;
        let indexes = crate::schema::index_specs(table)
            .into_iter()
            .map(|(field, spec)| StagedIndex { field, spec })
            .collect();
        let entry = StagedCollection {
            name: table.collection.clone(),
            source_table: table.source.to_string(),
            schema: schema.clone(),
            indexes,
            unique_keys: table.key_is_the_sources(),
            rows: 0,
            files: Vec::new(),
        };
        follow::tell(self.opts.follow.as_ref(), Staged::Opened(entry.clone()));
        Ok(OpenTable {
            checkpoints: Checkpoint::new(),
            sink: Box::new(StageSink {
                writer,
                fill_nulls: fill.then(|| schema.clone()),
                staged: self.staged.clone(),
                entry,
                follow: self.opts.follow.clone(),
                open: HashMap::new(),
            }),
        })
    }

    async fn end(
        &mut self,
        outcome: Result<&mut RunReport, &PipelineError>,
    ) -> Result<(), PipelineError> {
        let Ok(report) = outcome else { return Ok(()) };
        let mut collections =
            std::mem::take(&mut *self.staged.lock().unwrap_or_else(|e| e.into_inner()));
        if self.fills_nulls().await? {
            // The files hold no NULL scalars: say so, so an import does not expect them.
            for c in &mut collections {
                for f in &mut c.schema.fields {
                    if !f.data_type.is_vector() {
                        f.nullable = false;
                    }
                }
            }
        }
        collections.append(&mut self.kept);
        collections.sort_by(|a, b| a.name.cmp(&b.name));
        let stage_id = self.stage_id.clone();
        let files: usize = collections.iter().map(|c| c.files.len()).sum();
        let bytes: u64 = collections
            .iter()
            .flat_map(|c| &c.files)
            .map(|f| f.bytes)
            .sum();
        let manifest = StageManifest {
            format: FORMAT.into(),
            stage_id: stage_id.clone(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            source_snapshot_time: rfc3339(self.snapshot),
            source: self.opts.source.clone(),
            collections,
        };
        let body = serde_json::to_vec_pretty(&manifest).map_err(|e| PipelineError::Internal {
            message: e.to_string(),
        })?;
        self.store
            .store
            .put(&self.store.path(MANIFEST), PutPayload::from(body))
            .await
            .map_err(|e| self.store.error(MANIFEST, e))?;
        follow::tell(self.opts.follow.as_ref(), Staged::Done);
        report.stage = Some(StageSummary {
            url: self.url.clone(),
            stage_id,
            files,
            bytes,
            seconds: self.started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    fn rejects_dir(&self) -> PathBuf {
        super::rejects_beside(self.mapping.as_ref())
    }

    async fn reader(
        &self,
        _table: &mut TablePlan,
        _schema: &CollectionSchema,
        _columns: &[String],
        _projection: &[usize],
    ) -> Result<Option<Box<dyn CollectionReader>>, PipelineError> {
        Err(self.not_collections())
    }

    async fn search(
        &self,
        _collection: &str,
        _request: &SearchRequest,
    ) -> Result<Vec<Vec<Hit>>, PipelineError> {
        Err(self.not_collections())
    }

    async fn administer(&self, _command: &Admin) -> Result<Answer, PipelineError> {
        Err(self.not_collections())
    }
}

/// A collection's staged files as the writer thread hands the ranges over: each open range is
/// encoded and uploaded on a thread of its own ([`RangeFiles`]), its files complete at the
/// range's commit; the sink's close adds the collection to the manifest to be written.
struct StageSink {
    /// The settings every range's writer starts from.
    writer: StageWriter,
    /// The schema whose NULL stand-ins are written, for a Milvus without NULLs.
    fill_nulls: Option<CollectionSchema>,
    staged: Arc<Mutex<Vec<StagedCollection>>>,
    entry: StagedCollection,
    /// The import that follows in the same command, told of each finished file.
    follow: Option<follow::StagedTx>,
    /// The ranges being written.
    open: HashMap<String, RangeFiles>,
}

/// What a range's thread is sent.
enum ToRange {
    Batch(RecordBatch),
    /// The range is read to its end: complete its last file.
    Finish,
}

/// A range's files, written on a thread of its own. Parquet encoding and SHA-256 are most of
/// a stage's CPU; on one writer thread per table they were the stage's critical path (`perf`:
/// the writer busy 8.5 s of a 9 s stage while the readers' core idled), so every range being
/// read has its own.
struct RangeFiles {
    tx: std::sync::mpsc::SyncSender<ToRange>,
    thread: std::thread::JoinHandle<Result<Vec<StagedFile>, PipelineError>>,
}

impl RangeFiles {
    /// Starts the thread writing range `range` with a writer like `writer`.
    fn start(
        writer: &StageWriter,
        range: &str,
        fill_nulls: Option<CollectionSchema>,
    ) -> Result<RangeFiles, PipelineError> {
        // Two batches queued: enough to keep the thread busy, bounded for memory.
        let (tx, rx) = std::sync::mpsc::sync_channel::<ToRange>(2);
        let mut w = writer.like();
        let range = range.to_string();
        let thread = std::thread::Builder::new()
            .name("etl-stage".into())
            .spawn(move || {
                for msg in rx {
                    match msg {
                        ToRange::Batch(batch) => match &fill_nulls {
                            Some(schema) => {
                                w.write(&range, &super::milvus::fill_nulls(&batch, schema)?)?
                            }
                            None => w.write(&range, &batch)?,
                        },
                        ToRange::Finish => {
                            w.finish()?;
                            return Ok(std::mem::take(&mut w.files));
                        }
                    }
                }
                // Dropped without its end (a cancelled run): the last file is left unfinished,
                // as the manifest never names it.
                Ok(Vec::new())
            })?;
        Ok(RangeFiles { tx, thread })
    }

    /// Waits for the thread; its files, or the error it stopped with.
    fn join(self) -> Result<Vec<StagedFile>, PipelineError> {
        drop(self.tx);
        self.thread.join().map_err(|_| PipelineError::Internal {
            message: "a stage writer thread panicked".into(),
        })?
    }

    /// Sends `msg`; a thread that has stopped answers with its error.
    fn send(
        open: &mut HashMap<String, RangeFiles>,
        range: &str,
        msg: ToRange,
    ) -> Result<(), PipelineError> {
        let Some(r) = open.get(range) else {
            return Ok(());
        };
        if r.tx.send(msg).is_err()
            && let Some(r) = open.remove(range)
        {
            r.join()?;
            return Err(closed());
        }
        Ok(())
    }
}

impl StageSink {
    /// Completes range `range`'s files and tells the following import of them.
    fn finish_range(&mut self, range: &str) -> Result<(), PipelineError> {
        RangeFiles::send(&mut self.open, range, ToRange::Finish)?;
        let Some(r) = self.open.remove(range) else {
            return Ok(());
        };
        for file in r.join()? {
            follow::tell(
                self.follow.as_ref(),
                Staged::File {
                    collection: self.entry.name.clone(),
                    file: file.clone(),
                },
            );
            self.entry.files.push(file);
        }
        Ok(())
    }
}

impl TableSink for StageSink {
    fn write(&mut self, range: &str, batch: &RecordBatch) -> Result<(), PipelineError> {
        if !self.open.contains_key(range) {
            let r = RangeFiles::start(&self.writer, range, self.fill_nulls.clone())?;
            self.open.insert(range.to_string(), r);
        }
        RangeFiles::send(&mut self.open, range, ToRange::Batch(batch.clone()))
    }

    fn commit(&mut self, range: &str, _checkpoint: Checkpoint) -> Result<(), PipelineError> {
        self.finish_range(range)
    }

    fn close(mut self: Box<Self>) -> Result<(), PipelineError> {
        let ranges: Vec<String> = self.open.keys().cloned().collect();
        for range in ranges {
            self.finish_range(&range)?;
        }
        follow::tell(
            self.follow.as_ref(),
            Staged::Closed {
                collection: self.entry.name.clone(),
            },
        );
        let mut entry = self.entry;
        entry.files.sort_by(|a, b| a.path.cmp(&b.path));
        entry.rows = entry.files.iter().map(|f| f.rows).sum();
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry);
        Ok(())
    }
}
