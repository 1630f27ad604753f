//! Merging small segments into large ones after a load, before the indexes are built.
//!
//! A run commits one part per source range, so a table read in 16 ranges ends as at least 16
//! segments, and every segment gets its own graph: a search then walks 16 graphs with the full
//! `ef`. Merging consecutive segments up to a bound (rows and bytes, as Milvus seals its
//! segments) leaves a few large segments and one graph each.
//!
//! Each merge group is one commit: its live rows are streamed into a new segment file (deleted
//! rows dropped, batch by batch, so memory stays bounded), the file is fsynced, and the
//! manifest swap replaces the group's segments with it. Checkpoints are untouched, so per-range
//! resume keeps working; a crash leaves either the old segments or the new one, and the files
//! of an interrupted merge are garbage the next writer removes. A group's indexes are not
//! carried over: the merged segment is indexed by the build that follows.

use std::time::Instant;

use super::Collection;
use crate::error::Result;
use crate::manifest::{Manifest, SegmentMeta};
use crate::segment::{SegmentWriter, unique_name};

/// Bounds of a merged segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergePolicy {
    /// Most live rows in a merged segment.
    pub max_rows: u64,
    /// Most bytes in a merged segment (the sum of its sources' file sizes).
    pub max_bytes: u64,
}

impl Default for MergePolicy {
    fn default() -> Self {
        // Milvus seals segments at 1 GiB (`segment.maxSize`); a million rows bounds a graph
        // build's memory for narrow vectors.
        MergePolicy {
            max_rows: super::write::SEGMENT_ROWS,
            max_bytes: 1 << 30,
        }
    }
}

/// What a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MergeStats {
    /// Segments before.
    pub segments_before: usize,
    /// Segments after.
    pub segments_after: usize,
    /// Live rows rewritten.
    pub rows_rewritten: u64,
    /// Seconds spent.
    pub seconds: f64,
}

/// Groups of consecutive segments to merge: each fits the policy and has at least two members
/// (a segment alone is never rewritten unless it has deleted rows to drop).
fn plan(segments: &[SegmentMeta], policy: MergePolicy) -> Vec<Vec<u64>> {
    let mut groups: Vec<Vec<u64>> = Vec::new();
    let mut cur: Vec<&SegmentMeta> = Vec::new();
    let (mut rows, mut bytes) = (0u64, 0u64);
    let close = |cur: &mut Vec<&SegmentMeta>, groups: &mut Vec<Vec<u64>>| {
        let worth = cur.len() > 1 || cur.first().is_some_and(|s| s.deleted > 0);
        if worth {
            groups.push(cur.iter().map(|s| s.id).collect());
        }
        cur.clear();
    };
    for s in segments {
        let full = rows + s.live_rows() > policy.max_rows || bytes + s.bytes > policy.max_bytes;
        if full && !cur.is_empty() {
            close(&mut cur, &mut groups);
            rows = 0;
            bytes = 0;
        }
        cur.push(s);
        rows += s.live_rows();
        bytes += s.bytes;
    }
    close(&mut cur, &mut groups);
    groups
}

impl Collection {
    /// Merges small segments into segments of at most `policy`'s bounds, one manifest swap per
    /// merged group. `progress` gets the live rows rewritten so far.
    pub fn merge_segments(
        &self,
        policy: MergePolicy,
        progress: &dyn Fn(u64),
    ) -> Result<MergeStats> {
        let started = Instant::now();
        let lock = self.lock()?;
        self.collect_garbage(&lock)?;
        let before = self.manifest().segments.len();
        let groups = plan(&self.manifest().segments, policy);
        let mut rewritten = 0u64;
        for group in groups {
            let m = self.manifest();
            let members: Vec<SegmentMeta> = m
                .segments
                .iter()
                .filter(|s| group.contains(&s.id))
                .cloned()
                .collect();
            let id = m.next_segment;
            let file = unique_name("seg", id, "arrow");
            let path = self.dir().join(&file);
            let mut w = SegmentWriter::create(path, &self.schema().arrow_schema())?;
            for scan in self.scan().into_iter().filter(|s| group.contains(&s.id())) {
                for batch in scan.batches(None)? {
                    let batch = batch?;
                    w.write(&batch)?;
                    rewritten += batch.num_rows() as u64;
                    progress(rewritten);
                }
            }
            let rows = w.rows();
            let (_, bytes) = w.finish()?;
            let mut next: Manifest = (*m).clone();
            let at = next
                .segments
                .iter()
                .position(|s| s.id == members[0].id)
                .unwrap_or(0);
            next.segments.retain(|s| !group.contains(&s.id));
            if rows > 0 {
                next.segments.insert(
                    at.min(next.segments.len()),
                    SegmentMeta {
                        id,
                        file,
                        rows,
                        bytes,
                        deletes: None,
                        deleted: 0,
                        indexes: Default::default(),
                    },
                );
            }
            next.next_segment = id + 1;
            next.version += 1;
            crate::fsutil::sync_dir(self.dir())?;
            crate::fault::crash_point("merge");
            next.write(self.dir())?;
            self.set_manifest(next);
        }
        // The replaced files are garbage now; remove them while the lock is held.
        self.collect_garbage(&lock)?;
        Ok(MergeStats {
            segments_before: before,
            segments_after: self.manifest().segments.len(),
            rows_rewritten: rewritten,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, rows: u64, bytes: u64, deleted: u64) -> SegmentMeta {
        SegmentMeta {
            id,
            file: format!("s{id}"),
            rows,
            bytes,
            deletes: None,
            deleted,
            indexes: Default::default(),
        }
    }

    #[test]
    fn plans_consecutive_groups_within_the_bounds() {
        let p = MergePolicy {
            max_rows: 100,
            max_bytes: 1_000,
        };
        let segs = [
            seg(1, 40, 100, 0),
            seg(2, 40, 100, 0),
            seg(3, 40, 100, 0),
            seg(4, 100, 100, 0),
            seg(5, 10, 900, 0),
            seg(6, 10, 200, 0),
            seg(7, 50, 10, 5),
        ];
        assert_eq!(plan(&segs, p), vec![vec![1, 2], vec![6, 7]]);
        // A lone segment is rewritten only to drop its deleted rows.
        assert_eq!(plan(&[seg(1, 10, 10, 3)], p), vec![vec![1]]);
        assert!(plan(&[seg(1, 10, 10, 0)], p).is_empty());
    }
}
