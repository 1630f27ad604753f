//! What a run tells: its phases, the observer that draws progress, and the report `etl run`
//! prints. A leaf: the targets, staging and import import it; it imports nothing of the run.

use serde::Serialize;

/// What a table is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Copying rows.
    Reading,
    /// Building indexes.
    Indexing,
    /// Loading the collection into memory.
    Loading,
    /// Finished.
    Done,
}

/// Receives progress; the CLI draws bars or logs lines from it.
pub trait RunObserver: Send + Sync {
    /// A table starts; `estimate` is the catalog's row estimate.
    fn table_started(&self, _table: &str, _estimate: Option<u64>) {}
    /// Rows and bytes read so far for a table.
    fn progress(&self, _table: &str, _rows: u64, _bytes: u64) {}
    /// A table enters a phase.
    fn phase(&self, _table: &str, _phase: Phase) {}
    /// A table is done.
    fn table_finished(&self, _report: &TableReport) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl RunObserver for Silent {}

/// Per-table results (JSON keys are part of `--report`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    /// Source table.
    pub table: String,
    /// Target collection.
    pub collection: String,
    /// Rows read from the source in this run.
    pub rows_read: u64,
    /// Rows written to the collection in this run.
    pub rows_written: u64,
    /// Rows sent to the rejects file in this run.
    pub rows_rejected: u64,
    /// Rows left out on purpose (`on_null: skip`), listed in the rejects file too.
    pub rows_skipped: u64,
    /// COPY bytes read.
    pub bytes: u64,
    /// Wall-clock seconds for the table.
    pub seconds: f64,
    /// rows_read / seconds.
    pub rows_per_s: f64,
    /// Seconds spent building indexes.
    pub index_seconds: f64,
    /// Source ranges in all.
    pub ranges: usize,
    /// Ranges already committed by an earlier, interrupted run.
    pub ranges_resumed: usize,
    /// Rows in the collection at the end.
    pub collection_rows: u64,
    /// The rejects file, when rows were rejected.
    pub rejects_file: Option<String>,
    /// Where the table's time went, by step.
    pub phases: Phases,
}

/// Seconds spent in each step of a table's load. Steps that run in parallel ranges (read, map)
/// are summed over the ranges, so with two readers `read` can exceed the table's wall time;
/// the writer's steps (write, commit) run on one thread per table; merge, index and load come
/// after the rows are in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Phases {
    /// Waiting for the source's batches (reading and decoding COPY data, or staged files).
    pub read: f64,
    /// Mapping batches to the collection's fields (casts, defaults, rejects).
    pub map: f64,
    /// The target writing batches (segments, Parquet, inserts).
    pub write: f64,
    /// Committing ranges with their checkpoints.
    pub commit: f64,
    /// Merging small segments after the load.
    pub merge: f64,
    /// Building indexes.
    pub index: f64,
    /// Loading the collection for search.
    pub load: f64,
}

impl Phases {
    /// Adds `other`'s seconds, phase by phase (the two halves of a staged run).
    pub fn add(&mut self, other: &Phases) {
        self.read += other.read;
        self.map += other.map;
        self.write += other.write;
        self.commit += other.commit;
        self.merge += other.merge;
        self.index += other.index;
        self.load += other.load;
    }
}

/// A step of a table's load, as [`Phases`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// See [`Phases::read`].
    Read,
    /// See [`Phases::map`].
    Map,
    /// See [`Phases::write`].
    Write,
    /// See [`Phases::commit`].
    Commit,
}

/// Adds up the time of the steps that several threads take at once.
#[derive(Debug, Default)]
pub struct StepClock {
    nanos: [std::sync::atomic::AtomicU64; 4],
}

impl StepClock {
    /// Counts `elapsed` for `step`.
    pub fn add(&self, step: Step, elapsed: std::time::Duration) {
        self.nanos[step as usize].fetch_add(
            elapsed.as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Runs `f`, counting its time for `step`.
    pub fn time<T>(&self, step: Step, f: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let out = f();
        self.add(step, started.elapsed());
        out
    }

    /// The seconds counted so far (merge, index and load left at zero).
    pub fn phases(&self) -> Phases {
        let s = |i: usize| self.nanos[i].load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e9;
        Phases {
            read: s(Step::Read as usize),
            map: s(Step::Map as usize),
            write: s(Step::Write as usize),
            commit: s(Step::Commit as usize),
            ..Phases::default()
        }
    }
}

/// Sums over tables.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Rows read.
    pub rows_read: u64,
    /// Rows written.
    pub rows_written: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
    /// Rows skipped on purpose.
    pub rows_skipped: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// rows_read / seconds.
    pub rows_per_s: f64,
}

impl Totals {
    /// The sums over `tables` for a run of `seconds`.
    pub fn of(tables: &[TableReport], seconds: f64) -> Totals {
        let rows_read: u64 = tables.iter().map(|t| t.rows_read).sum();
        Totals {
            rows_read,
            rows_written: tables.iter().map(|t| t.rows_written).sum(),
            rows_rejected: tables.iter().map(|t| t.rows_rejected).sum(),
            rows_skipped: tables.iter().map(|t| t.rows_skipped).sum(),
            bytes: tables.iter().map(|t| t.bytes).sum(),
            seconds,
            rows_per_s: rows_read as f64 / seconds.max(1e-9),
        }
    }
}

/// The report `etl run` prints and writes with `--report`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// The job.
    pub job_id: String,
    /// Whether this run resumed an interrupted one.
    pub resumed: bool,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Per table.
    pub tables: Vec<TableReport>,
    /// Totals.
    pub totals: Totals,
    /// The stage written, when the run staged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageSummary>,
}

impl RunReport {
    /// The report of `tables` (sorted by table) that took `seconds`, with their totals; the
    /// job, resume and stage fields left for the caller.
    pub fn of(mut tables: Vec<TableReport>, seconds: f64) -> RunReport {
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        RunReport {
            totals: Totals::of(&tables, seconds),
            tables,
            ..Default::default()
        }
    }
}

/// What a staging run wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageSummary {
    /// The stage's URL.
    pub url: String,
    /// Its id (imports record their progress under it).
    pub stage_id: String,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Seconds staging took.
    pub seconds: f64,
}
