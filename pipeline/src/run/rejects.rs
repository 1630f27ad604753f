//! A table's rejects file: JSON lines, one per row the mapping or the reader refused or left
//! out, each naming its source range so a resumed run keeps only the committed ranges' lines.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;

use crate::error::PipelineError;
use crate::map::Reject;

/// The rejects file of a table (JSON lines, each naming its source range).
pub(super) struct RejectsFile {
    path: PathBuf,
    file: Option<std::fs::File>,
    pub(super) lines: u64,
}

impl RejectsFile {
    /// Opens the file, keeping only lines of the ranges in `keep` (committed by an earlier run).
    pub(super) fn open(
        path: PathBuf,
        keep: &HashSet<String>,
    ) -> Result<RejectsFile, PipelineError> {
        let mut lines = 0;
        if let Ok(text) = std::fs::read_to_string(&path) {
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["range"].as_str().map(|r| keep.contains(r)))
                        .unwrap_or(false)
                })
                .collect();
            lines = kept.len() as u64;
            if kept.is_empty() {
                let _ = std::fs::remove_file(&path);
            } else {
                let mut body = kept.join("\n");
                body.push('\n');
                etl_engine::fsutil::atomic_write(&path, body.as_bytes())?;
            }
        }
        Ok(RejectsFile {
            path,
            file: None,
            lines,
        })
    }

    pub(super) fn append(
        &mut self,
        table: &str,
        range: &str,
        rejects: &[Reject],
    ) -> Result<(), PipelineError> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                fs_err::create_dir_all(dir)?;
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display()))
                })?;
            self.file = Some(f);
        }
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        let mut buf = Vec::new();
        for r in rejects {
            let mut v = serde_json::to_value(r).map_err(|e| PipelineError::Internal {
                message: e.to_string(),
            })?;
            v["table"] = serde_json::Value::String(table.to_string());
            v["range"] = serde_json::Value::String(range.to_string());
            buf.extend_from_slice(v.to_string().as_bytes());
            buf.push(b'\n');
        }
        f.write_all(&buf)?;
        f.sync_data()?;
        self.lines += rejects.len() as u64;
        Ok(())
    }
}
