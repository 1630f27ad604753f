//! What `etl run` has loaded into a Milvus collection by inserts, kept beside the mapping
//! (`_milvus_jobs/<collection>.json`): the server's collection id, how the table was split, the
//! ranges whose every insert the server acknowledged, and whether the load finished.
//!
//! A run killed mid-way is resumed from it: the acknowledged ranges are skipped and the others
//! read again and written by upsert, so rows a killed range had already sent are replaced, not
//! doubled. An auto-ID collection has no key to upsert by, so its unfinished load starts over.
//! The record is only trusted for the same collection id: a collection dropped and recreated
//! by someone else is not mistaken for ours.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::PipelineError;

/// One collection's load record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadRecord {
    /// The server (its URL as the mapping gives it).
    pub server: String,
    /// The server's id of the collection.
    pub collection_id: i64,
    /// Ranges the table is read in.
    pub ranges: usize,
    /// Ranges whose rows the server acknowledged.
    pub done: BTreeSet<String>,
    /// Whether indexes were built and the collection loaded.
    pub finished: bool,
}

impl LoadRecord {
    /// The record's file for `collection` under `dir`.
    pub fn path(dir: &Path, collection: &str) -> PathBuf {
        dir.join(format!("{collection}.json"))
    }

    /// The record at `path`, if there is a readable one.
    pub fn read(path: &Path) -> Option<LoadRecord> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the record (to a temporary file renamed over the old one, so a kill never
    /// leaves half a record).
    pub fn save(&self, path: &Path) -> Result<(), PipelineError> {
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(self).map_err(|e| PipelineError::Internal {
            message: e.to_string(),
        })?;
        {
            use std::io::Write as _;
            let mut f = fs_err::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        fs_err::rename(&tmp, path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_a_round_trip_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = LoadRecord::path(dir.path(), "docs");
        assert_eq!(LoadRecord::read(&p), None);
        let mut r = LoadRecord {
            server: "http://h:19530".into(),
            collection_id: 42,
            ranges: 4,
            ..Default::default()
        };
        r.done.insert("range/1/4".into());
        r.save(&p).unwrap();
        assert_eq!(LoadRecord::read(&p), Some(r));
        std::fs::write(&p, "{ not json").unwrap();
        assert_eq!(LoadRecord::read(&p), None);
    }
}
