//! `etl run` and `etl jobs`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use etl_pipeline::route::TargetUrl;
use etl_pipeline::{Admin, Phase, RunObserver, RunOptions, RunReport, TableReport};

use super::progress::TableBars;
use super::{Format, out};

/// Arguments of `etl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The mapping file.
    pub mapping: PathBuf,
    /// Only these tables (source or collection names), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<String>>,
    /// Rows per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Concurrent readers and tables.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Copy at most this many rows per table (a test migration).
    #[arg(long)]
    pub row_limit: Option<u64>,
    /// Read and map a sample (the first 1000 rows, or --row-limit), write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Resume the last unfinished run of this mapping (the default when there is one).
    #[arg(long, conflicts_with = "restart")]
    pub resume: bool,
    /// Start over: drop the collections (in Milvus too: `--recreate`) and ignore an unfinished run.
    #[arg(long, alias = "recreate")]
    pub restart: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Format of the final report on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let opts = RunOptions {
        tables: a.tables.clone(),
        batch_size: a.batch_size,
        parallelism: a.parallelism,
        row_limit: a.row_limit,
        dry_run: a.dry_run,
        resume: a.resume,
        restart: a.restart,
        ..RunOptions::default()
    };
    let report = etl_pipeline::run(&a.mapping, &opts, observer(a.quiet), ctrl_c()).await?;
    // --quiet: nothing on success, unless the caller asked for the JSON report on stdout.
    let format = (!a.quiet || a.format == Format::Json).then_some(a.format);
    print_report(&report, format, a.report.as_deref())?;
    Ok(ExitCode::SUCCESS)
}

/// Bars on a terminal, log lines otherwise, nothing with --quiet.
pub(super) fn observer(quiet: bool) -> Arc<dyn RunObserver> {
    if quiet {
        Arc::new(etl_pipeline::Silent)
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bars::new())
    } else {
        Arc::new(LogLines::default())
    }
}

/// Resolves on Ctrl-C.
pub(super) async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Prints the report (and writes it to `file`).
/// Writes the report to `file` when given, and to stdout in `format` unless that is `None`.
pub(super) fn print_report(
    report: &RunReport,
    format: Option<Format>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if let Some(path) = file {
        fs_err::write(path, serde_json::to_vec_pretty(report)?)?;
    }
    match format {
        Some(Format::Json) => out(&format!("{}\n", serde_json::to_string_pretty(report)?))?,
        Some(Format::Table) => out(&summary(report))?,
        None => {}
    }
    Ok(())
}

fn summary(r: &RunReport) -> String {
    let mut s = format!(
        "{}job {}{}\n{:<32} {:<24} {:>10} {:>10} {:>9} {:>9} {:>10} {:>9}\n",
        if r.dry_run {
            "dry run (nothing written), "
        } else {
            ""
        },
        r.job_id,
        if r.resumed { " (resumed)" } else { "" },
        "table",
        "collection",
        "read",
        "written",
        "rejected",
        "MB",
        "rows/s",
        "index s"
    );
    for t in &r.tables {
        s.push_str(&format!(
            "{:<32} {:<24} {:>10} {:>10} {:>9} {:>9.1} {:>10.0} {:>9.2}\n",
            t.table,
            t.collection,
            t.rows_read,
            t.rows_written,
            t.rows_rejected,
            t.bytes as f64 / 1e6,
            t.rows_per_s,
            t.index_seconds
        ));
        let p = &t.phases;
        s.push_str(&format!(
            "  phases (s): read {:.2}  map {:.2}  write {:.2}  commit {:.2}  merge {:.2}  index {:.2}  load {:.2}\n",
            p.read, p.map, p.write, p.commit, p.merge, p.index, p.load
        ));
        if t.rows_skipped > 0 {
            s.push_str(&format!(
                "  skipped: {} rows with a NULL where the field cannot hold one (on_null: skip)\n",
                t.rows_skipped
            ));
        }
        if let Some(f) = &t.rejects_file {
            s.push_str(&format!("  rejects: {f}\n"));
        }
        if t.ranges_resumed > 0 {
            s.push_str(&format!(
                "  resumed: {} of {} ranges (or staged files) were already loaded\n",
                t.ranges_resumed, t.ranges
            ));
        }
    }
    if let Some(st) = &r.stage {
        s.push_str(&format!(
            "staged: {} files, {:.1} MB to {} ({}) in {:.2} s\n",
            st.files,
            st.bytes as f64 / 1e6,
            st.url,
            st.stage_id,
            st.seconds
        ));
    }
    let tt = &r.totals;
    s.push_str(&format!(
        "total: {} rows read, {} written, {} rejected, {:.1} MB in {:.2} s ({:.0} rows/s)\n",
        tt.rows_read,
        tt.rows_written,
        tt.rows_rejected,
        tt.bytes as f64 / 1e6,
        tt.seconds,
        tt.rows_per_s
    ));
    s
}

