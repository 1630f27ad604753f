//! Writing one collection's staged files: the mapper's batches in Milvus' layout, into
//! zstd-compressed Parquet files of at most `max_file_bytes`, each streamed to the store as a
//! multipart upload (the store retries parts) and hashed on the way. Runs on the range's
//! writer thread; uploads are driven through the runtime's handle. Row groups are assembled
//! column by column: arrow's column writers encode the scalars, dense float vectors are encoded
//! by [`super::pages`] straight from their buffers.

use std::io::Write;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use datafusion::parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::writer::SerializedFileWriter;
use etl_connectors::store::Store;
use etl_engine::{CollectionSchema, FieldType};
use object_store::buffered::BufWriter;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

use super::layout::{milvus_schema, to_milvus};
use super::manifest::{StagedFile, sha256_hex};
use super::pages::DenseChunk;
use crate::error::PipelineError;

/// Default bound of a staged file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 512 << 20;
/// Rows per Parquet row group.
pub(crate) const ROW_GROUP_ROWS: usize = 4_096;

/// How a staged file is written: zstd, row groups of [`ROW_GROUP_ROWS`]; dense float vectors
/// barely compress (measured: zstd saves ~10% on them at the cost of a third of the import's
/// time), so their leaf columns are stored plain, uncompressed, without a dictionary (which
/// also lets the import copy their pages straight into fixed-size lists, [`super::dense`]). Nor
/// do they get min/max statistics: no reader prunes on a vector's elements, and computing them
/// over every float was most of the stage writer's time.
pub(crate) fn file_properties(
    schema: &CollectionSchema,
    target: &SchemaRef,
) -> Result<WriterProperties, datafusion::parquet::errors::ParquetError> {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    let descr = ArrowSchemaConverter::new().convert(target)?;
    for col in descr.columns() {
        let path = col.path().clone();
        let field = path.parts().first().cloned().unwrap_or_default();
        let dense = schema
            .fields
            .iter()
            .any(|f| f.name == field && f.data_type == FieldType::FloatVector);
        if dense {
            props = props
                .set_column_compression(path.clone(), Compression::UNCOMPRESSED)
                .set_column_statistics_enabled(path.clone(), EnabledStatistics::None)
                .set_column_dictionary_enabled(path, false);
        }
    }
    Ok(props.build())
}

