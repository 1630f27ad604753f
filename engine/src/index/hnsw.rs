//! HNSW: the engine's own graph index, modelled on hnswlib.
//!
//! Why our own: hnsw_rs, the first implementation, left rows unreachable on clustered data (26
//! of 100 rows of a 40-cluster table not found by their own vector, at any `ef`) and built ~6×
//! slower than hnswlib (BENCHMARKS.md). This one follows hnswlib's shape: flat `u32` neighbour
//! arrays, a generation-stamped visited array and heaps reused across searches, the HNSW
//! paper's neighbour-selection heuristic on every layer and for pruned backlinks, `2·M` links on
//! layer 0, parallel insertion with a lock per node, SIMD kernels for f32, binary16 and bit
//! strings ([`crate::vector::simd`]), and a reachability pass after each build. The file is
//! mapped, not parsed ([`storage`]).
//!
//! - [`space`]: rows and distances per element type and metric;
//! - [`graph`]: neighbour lists and the layer walk;
//! - [`builder`]: insertion, the heuristic and the reachability pass;
//! - [`storage`]: the file.
//!
//! Rows stay as the column stores them (halfvec at half the size); COSINE keeps 1/‖row‖ per
//! node instead of normalized copies, so distances are computed from the stored values. Hits
//! are re-scored with the exact pgvector distance (the same function exact search uses) before
//! they leave.

pub(crate) mod builder;
pub(crate) mod graph;
pub(crate) mod space;
pub(crate) mod storage;

use std::path::Path;

use super::{HnswParams, RowHit, VectorIndex, cmp_distance};
use crate::error::{EngineError, Result};
use crate::schema::FieldType;
use crate::vector::{
    Metric, QueryVector, VectorData, VectorValues, binary_distance, dense_distance,
};
use graph::{FrozenGraph, Scored, ScratchPool, Shape, descend, search_layer};
use space::{BitSpace, DenseSpace, Nodes, Probe, Space, Sq8Space, inv_norm_f16, inv_norm_f32};
use storage::{Element, Header, Mapped, Section};

/// What a build reports besides its file.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildStats {
    /// Nodes in the graph (live rows with a vector that has a distance).
    pub nodes: usize,
    /// Links the reachability pass added.
    pub repaired: usize,
    /// Bytes of the file.
    pub bytes: u64,
}

/// How an HNSW index keeps its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// As the column stores them (f32, halfvec at half size, bits).
    Exact,
    /// int8 codes per dimension searched asymmetrically, hits re-ranked with the f32 rows
    /// (Milvus' HNSW_SQ with SQ8): a quarter of the memory at search time.
    Sq8,
}

