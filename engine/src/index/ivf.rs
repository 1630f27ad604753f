//! IVF_FLAT: rows grouped into `nlist` lists around k-means centroids; a search ranks the
//! centroids, scans the `nprobe` nearest lists exactly and keeps the best `k`.
//!
//! This is pgvector's IVFFlat (`lists` → `nlist`, the `ivfflat.probes` setting → `nprobe`), so a
//! source index keeps its kind and its recall/speed trade-off instead of becoming HNSW. Training
//! is Lloyd's k-means on a sample (at most 256 rows per list, as faiss samples) with a fixed
//! seed; COSINE trains on unit vectors (spherical k-means), IP assigns by the largest product,
//! and bit strings use k-majority (each centroid bit is the majority of its members' bits) under
//! HAMMING or JACCARD. Rows are stored list by list, so a probe reads one contiguous run, in
//! the element type the graph index uses (f32 rows; halfvec widened), mapped from the file.

use std::path::Path;

use rayon::prelude::*;

use super::file::{self, MappedFile};
use super::hnsw::space::{BitSpace, DenseSpace, Nodes, Probe, Space, inv_norm_f32};
use super::{RowHit, TopK, VectorIndex, cmp_distance};
use crate::error::{EngineError, Result};
use crate::vector::{
    Metric, QueryVector, VectorData, VectorValues, binary_distance, dense_distance,
};

const MAGIC: &[u8; 8] = b"ETLIVF01";
const WORDS: usize = 6;
const SECTIONS: usize = 5;
const CENTROIDS: usize = 0;
const OFFSETS: usize = 1;
const ROWS: usize = 2;
const VECTORS: usize = 3;
const INV_NORMS: usize = 4;
const ITERATIONS: usize = 12;
const SAMPLE_PER_LIST: usize = 256;

pub use etl_types::IvfParams;

/// Builds the index over the rows `live` admits and writes it to `path`; returns its size.
pub fn build(
    data: &VectorData,
    metric: Metric,
    params: IvfParams,
    live: &dyn Fn(u32) -> bool,
    path: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let rows = super::indexable_rows(data, metric, live);
    let n = rows.len();
    let nlist = (params.nlist as usize).clamp(1, n.max(1));
    let (element, width, centroids, assign): (u32, usize, Vec<u8>, Vec<u32>) = match &data.values {
        VectorValues::Dense { dim, values } => {
            let dim = *dim;
            let row = |r: u32| values.row(r as usize);
            let unit = |v: &[f32]| -> Vec<f32> {
                let inv = inv_norm_f32(v);
                v.iter().map(|x| x * inv).collect()
            };
            let train_row = |r: u32| -> Vec<f32> {
                if metric == Metric::Cosine {
                    unit(row(r))
                } else {
                    row(r).to_vec()
                }
            };
            let sample = sample_rows(&rows, nlist);
            let train: Vec<f32> = sample.iter().flat_map(|&r| train_row(r)).collect();
            let cents = kmeans_dense(&train, dim, nlist, metric == Metric::Cosine);
            let assign: Vec<u32> = rows
                .par_iter()
                .map(|&r| nearest_dense(&cents, dim, metric, row(r)).0)
                .collect();
            (0, dim, bytemuck::cast_slice(&cents).to_vec(), assign)
        }
        VectorValues::Binary { bytes, values } => {
            let bytes = *bytes;
            let row = |r: u32| values.row(r as usize);
            let sample = sample_rows(&rows, nlist);
            let train: Vec<u8> = sample.iter().flat_map(|&r| row(r).to_vec()).collect();
            let cents = kmajority(&train, bytes, nlist, metric);
            let assign: Vec<u32> = rows
                .par_iter()
                .map(|&r| nearest_bits(&cents, bytes, metric, row(r)).0)
                .collect();
            (2, bytes, cents, assign)
        }
        VectorValues::Sparse { .. } => {
            return Err(EngineError::InvalidRequest(
                "IVF_FLAT needs a dense or binary vector column".into(),
            ));
        }
    };
    progress(n as u64 / 2);
    // Counting sort by list: offsets, then rows and their vectors in list order.
    let mut offsets = vec![0u32; nlist + 1];
    for &a in &assign {
        offsets[a as usize + 1] += 1;
    }
    for i in 0..nlist {
        offsets[i + 1] += offsets[i];
    }
    let mut next = offsets.clone();
    let mut order = vec![0u32; n];
    for (i, &a) in assign.iter().enumerate() {
        order[next[a as usize] as usize] = rows[i];
        next[a as usize] += 1;
    }
    let (vectors, norms): (Vec<u8>, Vec<f32>) = match &data.values {
        VectorValues::Dense { dim, values } => {
            let v: Vec<f32> = order
                .iter()
                .flat_map(|&r| values.row(r as usize))
                .copied()
                .collect();
            let norms = if metric == Metric::Cosine {
                v.chunks_exact((*dim).max(1)).map(inv_norm_f32).collect()
            } else {
                Vec::new()
            };
            (bytemuck::cast_slice(&v).to_vec(), norms)
        }
        VectorValues::Binary { values, .. } => (
            order
                .iter()
                .flat_map(|&r| values.row(r as usize))
                .copied()
                .collect(),
            Vec::new(),
        ),
        VectorValues::Sparse { .. } => (Vec::new(), Vec::new()),
    };
    let metric_word = file::metric_word(metric);
    let words = [
        element,
        metric_word,
        width as u32,
        n as u32,
        nlist as u32,
        params.nprobe.max(1),
    ];
    let size = file::write(
        path,
        MAGIC,
        &words,
        &[
            &centroids,
            bytemuck::cast_slice(&offsets),
            bytemuck::cast_slice(&order),
            &vectors,
            bytemuck::cast_slice(&norms),
        ],
    )?;
    progress(n as u64);
    Ok(size)
}

