//! Reading a staged file into engine batches, with its dense float vectors taken straight from
//! their pages.
//!
//! A staged `FLOAT_VECTOR` is `list<float>` (Milvus' layout). Arrow's Parquet reader decodes a
//! list by materializing a repetition and a definition level for every float and rebuilding
//! offsets and validity from them: on a 768-d column that was 38 % of an import's CPU (`perf`:
//! `build_filtered_validity_bitmap`, the list reader, the level decoders), for a result the
//! engine then converts to a fixed-size list anyway. The stage writes these columns PLAIN,
//! uncompressed and without a dictionary, so each data page is its levels followed by the
//! floats themselves. Here a page's levels are checked without being materialized (every
//! row exactly `dim` floats, none NULL: the RLE runs and bit-packed bytes are compared with the
//! pattern that shape gives) and its floats are copied into one fixed-size-list buffer. Any
//! row group that is not in that shape (NULL vectors, a compressed or dictionary-encoded column,
//! a v2 page, a stage written by something else) is read through arrow's reader as before:
//! the fast path is an optimization, never a second reading of the format.

use std::sync::Arc;

use std::path::Path;

use datafusion::arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use datafusion::parquet::basic::{Compression, Encoding, Type as PhysicalType};
use datafusion::parquet::column::page::Page;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use etl_engine::{CollectionSchema, FieldType};

use super::layout::from_milvus;
use crate::error::PipelineError;

/// A dense float vector field of the file and its Parquet leaf column.
struct Dense {
    name: String,
    dim: usize,
    leaf: usize,
    max_def: i16,
}

/// Reads the staged file at `path` (named `file` in errors) of a collection with `schema`,
/// calling `each` with engine batches of at most `batch_rows` rows; returns the rows read.
pub(crate) fn read_staged(
    path: &Path,
    schema: &CollectionSchema,
    file: &str,
    batch_rows: usize,
    each: &mut dyn FnMut(RecordBatch) -> Result<(), PipelineError>,
) -> Result<u64, PipelineError> {
    let bad = |e: &dyn std::fmt::Display| PipelineError::Usage {
        message: format!("{file}: not a readable Parquet file ({e})"),
    };
    let open = || std::fs::File::open(path).map_err(|e| bad(&e));
    let meta =
        ArrowReaderMetadata::load(&open()?, ArrowReaderOptions::default()).map_err(|e| bad(&e))?;
    let descr = meta.metadata().file_metadata().schema_descr_ptr();
    let dense: Vec<Dense> = schema
        .fields
        .iter()
        .filter(|f| f.data_type == FieldType::FloatVector)
        .filter_map(|f| {
            let leaves: Vec<usize> = (0..descr.num_columns())
                .filter(|&i| descr.column(i).path().parts().first() == Some(&f.name))
                .collect();
            let [leaf] = leaves[..] else { return None };
            let c = descr.column(leaf);
            (c.physical_type() == PhysicalType::FLOAT
                && c.max_rep_level() == 1
                && (1..=2).contains(&c.max_def_level())
                && f.dim.is_some_and(|d| d > 0))
            .then(|| Dense {
                name: f.name.clone(),
                dim: f.dim.unwrap_or(0) as usize,
                leaf,
                max_def: c.max_def_level(),
            })
        })
        .collect();
    let rest: Vec<usize> = (0..descr.num_columns())
        .filter(|i| !dense.iter().any(|d| d.leaf == *i))
        .collect();
    let mut scalars = schema.clone();
    scalars
        .fields
        .retain(|f| !dense.iter().any(|d| d.name == f.name));
    let pages = SerializedFileReader::new(open()?).map_err(|e| bad(&e))?;
    let mut rows = 0u64;
    for rg in 0..meta.metadata().num_row_groups() {
        let group_rows = meta.metadata().row_group(rg).num_rows() as usize;
        // Every dense column of the group straight from its pages, or the group the usual way.
        let mut vectors = Vec::new();
        if !dense.is_empty() && !rest.is_empty() {
            for d in &dense {
                match read_dense(&pages, rg, d, group_rows).map_err(|e| bad(&e))? {
                    Some(v) => vectors.push(v),
                    None => break,
                }
            }
        }
        let fast = !dense.is_empty() && vectors.len() == dense.len();
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(open()?, meta.clone())
            .with_row_groups(vec![rg])
            .with_batch_size(batch_rows);
        if fast {
            builder = builder.with_projection(ProjectionMask::leaves(&descr, rest.iter().copied()));
        }
        let reader = builder.build().map_err(|e| bad(&e))?;
        let mut at = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| bad(&e))?;
            let n = batch.num_rows();
            let out = if fast {
                let mapped = from_milvus(&batch, &scalars, file)?;
                let mut fields: Vec<ArrowField> = mapped
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect();
                let mut cols = mapped.columns().to_vec();
                for (d, v) in dense.iter().zip(&vectors) {
                    let slice = v.slice(at, n);
                    fields.push(ArrowField::new(&d.name, slice.data_type().clone(), true));
                    cols.push(Arc::new(slice));
                }
                RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| bad(&e))?
            } else {
                from_milvus(&batch, schema, file)?
            };
            at += n;
            rows += n as u64;
            each(out)?;
        }
        if fast && at != group_rows {
            return Err(bad(&format!(
                "row group {rg} has {at} rows of scalars and {group_rows} of vectors"
            )));
        }
    }
    Ok(rows)
}