/// Builds an HNSW graph over the rows of `data` that `live` admits and writes it to `path`.
/// Rows whose vector is NULL, or zero under COSINE (no distance in pgvector), are left out.
/// `progress` is called with rows inserted so far.
#[expect(
    clippy::too_many_arguments,
    reason = "what a build needs: the rows, their type, the metric, the parameters, the storage, the live rows, the file and progress"
)]
pub fn build(
    data: &VectorData,
    field_type: FieldType,
    metric: Metric,
    params: HnswParams,
    storage: Storage,
    live: &dyn Fn(u32) -> bool,
    path: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<BuildStats> {
    let m = params.m.max(2) as usize;
    let efc = params.ef_construction as usize;
    let rows = super::indexable_rows(data, metric, live);
    let mut sq: Option<(Vec<f32>, Vec<f32>, Vec<f32>)> = None;
    let (header, rows, built, vectors, norms) = match &data.values {
        VectorValues::Dense { dim, values } => {
            let dim = *dim;
            if field_type == FieldType::Float16Vector && storage == Storage::Exact {
                let halves: Vec<u16> = rows
                    .iter()
                    .flat_map(|&r| values.row(r as usize))
                    .map(|x| half::f16::from_f32(*x).to_bits())
                    .collect();
                let norms: Vec<f32> = if metric == Metric::Cosine {
                    halves.chunks_exact(dim.max(1)).map(inv_norm_f16).collect()
                } else {
                    Vec::new()
                };
                let built = builder::build(
                    &DenseSpace::f16(metric, dim, &halves, &norms),
                    m,
                    efc,
                    progress,
                );
                let h = header(Element::F16, metric, dim, rows.len(), m, &built);
                (
                    h,
                    rows,
                    built,
                    bytemuck::cast_slice(&halves).to_vec(),
                    norms,
                )
            } else {
                // Every row kept (the usual case after a load): the column itself, no copy.
                let packed: std::borrow::Cow<'_, [f32]> = if rows.len() == data.len() {
                    values.contiguous()
                } else {
                    rows.iter()
                        .flat_map(|&r| values.row(r as usize))
                        .copied()
                        .collect()
                };
                let norms: Vec<f32> = if metric == Metric::Cosine {
                    packed.chunks_exact(dim.max(1)).map(inv_norm_f32).collect()
                } else {
                    Vec::new()
                };
                let built = builder::build(
                    &DenseSpace::f32(metric, dim, &packed, &norms),
                    m,
                    efc,
                    progress,
                );
                if storage == Storage::Sq8 {
                    let (codes, min, scale) = space::quantize(&packed, dim);
                    let h = header(Element::Sq8, metric, dim, rows.len(), m, &built);
                    sq = Some((min, scale, packed.into_owned()));
                    (h, rows, built, codes, norms)
                } else {
                    let h = header(Element::F32, metric, dim, rows.len(), m, &built);
                    (
                        h,
                        rows,
                        built,
                        bytemuck::cast_slice(&packed).to_vec(),
                        norms,
                    )
                }
            }
        }
        VectorValues::Binary { .. } if storage == Storage::Sq8 => {
            return Err(EngineError::InvalidRequest(
                "HNSW_SQ quantizes float vectors; bit strings are already one bit a value".into(),
            ));
        }
        VectorValues::Binary { bytes, values } => {
            let bytes = *bytes;
            let packed: Vec<u8> = rows
                .iter()
                .flat_map(|&r| values.row(r as usize))
                .copied()
                .collect();
            let built = builder::build(&BitSpace::new(metric, bytes, &packed), m, efc, progress);
            let h = header(Element::Bits, metric, bytes, rows.len(), m, &built);
            (h, rows, built, packed, Vec::new())
        }
        VectorValues::Sparse { .. } => {
            return Err(EngineError::InvalidRequest(
                "HNSW needs a dense or binary vector column".into(),
            ));
        }
    };
    let bytes = storage::write(
        path,
        &header,
        [
            bytemuck::cast_slice(&rows),
            &built.levels,
            bytemuck::cast_slice(&built.upper_offsets),
            bytemuck::cast_slice(&built.layer0),
            bytemuck::cast_slice(&built.upper),
            &vectors,
            bytemuck::cast_slice(&norms),
            sq.as_ref().map_or(&[][..], |q| bytemuck::cast_slice(&q.0)),
            sq.as_ref().map_or(&[][..], |q| bytemuck::cast_slice(&q.1)),
            sq.as_ref().map_or(&[][..], |q| bytemuck::cast_slice(&q.2)),
        ],
    )?;
    Ok(BuildStats {
        nodes: rows.len(),
        repaired: built.repaired,
        bytes,
    })
}

fn header(
    element: Element,
    metric: Metric,
    width: usize,
    nodes: usize,
    m: usize,
    built: &builder::Built,
) -> Header {
    Header {
        element,
        metric,
        width,
        nodes,
        m,
        entry: built.entry,
        max_level: built.max_level,
        spare: builder::SPARE,
    }
}

/// A loaded HNSW index over one segment's column, read in place from its mapped file.
pub struct HnswIndex {
    file: Mapped,
    pool: ScratchPool,
}

// Searches run from many threads: the compiler checks the index may be shared.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<HnswIndex>();
};

impl HnswIndex {
    /// Maps the index file at `path`, built over a segment of `segment_rows` rows.
    pub fn load(path: &Path, segment_rows: usize) -> Result<HnswIndex> {
        let file = Mapped::open(path, segment_rows)?;
        let pool = ScratchPool::new(file.header.nodes);
        Ok(HnswIndex { file, pool })
    }

    /// Nodes in the graph.
    pub fn nodes(&self) -> usize {
        self.file.header.nodes
    }

    fn graph(&self) -> FrozenGraph<'_> {
        FrozenGraph {
            shape: Shape {
                m: self.file.header.m,
                m0: 2 * self.file.header.m,
                spare: self.file.header.spare,
            },
            upper_offsets: self.file.words(Section::UpperOffsets),
            layer0: self.file.words(Section::Layer0),
            upper: self.file.words(Section::Upper),
        }
    }

    /// Per level, the nodes the entry point cannot reach (zero after every build).
    pub fn unreachable(&self) -> Vec<usize> {
        builder::unreachable(
            &self.graph(),
            self.file.bytes(Section::Levels),
            self.file.header.entry,
        )
    }

    /// The best `k` nodes for `q` (the whole `ef` list when `k` ≥ `ef`).
    fn walk<S: Space>(
        &self,
        space: &S,
        q: Probe<'_, S::Elem>,
        k: usize,
        ef: usize,
        allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
    ) -> Vec<Scored> {
        let h = &self.file.header;
        if h.nodes == 0 {
            return Vec::new();
        }
        let graph = self.graph();
        let rows = self.file.words(Section::Rows);
        let cur = descend(space, &graph, q, h.entry, h.max_level as usize, 0);
        let by_node = allow.map(|f| move |n: u32| f(rows[n as usize]));
        let by_node_ref = by_node.as_ref().map(|f| f as &dyn Fn(u32) -> bool);
        self.pool.with(|s| {
            search_layer(space, &graph, q, cur, ef.max(k), 0, s, by_node_ref);
            let mut found = s.sorted_results();
            found.truncate(k);
            found
        })
    }
}

