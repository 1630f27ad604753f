//! The metrics and their distances, as pgvector defines them (smaller is always nearer); the
//! SIMD kernels are in [`super::simd`].

use super::simd;

pub use etl_types::Metric;

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
