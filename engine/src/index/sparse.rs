//! SPARSE_INVERTED_INDEX: for each dimension, the rows that have it and their values.
//! A query walks the posting lists of its own dimensions only and accumulates inner products.
//!
//! File layout (little-endian): `u32 dims, u64 postings, (dims + 1) × u64 offsets,
//! postings × u32 rows, postings × f32 values`.

use std::path::Path;

use super::{RowHit, TopK, VectorIndex};
use crate::error::{EngineError, Result};
use crate::vector::{QueryVector, VectorData, VectorValues};

/// A loaded inverted index.
pub struct SparseIndex {
    offsets: Vec<u64>,
    rows: Vec<u32>,
    values: Vec<f32>,
    n_rows: usize,
}

/// Builds the index over the live rows of `data` and writes it to `path`.
pub fn build(data: &VectorData, live: &dyn Fn(u32) -> bool, path: &Path) -> Result<()> {
    let VectorValues::Sparse {
        offsets,
        indices,
        values,
    } = &data.values
    else {
        return Err(EngineError::InvalidRequest(
            "SPARSE_INVERTED_INDEX needs a sparse vector column".into(),
        ));
    };
    let dims = indices.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut counts = vec![0u64; dims + 1];
    for r in 0..data.len() {
        if live(r as u32) && data.is_valid(r) {
            for &i in &indices[offsets[r]..offsets[r + 1]] {
                counts[i as usize + 1] += 1;
            }
        }
    }
    for d in 0..dims {
        counts[d + 1] += counts[d];
    }
    let total = counts[dims] as usize;
    let mut next = counts.clone();
    let mut prow = vec![0u32; total];
    let mut pval = vec![0f32; total];
    for r in 0..data.len() {
        if live(r as u32) && data.is_valid(r) {
            for j in offsets[r]..offsets[r + 1] {
                let d = indices[j] as usize;
                let at = next[d] as usize;
                prow[at] = r as u32;
                pval[at] = values[j];
                next[d] += 1;
            }
        }
    }
    let mut bytes = Vec::with_capacity(12 + counts.len() * 8 + total * 8 + 8);
    bytes.extend_from_slice(&(dims as u32).to_le_bytes());
    bytes.extend_from_slice(&(total as u64).to_le_bytes());
    bytes.extend_from_slice(&(data.len() as u64).to_le_bytes());
    counts
        .iter()
        .for_each(|c| bytes.extend_from_slice(&c.to_le_bytes()));
    prow.iter()
        .for_each(|r| bytes.extend_from_slice(&r.to_le_bytes()));
    pval.iter()
        .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    std::fs::write(path, &bytes).map_err(EngineError::io("write", path))?;
    crate::fsutil::sync_file(path)
}

impl SparseIndex {
    /// Reads an index written by [`build`].
    pub fn load(path: &Path) -> Result<SparseIndex> {
        let bytes = std::fs::read(path).map_err(EngineError::io("read", path))?;
        let corrupt = || EngineError::Corrupt {
            path: path.to_path_buf(),
            reason: "truncated sparse index".into(),
        };
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = bytes.get(at..at + n).ok_or_else(corrupt)?;
            at += n;
            Ok(s)
        };
        let dims = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt())?) as usize;
        let total = u64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt())?) as usize;
        let n_rows = u64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt())?) as usize;
        let offsets = take((dims + 1) * 8)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let rows = take(total * 4)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let values = take(total * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(SparseIndex {
            offsets,
            rows,
            values,
            n_rows,
        })
    }
}

impl VectorIndex for SparseIndex {
    fn search(
        &self,
        q: &QueryVector,
        k: usize,
        _params: &super::SearchParams,
        allow: Option<&(dyn Fn(u32) -> bool + Sync)>,
    ) -> Vec<RowHit> {
        let QueryVector::Sparse { indices, values } = q else {
            return Vec::new();
        };
        let mut scores = vec![0f32; self.n_rows];
        let mut touched = vec![false; self.n_rows];
        let dims = self.offsets.len().saturating_sub(1);
        for (&d, &qv) in indices.iter().zip(values) {
            let d = d as usize;
            if d >= dims {
                continue;
            }
            for p in self.offsets[d] as usize..self.offsets[d + 1] as usize {
                let r = self.rows[p] as usize;
                scores[r] += qv * self.values[p];
                touched[r] = true;
            }
        }
        let mut top = TopK::new(k);
        for (r, s) in scores.iter().enumerate() {
            if touched[r] && allow.is_none_or(|f| f(r as u32)) {
                top.push(r as u32, -s);
            }
        }
        top.into_sorted()
    }

    fn memory_bytes(&self) -> usize {
        self.offsets.len() * 8 + self.rows.len() * 4 + self.values.len() * 4
    }
}
