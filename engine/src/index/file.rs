//! The layout every vector index file shares: a magic, a few header words, then 64-byte aligned
//! sections of little-endian values that the loaded index reads in place from a memory map.
//! Opening maps and bounds-checks the file; each index kind then checks its own sections once
//! and never parses again.
//!
//! ```text
//! 0        magic, 8 bytes (names the kind and its format version)
//! 8        u32 × words: the kind's header words
//! 8 + 4w   u64 × 2 per section (offset, length)
//! …        sections, each at a multiple of 64
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{EngineError, Result};
use crate::vector::Metric;

const ALIGN: usize = 64;

/// Metrics as header words store them (the position in this list).
const METRICS: [Metric; 5] = [
    Metric::L2,
    Metric::Ip,
    Metric::Cosine,
    Metric::Hamming,
    Metric::Jaccard,
];

/// A metric as a header word.
pub(crate) fn metric_word(m: Metric) -> u32 {
    METRICS.iter().position(|x| *x == m).unwrap_or(0) as u32
}

/// The metric a header word names.
pub(crate) fn metric_of_word(w: u32) -> Option<Metric> {
    METRICS.get(w as usize).copied()
}

/// Writes an index file (header words, then sections) and fsyncs it; returns its size.
pub(crate) fn write(
    path: &Path,
    magic: &[u8; 8],
    words: &[u32],
    sections: &[&[u8]],
) -> Result<u64> {
    let io = |op| EngineError::io(op, path);
    let file = File::create(path).map_err(io("create"))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let header = 8 + 4 * words.len() + 16 * sections.len();
    let mut head = Vec::with_capacity(header);
    head.extend_from_slice(magic);
    for v in words {
        head.extend_from_slice(&v.to_le_bytes());
    }
    let mut at = header.next_multiple_of(ALIGN);
    for s in sections {
        head.extend_from_slice(&(at as u64).to_le_bytes());
        head.extend_from_slice(&(s.len() as u64).to_le_bytes());
        at = (at + s.len()).next_multiple_of(ALIGN);
    }
    w.write_all(&head).map_err(io("write"))?;
    let mut pos = head.len();
    let zeros = [0u8; ALIGN];
    for s in sections {
        let pad = pos.next_multiple_of(ALIGN) - pos;
        w.write_all(&zeros[..pad]).map_err(io("write"))?;
        w.write_all(s).map_err(io("write"))?;
        pos += pad + s.len();
    }
    let file = w.into_inner().map_err(|e| EngineError::Io {
        op: "flush",
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io("fsync"))?;
    Ok(pos as u64)
}

/// A mapped index file whose header and section table are in bounds.
pub(crate) struct MappedFile {
    map: Mmap,
    path: PathBuf,
    words: Vec<u32>,
    ranges: Vec<(usize, usize)>,
}

impl MappedFile {
    /// Maps `path`, expecting `magic`, `words` header words and `sections` sections.
    pub fn open(path: &Path, magic: &[u8; 8], words: usize, sections: usize) -> Result<MappedFile> {
        let file = File::open(path).map_err(EngineError::io("open", path))?;
        let map = map_file(&file, path)?;
        let corrupt = |reason: String| EngineError::Corrupt {
            path: PathBuf::from(path),
            reason,
        };
        let header = 8 + 4 * words + 16 * sections;
        if map.len() < header || &map[..8] != magic {
            return Err(corrupt(format!(
                "not an index file of this kind and version ({})",
                String::from_utf8_lossy(magic)
            )));
        }
        let word = |at: usize| u32::from_le_bytes([map[at], map[at + 1], map[at + 2], map[at + 3]]);
        let head: Vec<u32> = (0..words).map(|i| word(8 + 4 * i)).collect();
        let mut ranges = Vec::with_capacity(sections);
        for i in 0..sections {
            let at = 8 + 4 * words + 16 * i;
            let num = |a: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&map[a..a + 8]);
                u64::from_le_bytes(b) as usize
            };
            let (off, len) = (num(at), num(at + 8));
            if off % ALIGN != 0 || off.checked_add(len).is_none_or(|end| end > map.len()) {
                return Err(corrupt(format!("section {i} lies outside the file")));
            }
            ranges.push((off, len));
        }
        Ok(MappedFile {
            map,
            path: path.to_path_buf(),
            words: head,
            ranges,
        })
    }

    /// Header word `i`.
    pub fn word(&self, i: usize) -> u32 {
        self.words.get(i).copied().unwrap_or(0)
    }

    /// The bytes of section `i`.
    pub fn bytes(&self, i: usize) -> &[u8] {
        let (off, len) = self.ranges.get(i).copied().unwrap_or((0, 0));
        &self.map[off..off + len]
    }

    /// Section `i` as values of `T` (empty when its length or alignment does not fit `T`;
    /// [`MappedFile::sized`] checks both when the file is opened).
    pub fn values<T: bytemuck::Pod>(&self, i: usize) -> &[T] {
        bytemuck::try_cast_slice(self.bytes(i)).unwrap_or(&[])
    }

    /// Checks that section `i` holds exactly `count` values of `elem` bytes, aligned for them.
    pub fn sized(&self, i: usize, elem: usize, count: usize) -> std::result::Result<(), String> {
        let b = self.bytes(i);
        if b.len() != elem * count {
            return Err(format!(
                "section {i} has {} bytes, expected {}",
                b.len(),
                elem * count
            ));
        }
        if elem > 1 && !(b.as_ptr() as usize).is_multiple_of(elem) {
            return Err(format!("section {i} is not aligned"));
        }
        Ok(())
    }

    /// A corrupt-file error for this file.
    pub fn corrupt(&self, reason: String) -> EngineError {
        EngineError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[expect(
    unsafe_code,
    reason = "mapping a file: index files are written once, fsynced and never modified in \
              place (a rebuild writes a new file under a new name), so the mapping cannot change \
              under the reader"
)]
fn map_file(file: &File, path: &Path) -> Result<Mmap> {
    // SAFETY: see the reason above; a truncated file is caught by the bounds checks.
    unsafe { Mmap::map(file) }.map_err(EngineError::io("map", path))
}