/// At most `SAMPLE_PER_LIST` rows per list, evenly spread over the rows.
fn sample_rows(rows: &[u32], nlist: usize) -> Vec<u32> {
    let want = (nlist * SAMPLE_PER_LIST).min(rows.len()).max(1);
    let step = (rows.len() / want).max(1);
    rows.iter().step_by(step).take(want).copied().collect()
}

/// The nearest centroid to `v` under `metric` (COSINE: centroids are unit vectors).
fn nearest_dense(cents: &[f32], dim: usize, metric: Metric, v: &[f32]) -> (u32, f32) {
    let k = crate::vector::simd::kernels();
    let mut best = (0u32, f32::INFINITY);
    for (i, c) in cents.chunks_exact(dim.max(1)).enumerate() {
        let d = match metric {
            Metric::L2 => (k.l2sq_f32)(v, c),
            _ => -(k.dot_f32)(v, c),
        };
        if d < best.1 {
            best = (i as u32, d);
        }
    }
    best
}

fn nearest_bits(cents: &[u8], bytes: usize, metric: Metric, v: &[u8]) -> (u32, f32) {
    let mut best = (0u32, f32::INFINITY);
    for (i, c) in cents.chunks_exact(bytes.max(1)).enumerate() {
        let d = binary_distance(metric, v, c);
        if d < best.1 {
            best = (i as u32, d);
        }
    }
    best
}

