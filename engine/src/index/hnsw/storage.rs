//! The index file: a fixed header, then 64-byte aligned sections of little-endian words that
//! the loaded index reads in place from a memory map. Opening checks sizes, alignment and
//! every link, then never parses again.
//!
//! ```text
//! 0    magic "ETLHNSW1"
//! 8    u32 × 9: version, element (0 f32, 1 f16, 2 bits), metric, row width (elements, or
//!      bytes for bits), nodes, m, entry node, max level, spare layer-0 slots
//! 44   u64 × 2 per section (offset, length), for the sections in `Section` order
//! …    sections, each at a multiple of 64
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{EngineError, Result};
use crate::vector::Metric;

const MAGIC: &[u8; 8] = b"ETLHNSW1";
const VERSION: u32 = 1;
const SECTIONS: usize = 7;
const TABLE_AT: usize = 8 + 9 * 4;
const HEADER: usize = TABLE_AT + SECTIONS * 16;
const ALIGN: usize = 64;

/// The sections, in file order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Section {
    /// u32 per node: the segment row it stands for.
    Rows = 0,
    /// u8 per node: its level.
    Levels,
    /// u32 per node + 1: where its upper-layer lists start.
    UpperOffsets,
    /// u32 × (2m + spare + 1) per node.
    Layer0,
    /// u32 × (m + 1) per node and upper level.
    Upper,
    /// The rows: f32, binary16 bit patterns or packed bits.
    Vectors,
    /// COSINE only: f32 1/‖row‖ per node.
    InvNorms,
}

/// How rows are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Element {
    F32 = 0,
    F16 = 1,
    Bits = 2,
}

impl Element {
    fn from_u32(v: u32) -> Option<Element> {
        [Element::F32, Element::F16, Element::Bits]
            .into_iter()
            .find(|e| *e as u32 == v)
    }

    /// Bytes per element of a row.
    pub fn size(self) -> usize {
        match self {
            Element::F32 => 4,
            Element::F16 => 2,
            Element::Bits => 1,
        }
    }
}

const METRICS: [Metric; 5] = [
    Metric::L2,
    Metric::Ip,
    Metric::Cosine,
    Metric::Hamming,
    Metric::Jaccard,
];

/// The header's numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub element: Element,
    pub metric: Metric,
    /// Elements per row (bytes for bits).
    pub width: usize,
    pub nodes: usize,
    pub m: usize,
    pub entry: u32,
    pub max_level: u8,
    /// Layer-0 slots beyond `2·m`.
    pub spare: usize,
}

