//! Data shaped like users' data, for the index tests: tight clusters, near-duplicate chunks
//! of documents, clustered bit strings.

use crate::vector::{VectorData, VectorValues};

pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// `clusters` centres uniform in [-1, 1]^dim; each row its centre plus noise in ±`spread`.
pub(crate) fn clustered(
    rows: usize,
    dim: usize,
    clusters: usize,
    spread: f32,
    seed: u64,
) -> Vec<f32> {
    let mut rng = Rng(seed | 1);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| rng.f32()).collect();
    (0..rows)
        .flat_map(|r| {
            let c = (r * 7919) % clusters;
            (0..dim)
                .map(|i| centres[c * dim + i] + spread * rng.f32())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `docs` documents, each `chunks` chunks nearly equal to the document's vector.
pub(crate) fn near_duplicates(docs: usize, chunks: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(docs * chunks * dim);
    for _ in 0..docs {
        let doc: Vec<f32> = (0..dim).map(|_| rng.f32()).collect();
        for _ in 0..chunks {
            out.extend(doc.iter().map(|x| x + 0.01 * rng.f32()));
        }
    }
    out
}

/// Bit strings in clusters: each row its centre with each bit flipped with probability 1/16.
pub(crate) fn clustered_bits(rows: usize, bytes: usize, clusters: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let centres: Vec<u8> = (0..clusters * bytes).map(|_| rng.next() as u8).collect();
    (0..rows)
        .flat_map(|r| {
            let c = (r * 7919) % clusters;
            (0..bytes)
                .map(|i| {
                    let flips = (0..8).fold(0u8, |f, b| {
                        if rng.next().is_multiple_of(16) {
                            f | (1 << b)
                        } else {
                            f
                        }
                    });
                    centres[c * bytes + i] ^ flips
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Values a halfvec column can hold (the engine widens FLOAT16 columns to f32 exactly).
pub(crate) fn halved(values: Vec<f32>) -> Vec<f32> {
    values
        .into_iter()
        .map(|x| half::f16::from_f32(x).to_f32())
        .collect()
}

pub(crate) fn dense(dim: usize, values: Vec<f32>) -> VectorData {
    VectorData {
        values: VectorValues::Dense {
            dim,
            values: crate::vector::Rows::from_vec(values, dim),
        },
        valid: None,
    }
}
