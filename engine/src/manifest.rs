//! The manifest: the one file that says what a collection is.
//!
//! Segment, delete and index files are immutable and named uniquely; a commit writes the new
//! files, fsyncs them, then replaces `manifest.json` atomically. Whatever the manifest does not
//! name is garbage from an interrupted write and is removed the next time a writer opens the
//! collection. So a crash at any moment leaves the last committed state whole.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::fsutil;
use crate::index::IndexSpec;
use crate::schema::CollectionSchema;

/// File name of the manifest inside a collection directory.
pub const MANIFEST: &str = "manifest.json";

/// Format version written into every manifest.
pub const FORMAT_VERSION: u32 = 1;

/// What a collection is at one committed version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format of this file.
    pub format: u32,
    /// Incremented by every commit.
    pub version: u64,
    /// The schema.
    pub schema: CollectionSchema,
    /// Live segments, oldest first.
    pub segments: Vec<SegmentMeta>,
    /// Index definitions by field name.
    #[serde(default)]
    pub indexes: BTreeMap<String, IndexSpec>,
    /// Next segment number.
    pub next_segment: u64,
    /// Next auto-ID value.
    pub next_auto_id: i64,
    /// Opaque key/value state committed with the data (the pipeline's checkpoints).
    #[serde(default)]
    pub checkpoints: BTreeMap<String, serde_json::Value>,
}

/// One immutable segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Segment number, unique in the collection.
    pub id: u64,
    /// Arrow IPC file with the rows.
    pub file: String,
    /// Rows in the file.
    pub rows: u64,
    /// Bytes of the file.
    pub bytes: u64,
    /// File listing deleted row offsets (sorted little-endian u32), if any row is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletes: Option<String>,
    /// Number of deleted rows.
    #[serde(default)]
    pub deleted: u64,
    /// Index files by field name.
    #[serde(default)]
    pub indexes: BTreeMap<String, IndexFiles>,
}

impl SegmentMeta {
    /// Rows not deleted.
    pub fn live_rows(&self) -> u64 {
        self.rows - self.deleted
    }
}

/// The files of one index of one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexFiles {
    /// The files, relative to the collection directory.
    pub files: Vec<String>,
    /// The spec it was built with (a rebuilt spec makes these stale).
    pub spec: IndexSpec,
    /// Seconds the build took.
    #[serde(default)]
    pub build_seconds: f64,
}

impl Manifest {
    /// A new, empty collection.
    pub fn new(schema: CollectionSchema) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            version: 0,
            schema,
            segments: Vec::new(),
            indexes: BTreeMap::new(),
            next_segment: 1,
            next_auto_id: 1,
            checkpoints: BTreeMap::new(),
        }
    }

    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let bytes = std::fs::read(&path).map_err(EngineError::io("read", &path))?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if m.format != FORMAT_VERSION {
            return Err(EngineError::Corrupt {
                path,
                reason: format!("format {} is not {FORMAT_VERSION}", m.format),
            });
        }
        Ok(m)
    }

    /// Writes `dir/manifest.json` atomically (write, fsync, rename, fsync the directory).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| EngineError::Corrupt {
            path: dir.join(MANIFEST),
            reason: e.to_string(),
        })?;
        fsutil::atomic_write(&dir.join(MANIFEST), &bytes)
    }

    /// Every file the manifest refers to.
    pub fn referenced_files(&self) -> std::collections::HashSet<String> {
        let mut out = std::collections::HashSet::new();
        for s in &self.segments {
            out.insert(s.file.clone());
            out.extend(s.deletes.iter().cloned());
            for ix in s.indexes.values() {
                out.extend(ix.files.iter().cloned());
            }
        }
        out
    }

    /// Live rows in all segments.
    pub fn live_rows(&self) -> u64 {
        self.segments.iter().map(SegmentMeta::live_rows).sum()
    }
}
