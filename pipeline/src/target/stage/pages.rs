//! Writing a staged dense float vector column's pages straight from the vectors: the
//! counterpart of [`super::dense`].
//!
//! Arrow's Parquet writer encodes `list<float>` by materializing a repetition and a definition
//! level (two `i16`) for every float, RLE-encoding them value by value, then copying the floats
//! into the page: `perf` of `etl stage` had that level building, its allocations' page faults
//! and the column writer at ~25 % of the samples for a 768-d column. The shape of a vector is
//! known in advance (each row `dim` floats or NULL), so the levels of a page are a few RLE runs
//! per row written directly, and the floats are copied once, from the Arrow buffer into the
//! page. Pages are PLAIN, uncompressed, v1, without statistics: exactly what arrow's writer was
//! configured to produce for these columns ([`super::writer::file_properties`]), so every
//! Parquet reader, Milvus' among them, reads them as before and the import's page reader
//! ([`super::dense`]) takes them without decoding levels.

use bytes::Bytes;
use datafusion::arrow::array::{Array, ListArray};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::datatypes::Float32Type;
use datafusion::parquet::basic::{Compression, Encoding, Repetition, Type as PhysicalType};
use datafusion::parquet::column::writer::ColumnCloseResult;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder};
use datafusion::parquet::file::writer::SerializedRowGroupWriter;
use datafusion::parquet::schema::types::ColumnDescPtr;

/// Target size of a page's floats (arrow's writer's default page size).
const PAGE_BYTES: usize = 1 << 20;

/// One row group's chunk of a dense float vector column, encoded as it arrives.
pub(crate) struct DenseChunk {
    descr: ColumnDescPtr,
    dim: usize,
    max_def: u8,
    /// The chunk so far: pages, each header ‖ levels ‖ floats.
    buf: Vec<u8>,
    /// Level entries written: a value per float, one per NULL row.
    values: u64,
    rows: u64,
    levels: Vec<u8>,
    /// Each page's place in the chunk and first row (readers that use the page index need it
    /// on every column once any column has it).
    index: OffsetIndexBuilder,
}

impl DenseChunk {
    /// A chunk for leaf `descr` holding vectors of `dim` floats, if the leaf is the staged
    /// layout's (`list<float>`, items required, the list required or optional); `None` for
    /// any other shape, which arrow's writer then encodes. Room is made for `rows` rows.
    pub(crate) fn new(descr: ColumnDescPtr, dim: usize, rows: usize) -> Option<Self> {
        // Items required: then a definition level of 2 can only mean an optional list.
        let items_required =
            descr.self_type().get_basic_info().repetition() == Repetition::REQUIRED;
        let shape = descr.physical_type() == PhysicalType::FLOAT
            && items_required
            && descr.max_rep_level() == 1
            && (1..=2).contains(&descr.max_def_level())
            && dim > 0;
        shape.then(|| DenseChunk {
            max_def: descr.max_def_level() as u8,
            descr,
            dim,
            buf: Vec::with_capacity(rows * (dim * 4 + 8) + 4096),
            values: 0,
            rows: 0,
            levels: Vec::new(),
            index: OffsetIndexBuilder::new(),
        })
    }

    /// Bytes encoded so far.
    pub(crate) fn size(&self) -> usize {
        self.buf.len()
    }

    /// Appends the rows of `list` (the staged `list<float>` column of a batch).
    pub(crate) fn write(&mut self, list: &ListArray) -> Result<(), ParquetError> {
        let floats = list
            .values()
            .as_any()
            .downcast_ref::<datafusion::arrow::array::PrimitiveArray<Float32Type>>()
            .ok_or_else(|| ParquetError::General("a vector's items are not floats".into()))?;
        if floats.null_count() > 0 {
            return Err(ParquetError::General("a vector has a NULL element".into()));
        }
        let offsets = list.value_offsets();
        let per_page = (PAGE_BYTES / (self.dim * 4)).max(1);
        let mut start = 0;
        while start < list.len() {
            let end = (start + per_page).min(list.len());
            self.page(list, floats.values(), offsets, start, end)?;
            start = end;
        }
        Ok(())
    }