/// Lloyd's k-means over `train` rows; an emptied list takes the row farthest from its centroid.
fn kmeans_dense(train: &[f32], dim: usize, k: usize, unit: bool) -> Vec<f32> {
    let n = train.len() / dim.max(1);
    let step = (n / k.max(1)).max(1);
    let mut cents: Vec<f32> = (0..k)
        .flat_map(|i| train[(i * step % n.max(1)) * dim..][..dim].to_vec())
        .collect();
    for _ in 0..ITERATIONS {
        let assign: Vec<(u32, f32)> = train
            .par_chunks_exact(dim)
            .map(|v| nearest_dense(&cents, dim, Metric::L2, v))
            .collect();
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (v, (a, _)) in train.chunks_exact(dim).zip(&assign) {
            counts[*a as usize] += 1;
            for (s, x) in sums[*a as usize * dim..][..dim].iter_mut().zip(v) {
                *s += f64::from(*x);
            }
        }
        let mut far = assign
            .iter()
            .enumerate()
            .map(|(i, a)| (i, a.1))
            .collect::<Vec<_>>();
        far.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut far = far.into_iter().map(|f| f.0);
        for c in 0..k {
            let out = &mut cents[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                if let Some(r) = far.next() {
                    out.copy_from_slice(&train[r * dim..(r + 1) * dim]);
                }
                continue;
            }
            for (o, s) in out.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                *o = (*s / counts[c] as f64) as f32;
            }
            if unit {
                let inv = inv_norm_f32(out);
                if inv.is_finite() {
                    out.iter_mut().for_each(|x| *x *= inv);
                }
            }
        }
    }
    cents
}

/// k-majority over bit strings: each centroid bit is the majority of its members' bits.
fn kmajority(train: &[u8], bytes: usize, k: usize, metric: Metric) -> Vec<u8> {
    let n = train.len() / bytes.max(1);
    let step = (n / k.max(1)).max(1);
    let mut cents: Vec<u8> = (0..k)
        .flat_map(|i| train[(i * step % n.max(1)) * bytes..][..bytes].to_vec())
        .collect();
    for _ in 0..ITERATIONS {
        let assign: Vec<u32> = train
            .par_chunks_exact(bytes)
            .map(|v| nearest_bits(&cents, bytes, metric, v).0)
            .collect();
        let mut ones = vec![0u32; k * bytes * 8];
        let mut counts = vec![0u32; k];
        for (v, a) in train.chunks_exact(bytes).zip(&assign) {
            counts[*a as usize] += 1;
            for (b, byte) in v.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (0x80 >> bit) != 0 {
                        ones[(*a as usize * bytes + b) * 8 + bit] += 1;
                    }
                }
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                continue;
            }
            for b in 0..bytes {
                cents[c * bytes + b] = (0..8).fold(0u8, |acc, bit| {
                    if ones[(c * bytes + b) * 8 + bit] * 2 > counts[c] {
                        acc | (0x80 >> bit)
                    } else {
                        acc
                    }
                });
            }
        }
    }
    cents
}

/// A loaded IVF_FLAT index, read in place from its mapped file.
pub struct IvfIndex {
    file: MappedFile,
    dense: bool,
    metric: Metric,
    width: usize,
    nlist: usize,
    nprobe: usize,
}

impl IvfIndex {
    /// Maps the index file at `path`, built over a segment of `segment_rows` rows.
    pub fn load(path: &Path, segment_rows: usize) -> Result<IvfIndex> {
        let file = MappedFile::open(path, MAGIC, WORDS, SECTIONS)?;
        let dense = match file.word(0) {
            0 => true,
            2 => false,
            e => return Err(file.corrupt(format!("bad element {e}"))),
        };
        let metric =
            file::metric_of_word(file.word(1)).ok_or_else(|| file.corrupt("bad metric".into()))?;
        let (width, n, nlist) = (
            file.word(2) as usize,
            file.word(3) as usize,
            file.word(4) as usize,
        );
        let elem = if dense { 4 } else { 1 };
        let check = || -> std::result::Result<(), String> {
            file.sized(CENTROIDS, elem, nlist * width)?;
            file.sized(OFFSETS, 4, nlist + 1)?;
            file.sized(ROWS, 4, n)?;
            file.sized(VECTORS, elem, n * width)?;
            file.sized(INV_NORMS, 4, if metric == Metric::Cosine { n } else { 0 })?;
            let offs: &[u32] = file.values(OFFSETS);
            if offs.first() != Some(&0)
                || offs.last().map(|&o| o as usize) != Some(n)
                || offs.windows(2).any(|w| w[1] < w[0])
            {
                return Err("list offsets are out of order".into());
            }
            let rows: &[u32] = file.values(ROWS);
            if rows.iter().any(|&r| r as usize >= segment_rows) {
                return Err(format!(
                    "a row number beyond the segment's {segment_rows} rows"
                ));
            }
            Ok(())
        };
        check().map_err(|r| file.corrupt(r))?;
        Ok(IvfIndex {
            dense,
            metric,
            width,
            nlist,
            nprobe: (file.word(5) as usize).max(1),
            file,
        })
    }

