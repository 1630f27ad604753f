//! Scans of live rows: the segments of one committed version, minus their deleted rows, as
//! Arrow batches of the segment files' own size.
//!
//! `etl verify` and SQL read collections through this, one segment per task, so a scan holds
//! one IPC batch per segment in memory rather than a whole collection. The manifest is the one
//! the handle last saw; the files it names stay until a later writer collects garbage, which
//! only happens under the write lock a run holds.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;

use super::Collection;
use crate::error::{EngineError, Result};
use crate::manifest::SegmentMeta;
use crate::segment::{read_deletes, scan_segment};

/// One segment of a scan.
#[derive(Debug, Clone)]
pub struct SegmentScan {
    dir: PathBuf,
    meta: SegmentMeta,
    schema: SchemaRef,
}

impl Collection {
    /// The segments of the current version, oldest first, ready to be scanned in parallel.
    pub fn scan(&self) -> Vec<SegmentScan> {
        let m = self.manifest();
        let schema = self.schema().arrow_schema();
        m.segments
            .iter()
            .map(|meta| SegmentScan {
                dir: self.dir().to_path_buf(),
                meta: meta.clone(),
                schema: schema.clone(),
            })
            .collect()
    }
}

impl SegmentScan {
    /// The segment's number.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// Rows not deleted.
    pub fn live_rows(&self) -> u64 {
        self.meta.live_rows()
    }

    /// Bytes of the segment file.
    pub fn bytes(&self) -> u64 {
        self.meta.bytes
    }

    /// The full schema of the segment's batches (before projection).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The live rows, batch by batch, with only the columns in `projection` (indices into
    /// the collection schema), or all of them.
    pub fn batches(
        &self,
        projection: Option<&[usize]>,
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
        if let Some(p) = projection
            && let Some(bad) = p.iter().find(|i| **i >= self.schema.fields().len())
        {
            return Err(EngineError::InvalidRequest(format!(
                "column {bad} is out of range (the collection has {})",
                self.schema.fields().len()
            )));
        }
        let deleted: Arc<Vec<u32>> = Arc::new(match &self.meta.deletes {
            Some(f) => read_deletes(&self.dir.join(f))?,
            None => Vec::new(),
        });
        let inner = scan_segment(
            &self.dir.join(&self.meta.file),
            projection.map(<[usize]>::to_vec),
        )?;
        let mut offset = 0u32;
        Ok(inner.filter_map(move |b| {
            let b = match b {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            let start = offset;
            offset += b.num_rows() as u32;
            let out = live_rows(&b, start, &deleted);
            match out {
                Ok(b) if b.num_rows() == 0 => None,
                other => Some(other),
            }
        }))
    }
}

/// The rows of `batch` (which starts at row `start` of its segment) not in `deleted` (sorted).
fn live_rows(batch: &RecordBatch, start: u32, deleted: &[u32]) -> Result<RecordBatch> {
    let end = start + batch.num_rows() as u32;
    let from = deleted.partition_point(|d| *d < start);
    let to = deleted.partition_point(|d| *d < end);
    if from == to {
        return Ok(batch.clone());
    }
    let mut keep = vec![true; batch.num_rows()];
    for d in &deleted[from..to] {
        keep[(d - start) as usize] = false;
    }
    Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn live_rows_drops_deleted_offsets_in_the_batch_range_only() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![10, 11, 12, 13]))],
        )
        .unwrap();
        // The batch holds segment rows 4..8; rows 2 and 9 belong to other batches.
        let out = live_rows(&batch, 4, &[2, 5, 7, 9]).unwrap();
        let col = out.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(col.values().to_vec(), vec![10, 12]);
        assert_eq!(live_rows(&batch, 4, &[0, 9]).unwrap().num_rows(), 4);
        assert_eq!(out.column(0).len(), 2);
    }
}
