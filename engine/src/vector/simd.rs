//! Distance kernels, chosen once per process for the CPU it runs on.
//!
//! The graph indexes spend most of their time here, so each kernel has an AVX2 + FMA version
//! (AVX-512 for f32 rows, F16C for halfvec, POPCNT for bit strings) picked at run time, and a portable version whose
//! eight independent accumulators the compiler vectorizes for the baseline target. Release
//! builds are not compiled for the build machine's CPU, so run-time dispatch is what lets one
//! binary use the wide units where they exist (hnswlib gets the same from `-march=native`).
//!
//! Every kernel takes two slices of the same length (callers slice rows of one dimension); the
//! portable versions are the reference the tests compare the fast ones with.

use std::sync::OnceLock;

/// A kernel over two rows of one element type.
pub type Kernel<T> = fn(&[T], &[T]) -> f32;

/// A kernel between an f32 row and an int8-quantized row (`min[d] + scale[d]·code[d]`).
pub type Sq8Kernel = fn(&[f32], &[u8], &[f32], &[f32]) -> f32;

/// The kernels this CPU runs best.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Σ aᵢbᵢ over f32.
    pub dot_f32: Kernel<f32>,
    /// Σ (aᵢ − bᵢ)² over f32.
    pub l2sq_f32: Kernel<f32>,
    /// Σ aᵢbᵢ over IEEE binary16 bit patterns.
    pub dot_f16: Kernel<u16>,
    /// Σ (aᵢ − bᵢ)² over IEEE binary16 bit patterns.
    pub l2sq_f16: Kernel<u16>,
    /// Differing bits.
    pub hamming: Kernel<u8>,
    /// 1 − |a∧b| / |a∨b| (0 when both are empty, as pgvector).
    pub jaccard: Kernel<u8>,
    /// Σ qᵢ·xᵢ with x decoded from int8 codes.
    pub dot_sq8: Sq8Kernel,
    /// Σ (qᵢ − xᵢ)² with x decoded from int8 codes.
    pub l2sq_sq8: Sq8Kernel,
}

static KERNELS: OnceLock<Kernels> = OnceLock::new();

/// The kernels for this CPU (detected on first use).
#[inline]
pub fn kernels() -> &'static Kernels {
    KERNELS.get_or_init(detect)
}

/// The portable kernels.
pub fn portable() -> Kernels {
    Kernels {
        dot_f32: portable::dot_f32,
        l2sq_f32: portable::l2sq_f32,
        dot_f16: portable::dot_f16,
        l2sq_f16: portable::l2sq_f16,
        hamming: portable::hamming,
        jaccard: portable::jaccard,
        dot_sq8: portable::dot_sq8,
        l2sq_sq8: portable::l2sq_sq8,
    }
}

fn detect() -> Kernels {
    #[allow(unused_mut)]
    let mut k = portable();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            k.dot_f32 = x86::dot_f32;
            k.l2sq_f32 = x86::l2sq_f32;
            k.dot_sq8 = x86::dot_sq8;
            k.l2sq_sq8 = x86::l2sq_sq8;
            if std::arch::is_x86_feature_detected!("avx512f") {
                k.dot_f32 = x86::dot_f32_512;
                k.l2sq_f32 = x86::l2sq_f32_512;
            }
            if std::arch::is_x86_feature_detected!("f16c") {
                k.dot_f16 = x86::dot_f16;
                k.l2sq_f16 = x86::l2sq_f16;
            }
        }
        if std::arch::is_x86_feature_detected!("popcnt") {
            k.hamming = x86::hamming;
            k.jaccard = x86::jaccard;
        }
    }
    k
}

