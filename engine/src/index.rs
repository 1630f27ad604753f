//! Indexes: specs, the [`VectorIndex`] trait every vector index implements, and exact search.
//!
//! Indexes are built per segment after a load, written beside the segment and named in the
//! manifest, so opening a collection never rebuilds one. Search and storage only see the trait:
//! swapping the HNSW implementation touches `index/hnsw.rs` alone.

/// The layout shared by vector index files (mapped, not parsed).
pub(crate) mod file;
/// HNSW, the engine's own (modelled on hnswlib).
pub mod hnsw;
/// IVF_FLAT: k-means lists scanned exactly.
pub mod ivf;
/// STL_SORT and INVERTED.
pub mod scalar;
/// SPARSE_INVERTED_INDEX.
pub mod sparse;
#[cfg(test)]
pub(crate) mod testdata;

use serde::{Deserialize, Serialize};

pub use ivf::IvfParams;

use crate::error::{EngineError, Result};
use crate::schema::{Field, FieldType};
use crate::vector::{Metric, QueryVector, VectorData};

pub use etl_types::{HnswParams, IndexType};

/// An index definition for one field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IndexSpec {
    /// The kind.
    pub index_type: IndexType,
    /// The metric (vector indexes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// HNSW parameters (HNSW only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw: Option<HnswParams>,
    /// IVF parameters (IVF_FLAT only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ivf: Option<IvfParams>,
}

impl IndexSpec {
    /// Checks the spec against the field it indexes; fills the default metric.
    pub fn checked_for(mut self, field: &Field) -> Result<IndexSpec> {
        let t = field.data_type;
        let bad = |why: String| {
            EngineError::InvalidRequest(format!(
                "index {} on `{}` ({t}): {why}",
                self.index_type, field.name
            ))
        };
        let ok_type = match self.index_type {
            IndexType::Flat => t.is_vector(),
            IndexType::HnswSq => matches!(t, FieldType::FloatVector | FieldType::Float16Vector),
            IndexType::Hnsw | IndexType::IvfFlat => matches!(
                t,
                FieldType::FloatVector | FieldType::Float16Vector | FieldType::BinaryVector
            ),
            IndexType::SparseInvertedIndex => t == FieldType::SparseFloatVector,
            IndexType::BinFlat => t == FieldType::BinaryVector,
            IndexType::StlSort => t.is_numeric(),
            IndexType::Inverted => {
                matches!(t, FieldType::Varchar | FieldType::Bool | FieldType::Array)
                    || t.is_numeric()
            }
        };
        if !ok_type {
            return Err(bad(
                "this index type does not apply to this field type".into()
            ));
        }
        if self.index_type.is_scalar() {
            if self.metric.is_some() {
                return Err(bad("scalar indexes take no metric".into()));
            }
            return Ok(self);
        }
        let metric = self.metric.unwrap_or(Metric::default_for(t));
        if !metric.supported_by(t) {
            return Err(bad(format!("metric {metric} does not apply")));
        }
        self.metric = Some(metric);
        if self.index_type.is_graph() {
            let p = self.hnsw.unwrap_or_default();
            if !(4..=64).contains(&p.m) {
                return Err(bad(format!("M must be between 4 and 64, not {}", p.m)));
            }
            if !(8..=512).contains(&p.ef_construction) {
                return Err(bad(format!(
                    "efConstruction must be between 8 and 512, not {}",
                    p.ef_construction
                )));
            }
            self.hnsw = Some(p);
        } else if self.hnsw.is_some() {
            return Err(bad(
                "M and efConstruction apply to HNSW and HNSW_SQ only".into()
            ));
        }
        if self.index_type == IndexType::IvfFlat {
            let p = self.ivf.unwrap_or_default();
            if !(1..=65_536).contains(&p.nlist) {
                return Err(bad(format!(
                    "nlist must be between 1 and 65536, not {}",
                    p.nlist
                )));
            }
            if !(1..=p.nlist).contains(&p.nprobe) {
                return Err(bad(format!(
                    "nprobe must be between 1 and nlist ({}), not {}",
                    p.nlist, p.nprobe
                )));
            }
            self.ivf = Some(p);
        } else if self.ivf.is_some() {
            return Err(bad("nlist and nprobe apply to IVF_FLAT only".into()));
        }
        Ok(self)
    }