    /// Encodes rows `start..end` as one data page.
    fn page(
        &mut self,
        list: &ListArray,
        floats: &ScalarBuffer<f32>,
        offsets: &[i32],
        start: usize,
        end: usize,
    ) -> Result<(), ParquetError> {
        let mut rep = Runs::default();
        let mut def = Runs::default();
        let mut present = 0usize;
        for row in start..end {
            if list.is_null(row) {
                if self.max_def < 2 {
                    return Err(ParquetError::General(
                        "a NULL vector in a column that does not allow it".into(),
                    ));
                }
                rep.push(0, 1);
                def.push(0, 1);
                continue;
            }
            let len = (offsets[row + 1] - offsets[row]) as usize;
            if len != self.dim {
                return Err(ParquetError::General(format!(
                    "a vector of {len} floats in a column of dimension {}",
                    self.dim
                )));
            }
            rep.push(0, 1);
            rep.push(1, self.dim - 1);
            def.push(self.max_def, self.dim);
            present += 1;
        }
        self.levels.clear();
        rep.encode(&mut self.levels);
        def.encode(&mut self.levels);
        let entries = present * self.dim + (end - start - present);
        let size = self.levels.len() + present * self.dim * 4;
        let at = self.buf.len();
        header(&mut self.buf, entries, size)?;
        self.buf.extend_from_slice(&self.levels);
        // The floats of consecutive present rows are one slice of the values buffer.
        let mut row = start;
        while row < end {
            if list.is_null(row) {
                row += 1;
                continue;
            }
            let from = offsets[row] as usize;
            let mut to = offsets[row + 1] as usize;
            row += 1;
            while row < end && !list.is_null(row) && offsets[row] as usize == to {
                to = offsets[row + 1] as usize;
                row += 1;
            }
            extend_le(&mut self.buf, floats, from, to);
        }
        self.index
            .append_offset_and_size(at as i64, (self.buf.len() - at) as i32);
        self.index.append_row_count((end - start) as i64);
        self.values += entries as u64;
        self.rows += (end - start) as u64;
        Ok(())
    }

    /// Writes the chunk as the row group's next column.
    pub(crate) fn append_to<W: std::io::Write + Send>(
        self,
        group: &mut SerializedRowGroupWriter<'_, W>,
    ) -> Result<(), ParquetError> {
        let len = self.buf.len() as i64;
        let metadata = ColumnChunkMetaData::builder(self.descr)
            .set_compression(Compression::UNCOMPRESSED)
            .set_encodings(vec![Encoding::PLAIN, Encoding::RLE])
            .set_total_compressed_size(len)
            .set_total_uncompressed_size(len)
            .set_num_values(self.values as i64)
            .set_data_page_offset(0)
            .build()?;
        let close = ColumnCloseResult {
            bytes_written: len as u64,
            rows_written: self.rows,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: Some(self.index.build()),
        };
        group.append_column(&Bytes::from(self.buf), close)
    }
}

/// Floats `from..to` of `floats` as little-endian bytes (Parquet's PLAIN): on a little-endian
/// host the values buffer's own bytes.
fn extend_le(out: &mut Vec<u8>, floats: &ScalarBuffer<f32>, from: usize, to: usize) {
    #[cfg(target_endian = "little")]
    out.extend_from_slice(&floats.inner().as_slice()[from * 4..to * 4]);
    #[cfg(not(target_endian = "little"))]
    out.extend(floats[from..to].iter().flat_map(|f| f.to_le_bytes()));
}

/// Levels as RLE runs (value, length), consecutive equal values merged.
#[derive(Default)]
struct Runs(Vec<(u8, usize)>);

