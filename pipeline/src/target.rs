//! The contract every destination of a run implements, and the one place that knows which
//! implementations exist.
//!
//! A run ([`crate::run`]) reads a table's ranges, maps them and hands the batches to one writer
//! thread; everything it does to a destination goes through a [`Target`], and everything the
//! writer thread does through that target's [`TableSink`]. `etl plan` asks the same target
//! what it would refuse ([`Target::check`]), `etl verify` reads the collections back through
//! it ([`Target::reader`]), `etl import` loads a stage through it ([`Target::import`]), and
//! `etl search` and `etl collections` use it too. The run, plan, verify and the CLI name no
//! target: [`open`] turns a [`Destination`] into one, and that match is the only one.
//!
//! # The order of calls
//!
//! [`open`] has no side effects: a target touches its destination from `check`, `fit` or
//! `begin` on. A run calls
//!
//! 1. [`Target::fit`] once, with every table of the run, before anything is read. It refuses
//!    (with [`PipelineError::NeedsFixes`]) exactly what [`Target::check`] reports as a required
//!    fix, by the same code, and adjusts the plans to the destination (a server without NULL
//!    vectors gets non-nullable vector fields).
//! 2. [`Target::begin`] once: decides for each table whether what the destination already holds
//!    is resumed, replaced (`restart`) or refused (someone else's), and records the job.
//! 3. For each table (several at once, each from its own task) [`Target::open_table`] once: the
//!    collection created or reopened, the checkpoints committed by earlier runs (the ranges
//!    that are in), and a [`TableSink`]. The sink moves to the writer thread, which calls
//!    [`TableSink::write`] for each mapped batch of a range and [`TableSink::commit`] when the
//!    range is read to its end, with the range's checkpoint; a committed range must survive a
//!    crash and be among the checkpoints the next `open_table` returns. [`TableSink::close`]
//!    once the table's ranges are all committed. Then [`Target::finish_table`] once: indexes,
//!    load, the destination's row count. When the source data turns out unreadable (a corrupt
//!    dump), [`Target::discard_table`] instead: running again cannot get further.
//! 4. [`Target::end`] once, whatever happened: with the report on success (the target adds its
//!    job id or stage summary), or with the error, [`PipelineError::Cancelled`] after Ctrl-C.
//!    A cancelled run drops its sinks without `close`: what was committed stays, the rest is
//!    read again by the next run.
//!
//! A dry run is a target too ([`dry::DryRun`]): it fits like the real one and writes nothing.
//!
//! # Adding a target
//!
//! A folder under `target/` with a type implementing [`Target`] (and its sink, reader and
//! importer), a [`Destination`] variant and its row in [`crate::route`]'s table, a mapping
//! field in `etl-mappings`, and its arm in [`open`]. Nothing in run, plan, verify or the CLI.

pub mod dry;
pub mod engine;
pub mod milvus;
pub mod postgres;
pub mod stage;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use etl_connectors::dump::DumpArchive;
use etl_engine::{CollectionSchema, Hit, SearchRequest};
use etl_mappings::{ParsedMapping, Plan, TablePlan};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::error::PipelineError;
use crate::report::{RunObserver, RunReport, Step, StepClock, TableReport};
use crate::route::{Destination, TargetUrl};

/// What a range's commit records, by key: `range/<p>/<n>` for a committed range and
/// [`RANGES_KEY`] for the number of ranges the table was split into.
pub type Checkpoint = BTreeMap<String, serde_json::Value>;

/// The checkpoint key that fixes a table's range count, so a resumed run splits it the same way.
pub const RANGES_KEY: &str = "ranges";

/// What a target is opened with, besides its destination.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// `--restart` / `--recreate`: replace what is there instead of resuming or refusing.
    pub restart: bool,
    /// Only some of the mapping's tables run (`--tables`).
    pub some_tables: bool,
    /// Largest staged file.
    pub max_file_bytes: Option<u64>,
    /// Rows per segment the engine writes and merges to.
    pub max_segment_rows: u64,
    /// What the run reads, as reports name it (passwords redacted).
    pub source: String,
    /// The source dump, already opened, when the run reads one: a target that restores
    /// definitions (a Postgres target) reads them from it.
    pub dump: Option<Arc<DumpArchive>>,
    /// A stage tells the import that follows it in the same command what it has written
    /// ([`stage::follow`]).
    pub follow: Option<stage::follow::StagedTx>,
}

