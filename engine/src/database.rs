//! A target directory holding collections, one subdirectory each.

use std::path::{Path, PathBuf};

use crate::collection::Collection;
use crate::error::{EngineError, Result, did_you_mean};
use crate::fsutil;
use crate::manifest::{MANIFEST, Manifest};
use crate::schema::CollectionSchema;

/// The engine's root: a directory of collections.
#[derive(Debug, Clone)]
pub struct Database {
    dir: PathBuf,
}

impl Database {
    /// Opens (creating if needed) a target directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Database> {
        let dir = dir.into();
        fsutil::create_dir_all(&dir)?;
        Ok(Database { dir })
    }

    /// Opens an existing target directory without creating it.
    pub fn open_existing(dir: impl Into<PathBuf>) -> Result<Database> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(EngineError::InvalidRequest(format!(
                "target directory {} does not exist",
                dir.display()
            )));
        }
        Ok(Database { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names of the collections, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(EngineError::io("list", &self.dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(MANIFEST).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Creates a collection; errors if it exists.
    pub fn create_collection(&self, name: &str, schema: CollectionSchema) -> Result<Collection> {
        schema.validate(name)?;
        let dir = self.dir.join(name);
        if dir.join(MANIFEST).is_file() {
            return Err(EngineError::CollectionExists {
                name: name.to_string(),
            });
        }
        fsutil::create_dir_all(&dir)?;
        Manifest::new(schema).write(&dir)?;
        fsutil::sync_dir(&self.dir)?;
        Collection::open(name, dir)
    }

    /// Opens a collection, creating it with `schema` when absent. An existing collection must
    /// have the same schema.
    pub fn ensure_collection(&self, name: &str, schema: CollectionSchema) -> Result<Collection> {
        if self.dir.join(name).join(MANIFEST).is_file() {
            let c = self.collection(name)?;
            if c.schema() != &schema {
                return Err(EngineError::InvalidSchema {
                    collection: name.to_string(),
                    reason: "it already exists with a different schema; drop it first (`etl collections drop`)".into(),
                });
            }
            return Ok(c);
        }
        self.create_collection(name, schema)
    }

    /// Opens an existing collection.
    pub fn collection(&self, name: &str) -> Result<Collection> {
        let dir = self.dir.join(name);
        if !dir.join(MANIFEST).is_file() {
            let names = self.list().unwrap_or_default();
            return Err(EngineError::UnknownCollection {
                name: name.to_string(),
                dir: self.dir.clone(),
                hint: did_you_mean(name, names.iter().map(String::as_str)),
            });
        }
        Collection::open(name, dir)
    }

    /// Deletes a collection and its files. The manifest goes first (a crash mid-delete leaves a
    /// directory that is not a collection), then the directory is renamed into `_trash/` and its
    /// files are deleted on a thread of their own: a run that replaces a large collection
    /// (`--restart`) does not wait for gigabytes of unlinking. Whatever a crash leaves in
    /// `_trash/` is deleted by the next drop.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let c = self.collection(name)?;
        let _lock = c.lock()?;
        let dir = self.dir.join(name);
        std::fs::remove_file(dir.join(MANIFEST))
            .map_err(EngineError::io("remove", dir.join(MANIFEST)))?;
        fsutil::sync_dir(&dir)?;
        let trash = self.dir.join(TRASH);
        fsutil::create_dir_all(&trash)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let gone = trash.join(format!("{name}-{nanos:x}-{}", std::process::id()));
        match std::fs::rename(&dir, &gone) {
            Ok(()) => {
                fsutil::sync_dir(&self.dir)?;
                std::thread::spawn(move || {
                    let _ = std::fs::remove_dir_all(&trash);
                });
                Ok(())
            }
            // Not renamable (another file system under a mount point): deleted here.
            Err(_) => {
                std::fs::remove_dir_all(&dir).map_err(EngineError::io("remove", &dir))?;
                fsutil::sync_dir(&self.dir)
            }
        }
    }
}

/// Where dropped collections wait for their files to be deleted.
const TRASH: &str = "_trash";
