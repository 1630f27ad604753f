//! What the graph measures: the vectors of its nodes, in the element type the column stores,
//! and the distance between a probe and a node.
//!
//! The graph code is generic over [`Space`], so each element type and metric gets its own
//! compiled search loop; nothing is dispatched per distance except the kernel chosen for the
//! CPU. Graph distances order nodes as pgvector's do but may skip a final step (L2 stays
//! squared, no square root per step); hits are re-scored exactly before they leave.

use crate::vector::Metric;
use crate::vector::simd::{self, Kernel, kernels};

/// A query as the graph sees it: a row of the space's element type and, for COSINE, the
/// inverse of its norm.
#[derive(Clone, Copy)]
pub(crate) struct Probe<'a, T> {
    pub v: &'a [T],
    pub inv_norm: f32,
}

/// The nodes' vectors and the distance between a probe and a node.
pub(crate) trait Space: Sync {
    /// The element type of stored rows and probes.
    type Elem: Copy + Sync + Send + 'static;

    /// Nodes in the space.
    fn nodes(&self) -> usize;

    /// The graph distance from `q` to node `i` (smaller is nearer).
    fn distance(&self, q: Probe<'_, Self::Elem>, i: u32) -> f32;

    /// Starts loading node `i`'s row into the cache (the walk does this for a node's unvisited
    /// neighbours before measuring them, as hnswlib does).
    fn prefetch(&self, _i: u32) {}
}

/// A space whose nodes are probes of its own element type (building compares nodes with
/// nodes; a quantized space is searched with full-precision probes and is not one).
pub(crate) trait Nodes: Space {
    /// Node `i` as a probe.
    fn probe(&self, i: u32) -> Probe<'_, Self::Elem>;
}

/// Dense rows (f32, or binary16 bit patterns) under L2, IP or COSINE.
pub(crate) struct DenseSpace<'a, T> {
    pub metric: Metric,
    pub dim: usize,
    pub data: &'a [T],
    /// COSINE only: 1 / ‖row‖ per node.
    pub inv_norms: &'a [f32],
    pub dot: Kernel<T>,
    pub l2sq: Kernel<T>,
}

impl<'a> DenseSpace<'a, f32> {
    /// f32 rows.
    pub fn f32(metric: Metric, dim: usize, data: &'a [f32], inv_norms: &'a [f32]) -> Self {
        let k = kernels();
        DenseSpace {
            metric,
            dim,
            data,
            inv_norms,
            dot: k.dot_f32,
            l2sq: k.l2sq_f32,
        }
    }
}

impl<'a> DenseSpace<'a, u16> {
    /// binary16 rows (halfvec), kept at half the size and widened inside the kernel.
    pub fn f16(metric: Metric, dim: usize, data: &'a [u16], inv_norms: &'a [f32]) -> Self {
        let k = kernels();
        DenseSpace {
            metric,
            dim,
            data,
            inv_norms,
            dot: k.dot_f16,
            l2sq: k.l2sq_f16,
        }
    }
}

impl<T: Copy + Sync + Send + 'static> Space for DenseSpace<'_, T> {
    type Elem = T;

    fn nodes(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }

    #[inline]
    fn distance(&self, q: Probe<'_, T>, i: u32) -> f32 {
        let i = i as usize;
        let row = &self.data[i * self.dim..(i + 1) * self.dim];
        match self.metric {
            Metric::L2 => (self.l2sq)(q.v, row),
            Metric::Ip => -(self.dot)(q.v, row),
            _ => 1.0 - (self.dot)(q.v, row) * q.inv_norm * self.inv_norms[i],
        }
    }

    #[inline]
    fn prefetch(&self, i: u32) {
        if let Some(row) = self.data.get(i as usize * self.dim..) {
            simd::prefetch(row.as_ptr());
            if let Some(next) = row.get(64 / std::mem::size_of::<T>().max(1)..) {
                simd::prefetch(next.as_ptr());
            }
        }
    }
}

impl<T: Copy + Sync + Send + 'static> Nodes for DenseSpace<'_, T> {
    #[inline]
    fn probe(&self, i: u32) -> Probe<'_, T> {
        let i = i as usize;
        Probe {
            v: &self.data[i * self.dim..(i + 1) * self.dim],
            inv_norm: self.inv_norms.get(i).copied().unwrap_or(1.0),
        }
    }
}