/// Asks the CPU to bring the cache line at `p` closer (no effect where there is no such
/// instruction). A prefetch never faults, whatever the address.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    x86::prefetch(p.cast());
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Reference kernels: plain Rust the compiler vectorizes for any target.
pub mod portable {
    /// Σ aᵢbᵢ.
    pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                acc[i] += x[i] * y[i];
            }
        }
        let mut s: f32 = acc.iter().sum();
        for (x, y) in ra.iter().zip(rb) {
            s += x * y;
        }
        s
    }

    /// Σ (aᵢ − bᵢ)².
    pub fn l2sq_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for i in 0..8 {
                let d = x[i] - y[i];
                acc[i] += d * d;
            }
        }
        let mut s: f32 = acc.iter().sum();
        for (x, y) in ra.iter().zip(rb) {
            let d = x - y;
            s += d * d;
        }
        s
    }

    fn h(x: u16) -> f32 {
        half::f16::from_bits(x).to_f32()
    }

    /// Σ aᵢbᵢ over binary16.
    pub fn dot_f16(a: &[u16], b: &[u16]) -> f32 {
        a.iter().zip(b).map(|(x, y)| h(*x) * h(*y)).sum()
    }

    /// Σ (aᵢ − bᵢ)² over binary16.
    pub fn l2sq_f16(a: &[u16], b: &[u16]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                let d = h(*x) - h(*y);
                d * d
            })
            .sum()
    }

    /// Differing bits.
    pub fn hamming(a: &[u8], b: &[u8]) -> f32 {
        let (mut s, ca, cb) = (0u32, a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            s += (word(x) ^ word(y)).count_ones();
        }
        for (x, y) in ra.iter().zip(rb) {
            s += (x ^ y).count_ones();
        }
        s as f32
    }

    /// 1 − |a∧b| / |a∨b|.
    pub fn jaccard(a: &[u8], b: &[u8]) -> f32 {
        let (mut inter, mut union) = (0u32, 0u32);
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            let (x, y) = (word(x), word(y));
            inter += (x & y).count_ones();
            union += (x | y).count_ones();
        }
        for (x, y) in ra.iter().zip(rb) {
            inter += (x & y).count_ones();
            union += (x | y).count_ones();
        }
        jaccard_of(inter, union)
    }

    /// Σ qᵢ·(minᵢ + scaleᵢ·codeᵢ).
    pub fn dot_sq8(q: &[f32], codes: &[u8], min: &[f32], scale: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let n = q.len().min(codes.len()).min(min.len()).min(scale.len());
        let mut i = 0;
        while i + 8 <= n {
            for l in 0..8 {
                let x = min[i + l] + scale[i + l] * f32::from(codes[i + l]);
                acc[l] += q[i + l] * x;
            }
            i += 8;
        }
        let mut s: f32 = acc.iter().sum();
        for j in i..n {
            s += q[j] * (min[j] + scale[j] * f32::from(codes[j]));
        }
        s
    }

    /// Σ (qᵢ − minᵢ − scaleᵢ·codeᵢ)².
    pub fn l2sq_sq8(q: &[f32], codes: &[u8], min: &[f32], scale: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let n = q.len().min(codes.len()).min(min.len()).min(scale.len());
        let mut i = 0;
        while i + 8 <= n {
            for l in 0..8 {
                let d = q[i + l] - (min[i + l] + scale[i + l] * f32::from(codes[i + l]));
                acc[l] += d * d;
            }
            i += 8;
        }
        let mut s: f32 = acc.iter().sum();
        for j in i..n {
            let d = q[j] - (min[j] + scale[j] * f32::from(codes[j]));
            s += d * d;
        }
        s
    }

    pub(super) fn word(c: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&c[..8]);
        u64::from_le_bytes(w)
    }

    pub(super) fn jaccard_of(inter: u32, union: u32) -> f32 {
        if union == 0 {
            0.0
        } else {
            1.0 - inter as f32 / union as f32
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[expect(
    unsafe_code,
    reason = "SIMD intrinsics: loads through raw pointers stay inside the slices' bounds, and \
              each entry point is installed only after its CPU features were detected"
)]
mod x86 {
    use std::arch::x86_64::*;

    use super::portable;

    #[target_feature(enable = "avx")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads 8 floats at i < i + 8 <= n of both slices.
        unsafe {
            while i + 16 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                s1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    s1,
                );
                i += 16;
            }
            if i + 8 <= n {
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
                i += 8;
            }
        }
        hsum(_mm256_add_ps(s0, s1)) + portable::dot_f32(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2sq_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads 8 floats at i < i + 8 <= n of both slices.
        unsafe {
            while i + 16 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                let d1 = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                );
                s0 = _mm256_fmadd_ps(d0, d0, s0);
                s1 = _mm256_fmadd_ps(d1, d1, s1);
                i += 16;
            }
            if i + 8 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                s0 = _mm256_fmadd_ps(d0, d0, s0);
                i += 8;
            }
        }
        hsum(_mm256_add_ps(s0, s1)) + portable::l2sq_f32(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx512f")]
    fn dot_f32_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads 16 floats at i < i + 16 <= n of both slices.
        unsafe {
            while i + 32 <= n {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
                s1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                    s1,
                );
                i += 32;
            }
            if i + 16 <= n {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
                i += 16;
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) + portable::dot_f32(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx512f")]
    fn l2sq_f32_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads 16 floats at i < i + 16 <= n of both slices.
        unsafe {
            while i + 32 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                let d1 = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                );
                s0 = _mm512_fmadd_ps(d0, d0, s0);
                s1 = _mm512_fmadd_ps(d1, d1, s1);
                i += 32;
            }
            if i + 16 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                s0 = _mm512_fmadd_ps(d0, d0, s0);
                i += 16;
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) + portable::l2sq_f32(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_f16_f16c(a: &[u16], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s0 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads 8 halves at i < i + 8 <= n of both slices.
        unsafe {
            while i + 8 <= n {
                let x = _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i).cast()));
                let y = _mm256_cvtph_ps(_mm_loadu_si128(pb.add(i).cast()));
                s0 = _mm256_fmadd_ps(x, y, s0);
                i += 8;
            }
        }
        hsum(s0) + portable::dot_f16(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn l2sq_f16_f16c(a: &[u16], b: &[u16]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s0 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads 8 halves at i < i + 8 <= n of both slices.
        unsafe {
            while i + 8 <= n {
                let x = _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i).cast()));
                let y = _mm256_cvtph_ps(_mm_loadu_si128(pb.add(i).cast()));
                let d = _mm256_sub_ps(x, y);
                s0 = _mm256_fmadd_ps(d, d, s0);
                i += 8;
            }
        }
        hsum(s0) + portable::l2sq_f16(&a[i..n], &b[i..n])
    }

    /// Eight codes from `c` widened to floats and decoded: min + scale·code.
    #[target_feature(enable = "avx2,fma")]
    fn decode8(c: *const u8, min: *const f32, scale: *const f32) -> __m256 {
        // SAFETY: the callers pass pointers with 8 readable elements each.
        unsafe {
            let codes = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(c.cast())));
            _mm256_fmadd_ps(_mm256_loadu_ps(scale), codes, _mm256_loadu_ps(min))
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_sq8_avx2(q: &[f32], codes: &[u8], min: &[f32], scale: &[f32]) -> f32 {
        let n = q.len().min(codes.len()).min(min.len()).min(scale.len());
        let mut s0 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: each step reads 8 elements at i < i + 8 <= n of all four slices.
        unsafe {
            while i + 8 <= n {
                let x = decode8(
                    codes.as_ptr().add(i),
                    min.as_ptr().add(i),
                    scale.as_ptr().add(i),
                );
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), x, s0);
                i += 8;
            }
        }
        hsum(s0) + portable::dot_sq8(&q[i..n], &codes[i..n], &min[i..n], &scale[i..n])
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2sq_sq8_avx2(q: &[f32], codes: &[u8], min: &[f32], scale: &[f32]) -> f32 {
        let n = q.len().min(codes.len()).min(min.len()).min(scale.len());
        let mut s0 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: each step reads 8 elements at i < i + 8 <= n of all four slices.
        unsafe {
            while i + 8 <= n {
                let x = decode8(
                    codes.as_ptr().add(i),
                    min.as_ptr().add(i),
                    scale.as_ptr().add(i),
                );
                let d = _mm256_sub_ps(_mm256_loadu_ps(q.as_ptr().add(i)), x);
                s0 = _mm256_fmadd_ps(d, d, s0);
                i += 8;
            }
        }
        hsum(s0) + portable::l2sq_sq8(&q[i..n], &codes[i..n], &min[i..n], &scale[i..n])
    }

    #[target_feature(enable = "popcnt")]
    fn hamming_popcnt(a: &[u8], b: &[u8]) -> f32 {
        portable::hamming(a, b)
    }

    #[target_feature(enable = "popcnt")]
    fn jaccard_popcnt(a: &[u8], b: &[u8]) -> f32 {
        portable::jaccard(a, b)
    }

    #[inline(always)]
    pub(super) fn prefetch(p: *const i8) {
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch does not dereference its
        // address (it cannot fault).
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p) }
    }

    // The entry points below are installed by `detect` only after the features each one
    // enables were found on this CPU.

    pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: avx2 and fma were detected before this was installed.
        unsafe { dot_f32_avx2(a, b) }
    }
    pub(super) fn l2sq_f32(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: avx2 and fma were detected before this was installed.
        unsafe { l2sq_f32_avx2(a, b) }
    }
    pub(super) fn dot_f32_512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: avx512f was detected before this was installed.
        unsafe { dot_f32_avx512(a, b) }
    }
    pub(super) fn l2sq_f32_512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: avx512f was detected before this was installed.
        unsafe { l2sq_f32_avx512(a, b) }
    }
    pub(super) fn dot_f16(a: &[u16], b: &[u16]) -> f32 {
        // SAFETY: avx2, fma and f16c were detected before this was installed.
        unsafe { dot_f16_f16c(a, b) }
    }
    pub(super) fn l2sq_f16(a: &[u16], b: &[u16]) -> f32 {
        // SAFETY: avx2, fma and f16c were detected before this was installed.
        unsafe { l2sq_f16_f16c(a, b) }
    }
    pub(super) fn dot_sq8(q: &[f32], c: &[u8], min: &[f32], scale: &[f32]) -> f32 {
        // SAFETY: avx2 and fma were detected before this was installed.
        unsafe { dot_sq8_avx2(q, c, min, scale) }
    }
    pub(super) fn l2sq_sq8(q: &[f32], c: &[u8], min: &[f32], scale: &[f32]) -> f32 {
        // SAFETY: avx2 and fma were detected before this was installed.
        unsafe { l2sq_sq8_avx2(q, c, min, scale) }
    }
    pub(super) fn hamming(a: &[u8], b: &[u8]) -> f32 {
        // SAFETY: popcnt was detected before this was installed.
        unsafe { hamming_popcnt(a, b) }
    }
    pub(super) fn jaccard(a: &[u8], b: &[u8]) -> f32 {
        // SAFETY: popcnt was detected before this was installed.
        unsafe { jaccard_popcnt(a, b) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn fast_kernels_agree_with_the_portable_ones_at_every_length() {
        let (k, p) = (kernels(), portable());
        for n in [0, 1, 7, 8, 9, 15, 16, 17, 31, 50, 64, 100, 384, 768] {
            let (a, b) = (rows(n, 1), rows(n, 2));
            let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * (1.0 + y.abs());
            assert!(close((k.dot_f32)(&a, &b), (p.dot_f32)(&a, &b)), "dot {n}");
            assert!(close((k.l2sq_f32)(&a, &b), (p.l2sq_f32)(&a, &b)), "l2 {n}");
            let h = |v: &[f32]| -> Vec<u16> {
                v.iter()
                    .map(|x| half::f16::from_f32(*x).to_bits())
                    .collect()
            };
            let (ha, hb) = (h(&a), h(&b));
            assert!(
                close((k.dot_f16)(&ha, &hb), (p.dot_f16)(&ha, &hb)),
                "dot16 {n}"
            );
            assert!(
                close((k.l2sq_f16)(&ha, &hb), (p.l2sq_f16)(&ha, &hb)),
                "l2 16 {n}"
            );
            let bits =
                |v: &[f32]| -> Vec<u8> { v.iter().map(|x| (x * 1000.0) as i32 as u8).collect() };
            let (ba, bb) = (bits(&a), bits(&b));
            assert_eq!((k.hamming)(&ba, &bb), (p.hamming)(&ba, &bb), "hamming {n}");
            let (min, scale) = (rows(n, 3), rows(n, 4));
            assert!(
                close(
                    (k.dot_sq8)(&a, &ba, &min, &scale),
                    (p.dot_sq8)(&a, &ba, &min, &scale)
                ),
                "dot sq8 {n}"
            );
            assert!(
                close(
                    (k.l2sq_sq8)(&a, &ba, &min, &scale),
                    (p.l2sq_sq8)(&a, &ba, &min, &scale)
                ),
                "l2 sq8 {n}"
            );
            assert_eq!((k.jaccard)(&ba, &bb), (p.jaccard)(&ba, &bb), "jaccard {n}");
        }
    }

    #[test]
    fn binary_kernels_count_bits() {
        let p = portable();
        let a = [0b1010_0000u8, 0, 0, 0, 0, 0, 0, 0, 0xff];
        let b = [0b0110_0000u8, 0, 0, 0, 0, 0, 0, 0, 0x0f];
        assert_eq!((p.hamming)(&a, &b), 6.0);
        let j = (p.jaccard)(&a, &b);
        assert!((j - (1.0 - 5.0 / 11.0)).abs() < 1e-6, "{j}");
        assert_eq!((p.jaccard)(&[0], &[0]), 0.0);
    }
}