/// What [`Target::begin`] found.
#[derive(Debug, Clone, Default)]
pub struct Begun {
    /// An earlier, unfinished run is being resumed.
    pub resumed: bool,
}

/// A table opened for writing.
pub struct OpenTable {
    /// What earlier runs committed (empty for a new table).
    pub checkpoints: Checkpoint,
    /// Where this run's rows go; moved to the writer thread.
    pub sink: Box<dyn TableSink>,
}

/// What a target's sink is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Feed {
    /// Batches mapped to the collection schema.
    #[default]
    Mapped,
    /// The source columns the plan reads, each as its binary COPY field bytes (`Binary`),
    /// undecoded and unmapped: for a destination that speaks Postgres' own wire format.
    Wire,
}

/// One destination of a run. See the module docs for the order of calls.
#[async_trait]
pub trait Target: Send + Sync {
    /// What the sink is given (mapped batches unless the target says otherwise).
    fn feed(&self) -> Feed {
        Feed::Mapped
    }

    /// Adds to `plan`'s tables what this destination cannot hold (required fixes, which
    /// [`Target::fit`] refuses) and what it changes (suggestions). `recreate` plans for a run
    /// with `--recreate`.
    async fn check(&self, _plan: &mut Plan, _recreate: bool) -> Result<(), PipelineError> {
        Ok(())
    }

    /// Refuses what the destination cannot hold and fits the tables to it, before any read.
    async fn fit(&self, _tables: &mut [TablePlan]) -> Result<(), PipelineError> {
        Ok(())
    }

    /// Starts the run on the destination: resume, replace or refuse what is there.
    async fn begin(&mut self, tables: &[TablePlan]) -> Result<Begun, PipelineError>;

    /// Creates or reopens a table's collection.
    async fn open_table(
        &self,
        table: &TablePlan,
        schema: &CollectionSchema,
    ) -> Result<OpenTable, PipelineError>;

    /// After every range is committed and the sink closed: indexes, load and the destination's
    /// row count, into `report`.
    async fn finish_table(
        &self,
        _table: &TablePlan,
        _report: &mut TableReport,
        _observer: Arc<dyn RunObserver>,
    ) -> Result<(), PipelineError> {
        Ok(())
    }

    /// Drops what was written of a table whose source data is unreadable.
    async fn discard_table(&self, _table: &TablePlan) -> Result<(), PipelineError> {
        Ok(())
    }

    /// Ends the run: completes `report` on success, records the outcome either way.
    async fn end(
        &mut self,
        _outcome: Result<&mut RunReport, &PipelineError>,
    ) -> Result<(), PipelineError> {
        Ok(())
    }

    /// Where a table's rejects file goes.
    fn rejects_dir(&self) -> PathBuf;

    /// A reader of a table's collection for `etl verify`: `None` when there is no collection.
    /// `columns` are the compared fields in order, `projection` their indices in `schema`.
    async fn reader(
        &self,
        table: &mut TablePlan,
        schema: &CollectionSchema,
        columns: &[String],
        projection: &[usize],
    ) -> Result<Option<Box<dyn CollectionReader>>, PipelineError>;

    /// Loads the stage at `stage` into this destination (`etl import`, and the second half of
    /// a staged run). `replace_own` lets collections imported from an earlier stage at the same
    /// URL be replaced.
    async fn import(
        &self,
        stage: &str,
        _opts: &ImportOptions,
        _observer: Arc<dyn RunObserver>,
        _cancel: BoxFuture<'static, ()>,
    ) -> Result<RunReport, PipelineError> {
        Err(PipelineError::Usage {
            message: format!(
                "{stage}: a stage is imported into the engine or Milvus, not into this destination"
            ),
        })
    }