/// Why a column is not read here: an error of the file itself, or `None` for "read it the
/// usual way".
type Fast<T> = Result<Option<T>, datafusion::parquet::errors::ParquetError>;

/// The dense column `d` of row group `rg` as one fixed-size list of `rows` vectors, when its
/// pages are PLAIN floats with every row exactly `dim` long and none NULL.
fn read_dense(
    pages: &SerializedFileReader<std::fs::File>,
    rg: usize,
    d: &Dense,
    rows: usize,
) -> Fast<FixedSizeListArray> {
    let group = pages.get_row_group(rg)?;
    let chunk = group.metadata().column(d.leaf);
    if chunk.compression() != Compression::UNCOMPRESSED || chunk.dictionary_page_offset().is_some()
    {
        return Ok(None);
    }
    let want = rows * d.dim;
    let mut values: Vec<f32> = Vec::with_capacity(want);
    let mut at = 0usize; // levels seen in the column chunk so far
    for page in group.get_column_page_reader(d.leaf)? {
        let Page::DataPage {
            buf,
            num_values,
            encoding: Encoding::PLAIN,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            ..
        } = page?
        else {
            return Ok(None);
        };
        let n = num_values as usize;
        let Some((rep, rest)) = split_levels(&buf) else {
            return Ok(None);
        };
        let Some((def, floats)) = split_levels(rest) else {
            return Ok(None);
        };
        if floats.len() != n * 4
            || at + n > want
            || !rep_levels_are_rows(rep, at, n, d.dim)
            || !levels_all(def, n, d.max_def)
        {
            return Ok(None);
        }
        values.extend(
            floats
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        at += n;
    }
    if at != want {
        return Ok(None);
    }
    let item = Arc::new(ArrowField::new("item", DataType::Float32, false));
    let values = Arc::new(Float32Array::new(ScalarBuffer::from(values), None)) as ArrayRef;
    Ok(Some(FixedSizeListArray::new(
        item,
        d.dim as i32,
        values,
        None,
    )))
}

/// A v1 page's RLE-encoded levels (4-byte length, then the runs) and what follows them.
fn split_levels(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let end = 4usize.checked_add(len)?;
    Some((buf.get(4..end)?, buf.get(end..)?))
}

/// The runs of Parquet's RLE / bit-packed hybrid encoding (levels of bit width `width`), as
/// (`Some(value)`, count) for a repeated run or (`None`, count) for `count / 8 * width` bytes of
/// packed values; stops at the end or at a malformed header.
fn runs(data: &[u8], width: usize) -> impl Iterator<Item = (Option<u8>, usize, &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let mut header = 0usize;
        let mut shift = 0;
        loop {
            let b = *data.get(pos)?;
            pos += 1;
            header |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return None;
            }
        }
        if header & 1 == 1 {
            let groups = header >> 1;
            let bytes = data.get(pos..pos + groups * width)?;
            pos += groups * width;
            Some((None, groups * 8, bytes))
        } else {
            let value = *data.get(pos)?;
            pos += 1;
            Some((Some(value), header >> 1, &data[..0]))
        }
    })
}