/// A progress bar per table on a terminal.
struct Bars(TableBars);

impl Bars {
    fn new() -> Bars {
        Bars(TableBars::new(
            "{prefix:<28} {msg:<9} [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}",
        ))
    }
}

impl RunObserver for Bars {
    fn table_started(&self, table: &str, estimate: Option<u64>) {
        self.0.start(table, estimate);
    }
    fn progress(&self, table: &str, rows: u64, _bytes: u64) {
        self.0.rows(table, rows);
    }
    fn phase(&self, table: &str, phase: Phase) {
        self.0.with(table, |b| {
            b.set_message(format!("{phase:?}").to_lowercase());
            if phase == Phase::Indexing {
                b.set_position(0);
            }
        });
    }
    fn table_finished(&self, r: &TableReport) {
        let line = format!(
            "{}: {} rows written, {} rejected, {:.1} s",
            r.table, r.rows_written, r.rows_rejected, r.seconds
        );
        self.0.finish(&r.table, Some(line));
    }
}

/// A log line per table every few seconds when stderr is not a terminal.
#[derive(Default)]
struct LogLines {
    last: Mutex<HashMap<String, Instant>>,
}

impl LogLines {
    fn line(&self, text: String) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}

impl RunObserver for LogLines {
    fn table_started(&self, table: &str, estimate: Option<u64>) {
        self.line(format!(
            "{table}: started (about {} rows)",
            estimate.unwrap_or(0)
        ));
    }
    fn progress(&self, table: &str, rows: u64, bytes: u64) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let due = last
            .get(table)
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
        if due {
            last.insert(table.to_string(), Instant::now());
            drop(last);
            self.line(format!(
                "{table}: {rows} rows, {:.1} MB",
                bytes as f64 / 1e6
            ));
        }
    }
    fn phase(&self, table: &str, phase: Phase) {
        self.line(format!("{table}: {}", format!("{phase:?}").to_lowercase()));
    }
    fn table_finished(&self, r: &TableReport) {
        self.line(format!(
            "{}: done, {} rows written, {} rejected, {:.1} s",
            r.table, r.rows_written, r.rows_rejected, r.seconds
        ));
    }
}

/// Arguments of `etl jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub what: JobsCommand,
}

/// Job commands.
#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// List the runs recorded in a target directory, or the table loads recorded on a
    /// Postgres target (its `etl` schema).
    List {
        /// The engine's target directory, or a Postgres target (`postgres://…`).
        #[arg(long)]
        target: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one run.
    Show {
        /// The job id.
        id: String,
        /// The engine's target directory.
        #[arg(long)]
        target: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub fn jobs(a: JobsArgs) -> anyhow::Result<ExitCode> {
    match a.what {
        JobsCommand::List { target, format } => {
            let target = TargetUrl::parse(&target);
            let answer =
                super::block_on(async { etl_pipeline::administer(&target, &Admin::Jobs).await })?;
            out(match format {
                Format::Json => &answer.json,
                Format::Table => &answer.table,
            })?;
        }
        JobsCommand::Show { id, target, format } => {
            let j = etl_pipeline::show_job(&target, &id)?;
            match format {
                Format::Json => out(&format!("{}\n", serde_json::to_string_pretty(&j)?))?,
                Format::Table => {
                    let mut s = format!(
                        "job {}\nstate {:?}\nmapping {}\nstarted {}\n",
                        j.id, j.state, j.mapping, j.started_at
                    );
                    if let Some(f) = j.finished_at {
                        s.push_str(&format!("finished {f}\n"));
                    }
                    if let Some(e) = &j.error {
                        s.push_str(&format!("error {e}\n"));
                    }
                    if let Some(r) = &j.report {
                        s.push_str(&format!("report {}\n", serde_json::to_string_pretty(r)?));
                    }
                    out(&s)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