    /// The import that follows a stage in the same command (`target: { stage, … }`), told what
    /// the stage writes as it writes it (`staged`). By default it waits until the stage is
    /// complete and imports it whole; a destination that can load a file at a time overrides
    /// this to import each file as soon as it is complete and checked.
    async fn import_following(
        &self,
        stage: &str,
        mut staged: stage::follow::StagedRx,
        opts: &ImportOptions,
        observer: Arc<dyn RunObserver>,
        cancel: BoxFuture<'static, ()>,
    ) -> Result<RunReport, PipelineError> {
        stage::follow::until_done(&mut staged).await?;
        self.import(stage, opts, observer, cancel).await
    }

    /// `etl search`: the nearest rows of a collection.
    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<Vec<Hit>>, PipelineError>;

    /// `etl collections`: a command on the destination's collections.
    async fn administer(&self, command: &Admin) -> Result<Answer, PipelineError>;
}

/// A command of `etl collections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// The collections there.
    List,
    /// A collection's schema, rows, indexes and load state.
    Describe(String),
    /// Load a collection for search.
    Load(String),
    /// Release a loaded collection.
    Release(String),
    /// Delete a collection.
    Drop(String),
    /// The loads recorded there (`etl jobs list`).
    Jobs,
}

/// What an `etl collections` command prints, in each `--format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `--format json`.
    pub json: String,
    /// `--format table`.
    pub table: String,
}

/// Where a table's rows go, on the writer thread (the engine is synchronous; async targets
/// block on their runtime handle here).
pub trait TableSink: Send {
    /// Writes a mapped batch of range `range`.
    fn write(&mut self, range: &str, batch: &RecordBatch) -> Result<(), PipelineError>;
    /// Makes range `range`'s rows durable together with `checkpoint`.
    fn commit(&mut self, range: &str, checkpoint: Checkpoint) -> Result<(), PipelineError>;
    /// After the last commit.
    fn close(self: Box<Self>) -> Result<(), PipelineError>;
    /// Where rows the destination itself refuses go (the table's rejects file, counted against
    /// its `max_rejects`); a sink that can refuse rows calls it before the range's commit.
    fn report_rejects_to(&mut self, _to: RejectRows) {}
}

/// Records rejected rows of a range (see [`TableSink::report_rejects_to`]); fails once the
/// table's `max_rejects` is passed.
pub type RejectRows =
    Arc<dyn Fn(&str, Vec<crate::map::Reject>) -> Result<(), PipelineError> + Send + Sync>;

/// A collection read back for `etl verify`.
#[async_trait]
pub trait CollectionReader: Send + Sync {
    /// Source rows as the destination stores them (mapped rows in, the rows written out).
    fn as_stored(&self, batch: RecordBatch) -> Result<RecordBatch, PipelineError> {
        Ok(batch)
    }

    /// Whether JSON comes back re-serialized, so it is compared parsed.
    fn reserializes_json(&self) -> bool {
        false
    }

    /// Reads the compared columns of every row, calling `each` for each batch (from several
    /// threads at once where the destination reads in parallel) until it returns `true`.
    /// Returns the rows read.
    async fn scan(&self, parallelism: usize, each: EachBatch) -> Result<u64, PipelineError>;

    /// Rows the destination holds beyond the `read` a full scan returned (a server that counts
    /// rows sharing a key that its paging returns once).
    async fn surplus(&self, _read: u64) -> Result<u64, PipelineError> {
        Ok(0)
    }
}

/// What [`CollectionReader::scan`] calls for each batch; `true` stops the scan.
pub type EachBatch = Arc<dyn Fn(&RecordBatch) -> Result<bool, PipelineError> + Send + Sync>;

/// Options of `etl import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Only these collections.
    pub collections: Option<Vec<String>>,
    /// Files fetched and decoded at once (default 2).
    pub parallelism: Option<usize>,
    /// Drop and recreate collections that exist with other data.
    pub recreate: bool,
    /// Replace collections imported from an earlier stage at the same URL (a staged run
    /// stages again).
    pub replace_own: bool,
}