/// The bytes ArrowWriter produces, hashed and sent to the store's multipart upload.
struct Upload {
    writer: BufWriter,
    hash: Sha256,
    bytes: u64,
    handle: Handle,
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hash.update(buf);
        self.bytes += buf.len() as u64;
        self.handle.block_on(self.writer.write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A leaf column of the row group being assembled.
enum Column {
    Arrow(Box<ArrowColumnWriter>),
    Dense(DenseChunk),
}

/// A staged file being written: the Parquet file, its row group in progress.
struct OpenFile {
    rel: String,
    file: SerializedFileWriter<Upload>,
    factory: ArrowRowGroupWriterFactory,
    /// The dimension of each field that is a dense float vector (by field position).
    dense: Vec<Option<usize>>,
    group: Vec<Column>,
    group_rows: usize,
    groups: usize,
    rows: u64,
}

impl OpenFile {
    /// Column writers for the next row group.
    fn columns(&self) -> Result<Vec<Column>, ParquetError> {
        let descr = self.file.schema_descr();
        let writers = self.factory.create_column_writers(self.groups)?;
        Ok(writers
            .into_iter()
            .enumerate()
            .map(|(leaf, w)| {
                let dim = self
                    .dense
                    .get(descr.get_column_root_idx(leaf))
                    .copied()
                    .flatten();
                match dim.and_then(|d| DenseChunk::new(descr.column(leaf), d, ROW_GROUP_ROWS)) {
                    Some(chunk) => Column::Dense(chunk),
                    None => Column::Arrow(Box::new(w)),
                }
            })
            .collect())
    }

    /// Appends `batch` (at most the rows the row group has room for).
    fn append(&mut self, target: &SchemaRef, batch: &RecordBatch) -> Result<(), ParquetError> {
        if self.group.is_empty() {
            self.group = self.columns()?;
        }
        let mut leaf = 0;
        for (field, array) in target.fields().iter().zip(batch.columns()) {
            if let Some(Column::Dense(chunk)) = self.group.get_mut(leaf) {
                let list = array.as_list_opt::<i32>().ok_or_else(|| {
                    ParquetError::General(format!("`{}` is not a list", field.name()))
                })?;
                chunk.write(list)?;
                leaf += 1;
                continue;
            }
            for leaves in compute_leaves(field, array)? {
                match self.group.get_mut(leaf) {
                    Some(Column::Arrow(w)) => w.write(&leaves)?,
                    _ => return Err(ParquetError::General("a column without a writer".into())),
                }
                leaf += 1;
            }
        }
        self.group_rows += batch.num_rows();
        self.rows += batch.num_rows() as u64;
        if self.group_rows >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the row group in progress to the file.
    fn flush(&mut self) -> Result<(), ParquetError> {
        if self.group.is_empty() {
            return Ok(());
        }
        let mut group = self.file.next_row_group()?;
        for column in std::mem::take(&mut self.group) {
            match column {
                Column::Arrow(w) => w.close()?.append_to_row_group(&mut group)?,
                Column::Dense(chunk) => chunk.append_to(&mut group)?,
            }
        }
        group.close()?;
        self.groups += 1;
        self.group_rows = 0;
        Ok(())
    }

    /// The file's size so far, its row group in progress estimated.
    fn size(&self) -> u64 {
        let pending: usize = self
            .group
            .iter()
            .map(|c| match c {
                Column::Arrow(w) => w.get_estimated_total_bytes(),
                Column::Dense(chunk) => chunk.size(),
            })
            .sum();
        (self.file.bytes_written() + pending) as u64
    }
}

/// The staged files of one collection.
pub struct StageWriter {
    store: Store,
    collection: String,
    schema: CollectionSchema,
    target: SchemaRef,
    max_file_bytes: u64,
    handle: Handle,
    open: Option<OpenFile>,
    counter: usize,
    /// Files finished so far.
    pub files: Vec<StagedFile>,
}

fn store_err(store: &Store, rel: &str, e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Connector(store.error(rel, e))
}

impl StageWriter {
    /// A writer for `collection` under `store`.
    pub fn new(
        store: Store,
        collection: &str,
        schema: CollectionSchema,
        max_file_bytes: u64,
        handle: Handle,
    ) -> Self {
        let target = milvus_schema(&schema);
        StageWriter {
            store,
            collection: collection.to_string(),
            schema,
            target,
            max_file_bytes: max_file_bytes.max(1 << 16),
            handle,
            open: None,
            counter: 0,
            files: Vec::new(),
        }
    }

    fn start(&mut self, part: &str) -> Result<(), PipelineError> {
        let name: String = part
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let rel = format!("{}/{name}-{:04}.parquet", self.collection, self.counter);
        self.counter += 1;
        let upload = Upload {
            // Parts of 10 MiB, two in flight: a stage writes a file per range being read,
            // so memory is (parts in flight + 1) × 10 MiB per reader.
            writer: BufWriter::with_capacity(
                self.store.store.clone(),
                self.store.path(&rel),
                10 << 20,
            )
            .with_max_concurrency(2),
            hash: Sha256::new(),
            bytes: 0,
            handle: self.handle.clone(),
        };
        let props = file_properties(&self.schema, &self.target)
            .map_err(|e| store_err(&self.store, &rel, e))?;
        // ArrowWriter adds the Arrow schema to the file's metadata; its file writer and column
        // writer factory then assemble the row groups.
        let (file, factory) = ArrowWriter::try_new(upload, self.target.clone(), Some(props))
            .and_then(|w| w.into_serialized_writer())
            .map_err(|e| store_err(&self.store, &rel, e))?;
        let dense = self
            .target
            .fields()
            .iter()
            .map(|f| {
                self.schema
                    .fields
                    .iter()
                    .find(|s| &s.name == f.name() && s.data_type == FieldType::FloatVector)
                    .and_then(|s| s.dim)
                    .map(|d| d as usize)
            })
            .collect();
        self.open = Some(OpenFile {
            rel,
            file,
            factory,
            dense,
            group: Vec::new(),
            group_rows: 0,
            groups: 0,
            rows: 0,
        });
        Ok(())
    }

    /// A writer with the same settings and no files yet (for another range).
    pub fn like(&self) -> StageWriter {
        StageWriter {
            store: self.store.clone(),
            collection: self.collection.clone(),
            schema: self.schema.clone(),
            target: self.target.clone(),
            max_file_bytes: self.max_file_bytes,
            handle: self.handle.clone(),
            open: None,
            counter: 0,
            files: Vec::new(),
        }
    }

    /// Appends a mapped batch of range `part`.
    pub fn write(&mut self, part: &str, batch: &RecordBatch) -> Result<(), PipelineError> {
        let staged = to_milvus(batch, &self.schema, &self.target)?;
        let mut at = 0;
        while at < staged.num_rows() {
            let Some(f) = self.open.as_mut() else {
                self.start(part)?;
                continue;
            };
            let n = (ROW_GROUP_ROWS - f.group_rows).min(staged.num_rows() - at);
            f.append(&self.target, &staged.slice(at, n))
                .map_err(|e| store_err(&self.store, &f.rel, e))?;
            at += n;
            if f.size() >= self.max_file_bytes {
                self.finish()?;
            }
        }
        Ok(())
    }

    /// Closes the open file (at the end of a range, or when it is full) and completes its
    /// upload.
    pub fn finish(&mut self) -> Result<(), PipelineError> {
        let Some(mut f) = self.open.take() else {
            return Ok(());
        };
        let rel = f.rel.clone();
        let mut upload = f
            .flush()
            .and_then(|()| f.file.into_inner())
            .map_err(|e| store_err(&self.store, &rel, e))?;
        self.handle
            .block_on(upload.writer.shutdown())
            .map_err(|e| store_err(&self.store, &rel, e))?;
        self.files.push(StagedFile {
            path: rel,
            rows: f.rows,
            bytes: upload.bytes,
            sha256: sha256_hex(upload.hash),
        });
        Ok(())
    }

    /// The collection.
    pub fn collection(&self) -> &str {
        &self.collection
    }
}