    /// Lists probed when the request names no `nprobe`.
    pub fn default_nprobe(&self) -> usize {
        self.nprobe
    }

    fn scan<S: Space>(
        &self,
        space: &S,
        q: Probe<'_, S::Elem>,
        lists: &[u32],
        k: usize,
        allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
    ) -> Vec<(u32, f32)> {
        let offs: &[u32] = self.file.values(OFFSETS);
        let rows: &[u32] = self.file.values(ROWS);
        let mut top = TopK::new(k);
        for &l in lists {
            for node in offs[l as usize]..offs[l as usize + 1] {
                if allow.is_some_and(|a| !a(rows[node as usize])) {
                    continue;
                }
                top.push(node, space.distance(q, node));
            }
        }
        top.into_sorted()
    }
}

impl VectorIndex for IvfIndex {
    fn search(
        &self,
        q: &QueryVector,
        k: usize,
        params: &super::SearchParams,
        allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
    ) -> Vec<RowHit> {
        let nprobe = params
            .nprobe
            .unwrap_or(self.nprobe)
            .clamp(1, self.nlist.max(1));
        let rows: &[u32] = self.file.values(ROWS);
        let norms: &[f32] = self.file.values(INV_NORMS);
        let mut hits: Vec<RowHit> = match q {
            QueryVector::Dense(q) if self.dense && q.len() == self.width => {
                let inv = inv_norm_f32(q);
                if self.metric == Metric::Cosine && !inv.is_finite() {
                    return Vec::new();
                }
                let cents: &[f32] = self.file.values(CENTROIDS);
                let lists = nearest_lists(self.nlist, nprobe, |c| {
                    let row = &cents[c * self.width..(c + 1) * self.width];
                    nearest_dense(row, self.width, self.metric, q).1
                });
                let data: &[f32] = self.file.values(VECTORS);
                let space = DenseSpace::f32(self.metric, self.width, data, norms);
                self.scan(
                    &space,
                    Probe {
                        v: q,
                        inv_norm: inv,
                    },
                    &lists,
                    k,
                    allow,
                )
                .into_iter()
                .map(|(node, _)| {
                    let v = space.probe(node).v;
                    (rows[node as usize], dense_distance(self.metric, q, v))
                })
                .collect()
            }
            QueryVector::Binary(q) if !self.dense && q.len() == self.width => {
                let cents: &[u8] = self.file.values(CENTROIDS);
                let lists = nearest_lists(self.nlist, nprobe, |c| {
                    binary_distance(self.metric, q, &cents[c * self.width..(c + 1) * self.width])
                });
                let data: &[u8] = self.file.values(VECTORS);
                let space = BitSpace::new(self.metric, self.width, data);
                self.scan(
                    &space,
                    Probe {
                        v: q,
                        inv_norm: 1.0,
                    },
                    &lists,
                    k,
                    allow,
                )
                .into_iter()
                .map(|(node, d)| (rows[node as usize], d))
                .collect()
            }
            _ => return Vec::new(),
        };
        hits.sort_by(|a, b| cmp_distance(a.1, b.1).then(a.0.cmp(&b.0)));
        hits
    }

    fn memory_bytes(&self) -> usize {
        self.file.len()
    }
}