/// The target for a destination. The one match on the kind of destination.
pub fn open(
    destination: &Destination,
    mapping: Option<&ParsedMapping>,
    opts: &TargetOptions,
) -> Result<Box<dyn Target>, PipelineError> {
    Ok(match destination {
        Destination::Engine(dir) => Box::new(engine::EngineTarget::new(dir, mapping, opts)),
        Destination::Milvus(url) => Box::new(milvus::MilvusTarget::new(url, None, mapping, opts)),
        Destination::Postgres(url) => Box::new(postgres::PostgresTarget::new(url, mapping, opts)?),
        Destination::Stage {
            url,
            for_milvus,
            import_follows,
        } => Box::new(stage::StageTarget::new(
            url,
            for_milvus.as_deref(),
            *import_follows,
            mapping,
            opts,
        )?),
    })
}

/// `etl import`: the stage at `stage` into the destination named on the command line.
pub async fn import(
    stage: &str,
    target: &TargetUrl,
    opts: &ImportOptions,
    observer: Arc<dyn RunObserver>,
    cancel: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<RunReport, PipelineError> {
    use futures::FutureExt;
    open(&target.destination(), None, &TargetOptions::default())?
        .import(stage, opts, observer, cancel.boxed())
        .await
}

/// `etl search`: the nearest rows of a collection at the destination named on the command line.
pub async fn search(
    target: &TargetUrl,
    collection: &str,
    request: &SearchRequest,
) -> Result<Vec<Vec<Hit>>, PipelineError> {
    open(&target.destination(), None, &TargetOptions::default())?
        .search(collection, request)
        .await
}

/// `etl collections`: `command` on the destination named on the command line.
pub async fn administer(target: &TargetUrl, command: &Admin) -> Result<Answer, PipelineError> {
    open(&target.destination(), None, &TargetOptions::default())?
        .administer(command)
        .await
}

/// The rejects directory beside the mapping file (for targets that are not a directory).
fn rejects_beside(mapping: Option<&ParsedMapping>) -> PathBuf {
    match mapping {
        Some(m) => crate::source::beside(m, "_rejects"),
        None => PathBuf::from("_rejects"),
    }
}

/// A message to a table's writer thread.
pub(crate) enum WriterMsg {
    /// A batch of a range.
    Write(String, RecordBatch),
    /// A range read to its end: commit it, then answer.
    Commit(
        String,
        Checkpoint,
        oneshot::Sender<Result<(), PipelineError>>,
    ),
}

/// The writer thread's loop: drives `sink` from `rx` until every sender is gone, then closes
/// it. A failed commit is answered to the range that asked and ends the loop.
pub(crate) fn drive(
    mut sink: Box<dyn TableSink>,
    rx: &mut mpsc::Receiver<WriterMsg>,
    clock: &StepClock,
) -> Result<(), PipelineError> {
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            WriterMsg::Write(range, batch) => {
                clock.time(Step::Write, || sink.write(&range, &batch))?
            }
            WriterMsg::Commit(range, checkpoint, reply) => {
                let r = clock.time(Step::Commit, || sink.commit(&range, checkpoint));
                let failed = r.is_err();
                let _ = reply.send(r);
                if failed {
                    return Ok(());
                }
            }
        }
    }
    clock.time(Step::Commit, || sink.close())
}

/// A table's writer thread, driving its sink from a bounded channel.
pub(crate) struct WriterThread(std::thread::JoinHandle<Result<(), PipelineError>>);

impl WriterThread {
    /// Spawns the thread that drives `sink`, counting its steps on `clock`; returns the channel
    /// the ranges send on (a few batches deep: backpressure on the readers).
    pub(crate) fn spawn(
        sink: Box<dyn TableSink>,
        clock: Arc<StepClock>,
    ) -> (mpsc::Sender<WriterMsg>, WriterThread) {
        let (tx, mut rx) = mpsc::channel::<WriterMsg>(4);
        let handle = std::thread::spawn(move || drive(sink, &mut rx, &clock));
        (tx, WriterThread(handle))
    }

