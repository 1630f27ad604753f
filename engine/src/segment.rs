//! Segment files: Arrow IPC files written once and never changed, plus delete files (sorted
//! row offsets) that mark rows replaced by later loads.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

use crate::error::{EngineError, Result};
use crate::fsutil;

/// A name no earlier attempt can have used: `<prefix>-<id>-<nonce>.<ext>`.
pub fn unique_name(prefix: &str, id: u64, ext: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{id:06}-{:x}{:x}.{ext}",
        nanos & 0xffff_ffff_ffff,
        std::process::id()
    )
}

/// Writes one segment file.
pub struct SegmentWriter {
    path: PathBuf,
    writer: FileWriter<BufWriter<File>>,
    rows: u64,
}

impl SegmentWriter {
    /// Creates `path` for batches of `schema`.
    pub fn create(path: PathBuf, schema: &SchemaRef) -> Result<SegmentWriter> {
        let file = File::create(&path).map_err(EngineError::io("create", &path))?;
        let writer = FileWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema)?;
        Ok(SegmentWriter {
            path,
            writer,
            rows: 0,
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Finishes and fsyncs the file; returns its path and size.
    pub fn finish(mut self) -> Result<(PathBuf, u64)> {
        self.writer.finish()?;
        let inner = self.writer.into_inner()?;
        let file = inner.into_inner().map_err(|e| EngineError::Io {
            op: "flush",
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all()
            .map_err(EngineError::io("fsync", &self.path))?;
        let bytes = file
            .metadata()
            .map_err(EngineError::io("stat", &self.path))?
            .len();
        Ok((self.path, bytes))
    }
}

/// Reads a segment (or the given columns of it) as one batch.
pub fn read_segment(path: &Path, projection: Option<Vec<usize>>) -> Result<RecordBatch> {
    let file = File::open(path).map_err(EngineError::io("open", path))?;
    let reader = FileReader::try_new(BufReader::with_capacity(1 << 20, file), projection.clone())
        .map_err(|e| corrupt(path, e))?;
    let schema = match &projection {
        Some(p) => std::sync::Arc::new(reader.schema().project(p)?),
        None => reader.schema(),
    };
    let batches: Vec<RecordBatch> = reader
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| corrupt(path, e))?;
    Ok(concat_batches(&schema, &batches)?)
}

/// Reads one column of a segment as vector data, batch by batch (no concatenated copy).
pub fn read_vectors(path: &Path, column: usize) -> Result<crate::vector::VectorData> {
    let mut parts = Vec::new();
    for b in scan_segment(path, Some(vec![column]))? {
        parts.push(crate::vector::VectorData::from_array(
            b?.column(0).as_ref(),
        )?);
    }
    crate::vector::VectorData::concat(parts)
}

/// Iterates a segment's batches (or the given columns), one IPC batch at a time.
pub fn scan_segment(
    path: &Path,
    projection: Option<Vec<usize>>,
) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
    let file = File::open(path).map_err(EngineError::io("open", path))?;
    let reader = FileReader::try_new(BufReader::with_capacity(1 << 20, file), projection)
        .map_err(|e| corrupt(path, e))?;
    let p = path.to_path_buf();
    Ok(reader.map(move |b| b.map_err(|e| corrupt(&p, e))))
}

fn corrupt(path: &Path, e: arrow::error::ArrowError) -> EngineError {
    EngineError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Writes a delete file: sorted, distinct row offsets as little-endian u32.
pub fn write_deletes(path: &Path, rows: &[u32]) -> Result<()> {
    let mut bytes = Vec::with_capacity(rows.len() * 4);
    for r in rows {
        bytes.extend_from_slice(&r.to_le_bytes());
    }
    std::fs::write(path, &bytes).map_err(EngineError::io("write", path))?;
    fsutil::sync_file(path)
}

/// Reads a delete file.
pub fn read_deletes(path: &Path) -> Result<Vec<u32>> {
    let bytes = std::fs::read(path).map_err(EngineError::io("read", path))?;
    if bytes.len() % 4 != 0 {
        return Err(EngineError::Corrupt {
            path: path.to_path_buf(),
            reason: "length is not a multiple of 4".into(),
        });
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
