//! The metrics and their distances, as pgvector defines them (smaller is always nearer); the
//! SIMD kernels are in [`super::simd`].

use serde::{Deserialize, Serialize};

use super::simd;
use crate::schema::FieldType;

/// A similarity metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Metric {
    /// Euclidean distance.
    L2,
    /// Negative inner product.
    Ip,
    /// Cosine distance.
    Cosine,
    /// Number of differing bits.
    Hamming,
    /// 1 − |a∧b| / |a∨b|.
    Jaccard,
}

impl Metric {
    /// Milvus' spelling.
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "L2",
            Metric::Ip => "IP",
            Metric::Cosine => "COSINE",
            Metric::Hamming => "HAMMING",
            Metric::Jaccard => "JACCARD",
        }
    }

    /// Parses Milvus' spelling, case-insensitively.
    pub fn parse(s: &str) -> Option<Metric> {
        [
            Metric::L2,
            Metric::Ip,
            Metric::Cosine,
            Metric::Hamming,
            Metric::Jaccard,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(s))
    }

    /// The metrics a vector type supports.
    pub fn supported_by(self, t: FieldType) -> bool {
        match t {
            FieldType::FloatVector | FieldType::Float16Vector => {
                matches!(self, Metric::L2 | Metric::Ip | Metric::Cosine)
            }
            FieldType::BinaryVector => matches!(self, Metric::Hamming | Metric::Jaccard),
            FieldType::SparseFloatVector => self == Metric::Ip,
            _ => false,
        }
    }

    /// The metric used when none is given: COSINE for float vectors, HAMMING for binary, IP for sparse.
    pub fn default_for(t: FieldType) -> Metric {
        match t {
            FieldType::BinaryVector => Metric::Hamming,
            FieldType::SparseFloatVector => Metric::Ip,
            _ => Metric::Cosine,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Inner product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (simd::kernels().dot_f32)(a, b)
}

/// Squared Euclidean distance.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    (simd::kernels().l2sq_f32)(a, b)
}

/// Euclidean norm.
#[inline]
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// The pgvector distance between two dense vectors for a float metric.
#[inline]
pub fn dense_distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => l2_squared(a, b).sqrt(),
        Metric::Ip => -dot(a, b),
        Metric::Cosine => {
            let d = norm(a) * norm(b);
            if d == 0.0 {
                f32::NAN
            } else {
                1.0 - dot(a, b) / d
            }
        }
        Metric::Hamming | Metric::Jaccard => f32::NAN,
    }
}

/// The pgvector distance between two bit strings.
#[inline]
pub fn binary_distance(metric: Metric, a: &[u8], b: &[u8]) -> f32 {
    match metric {
        Metric::Hamming => (simd::kernels().hamming)(a, b),
        Metric::Jaccard => (simd::kernels().jaccard)(a, b),
        _ => f32::NAN,
    }
}

/// Negative inner product of two sparse vectors (indices strictly increasing).
pub fn sparse_distance(ai: &[i32], av: &[f32], bi: &[i32], bv: &[f32]) -> f32 {
    let (mut i, mut j, mut s) = (0, 0, 0f32);
    while i < ai.len() && j < bi.len() {
        match ai[i].cmp(&bi[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += av[i] * bv[j];
                i += 1;
                j += 1;
            }
        }
    }
    -s
}
