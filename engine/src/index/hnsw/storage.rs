//! The HNSW index file, in the shared layout of [`crate::index::file`]: magic `ETLHNSW1`,
//! nine header words (element: 0 f32, 1 f16, 2 bits, 3 int8 codes; metric; row width in elements, or bytes for
//! bits; nodes; m; entry node; max level; spare layer-0 slots; reserved), then the sections in
//! [`Section`] order. Opening checks sizes, alignment and every link, then never parses again.

use std::path::Path;

use crate::error::Result;
use crate::index::file::{self, MappedFile};
use crate::vector::Metric;

const MAGIC: &[u8; 8] = b"ETLHNSW1";
const WORDS: usize = 9;
const SECTIONS: usize = 10;

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
    /// SQ8 only: f32 per dimension, the smallest value.
    SqMin,
    /// SQ8 only: f32 per dimension, the step of one code.
    SqScale,
    /// SQ8 only: the full-precision f32 rows, read to re-rank hits.
    Raw,
}

/// How rows are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Element {
    F32 = 0,
    F16 = 1,
    Bits = 2,
    /// int8 codes (HNSW_SQ).
    Sq8 = 3,
}

impl Element {
    fn from_u32(v: u32) -> Option<Element> {
        [Element::F32, Element::F16, Element::Bits, Element::Sq8]
            .into_iter()
            .find(|e| *e as u32 == v)
    }

    /// Bytes per element of a row.
    pub fn size(self) -> usize {
        match self {
            Element::F32 => 4,
            Element::F16 => 2,
            Element::Bits | Element::Sq8 => 1,
        }
    }
}

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
    let metric = file::metric_word(h.metric);
    let words = [
        h.element as u32,
        metric,
        h.width as u32,
        h.nodes as u32,
        h.m as u32,
        h.entry,
        u32::from(h.max_level),
        h.spare as u32,
        0,
    ];
    file::write(path, MAGIC, &words, &sections)
}

/// A mapped index file, checked.
pub(crate) struct Mapped {
    file: MappedFile,
    pub header: Header,
}

impl Mapped {
    /// Maps and checks `path`; `segment_rows` bounds the row numbers it may name.
    pub fn open(path: &Path, segment_rows: usize) -> Result<Mapped> {
        let file = MappedFile::open(path, MAGIC, WORDS, SECTIONS)?;
        let element =
            Element::from_u32(file.word(0)).ok_or_else(|| file.corrupt("bad element".into()))?;
        let metric =
            file::metric_of_word(file.word(1)).ok_or_else(|| file.corrupt("bad metric".into()))?;
        let header = Header {
            element,
            metric,
            width: file.word(2) as usize,
            nodes: file.word(3) as usize,
            m: file.word(4) as usize,
            entry: file.word(5),
            max_level: file.word(6).min(255) as u8,
            spare: file.word(7) as usize,
        };
        let me = Mapped { file, header };
        me.check(segment_rows).map_err(|r| me.file.corrupt(r))?;
        Ok(me)
    }

    /// The bytes of a section.
    pub fn bytes(&self, s: Section) -> &[u8] {
        self.file.bytes(s as usize)
    }

    /// A section of u32 words.
    pub fn words(&self, s: Section) -> &[u32] {
        self.file.values(s as usize)
    }

    /// A section of f32 values.
    pub fn floats(&self, s: Section) -> &[f32] {
        self.file.values(s as usize)
    }

    /// A section of u16 values.
    pub fn halves(&self, s: Section) -> &[u16] {
        self.file.values(s as usize)
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.file.len()
    }

    fn check(&self, segment_rows: usize) -> std::result::Result<(), String> {
        let h = &self.header;
        let n = h.nodes;
        let (m, m0) = (h.m, 2 * h.m + h.spare);
        let sized =
            |s: Section, elem: usize, count: usize| self.file.sized(s as usize, elem, count);
        sized(Section::Rows, 4, n)?;
        sized(Section::Levels, 1, n)?;
        sized(Section::UpperOffsets, 4, n + 1)?;
        sized(Section::Layer0, 4, n * (m0 + 1))?;
        sized(Section::Vectors, h.element.size(), n * h.width)?;
        if h.metric == Metric::Cosine {
            sized(Section::InvNorms, 4, n)?;
        } else {
            sized(Section::InvNorms, 4, 0)?;
        }
        let sq = h.element == Element::Sq8;
        sized(Section::SqMin, 4, if sq { h.width } else { 0 })?;
        sized(Section::SqScale, 4, if sq { h.width } else { 0 })?;
        sized(Section::Raw, 4, if sq { n * h.width } else { 0 })?;
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