/// Whether `n` repetition levels (bit width 1), the first at position `at` of the column
/// chunk, are those of rows of exactly `dim` values: 0 where a row starts, 1 elsewhere.
fn rep_levels_are_rows(data: &[u8], at: usize, n: usize, dim: usize) -> bool {
    let mut pos = at;
    let end = at + n;
    let starts_row = |p: usize| p.is_multiple_of(dim);
    for (value, count, bytes) in runs(data, 1) {
        if pos >= end {
            break;
        }
        let count = count.min(end - pos);
        match value {
            Some(1) => {
                // No row may start inside the run.
                let into = pos % dim;
                if into == 0 || into + count > dim {
                    return false;
                }
            }
            Some(0) => {
                if !(0..count).all(|i| starts_row(pos + i)) {
                    return false;
                }
            }
            Some(_) => return false,
            None => {
                for (k, byte) in bytes.iter().enumerate() {
                    let base = pos + k * 8;
                    if base >= pos + count {
                        break;
                    }
                    let into = base % dim;
                    let take = (pos + count - base).min(8);
                    if *byte == 0xff && into != 0 && into + 8 <= dim {
                        continue;
                    }
                    for bit in 0..take {
                        let one = byte >> bit & 1 == 1;
                        if one == starts_row(base + bit) {
                            return false;
                        }
                    }
                }
            }
        }
        pos += count;
    }
    pos >= end
}

