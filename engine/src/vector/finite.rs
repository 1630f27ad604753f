//! Finding NaN and infinite vector elements fast. Every mapped batch is checked (the mapper
//! rejects such rows, the writer refuses them), so a clean column, the usual case, must cost one
//! pass at memory speed: each block is tested without branches, which the compiler turns into
//! vector instructions, and only a block that has one is searched element by element.

const BLOCK: usize = 1024;

/// The first f32 that is NaN or infinite.
pub fn first_non_finite(values: &[f32]) -> Option<usize> {
    first(values, |v| v.to_bits() & 0x7f80_0000 == 0x7f80_0000)
}

/// The first f16 (as stored: its bits) that is NaN or infinite.
pub fn first_non_finite_f16(values: &[half::f16]) -> Option<usize> {
    first(values, |v| v.to_bits() & 0x7c00 == 0x7c00)
}

fn first<T: Copy>(values: &[T], bad: impl Fn(T) -> bool) -> Option<usize> {
    for (b, block) in values.chunks(BLOCK).enumerate() {
        if block.iter().fold(false, |any, v| any | bad(*v)) {
            return block.iter().position(|v| bad(*v)).map(|i| b * BLOCK + i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bad_element_is_found_in_any_block() {
        let mut v = vec![1.5f32; 5000];
        assert_eq!(first_non_finite(&v), None);
        v[4321] = f32::INFINITY;
        v[4999] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some(4321));
        assert_eq!(first_non_finite(&v[4322..]), Some(4999 - 4322));
        let h: Vec<half::f16> = v.iter().map(|x| half::f16::from_f32(*x)).collect();
        assert_eq!(first_non_finite_f16(&h), Some(4321));
        assert_eq!(first_non_finite(&[f32::MAX, -0.0, f32::MIN_POSITIVE]), None);
    }
}