    /// Waits for the thread, once every sender is dropped; its error, if it failed.
    pub(crate) fn join(self) -> Result<(), PipelineError> {
        self.0.join().map_err(|_| PipelineError::Internal {
            message: "writer thread panicked".into(),
        })?
    }
}

/// The error a range gets when the writer thread is gone.
pub(crate) fn closed() -> PipelineError {
    PipelineError::Internal {
        message: "the collection writer stopped".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that records what the writer thread asked of it, failing the commit of `fail`.
    struct Recording {
        log: Arc<Mutex<Vec<String>>>,
        fail: Option<&'static str>,
    }

    impl TableSink for Recording {
        fn write(&mut self, range: &str, batch: &RecordBatch) -> Result<(), PipelineError> {
            let line = format!("write {range} {}", batch.num_rows());
            self.log.lock().unwrap().push(line);
            Ok(())
        }
        fn commit(&mut self, range: &str, checkpoint: Checkpoint) -> Result<(), PipelineError> {
            if self.fail == Some(range) {
                return Err(PipelineError::Internal {
                    message: format!("no room for {range}"),
                });
            }
            let keys: Vec<&String> = checkpoint.keys().collect();
            self.log
                .lock()
                .unwrap()
                .push(format!("commit {range} {keys:?}"));
            Ok(())
        }
        fn close(self: Box<Self>) -> Result<(), PipelineError> {
            self.log.lock().unwrap().push("close".into());
            Ok(())
        }
    }

    fn batch(rows: i32) -> RecordBatch {
        use datafusion::arrow::array::Int32Array;
        RecordBatch::try_from_iter([("id", Arc::new(Int32Array::from_iter_values(0..rows)) as _)])
            .unwrap()
    }

    /// What [`drive_with`] saw: the sink's log, the answers to the commits, the thread's result.
    type Driven = (Vec<String>, Vec<Result<(), String>>, Result<(), String>);

    /// Runs `drive` on a thread, sending the messages a table's ranges send.
    fn drive_with(fail: Option<&'static str>) -> Driven {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Box::new(Recording {
            log: log.clone(),
            fail,
        });
        let (tx, writer) = WriterThread::spawn(sink, Arc::new(StepClock::default()));
        let mut answers = Vec::new();
        for range in ["range/0/2", "range/1/2"] {
            if tx
                .blocking_send(WriterMsg::Write(range.into(), batch(3)))
                .is_err()
            {
                break;
            }
            let (reply, wait) = oneshot::channel();
            let cp = Checkpoint::from([(range.to_string(), serde_json::json!({"rows": 3}))]);
            if tx
                .blocking_send(WriterMsg::Commit(range.into(), cp, reply))
                .is_err()
            {
                break;
            }
            match wait.blocking_recv() {
                Ok(r) => answers.push(r.map_err(|e| e.to_string())),
                Err(_) => break,
            }
        }
        drop(tx);
        let result = writer.join().map_err(|e| e.to_string());
        let log = log.lock().unwrap().clone();
        (log, answers, result)
    }

    /// Each range is written, then committed with its checkpoint, and the sink is closed once
    /// after the last commit.
    #[test]
    fn the_writer_loop_writes_commits_and_closes_in_order() {
        let (log, answers, result) = drive_with(None);
        assert_eq!(
            log,
            [
                "write range/0/2 3",
                "commit range/0/2 [\"range/0/2\"]",
                "write range/1/2 3",
                "commit range/1/2 [\"range/1/2\"]",
                "close"
            ]
        );
        assert_eq!(answers, [Ok(()), Ok(())]);
        assert_eq!(result, Ok(()));
    }

    /// A failed commit is answered to the range that asked, and nothing is written or closed
    /// after it: the run fails on that answer, the next run reads the range again.
    #[test]
    fn a_failed_commit_is_answered_and_stops_the_writer() {
        let (log, answers, result) = drive_with(Some("range/0/2"));
        assert_eq!(log, ["write range/0/2 3"]);
        assert_eq!(answers.len(), 1);
        assert!(
            answers[0]
                .as_ref()
                .unwrap_err()
                .contains("no room for range/0/2")
        );
        assert_eq!(result, Ok(()));
    }
}