impl Runs {
    fn push(&mut self, value: u8, len: usize) {
        if len == 0 {
            return;
        }
        match self.0.last_mut() {
            Some((v, n)) if *v == value => *n += len,
            _ => self.0.push((value, len)),
        }
    }

    /// The RLE/bit-packed hybrid encoding of the runs (RLE runs only; every level here fits in
    /// one byte), preceded by its 4-byte length as a v1 data page stores it.
    fn encode(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        for &(value, len) in &self.0 {
            varint((len as u64) << 1, out);
            out.push(value);
        }
        let n = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }
}

/// An unsigned LEB128 varint (RLE run headers, thrift's compact integers).
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Thrift compact protocol: a field header (delta from the previous field id, type) and an i32.
fn field_i32(delta: u8, v: i32, out: &mut Vec<u8>) {
    const I32: u8 = 5;
    out.push((delta << 4) | I32);
    varint(((v << 1) ^ (v >> 31)) as u32 as u64, out);
}

/// A v1 data page's header (`PageHeader` with a `DataPageHeader`, thrift compact): `entries`
/// level entries, PLAIN values, RLE levels, `size` bytes, uncompressed.
fn header(out: &mut Vec<u8>, entries: usize, size: usize) -> Result<(), ParquetError> {
    const STRUCT: u8 = 12;
    const DATA_PAGE: i32 = 0;
    const PLAIN: i32 = 0;
    const RLE: i32 = 3;
    let int = |n: usize| {
        i32::try_from(n).map_err(|_| ParquetError::General(format!("a page of {n} bytes")))
    };
    let size = int(size)?;
    field_i32(1, DATA_PAGE, out); // type
    field_i32(1, size, out); // uncompressed_page_size
    field_i32(1, size, out); // compressed_page_size
    out.push((2 << 4) | STRUCT); // data_page_header (field 5)
    field_i32(1, int(entries)?, out); // num_values
    field_i32(1, PLAIN, out); // encoding
    field_i32(1, RLE, out); // definition_level_encoding
    field_i32(1, RLE, out); // repetition_level_encoding
    out.push(0); // end of DataPageHeader
    out.push(0); // end of PageHeader
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::stage::layout::milvus_schema;
    use crate::testdata;
    use datafusion::parquet::arrow::ArrowSchemaConverter;
    use etl_engine::FieldType;

    /// The staged layout's float vector leaf, required or nullable, is one this writer takes
    /// (not silently left to arrow's), and the levels of a page are a few runs per row.
    #[test]
    fn the_staged_vector_leaf_is_written_here_with_runs_per_row() {
        for nullable in [false, true] {
            let mut schema = testdata::schema(FieldType::FloatVector);
            let v = schema.fields.iter_mut().find(|f| f.name == "v").unwrap();
            v.dim = Some(768);
            v.nullable = nullable;
            let descr = ArrowSchemaConverter::new()
                .convert(&milvus_schema(&schema))
                .unwrap();
            let leaf = (0..descr.num_columns())
                .find(|&i| descr.column(i).path().parts()[0] == "v")
                .unwrap();
            let chunk = DenseChunk::new(descr.column(leaf), 768, 16);
            assert!(chunk.is_some(), "nullable {nullable}");
        }
        // Two rows of 3 floats, then a NULL row: rep 0,1,1,0,1,1,0; def 2×6 then 0.
        let mut rep = Runs::default();
        let mut def = Runs::default();
        for _ in 0..2 {
            rep.push(0, 1);
            rep.push(1, 2);
            def.push(2, 3);
        }
        rep.push(0, 1);
        def.push(0, 1);
        let mut out = Vec::new();
        rep.encode(&mut out);
        assert_eq!(out, [10, 0, 0, 0, 2, 0, 4, 1, 2, 0, 4, 1, 2, 0]);
        out.clear();
        def.encode(&mut out);
        assert_eq!(out, [4, 0, 0, 0, 12, 2, 2, 0]);
    }
}
