//! Segment files: Arrow IPC files written once and never changed, plus delete files (sorted
//! row offsets) that mark rows replaced by later loads.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

use crate::direct::DirectWriter;
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

/// Writes one segment file, around the page cache where the file system allows
/// ([`crate::direct`]).
pub struct SegmentWriter {
    path: PathBuf,
    writer: FileWriter<DirectWriter>,
    rows: u64,
}

impl SegmentWriter {
    /// Creates `path` for batches of `schema`.
    pub fn create(path: PathBuf, schema: &SchemaRef) -> Result<SegmentWriter> {
        let file = DirectWriter::create(&path).map_err(EngineError::io("create", &path))?;
        let writer = FileWriter::try_new(file, schema)?;
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
        let file = self
            .writer
            .into_inner()?
            .finish()
            .map_err(EngineError::io("write", &self.path))?;
        file.sync_all()
            .map_err(EngineError::io("fsync", &self.path))?;
        let bytes = file
            .metadata()
            .map_err(EngineError::io("stat", &self.path))?
            .len();
        Ok((self.path, bytes))
    }
}

/// Reads a segment (or the given columns of it) as one batch: mapped, so only the pages of the
/// columns asked for are read.
pub fn read_segment(path: &Path, projection: Option<Vec<usize>>) -> Result<RecordBatch> {
    let batches = map_batches(path, projection.clone(), Access::Few)?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            let file = File::open(path).map_err(EngineError::io("open", path))?;
            let reader =
                FileReader::try_new(file, projection.clone()).map_err(|e| corrupt(path, e))?;
            match &projection {
                Some(p) => std::sync::Arc::new(reader.schema().project(p)?),
                None => reader.schema(),
            }
        }
    };
    Ok(concat_batches(&schema, &batches)?)
}

/// One column of a segment as vector data: the file mapped and its batches decoded in place, so
/// dense f32 and binary vectors are the file's own pages (no copy, no heap).
pub fn read_vectors(path: &Path, column: usize) -> Result<crate::vector::VectorData> {
    let mut parts = Vec::new();
    for b in map_batches(path, Some(vec![column]), Access::Through)? {
        parts.push(crate::vector::VectorData::from_array(b.column(0).as_ref())?);
    }
    crate::vector::VectorData::concat(parts)
}

/// How the batches of [`map_batches`] will be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A few small columns of each batch (keys, scalars copied out): no readahead.
    Few,
    /// Through, in order (vectors searched exactly, a merge, a scan): readahead.
    Through,
}

/// A segment file's batches (or the given columns of them) decoded in place from a mapping of
/// the file: their buffers point into the mapping, which lives as long as any of them does.
/// The writer aligns every buffer (Arrow IPC's 64 bytes), so nothing is copied.
pub fn map_batches(
    path: &Path,
    projection: Option<Vec<usize>>,
    access: Access,
) -> Result<Vec<RecordBatch>> {
    use arrow::ipc::convert::fb_to_schema;
    use arrow::ipc::reader::{FileDecoder, read_footer_length};
    let file = File::open(path).map_err(EngineError::io("open", path))?;
    let map = std::sync::Arc::new(map_file(&file, path)?);
    // Decoding touches each batch's header. A file written around the page cache
    // (`crate::direct`) is read from disk, where each fault would pull the device's whole
    // readahead window (8 MiB here: all of a batch's vectors, for a load that wants its key).
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Random);
    let buffer = mapped_buffer(map.clone());
    let bad = |reason: String| EngineError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let len = buffer.len();
    if len < 10 {
        return Err(bad(format!("{len} bytes: not an Arrow IPC file")));
    }
    let mut trailer = [0u8; 10];
    trailer.copy_from_slice(&buffer[len - 10..]);
    let footer_len = read_footer_length(trailer).map_err(|e| corrupt(path, e))?;
    let footer_start = (len - 10)
        .checked_sub(footer_len)
        .ok_or_else(|| bad(format!("a footer of {footer_len} bytes in {len}")))?;
    let footer = arrow::ipc::root_as_footer(&buffer[footer_start..len - 10])
        .map_err(|e| bad(format!("footer: {e}")))?;
    let schema = footer
        .schema()
        .map(fb_to_schema)
        .ok_or_else(|| bad("no schema in the footer".into()))?;
    let mut decoder = FileDecoder::new(std::sync::Arc::new(schema), footer.version());
    if let Some(p) = projection {
        decoder = decoder.with_projection(p);
    }
    for block in footer.dictionaries().iter().flatten() {
        let block_len = block.bodyLength() as usize + block.metaDataLength() as usize;
        let data = buffer.slice_with_length(block.offset() as usize, block_len);
        decoder
            .read_dictionary(block, &data)
            .map_err(|e| corrupt(path, e))?;
    }
    let mut out = Vec::new();
    for block in footer.recordBatches().iter().flatten() {
        let block_len = block.bodyLength() as usize + block.metaDataLength() as usize;
        if block.offset() as usize + block_len > len {
            return Err(bad(format!("a batch past the end of {len} bytes")));
        }
        let data = buffer.slice_with_length(block.offset() as usize, block_len);
        if let Some(b) = decoder
            .read_record_batch(block, &data)
            .map_err(|e| corrupt(path, e))?
        {
            out.push(b);
        }
    }
    #[cfg(unix)]
    if access == Access::Through {
        let _ = map.advise(memmap2::Advice::Sequential);
    }
    Ok(out)
}

#[allow(
    unsafe_code,
    reason = "mapping a file: segment files are written once, fsynced and never modified in \
              place (a merge or a new load writes new files under new names), so the mapping \
              cannot change under the reader"
)]
fn map_file(file: &File, path: &Path) -> Result<memmap2::Mmap> {
    // SAFETY: see the reason above; the IPC decoder bounds-checks every buffer it slices.
    unsafe { memmap2::Mmap::map(file) }.map_err(EngineError::io("map", path))
}

#[allow(
    unsafe_code,
    reason = "an Arrow buffer over a mapping: the pointer and length are the mapping's own, and \
              the mapping is kept alive by the buffer's owner for as long as any array uses it"
)]
fn mapped_buffer(map: std::sync::Arc<memmap2::Mmap>) -> arrow::buffer::Buffer {
    let len = map.len();
    match std::ptr::NonNull::new(map.as_ptr().cast_mut()) {
        // SAFETY: see the reason above.
        Some(ptr) => unsafe { arrow::buffer::Buffer::from_custom_allocation(ptr, len, map) },
        // An empty mapping has no pointer to lend.
        None => arrow::buffer::Buffer::from_vec(Vec::<u8>::new()),
    }
}

/// Iterates a segment's batches (or the given columns), one IPC batch at a time, decoded in
/// place from a mapping of the file.
pub fn scan_segment(
    path: &Path,
    projection: Option<Vec<usize>>,
) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
    Ok(map_batches(path, projection, Access::Through)?
        .into_iter()
        .map(Ok))
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
