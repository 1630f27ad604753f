//! Verify's memory bound: each side's rows as (key, fingerprint) records, written to bucket
//! files by a hash of the key, so the two sides are compared one bucket at a time (a grace
//! hash join). Memory is one bucket's target entries, whatever the table's size; the disk
//! holds a few dozen bytes per row and side, in a temporary directory removed afterwards.
//!
//! Every target can be read this way, in any order (the engine's segments, Milvus' pages, a
//! Postgres table's parallel ranges): nothing needs the rows sorted by key.

use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::PipelineError;

/// Target rows per bucket the count of buckets aims at.
const ROWS_PER_BUCKET: u64 = 200_000;
/// Bucket counts: enough for small tables to stay small, few enough to keep the open files
/// and their buffers modest.
const MIN_BUCKETS: usize = 16;
const MAX_BUCKETS: usize = 512;
/// Each bucket file's write buffer.
const BUFFER: usize = 32 << 10;

fn io(what: &str, e: std::io::Error) -> PipelineError {
    PipelineError::Internal {
        message: format!("verify's spill files ({what}): {e}"),
    }
}

/// How many buckets for a table of about `rows` rows.
pub(super) fn bucket_count(rows: Option<u64>) -> usize {
    let wanted = rows.unwrap_or(0) / ROWS_PER_BUCKET;
    (wanted as usize).clamp(MIN_BUCKETS, MAX_BUCKETS)
}

/// The bucket of `key`: a fixed hash, the same on both sides.
fn bucket_of(key: &[u8], buckets: usize) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % buckets
}

/// One side's bucket files, being written by several readers at once.
pub(super) struct Spill {
    paths: Vec<PathBuf>,
    files: Vec<Mutex<BufWriter<File>>>,
}

impl Spill {
    /// `buckets` empty files named `side-N` in `dir`.
    pub(super) fn create(
        dir: &std::path::Path,
        side: &str,
        buckets: usize,
    ) -> Result<Spill, PipelineError> {
        let mut paths = Vec::with_capacity(buckets);
        let mut files = Vec::with_capacity(buckets);
        for b in 0..buckets {
            let path = dir.join(format!("{side}-{b}"));
            let f = File::create(&path).map_err(|e| io("creating", e))?;
            files.push(Mutex::new(BufWriter::with_capacity(BUFFER, f)));
            paths.push(path);
        }
        Ok(Spill { paths, files })
    }

    /// Adds one row's record to its bucket.
    pub(super) fn push(&self, key: &[u8], fingerprint: u128) -> Result<(), PipelineError> {
        let b = bucket_of(key, self.files.len());
        let mut f = self.files[b].lock().unwrap_or_else(|e| e.into_inner());
        let len = u32::try_from(key.len()).map_err(|_| PipelineError::Internal {
            message: "a key longer than 4 GiB".into(),
        })?;
        f.write_all(&len.to_le_bytes())
            .and_then(|()| f.write_all(key))
            .and_then(|()| f.write_all(&fingerprint.to_le_bytes()))
            .map_err(|e| io("writing", e))
    }

    /// Flushes every bucket; their paths, by bucket.
    pub(super) fn finish(&self) -> Result<Vec<PathBuf>, PipelineError> {
        for f in &self.files {
            f.lock()
                .unwrap_or_else(|e| e.into_inner())
                .flush()
                .map_err(|e| io("flushing", e))?;
        }
        Ok(self.paths.clone())
    }
}

/// Reads a bucket file's records in order.
pub(super) fn read_bucket(
    path: &std::path::Path,
    mut each: impl FnMut(&[u8], u128),
) -> Result<(), PipelineError> {
    let f = File::open(path).map_err(|e| io("reading", e))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut len = [0u8; 4];
    let mut key = Vec::new();
    let mut fp = [0u8; 16];
    loop {
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(io("reading", e)),
        }
        key.resize(u32::from_le_bytes(len) as usize, 0);
        r.read_exact(&mut key).map_err(|e| io("reading", e))?;
        r.read_exact(&mut fp).map_err(|e| io("reading", e))?;
        each(&key, u128::from_le_bytes(fp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_from_the_bucket_their_key_hashes_to() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::create(dir.path(), "t", 4).unwrap();
        for i in 0u32..100 {
            spill.push(&i.to_be_bytes(), u128::from(i) * 3).unwrap();
        }
        spill.push(b"", 7).unwrap();
        let paths = spill.finish().unwrap();
        let mut seen = Vec::new();
        for (b, p) in paths.iter().enumerate() {
            read_bucket(p, |k, fp| {
                assert_eq!(bucket_of(k, 4), b);
                seen.push((k.to_vec(), fp));
            })
            .unwrap();
        }
        seen.sort();
        assert_eq!(seen.len(), 101);
        assert_eq!(seen[0], (Vec::new(), 7));
        assert!(seen.contains(&(42u32.to_be_bytes().to_vec(), 126)));
        assert_eq!(bucket_count(None), MIN_BUCKETS);
        assert_eq!(bucket_count(Some(5_000_000)), 25);
        assert_eq!(bucket_count(Some(u64::MAX)), MAX_BUCKETS);
    }
}
