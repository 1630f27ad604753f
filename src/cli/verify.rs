//! `etl verify`: source and target compared row by row; exit 0 only when every table matches.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use etl_pipeline::verify::{TableVerify, VerifyObserver, VerifyOptions, VerifyReport, verify};

use super::progress::TableBars;
use super::{Format, out};

/// Arguments of `etl verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The mapping file of the run to verify.
    pub mapping: PathBuf,
    /// Only these tables (source or collection names), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<String>>,
    /// Concurrent source readers and segment scans.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Differences listed per table.
    #[arg(long, default_value_t = 5)]
    pub max_differences: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Exit code when the tables differ (1, like `diff`); errors use their own codes.
const DIFFERENT: u8 = 1;

pub async fn run(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let opts = VerifyOptions {
        tables: a.tables,
        parallelism: a.parallelism,
        max_differences: a.max_differences,
    };
    let observer: Arc<dyn VerifyObserver> = if std::io::stderr().is_terminal() {
        Arc::new(Bars::default())
    } else {
        Arc::new(etl_pipeline::Silent)
    };
    let report = verify(&a.mapping, &opts, observer).await?;
    match a.format {
        Format::Json => out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?,
        Format::Table => out(&text(&report))?,
    }
    Ok(if report.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DIFFERENT)
    })
}

fn text(r: &VerifyReport) -> String {
    let mut s = String::new();
    for t in &r.tables {
        let status = if t.counts.clean() { "ok" } else { "DIFFERENT" };
        s.push_str(&format!(
            "{} → {} [{status}, by {}]: {}\n",
            t.table, t.collection, t.keyed_by, t.counts
        ));
        for d in &t.differences {
            let kind = serde_json::to_value(d.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            s.push_str(&format!("  {kind} {}", d.key));
            if let Some(n) = &d.note {
                s.push_str(&format!(" ({n})"));
            }
            s.push('\n');
            for c in &d.columns {
                s.push_str(&format!(
                    "    {}: source {} ≠ target {}\n",
                    c.column, c.source, c.target
                ));
            }
        }
        let shown = t.differences.len() as u64;
        let total = t.counts.missing + t.counts.mismatch + t.counts.extraneous;
        if total > shown {
            s.push_str(&format!("  … and {} more\n", total - shown));
        }
    }
    let bad = r.tables.iter().filter(|t| !t.counts.clean()).count();
    if bad == 0 {
        s.push_str(&format!("verified: {} tables match\n", r.tables.len()));
    } else {
        s.push_str(&format!(
            "verify failed: {bad} of {} tables differ\n",
            r.tables.len()
        ));
    }
    s
}

/// A progress bar per table on a terminal, cleared when the table is done.
struct Bars(TableBars);

impl Default for Bars {
    fn default() -> Bars {
        Bars(TableBars::new(
            "verifying {prefix:<28} [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}",
        ))
    }
}

impl VerifyObserver for Bars {
    fn table_started(&self, table: &str, estimate: Option<u64>) {
        self.0.start(table, estimate);
    }
    fn progress(&self, table: &str, rows: u64) {
        self.0.rows(table, rows);
    }
    fn table_finished(&self, r: &TableVerify) {
        self.0.finish(&r.table, None);
    }
}