impl VectorIndex for HnswIndex {
    fn search(
        &self,
        q: &QueryVector,
        k: usize,
        params: &super::SearchParams,
        allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
    ) -> Vec<RowHit> {
        let ef = params.ef;
        let h = self.file.header;
        let rows = self.file.words(Section::Rows);
        let norms = self.file.floats(Section::InvNorms);
        if k == 0 {
            return Vec::new();
        }
        let width = h.width;
        let mut hits: Vec<RowHit> = match (q, h.element) {
            (QueryVector::Dense(q), Element::F32) if q.len() == width => {
                let inv = inv_norm_f32(q);
                if h.metric == Metric::Cosine && !inv.is_finite() {
                    return Vec::new();
                }
                let data = self.file.floats(Section::Vectors);
                let space = DenseSpace::f32(h.metric, width, data, norms);
                self.walk(
                    &space,
                    Probe {
                        v: q,
                        inv_norm: inv,
                    },
                    k,
                    ef,
                    allow,
                )
                .into_iter()
                .map(|c| {
                    let row = space.probe(c.id).v;
                    (rows[c.id as usize], dense_distance(h.metric, q, row))
                })
                .collect()
            }
            (QueryVector::Dense(q), Element::F16) if q.len() == width => {
                let halves: Vec<u16> = q
                    .iter()
                    .map(|x| half::f16::from_f32(*x).to_bits())
                    .collect();
                let inv = inv_norm_f16(&halves);
                if h.metric == Metric::Cosine && !inv.is_finite() {
                    return Vec::new();
                }
                let data = self.file.halves(Section::Vectors);
                let space = DenseSpace::f16(h.metric, width, data, norms);
                self.walk(
                    &space,
                    Probe {
                        v: &halves,
                        inv_norm: inv,
                    },
                    k,
                    ef,
                    allow,
                )
                .into_iter()
                .map(|c| {
                    let row: Vec<f32> = space
                        .probe(c.id)
                        .v
                        .iter()
                        .map(|x| half::f16::from_bits(*x).to_f32())
                        .collect();
                    (rows[c.id as usize], dense_distance(h.metric, q, &row))
                })
                .collect()
            }
            (QueryVector::Dense(q), Element::Sq8) if q.len() == width => {
                let inv = inv_norm_f32(q);
                if h.metric == Metric::Cosine && !inv.is_finite() {
                    return Vec::new();
                }
                let space = Sq8Space {
                    metric: h.metric,
                    dim: width,
                    codes: self.file.bytes(Section::Vectors),
                    min: self.file.floats(Section::SqMin),
                    scale: self.file.floats(Section::SqScale),
                    inv_norms: norms,
                };
                let raw = self.file.floats(Section::Raw);
                // The whole candidate list, re-ranked with the full-precision rows.
                let found = self.walk(
                    &space,
                    Probe {
                        v: q,
                        inv_norm: inv,
                    },
                    ef.max(k),
                    ef,
                    allow,
                );
                let mut exact: Vec<RowHit> = found
                    .into_iter()
                    .map(|c| {
                        let i = c.id as usize;
                        let row = &raw[i * width..(i + 1) * width];
                        (rows[i], dense_distance(h.metric, q, row))
                    })
                    .collect();
                exact.sort_by(|a, b| cmp_distance(a.1, b.1).then(a.0.cmp(&b.0)));
                exact.truncate(k);
                exact
            }
            (QueryVector::Binary(q), Element::Bits) if q.len() == width => {
                let data = self.file.bytes(Section::Vectors);
                let space = BitSpace::new(h.metric, width, data);
                self.walk(
                    &space,
                    Probe {
                        v: q,
                        inv_norm: 1.0,
                    },
                    k,
                    ef,
                    allow,
                )
                .into_iter()
                .map(|c| {
                    let d = binary_distance(h.metric, q, space.probe(c.id).v);
                    (rows[c.id as usize], d)
                })
                .collect()
            }
            _ => return Vec::new(),
        };
        hits.sort_by(|a, b| cmp_distance(a.1, b.1).then(a.0.cmp(&b.0)));
        hits
    }

    /// The mapped file, less the full-precision rows of HNSW_SQ, which only re-ranking reads
    /// (a few rows per query, from the page cache).
    fn memory_bytes(&self) -> usize {
        self.file.len() - self.file.bytes(Section::Raw).len()
    }
}

#[cfg(test)]
mod tests;
