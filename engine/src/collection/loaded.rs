//! A collection in memory: per segment, the scalar columns filters and outputs read, the live
//! mask, and the indexes. Vectors behind a graph or inverted index are read from the segment
//! only if an exact search needs them (a selective filter).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch};
use rayon::prelude::*;

use crate::error::Result;
use crate::filter::Columns;
use crate::index::hnsw::HnswIndex;
use crate::index::ivf::IvfIndex;
use crate::index::scalar::ScalarIndex;
use crate::index::sparse::SparseIndex;
use crate::index::{IndexSpec, IndexType, VectorIndex};
use crate::manifest::{Manifest, SegmentMeta};
use crate::segment::{read_deletes, read_segment, read_vectors};
use crate::vector::VectorData;

/// A loaded collection.
pub struct LoadedCollection {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) segments: Vec<LoadedSegment>,
}

/// One loaded segment.
pub struct LoadedSegment {
    pub(crate) path: PathBuf,
    /// Non-vector columns, in schema order of the non-vector fields.
    pub(crate) scalars: RecordBatch,
    /// Rows not deleted.
    pub(crate) live: Vec<bool>,
    /// How many of `live` are true.
    pub(crate) live_count: usize,
    pub(crate) vectors: HashMap<String, VectorSlot>,
    pub(crate) scalar_indexes: HashMap<String, ScalarIndex>,
}

/// A vector field of a loaded segment.
pub struct VectorSlot {
    /// Column number in the segment file.
    pub(crate) column: usize,
    pub(crate) spec: Option<IndexSpec>,
    /// A graph or inverted index; `None` means exact search.
    pub(crate) index: Option<Box<dyn VectorIndex>>,
    pub(crate) data: OnceLock<VectorData>,
}

impl LoadedCollection {
    pub(crate) fn load(
        _name: &str,
        dir: &Path,
        manifest: Arc<Manifest>,
    ) -> Result<LoadedCollection> {
        let segments = manifest
            .segments
            .par_iter()
            .map(|s| LoadedSegment::load(dir, &manifest, s))
            .collect::<Result<Vec<_>>>()?;
        Ok(LoadedCollection { manifest, segments })
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.segments.iter().map(LoadedSegment::memory_bytes).sum()
    }

    /// Bytes the vector indexes of `field` hold in memory (what a search walks: for HNSW_SQ
    /// the graph and codes, not the full-precision rows only re-ranking reads).
    pub fn index_memory_bytes(&self, field: &str) -> usize {
        self.segments
            .iter()
            .filter_map(|s| s.vectors.get(field))
            .filter_map(|v| v.index.as_ref())
            .map(|i| i.memory_bytes())
            .sum()
    }

    /// The manifest this was loaded from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

impl LoadedSegment {
    fn load(dir: &Path, manifest: &Manifest, meta: &SegmentMeta) -> Result<LoadedSegment> {
        let schema = &manifest.schema;
        let path = dir.join(&meta.file);
        let scalar_cols: Vec<usize> = schema
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.data_type.is_vector())
            .map(|(i, _)| i)
            .collect();
        let scalars = read_segment(&path, Some(scalar_cols))?;
        let deleted: HashSet<u32> = match &meta.deletes {
            Some(f) => read_deletes(&dir.join(f))?.into_iter().collect(),
            None => HashSet::new(),
        };
        let live: Vec<bool> = (0..meta.rows as u32)
            .map(|r| !deleted.contains(&r))
            .collect();
        let mut vectors = HashMap::new();
        let mut scalar_indexes = HashMap::new();
        for (i, f) in schema.fields.iter().enumerate() {
            // An index built with an older spec is stale; search exactly until it is rebuilt.
            let built = meta
                .indexes
                .get(&f.name)
                .filter(|ix| manifest.indexes.get(&f.name) == Some(&ix.spec));
            if f.data_type.is_vector() {
                let spec = built.map(|b| b.spec);
                let index: Option<Box<dyn VectorIndex>> = match (spec.map(|s| s.index_type), built)
                {
                    (Some(IndexType::Hnsw | IndexType::HnswSq), Some(b)) => match b.files.first() {
                        Some(file) => Some(Box::new(HnswIndex::load(
                            &dir.join(file),
                            meta.rows as usize,
                        )?)),
                        None => None,
                    },
                    (Some(IndexType::IvfFlat), Some(b)) => match b.files.first() {
                        Some(file) => Some(Box::new(IvfIndex::load(
                            &dir.join(file),
                            meta.rows as usize,
                        )?)),
                        None => None,
                    },
                    (Some(IndexType::SparseInvertedIndex), Some(b)) => match b.files.first() {
                        Some(file) => Some(Box::new(SparseIndex::load(&dir.join(file))?)),
                        None => None,
                    },
                    _ => None,
                };
                let slot = VectorSlot {
                    column: i,
                    spec,
                    index,
                    data: OnceLock::new(),
                };
                if slot.index.is_none() {
                    // Exact search reads the vectors on every query: load them now.
                    let _ = slot.data.set(read_vectors(&path, i)?);
                }
                vectors.insert(f.name.clone(), slot);
            } else if let Some(b) = built
                && let Some(file) = b.files.first()
            {
                scalar_indexes.insert(f.name.clone(), ScalarIndex::load(&dir.join(file))?);
            }
        }
        let live_count = live.iter().filter(|b| **b).count();
        Ok(LoadedSegment {
            path,
            scalars,
            live,
            live_count,
            vectors,
            scalar_indexes,
        })
    }

    /// The vectors of a field, read from the segment on first use.
    pub(crate) fn vector_data(&self, field: &str) -> Result<&VectorData> {
        let Some(slot) = self.vectors.get(field) else {
            return Err(crate::EngineError::InvalidRequest(format!(
                "`{field}` is not a vector field"
            )));
        };
        if let Some(d) = slot.data.get() {
            return Ok(d);
        }
        let data = read_vectors(&self.path, slot.column)?;
        Ok(slot.data.get_or_init(|| data))
    }

    fn memory_bytes(&self) -> usize {
        self.scalars.get_array_memory_size()
            + self.live.len()
            + self
                .vectors
                .values()
                .map(|v| {
                    v.index.as_ref().map_or(0, |i| i.memory_bytes())
                        + v.data.get().map_or(0, VectorData::memory_bytes)
                })
                .sum::<usize>()
            + self
                .scalar_indexes
                .values()
                .map(ScalarIndex::memory_bytes)
                .sum::<usize>()
    }

    /// Rows in the segment (live or not).
    pub fn rows(&self) -> usize {
        self.live.len()
    }
}

impl Columns for LoadedSegment {
    fn rows(&self) -> usize {
        self.live.len()
    }
    fn column(&self, name: &str) -> Option<&ArrayRef> {
        self.scalars.column_by_name(name)
    }
    fn scalar_index(&self, name: &str) -> Option<&ScalarIndex> {
        self.scalar_indexes.get(name)
    }
}