/// Whether `n` levels of bit width 1 or 2 are all `max` (no NULL vector, no NULL float).
fn levels_all(data: &[u8], n: usize, max: i16) -> bool {
    let width = if max > 1 { 2 } else { 1 };
    let max = max as u8;
    // Eight levels of `max`, packed little-endian into `width` bytes.
    let packed: u16 = (0..8).fold(0u16, |acc, i| acc | u16::from(max) << (i * width));
    let pattern = packed.to_le_bytes();
    let mut seen = 0usize;
    for (value, count, bytes) in runs(data, width) {
        if seen >= n {
            break;
        }
        let count = count.min(n - seen);
        match value {
            Some(v) if v == max => {}
            Some(_) => return false,
            None => {
                let full = count / 8;
                if bytes.len() < full * width {
                    return false;
                }
                if bytes[..full * width]
                    .chunks_exact(width)
                    .any(|g| g != &pattern[..width])
                {
                    return false;
                }
                // The last group's levels past `n` are padding.
                for i in full * 8..count {
                    let bit = i * width;
                    let Some(b) = bytes.get(bit / 8) else {
                        return false;
                    };
                    if (b >> (bit % 8)) & ((1 << width) - 1) != max {
                        return false;
                    }
                }
            }
        }
        seen += count;
    }
    seen >= n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::stage::writer::{DEFAULT_MAX_FILE_BYTES, ROW_GROUP_ROWS, StageWriter};
    use crate::testdata;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::concat_batches;

    /// `rows` rows of the sample schema with a `dim`-d float vector, staged to a file by the
    /// stage's writer (its vector pages are [`super::super::pages`]').
    fn staged(
        dir: &Path,
        dim: u32,
        nullable: bool,
        rows: usize,
        null_row: Option<usize>,
    ) -> (std::path::PathBuf, CollectionSchema, RecordBatch) {
        let mut schema = testdata::schema(FieldType::FloatVector);
        let v = schema.fields.iter_mut().find(|f| f.name == "v").unwrap();
        v.dim = Some(dim);
        v.nullable = nullable;
        let mut batch = testdata::batch(&schema, rows);
        if let Some(r) = null_row {
            let i = batch.schema().index_of("v").unwrap();
            let v = batch
                .column(i)
                .as_any()
                .downcast_ref::<FixedSizeListArray>()
                .unwrap();
            let valid: Vec<bool> = (0..rows).map(|k| k != r).collect();
            let with_null = FixedSizeListArray::new(
                Arc::new(ArrowField::new("item", DataType::Float32, false)),
                dim as i32,
                v.values().clone(),
                Some(valid.into()),
            );
            let mut cols = batch.columns().to_vec();
            cols[i] = Arc::new(with_null);
            batch = RecordBatch::try_new(batch.schema(), cols).unwrap();
        }
        // Through the stage's own writer, in batches of 5000 rows (row groups straddle them).
        // Multi-threaded: the store's upload tasks run while the writer blocks on them.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let url = format!("file://{}", dir.display());
        let store = etl_connectors::store::Store::open(&url).unwrap();
        let collection = format!("v{dim}-{nullable}-{null_row:?}");
        let mut w = StageWriter::new(
            store,
            &collection,
            schema.clone(),
            DEFAULT_MAX_FILE_BYTES,
            runtime.handle().clone(),
        );
        for start in (0..rows).step_by(5000) {
            w.write("r", &batch.slice(start, 5000.min(rows - start)))
                .unwrap();
        }
        w.finish().unwrap();
        let [file] = &w.files[..] else {
            panic!("{} files", w.files.len())
        };
        assert_eq!(file.rows, rows as u64);
        let path = dir.join(&file.path);
        (path, schema, batch)
    }

    /// Every row group of a staged file's vector column goes the fast way (or, with a NULL
    /// vector in it, the usual way), and the batches read are the batches staged, for
    /// dimensions that do and do not fill whole bytes of levels, across row groups and pages.
    #[test]
    fn staged_vectors_read_straight_from_their_pages_are_the_rows_staged() {
        let dir = tempfile::tempdir().unwrap();
        for (dim, nullable, rows, null_row) in [
            (768, false, 17_000, None),
            (13, true, 40_000, None),
            (4, true, 20_000, Some(16_500)),
        ] {
            let (path, schema, batch) = staged(dir.path(), dim, nullable, rows, null_row);
            let mut got = Vec::new();
            let n = read_staged(&path, &schema, "f.parquet", 2048, &mut |b| {
                assert!(b.num_rows() <= 2048);
                got.push(b);
                Ok(())
            })
            .unwrap();
            assert_eq!(n, rows as u64);
            let got = concat_batches(&got[0].schema(), &got).unwrap();
            for f in &schema.fields {
                let want = batch.column_by_name(&f.name).unwrap();
                let have = got.column_by_name(&f.name).unwrap();
                if f.name == "v" {
                    let (w, h) = (
                        want.as_any().downcast_ref::<FixedSizeListArray>().unwrap(),
                        have.as_any().downcast_ref::<FixedSizeListArray>().unwrap(),
                    );
                    for r in (0..rows).filter(|r| w.is_valid(*r)) {
                        assert_eq!(w.value(r).as_ref(), h.value(r).as_ref(), "{dim}: row {r}");
                    }
                    assert_eq!(
                        h.is_null(null_row.unwrap_or(0)),
                        null_row.is_some(),
                        "{dim}"
                    );
                } else {
                    assert_eq!(want.as_ref(), have.as_ref(), "{dim}: {}", f.name);
                }
            }
            // Arrow's own reader reads every page the stage wrote, in every row group.
            let plain: Vec<RecordBatch> =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap()
                    .map(|b| b.unwrap())
                    .collect();
            let plain = concat_batches(&plain[0].schema(), &plain).unwrap();
            let plain = from_milvus(&plain, &schema, "f.parquet").unwrap();
            assert_eq!(plain.num_rows(), rows);
            let (w, p) = (
                batch.column_by_name("v").unwrap().as_fixed_size_list(),
                plain.column_by_name("v").unwrap().as_fixed_size_list(),
            );
            for r in 0..rows {
                assert_eq!(w.is_valid(r), p.is_valid(r), "{dim}: row {r}");
                if w.is_valid(r) {
                    assert_eq!(w.value(r).as_ref(), p.value(r).as_ref(), "{dim}: row {r}");
                }
            }
            // Which way each row group went.
            let pages = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
            let descr = pages.metadata().file_metadata().schema_descr_ptr();
            let leaf = (0..descr.num_columns())
                .find(|&i| descr.column(i).path().parts()[0] == "v")
                .unwrap();
            let d = Dense {
                name: "v".into(),
                dim: dim as usize,
                leaf,
                max_def: descr.column(leaf).max_def_level(),
            };
            assert!(pages.metadata().num_row_groups() >= 2);
            for rg in 0..pages.metadata().num_row_groups() {
                let group_rows = pages.metadata().row_group(rg).num_rows() as usize;
                let fast = read_dense(&pages, rg, &d, group_rows).unwrap().is_some();
                let has_null = null_row.is_some_and(|r| r / ROW_GROUP_ROWS == rg);
                assert_eq!(fast, !has_null, "{dim}: row group {rg}");
            }
        }
    }

    fn varint(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// The levels as one bit-packed run (`width` bits each).
    fn packed(levels: &[i16], width: usize) -> Vec<u8> {
        let groups = levels.len().div_ceil(8);
        let mut out = Vec::new();
        varint(groups << 1 | 1, &mut out);
        let mut bits = vec![0u8; groups * width];
        for (i, l) in levels.iter().enumerate() {
            for b in 0..width {
                if (l >> b) & 1 == 1 {
                    let bit = i * width + b;
                    bits[bit / 8] |= 1 << (bit % 8);
                }
            }
        }
        out.extend(bits);
        out
    }

    /// The levels as repeated runs only.
    fn repeated(levels: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < levels.len() {
            let j = (i..levels.len())
                .find(|&j| levels[j] != levels[i])
                .unwrap_or(levels.len());
            varint((j - i) << 1, &mut out);
            out.push(levels[i] as u8);
            i = j;
        }
        out
    }

    fn rows(n: usize, dim: usize) -> Vec<i16> {
        (0..n * dim).map(|i| i16::from(i % dim != 0)).collect()
    }

    #[test]
    fn repetition_levels_of_fixed_rows_pass_and_any_other_shape_fails() {
        for encode in [|l: &[i16]| packed(l, 1), |l: &[i16]| repeated(l)] {
            for dim in [1, 3, 8, 13, 768] {
                let levels = rows(40, dim);
                assert!(
                    rep_levels_are_rows(&encode(&levels), 0, levels.len(), dim),
                    "{dim}"
                );
                // A page that starts mid-chunk, at a row boundary.
                let tail = &levels[dim * 7..];
                assert!(rep_levels_are_rows(&encode(tail), dim * 7, tail.len(), dim));
                if dim > 1 {
                    // One row one value short, the next one long.
                    let mut odd = levels.clone();
                    odd[dim * 5] = 1;
                    odd[dim * 5 + 1] = 0;
                    assert!(
                        !rep_levels_are_rows(&encode(&odd), 0, odd.len(), dim),
                        "{dim}"
                    );
                    // A row split across the page's start.
                    let cut = &levels[1..];
                    assert!(!rep_levels_are_rows(&encode(cut), 0, cut.len(), dim));
                }
                // Fewer levels than the page says.
                assert!(!rep_levels_are_rows(
                    &encode(&levels),
                    0,
                    levels.len() + 8,
                    dim
                ));
            }
        }
    }

    #[test]
    fn definition_levels_must_all_be_the_maximum() {
        for max in [1i16, 2] {
            let width = max as usize;
            for n in [1usize, 7, 8, 9, 100, 4096] {
                let all = vec![max; n];
                assert!(levels_all(&packed(&all, width), n, max), "{max} {n}");
                assert!(levels_all(&repeated(&all), n, max), "{max} {n}");
                let mut one_null = all.clone();
                one_null[n / 2] = 0;
                assert!(!levels_all(&packed(&one_null, width), n, max), "{max} {n}");
                assert!(!levels_all(&repeated(&one_null), n, max), "{max} {n}");
            }
        }
    }
}
