//! A collection: its directory, manifest, write lock and load state.
//!
//! Readers see the manifest they opened; writers take an exclusive file lock, write new
//! immutable files and swap the manifest. Loading reads segments, delete files and indexes
//! into memory once; search loads on demand.

mod build;
mod loaded;
mod merge;
mod scan;
mod search;
mod write;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub use build::IndexProgress;
pub use loaded::LoadedCollection;
pub use merge::{MergePolicy, MergeStats};
pub use scan::SegmentScan;
pub use search::{Hit, QueryRequest, SearchRequest};
pub use write::{BulkWriter, CommitStats};

use crate::error::{EngineError, Result};
use crate::manifest::{MANIFEST, Manifest};
use crate::schema::CollectionSchema;

/// Where a collection's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum LoadState {
    /// On disk only.
    Unloaded,
    /// Being read into memory.
    Loading,
    /// Indexes and filter columns in memory.
    Loaded,
}

/// A handle on one collection; cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct Collection {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    dir: PathBuf,
    /// Fixed at creation; kept apart from the manifest so it can be borrowed.
    schema: CollectionSchema,
    manifest: RwLock<Arc<Manifest>>,
    loaded: Mutex<Slot>,
}

struct Slot {
    state: LoadState,
    data: Option<Arc<LoadedCollection>>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.inner.name)
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// The exclusive write lock of a collection; released on drop.
pub struct WriteLock {
    _file: File,
}

const LOCK: &str = ".lock";
const STATE: &str = "state.json";

impl Collection {
    pub(crate) fn open(name: &str, dir: PathBuf) -> Result<Collection> {
        let manifest = Manifest::read(&dir)?;
        Ok(Collection {
            inner: Arc::new(Inner {
                name: name.to_string(),
                dir,
                schema: manifest.schema.clone(),
                manifest: RwLock::new(Arc::new(manifest)),
                loaded: Mutex::new(Slot {
                    state: LoadState::Unloaded,
                    data: None,
                }),
            }),
        })
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The collection's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The manifest as last committed or read.
    pub fn manifest(&self) -> Arc<Manifest> {
        self.inner
            .manifest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The schema.
    pub fn schema(&self) -> &CollectionSchema {
        &self.inner.schema
    }

    /// Live rows.
    pub fn count_rows(&self) -> u64 {
        self.manifest().live_rows()
    }

    /// Re-reads the manifest from disk (after another process committed).
    pub fn refresh(&self) -> Result<()> {
        let m = Manifest::read(&self.inner.dir)?;
        self.set_manifest(m);
        Ok(())
    }

    fn set_manifest(&self, m: Manifest) {
        *self
            .inner
            .manifest
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(m);
        // Loaded data describe the old version; the next search loads again.
        let mut slot = self.slot();
        if slot.data.is_some() {
            slot.data = None;
            slot.state = LoadState::Unloaded;
        }
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.inner.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the exclusive write lock, or fails at once if another process holds it.
    pub fn lock(&self) -> Result<WriteLock> {
        let path = self.inner.dir.join(LOCK);
        let file = File::create(&path).map_err(EngineError::io("create", &path))?;
        match file.try_lock() {
            Ok(()) => Ok(WriteLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(EngineError::Locked {
                name: self.inner.name.clone(),
                path,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(EngineError::Io {
                op: "lock",
                path,
                source: e,
            }),
        }
    }

    /// Removes files the manifest does not name: leftovers of an interrupted load or build.
    /// Call with the write lock held.
    pub(crate) fn collect_garbage(&self, _lock: &WriteLock) -> Result<()> {
        let m = Manifest::read(&self.inner.dir)?;
        let keep = m.referenced_files();
        let rd =
            std::fs::read_dir(&self.inner.dir).map_err(EngineError::io("list", &self.inner.dir))?;
        for e in rd.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().to_string();
            if name == MANIFEST || name == LOCK || name == STATE || keep.contains(&name) {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(&p);
            } else {
                std::fs::remove_file(&p).map_err(EngineError::io("remove", &p))?;
            }
        }
        self.set_manifest(m);
        Ok(())
    }

    /// Where the collection's data is now, in this process.
    pub fn load_state(&self) -> LoadState {
        self.slot().state
    }

    /// Whether the user asked for this collection to be kept loaded (`etl collections load`).
    pub fn wants_loaded(&self) -> bool {
        std::fs::read(self.inner.dir.join(STATE))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("loaded").and_then(|l| l.as_bool()))
            .unwrap_or(false)
    }

    fn set_wants_loaded(&self, loaded: bool) -> Result<()> {
        let bytes =
            serde_json::to_vec(&serde_json::json!({ "loaded": loaded })).unwrap_or_default();
        crate::fsutil::atomic_write(&self.inner.dir.join(STATE), &bytes)
    }

    /// Loads segments, deletes and indexes into memory (a no-op when loaded) and records that
    /// the collection should stay loaded.
    pub fn load(&self) -> Result<Arc<LoadedCollection>> {
        let data = self.ensure_loaded()?;
        self.set_wants_loaded(true)?;
        Ok(data)
    }

    /// Frees the memory of a loaded collection.
    pub fn release(&self) -> Result<()> {
        {
            let mut slot = self.slot();
            slot.data = None;
            slot.state = LoadState::Unloaded;
        }
        self.set_wants_loaded(false)
    }

    /// The loaded data, loading on demand.
    pub fn ensure_loaded(&self) -> Result<Arc<LoadedCollection>> {
        let mut slot = self.slot();
        if let Some(d) = &slot.data {
            return Ok(d.clone());
        }
        slot.state = LoadState::Loading;
        let manifest = self.manifest();
        match LoadedCollection::load(&self.inner.name, &self.inner.dir, manifest) {
            Ok(d) => {
                let d = Arc::new(d);
                slot.data = Some(d.clone());
                slot.state = LoadState::Loaded;
                Ok(d)
            }
            Err(e) => {
                slot.state = LoadState::Unloaded;
                Err(e)
            }
        }
    }

    /// Bytes the loaded collection holds, if loaded.
    pub fn loaded_memory(&self) -> Option<usize> {
        self.slot().data.as_ref().map(|d| d.memory_bytes())
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        crate::fsutil::dir_size(&self.inner.dir)
    }
}
