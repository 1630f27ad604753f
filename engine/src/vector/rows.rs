//! Fixed-width rows of vector values (a dense vector's floats, a bit string's bytes) in one or
//! more contiguous chunks. A loaded segment's vectors are the Arrow buffers of its IPC batches,
//! mapped from the file rather than copied, one chunk per batch, so loading a segment costs no
//! copy and no heap: the page cache holds the rows, shared with every process that maps them.

use std::borrow::Cow;

use arrow::buffer::ScalarBuffer;
use arrow::datatypes::ArrowNativeType;

/// Rows of `width` values each, in chunks.
#[derive(Debug, Clone)]
pub struct Rows<T: ArrowNativeType> {
    width: usize,
    chunks: Vec<ScalarBuffer<T>>,
    /// The first row of each chunk, and the row count at the end.
    starts: Vec<usize>,
}

impl<T: ArrowNativeType> Rows<T> {
    /// No rows of `width` values.
    pub fn new(width: usize) -> Self {
        Rows {
            width: width.max(1),
            chunks: Vec::new(),
            starts: vec![0],
        }
    }

    /// Rows taken from one flat vector (its length a multiple of `width`).
    pub fn from_vec(values: Vec<T>, width: usize) -> Self {
        let mut rows = Rows::new(width);
        rows.push(ScalarBuffer::from(values));
        rows
    }

    /// Appends a chunk of whole rows (a partial row at its end is dropped).
    pub fn push(&mut self, chunk: ScalarBuffer<T>) {
        let n = chunk.len() / self.width;
        if n == 0 {
            return;
        }
        let chunk = if chunk.len() == n * self.width {
            chunk
        } else {
            chunk.slice(0, n * self.width)
        };
        let end = self.rows() + n;
        self.chunks.push(chunk);
        self.starts.push(end);
    }

    /// Appends `other`'s chunks (no copy).
    pub fn append(&mut self, other: Rows<T>) {
        for c in other.chunks {
            self.push(c);
        }
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Number of values (rows × width).
    pub fn values_len(&self) -> usize {
        self.rows() * self.width
    }

    /// Row `r` (panics past the end, as slice indexing does).
    #[inline]
    pub fn row(&self, r: usize) -> &[T] {
        let c = if self.chunks.len() == 1 {
            0
        } else {
            self.starts.partition_point(|s| *s <= r) - 1
        };
        let local = (r - self.starts[c]) * self.width;
        &self.chunks[c][local..local + self.width]
    }

    /// The chunks in order, each with its first row.
    pub fn chunks(&self) -> impl Iterator<Item = (usize, &[T])> {
        self.starts
            .iter()
            .zip(&self.chunks)
            .map(|(s, c)| (*s, c.as_ref()))
    }

    /// Every value in one slice: borrowed when there is one chunk, else copied together.
    pub fn contiguous(&self) -> Cow<'_, [T]> {
        match self.chunks.as_slice() {
            [] => Cow::Borrowed(&[]),
            [one] => Cow::Borrowed(one.as_ref()),
            many => Cow::Owned(many.iter().flat_map(|c| c.iter().copied()).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_found_across_chunks() {
        let mut rows = Rows::<f32>::new(2);
        rows.push(ScalarBuffer::from(vec![0.0, 0.5, 1.0, 1.5]));
        rows.push(ScalarBuffer::from(vec![2.0, 2.5]));
        rows.append(Rows::from_vec(vec![3.0, 3.5, 4.0, 4.5, 9.0], 2));
        assert_eq!(rows.rows(), 5);
        for r in 0..5 {
            assert_eq!(rows.row(r), [r as f32, r as f32 + 0.5]);
        }
        assert_eq!(rows.contiguous().len(), 10);
        let firsts: Vec<usize> = rows.chunks().map(|(s, _)| s).collect();
        assert_eq!(firsts, [0, 2, 3]);
    }
}
