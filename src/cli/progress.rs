//! Progress bars, one per table, shared by `etl run` and `etl verify`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bars by table name, drawn together on stderr.
pub struct TableBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    template: &'static str,
}

impl TableBars {
    /// Bars drawn with an indicatif `template` (`{prefix}` is the table).
    pub fn new(template: &'static str) -> TableBars {
        TableBars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            template,
        }
    }

    /// A bar for `table`, sized by its row estimate.
    pub fn start(&self, table: &str, estimate: Option<u64>) {
        let bar = self
            .multi
            .add(ProgressBar::new(estimate.unwrap_or(0).max(1)));
        bar.set_style(
            ProgressStyle::with_template(self.template)
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(table.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(table.to_string(), bar);
    }

    /// Runs `f` on `table`'s bar, if it has one.
    pub fn with(&self, table: &str, f: impl FnOnce(&ProgressBar)) {
        if let Some(b) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(table)
        {
            f(b);
        }
    }

    /// Rows done so far (the estimate grows when the table is larger than it said).
    pub fn rows(&self, table: &str, rows: u64) {
        self.with(table, |b| {
            if rows > b.length().unwrap_or(0) {
                b.set_length(rows);
            }
            b.set_position(rows);
        });
    }

    /// Clears `table`'s bar and prints `line` in its place.
    pub fn finish(&self, table: &str, line: Option<String>) {
        if let Some(b) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(table)
        {
            b.finish_and_clear();
            if let Some(l) = line {
                let _ = self.multi.println(l);
            }
        }
    }
}
