//! Durable file operations: every commit is write, fsync, rename, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{EngineError, Result};

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one, whole.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp).map_err(EngineError::io("create", &tmp))?;
        f.write_all(bytes).map_err(EngineError::io("write", &tmp))?;
        f.sync_all().map_err(EngineError::io("fsync", &tmp))?;
    }
    fs::rename(&tmp, path).map_err(EngineError::io("rename", path))?;
    sync_dir(dir)
}

/// fsyncs a directory so a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(EngineError::io("open", dir))?;
    d.sync_all().map_err(EngineError::io("fsync", dir))
}

/// fsyncs a finished file.
pub fn sync_file(path: &Path) -> Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(EngineError::io("open", path))?;
    f.sync_all().map_err(EngineError::io("fsync", path))
}

/// Creates a directory and its parents.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(EngineError::io("create directory", dir))
}

/// Total size in bytes of the regular files in a directory (not recursive).
pub fn dir_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