/// Packed bit strings under HAMMING or JACCARD.
pub(crate) struct BitSpace<'a> {
    pub bytes: usize,
    pub data: &'a [u8],
    pub kernel: Kernel<u8>,
}

impl<'a> BitSpace<'a> {
    pub fn new(metric: Metric, bytes: usize, data: &'a [u8]) -> Self {
        let k = kernels();
        BitSpace {
            bytes,
            data,
            kernel: if metric == Metric::Jaccard {
                k.jaccard
            } else {
                k.hamming
            },
        }
    }
}

impl Space for BitSpace<'_> {
    type Elem = u8;

    fn nodes(&self) -> usize {
        self.data.len() / self.bytes.max(1)
    }

    #[inline]
    fn distance(&self, q: Probe<'_, u8>, i: u32) -> f32 {
        let i = i as usize;
        (self.kernel)(q.v, &self.data[i * self.bytes..(i + 1) * self.bytes])
    }

    #[inline]
    fn prefetch(&self, i: u32) {
        if let Some(row) = self.data.get(i as usize * self.bytes..) {
            simd::prefetch(row.as_ptr());
        }
    }
}

impl Nodes for BitSpace<'_> {
    #[inline]
    fn probe(&self, i: u32) -> Probe<'_, u8> {
        let i = i as usize;
        Probe {
            v: &self.data[i * self.bytes..(i + 1) * self.bytes],
            inv_norm: 1.0,
        }
    }
}

/// 1 / ‖v‖ of a row of f32 values (infinite for a zero vector).
pub(crate) fn inv_norm_f32(v: &[f32]) -> f32 {
    1.0 / (kernels().dot_f32)(v, v).sqrt()
}

/// 1 / ‖v‖ of a row of binary16 values.
pub(crate) fn inv_norm_f16(v: &[u16]) -> f32 {
    1.0 / (kernels().dot_f16)(v, v).sqrt()
}

/// int8 scalar-quantized rows (HNSW_SQ): each value stored as `min[d] + scale[d]·code`, searched
/// with f32 probes (asymmetric distance), so only the codes are read per step; hits are
/// re-ranked with the full-precision rows.
pub(crate) struct Sq8Space<'a> {
    pub metric: Metric,
    pub dim: usize,
    pub codes: &'a [u8],
    pub min: &'a [f32],
    pub scale: &'a [f32],
    /// COSINE only: 1 / ‖row‖ of the full-precision rows.
    pub inv_norms: &'a [f32],
}

impl Space for Sq8Space<'_> {
    type Elem = f32;

    fn nodes(&self) -> usize {
        self.codes.len() / self.dim.max(1)
    }

    #[inline]
    fn distance(&self, q: Probe<'_, f32>, i: u32) -> f32 {
        let i = i as usize;
        let codes = &self.codes[i * self.dim..(i + 1) * self.dim];
        let k = kernels();
        match self.metric {
            Metric::L2 => (k.l2sq_sq8)(q.v, codes, self.min, self.scale),
            Metric::Ip => -(k.dot_sq8)(q.v, codes, self.min, self.scale),
            _ => {
                1.0 - (k.dot_sq8)(q.v, codes, self.min, self.scale) * q.inv_norm * self.inv_norms[i]
            }
        }
    }
}

/// Per-dimension ranges of `rows` (`dim` values each) and the codes of every row.
pub(crate) fn quantize(rows: &[f32], dim: usize) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
    let dim = dim.max(1);
    let mut min = vec![f32::INFINITY; dim];
    let mut max = vec![f32::NEG_INFINITY; dim];
    for r in rows.chunks_exact(dim) {
        for ((lo, hi), x) in min.iter_mut().zip(max.iter_mut()).zip(r) {
            *lo = lo.min(*x);
            *hi = hi.max(*x);
        }
    }
    let scale: Vec<f32> = min
        .iter()
        .zip(&max)
        .map(|(lo, hi)| if hi > lo { (hi - lo) / 255.0 } else { 0.0 })
        .collect();
    let codes = rows
        .chunks_exact(dim)
        .flat_map(|r| {
            r.iter().enumerate().map(|(d, x)| {
                if scale[d] == 0.0 {
                    0
                } else {
                    ((x - min[d]) / scale[d]).round().clamp(0.0, 255.0) as u8
                }
            })
        })
        .collect();
    (codes, min, scale)
}