/// The `nprobe` lists whose centroid is nearest.
fn nearest_lists(nlist: usize, nprobe: usize, dist: impl Fn(usize) -> f32) -> Vec<u32> {
    let mut top = TopK::new(nprobe);
    for c in 0..nlist {
        top.push(c as u32, dist(c));
    }
    top.into_sorted().into_iter().map(|(c, _)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::exact_search;
    use crate::index::testdata::{clustered, clustered_bits, dense, halved};

    fn params(nprobe: Option<usize>) -> super::super::SearchParams {
        super::super::SearchParams { ef: 64, nprobe }
    }

    /// Recall@10 against brute force for every metric and element type, with and without a
    /// filter; scanning every list is exact.
    #[test]
    fn recall_against_brute_force_for_every_metric_and_type() {
        let dir = tempfile::tempdir().unwrap();
        let floats = dense(32, clustered(4_000, 32, 40, 0.15, 11));
        let halves = dense(32, halved(clustered(4_000, 32, 40, 0.15, 12)));
        let bits = VectorData {
            values: VectorValues::Binary {
                bytes: 16,
                values: crate::vector::Rows::from_vec(clustered_bits(4_000, 16, 40, 13), 16),
            },
            valid: None,
        };
        let cases = [
            ("f32", &floats, Metric::L2),
            ("f32", &floats, Metric::Ip),
            ("f32", &floats, Metric::Cosine),
            ("f16", &halves, Metric::L2),
            ("f16", &halves, Metric::Cosine),
            ("bits", &bits, Metric::Hamming),
            ("bits", &bits, Metric::Jaccard),
        ];
        let odd = |r: u32| r % 2 == 1;
        for (name, data, metric) in cases {
            let path = dir.path().join(format!("{name}-{metric}.idx"));
            let p = IvfParams {
                nlist: 40,
                nprobe: 8,
            };
            build(data, metric, p, &|_| true, &path, &|_| {}).unwrap();
            let index = IvfIndex::load(&path, data.len()).unwrap();
            for filter in [None, Some(&odd as &(dyn Fn(u32) -> bool + Sync))] {
                let (mut misses, mut asked) = (0, 0);
                for r in (0..data.len()).step_by(41) {
                    let q = match &data.values {
                        VectorValues::Dense { values, .. } => {
                            QueryVector::Dense(values.row(r).to_vec())
                        }
                        VectorValues::Binary { values, .. } => {
                            QueryVector::Binary(values.row(r).to_vec())
                        }
                        VectorValues::Sparse { .. } => unreachable!(),
                    };
                    let truth = exact_search(data, metric, &q, 10, filter);
                    // A filter that admits half the rows needs more lists (IP the most: rows
                    // with the largest products are not always in the lists whose centroids
                    // have them).
                    let nprobe = filter.map(|_| 20);
                    let got = index.search(&q, 10, &params(nprobe), filter);
                    assert!(got.iter().all(|h| filter.is_none_or(|f| f(h.0))));
                    let kth = truth[9].1;
                    misses += 10 - got.iter().filter(|h| h.1 <= kth + 1e-5).count();
                    asked += 10;
                    // Every list probed: exact.
                    let all = index.search(&q, 10, &params(Some(40)), filter);
                    assert_eq!(
                        all.iter().map(|h| h.1).collect::<Vec<_>>(),
                        truth.iter().map(|h| h.1).collect::<Vec<_>>(),
                        "{name} {metric}"
                    );
                }
                assert!(
                    misses * 20 <= asked,
                    "{name} {metric} filter {}: recall@10 {:.3}",
                    filter.is_some(),
                    1.0 - misses as f64 / asked as f64
                );
            }
        }
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dense(8, clustered(300, 8, 4, 0.2, 5));
        let path = dir.path().join("i.idx");
        build(
            &data,
            Metric::L2,
            IvfParams::default(),
            &|_| true,
            &path,
            &|_| {},
        )
        .unwrap();
        assert!(IvfIndex::load(&path, 300).is_ok());
        assert!(IvfIndex::load(&path, 10).is_err());
        let mut b = std::fs::read(&path).unwrap();
        b.truncate(b.len() / 2);
        std::fs::write(&path, b).unwrap();
        assert!(IvfIndex::load(&path, 300).is_err());
    }
}