    /// The metric (vector indexes), COSINE when unset.
    pub fn metric(&self) -> Metric {
        self.metric.unwrap_or(Metric::Cosine)
    }
}

/// The rows a vector index holds: live, not NULL, and with a distance (no zero vectors under
/// COSINE, which pgvector leaves without one). HNSW and IVF_FLAT index exactly these.
pub(crate) fn indexable_rows(
    data: &VectorData,
    metric: Metric,
    live: &dyn Fn(u32) -> bool,
) -> Vec<u32> {
    (0..data.len())
        .filter(|&r| live(r as u32) && data.is_valid(r))
        .filter(|&r| match &data.values {
            crate::vector::VectorValues::Dense { values, .. } if metric == Metric::Cosine => {
                hnsw::space::inv_norm_f32(values.row(r)).is_finite()
            }
            _ => true,
        })
        .map(|r| r as u32)
        .collect()
}

/// A hit inside one segment: row offset and pgvector distance.
pub type RowHit = (u32, f32);

/// How far a search looks: each index kind reads its own knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    /// Candidate list size of graph indexes (at least `k`).
    pub ef: usize,
    /// Lists an IVF index scans; `None`: the index's own default.
    pub nprobe: Option<usize>,
}

/// A vector index over one segment's column.
pub trait VectorIndex: Send + Sync {
    /// The `k` nearest rows to `q` that `allow` admits, nearest first, with pgvector's
    /// distances. May return fewer than `k` when the filter is selective; the caller then falls
    /// back to exact search.
    fn search(
        &self,
        q: &QueryVector,
        k: usize,
        params: &SearchParams,
        allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
    ) -> Vec<RowHit>;

    /// Bytes the index holds in memory.
    fn memory_bytes(&self) -> usize;
}

/// Exact search: distances to every admitted row, the `k` smallest. Used by FLAT and BIN_FLAT,
/// and as the fallback when a filter admits few rows.
pub fn exact_search(
    data: &VectorData,
    metric: Metric,
    q: &QueryVector,
    k: usize,
    allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
) -> Vec<RowHit> {
    let mut top = TopK::new(k);
    for r in 0..data.len() {
        let row = r as u32;
        if allow.is_some_and(|f| !f(row)) {
            continue;
        }
        let d = data.distance(metric, q, r);
        // NULL vectors (and zero vectors under COSINE, as in pgvector) have no distance.
        if !d.is_nan() {
            top.push(row, d);
        }
    }
    top.into_sorted()
}

/// Keeps the `k` smallest distances (NaN counts as farthest).
pub struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<Cand>,
}

#[derive(PartialEq)]
struct Cand(f32, u32);
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cand {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        nan_last(self.0)
            .total_cmp(&nan_last(other.0))
            .then(self.1.cmp(&other.1))
    }
}

fn nan_last(d: f32) -> f32 {
    if d.is_nan() { f32::INFINITY } else { d }
}

impl TopK {
    /// An empty set keeping `k`.
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            // k comes from the request (a SQL LIMIT): grow with the hits, not with k.
            heap: std::collections::BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    /// Offers a candidate.
    #[inline]
    pub fn push(&mut self, row: u32, d: f32) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Cand(d, row));
        } else if let Some(top) = self.heap.peek()
            && Cand(d, row) < *top
        {
            self.heap.pop();
            self.heap.push(Cand(d, row));
        }
    }

    /// The kept candidates, nearest first.
    pub fn into_sorted(self) -> Vec<RowHit> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|c| (c.1, c.0))
            .collect()
    }
}

/// Orders hits nearest first, NaN last, ties by row.
pub fn cmp_distance(a: f32, b: f32) -> std::cmp::Ordering {
    nan_last(a).total_cmp(&nan_last(b))
}