/// Writes an index file and fsyncs it.
pub(crate) fn write(path: &Path, h: &Header, sections: [&[u8]; SECTIONS]) -> Result<u64> {
    let io = |op| EngineError::io(op, path);
    let file = File::create(path).map_err(io("create"))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut head = Vec::with_capacity(HEADER);
    head.extend_from_slice(MAGIC);
    let metric = METRICS.iter().position(|m| *m == h.metric).unwrap_or(0) as u32;
    for v in [
        VERSION,
        h.element as u32,
        metric,
        h.width as u32,
        h.nodes as u32,
        h.m as u32,
        h.entry,
        u32::from(h.max_level),
        h.spare as u32,
    ] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    let mut at = HEADER.next_multiple_of(ALIGN);
    for s in &sections {
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

/// A mapped index file, checked.
pub(crate) struct Mapped {
    map: Mmap,
    pub header: Header,
    ranges: [(usize, usize); SECTIONS],
}

impl Mapped {
    /// Maps and checks `path`; `segment_rows` bounds the row numbers it may name.
    pub fn open(path: &Path, segment_rows: usize) -> Result<Mapped> {
        let file = File::open(path).map_err(EngineError::io("open", path))?;
        let map = map_file(&file, path)?;
        let corrupt = |reason: String| EngineError::Corrupt {
            path: PathBuf::from(path),
            reason,
        };
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err(corrupt("not an HNSW index file of this version".into()));
        }
        let word = |i: usize| {
            let at = 8 + i * 4;
            u32::from_le_bytes([map[at], map[at + 1], map[at + 2], map[at + 3]])
        };
        if word(0) != VERSION {
            return Err(corrupt(format!(
                "index format {} is not {VERSION}",
                word(0)
            )));
        }
        let element = Element::from_u32(word(1)).ok_or_else(|| corrupt("bad element".into()))?;
        let metric = *METRICS
            .get(word(2) as usize)
            .ok_or_else(|| corrupt("bad metric".into()))?;
        let header = Header {
            element,
            metric,
            width: word(3) as usize,
            nodes: word(4) as usize,
            m: word(5) as usize,
            entry: word(6),
            max_level: word(7).min(255) as u8,
            spare: word(8) as usize,
        };
        let mut ranges = [(0usize, 0usize); SECTIONS];
        for (i, r) in ranges.iter_mut().enumerate() {
            let at = TABLE_AT + i * 16;
            let num = |a: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&map[a..a + 8]);
                u64::from_le_bytes(b) as usize
            };
            let (off, len) = (num(at), num(at + 8));
            if off % ALIGN != 0 || off.checked_add(len).is_none_or(|end| end > map.len()) {
                return Err(corrupt(format!("section {i} lies outside the file")));
            }
            *r = (off, len);
        }
        let me = Mapped {
            map,
            header,
            ranges,
        };
        me.check(segment_rows).map_err(corrupt)?;
        Ok(me)
    }

    /// The bytes of a section.
    pub fn bytes(&self, s: Section) -> &[u8] {
        let (off, len) = self.ranges[s as usize];
        &self.map[off..off + len]
    }

    /// A section of u32 words.
    pub fn words(&self, s: Section) -> &[u32] {
        bytemuck::try_cast_slice(self.bytes(s)).unwrap_or(&[])
    }

    /// A section of f32 values.
    pub fn floats(&self, s: Section) -> &[f32] {
        bytemuck::try_cast_slice(self.bytes(s)).unwrap_or(&[])
    }

    /// A section of u16 values.
    pub fn halves(&self, s: Section) -> &[u16] {
        bytemuck::try_cast_slice(self.bytes(s)).unwrap_or(&[])
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn check(&self, segment_rows: usize) -> std::result::Result<(), String> {
        let h = &self.header;
        let n = h.nodes;
        let (m, m0) = (h.m, 2 * h.m + h.spare);
        let sized = |s: Section, elem: usize, count: usize| -> std::result::Result<(), String> {
            let len = self.bytes(s).len();
            if len != elem * count {
                return Err(format!(
                    "section {s:?} has {len} bytes, expected {}",
                    elem * count
                ));
            }
            if elem > 1 && !(self.bytes(s).as_ptr() as usize).is_multiple_of(elem) {
                return Err(format!("section {s:?} is not aligned"));
            }
            Ok(())
        };
        sized(Section::Rows, 4, n)?;
        sized(Section::Levels, 1, n)?;
        sized(Section::UpperOffsets, 4, n + 1)?;
        sized(Section::Layer0, 4, n * (m0 + 1))?;
        sized(Section::Vectors, h.element.size(), n * h.width)?;
        let norms = self.bytes(Section::InvNorms).len();
        if h.metric == Metric::Cosine {
            sized(Section::InvNorms, 4, n)?;
        } else if norms != 0 {
            return Err("norms stored for a metric that has none".into());
        }
        if n > 0 && h.entry as usize >= n {
            return Err(format!("entry node {} of {n}", h.entry));
        }
        if self
            .words(Section::Rows)
            .iter()
            .any(|&r| r as usize >= segment_rows)
        {
            return Err(format!(
                "a row number beyond the segment's {segment_rows} rows"
            ));
        }
        let levels = self.bytes(Section::Levels);
        let offs = self.words(Section::UpperOffsets);
        let upper = self.words(Section::Upper);
        for i in 0..n {
            let want = u64::from(levels[i]) * (m as u64 + 1);
            if u64::from(offs[i + 1]) < u64::from(offs[i])
                || u64::from(offs[i + 1] - offs[i]) != want
            {
                return Err(format!("node {i}'s upper lists are out of place"));
            }
        }
        if offs.last().copied().unwrap_or(0) as usize != upper.len() {
            return Err("upper lists do not fill their section".into());
        }
        let lists_ok = |words: &[u32], cap: usize| {
            words.chunks_exact(cap + 1).all(|b| {
                (b[0] as usize) <= cap && b[1..=b[0] as usize].iter().all(|&t| (t as usize) < n)
            })
        };
        if !lists_ok(self.words(Section::Layer0), m0) || !lists_ok(upper, m) {
            return Err("a neighbour list names a node that does not exist".into());
        }
        Ok(())
    }
}

#[expect(
    unsafe_code,
    reason = "mapping a file: the index files are written once, fsynced and never modified in \
              place (a rebuild writes a new file under a new name), so the mapping cannot change \
              under the reader"
)]
fn map_file(file: &File, path: &Path) -> Result<Mmap> {
    // SAFETY: see the reason above; a truncated file is caught by the size checks.
    unsafe { Mmap::map(file) }.map_err(EngineError::io("map", path))
}
