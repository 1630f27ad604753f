//! Binary COPY field bytes straight into Arrow builders: one decoder per column, chosen once from
//! the column's type, no per-row allocation and no per-field `FromSql`.
//!
//! Arrow layouts (the contract the pipeline maps from):
//! - `vector(n)`: `FixedSizeList<Float32, n>` (without a declared n: `List<Float32>`);
//! - `halfvec(n)`: `FixedSizeList<Float16, n>` (or `List<Float16>`);
//! - `sparsevec`: `Struct<dim: Int32, indices: List<Int32>, values: List<Float32>>`, indices
//!   0-based as on the wire and strictly increasing;
//! - `bit(n)`, n a multiple of 8: `FixedSizeBinary(n / 8)`, most significant bit first;
//! - numeric, dates, times, timestamps, uuid: `Utf8` canonical text (see [`super::text`]);
//!   json and jsonb: `Utf8` JSON text; bytea: `Binary`; one-dimensional arrays: `List<element>`;
//! - types without a binary decoder are selected as `::text` and arrive as `Utf8`.

use std::sync::Arc;

use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, FixedSizeBinaryBuilder, FixedSizeListArray,
    Float16Array, Float32Array, Float32Builder, Float64Builder, Int16Builder, Int32Array,
    Int32Builder, Int64Builder, ListArray, StringBuilder, StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use etl_mappings::{PgKind, quote_ident};
use half::f16;

use super::text;

/// How a column's value is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadKind {
    /// boolean
    Bool,
    /// smallint
    Int16,
    /// integer
    Int32,
    /// bigint
    Int64,
    /// real
    Float32,
    /// double precision
    Float64,
    /// Text as sent (text, varchar, char, name, enums, and `::text` casts).
    Text,
    /// numeric → exact text
    Numeric,
    /// uuid → canonical text
    Uuid,
    /// date → ISO text
    Date,
    /// timestamp → ISO text
    Timestamp,
    /// timestamptz → ISO text in UTC
    TimestampTz,
    /// time → ISO text
    Time,
    /// timetz → ISO text
    TimeTz,
    /// json (text on the wire)
    Json,
    /// jsonb (a version byte, then text)
    Jsonb,
    /// bytea
    Bytea,
    /// pgvector vector
    Vector(Option<u32>),
    /// pgvector halfvec
    HalfVec(Option<u32>),
    /// pgvector sparsevec
    SparseVec,
    /// bit(n) with n a multiple of 8: n / 8 bytes
    Bit(u32),
    /// One-dimensional array of the element kind.
    Array(Box<ReadKind>),
}

/// How a column is selected in the COPY query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectAs {
    /// As it is.
    Plain,
    /// `col::text`
    Text,
    /// `col::text[]`
    TextArray,
    /// `array_to_json(col)::text` (multi-dimensional arrays)
    ArrayJson,
}

/// Chooses the decoder and select form for a column type.
pub fn read_kind(kind: &PgKind) -> (ReadKind, SelectAs) {
    let plain = |k| (k, SelectAs::Plain);
    match kind {
        PgKind::Bool => plain(ReadKind::Bool),
        PgKind::Int2 => plain(ReadKind::Int16),
        PgKind::Int4 => plain(ReadKind::Int32),
        PgKind::Int8 => plain(ReadKind::Int64),
        PgKind::Float4 => plain(ReadKind::Float32),
        PgKind::Float8 => plain(ReadKind::Float64),
        PgKind::Numeric { .. } => plain(ReadKind::Numeric),
        PgKind::Text | PgKind::Varchar { .. } | PgKind::Char { .. } | PgKind::Enum { .. } => {
            plain(ReadKind::Text)
        }
        PgKind::Uuid => plain(ReadKind::Uuid),
        PgKind::Date => plain(ReadKind::Date),
        PgKind::Timestamp => plain(ReadKind::Timestamp),
        PgKind::TimestampTz => plain(ReadKind::TimestampTz),
        PgKind::Time => plain(ReadKind::Time),
        PgKind::TimeTz => plain(ReadKind::TimeTz),
        PgKind::Json => plain(ReadKind::Json),
        PgKind::Jsonb => plain(ReadKind::Jsonb),
        PgKind::Bytea => plain(ReadKind::Bytea),
        PgKind::Vector { dim } => plain(ReadKind::Vector(*dim)),
        PgKind::HalfVec { dim } => plain(ReadKind::HalfVec(*dim)),
        PgKind::SparseVec { .. } => plain(ReadKind::SparseVec),
        PgKind::Bit { length: Some(n) } if *n > 0 && n % 8 == 0 => plain(ReadKind::Bit(n / 8)),
        PgKind::Array { ndims, .. } if *ndims > 1 => (ReadKind::Text, SelectAs::ArrayJson),
        PgKind::Array { element, .. } => match read_kind(element) {
            (elem, SelectAs::Plain) if !matches!(elem, ReadKind::Array(_)) => {
                plain(ReadKind::Array(Box::new(elem)))
            }
            _ => (
                ReadKind::Array(Box::new(ReadKind::Text)),
                SelectAs::TextArray,
            ),
        },
        PgKind::Bit { .. }
        | PgKind::VarBit { .. }
        | PgKind::Interval
        | PgKind::Inet
        | PgKind::Cidr
        | PgKind::Other { .. } => (ReadKind::Text, SelectAs::Text),
    }
}

/// The select-list expression for a column.
pub fn select_expr(column: &str, how: SelectAs) -> String {
    let q = quote_ident(column);
    match how {
        SelectAs::Plain => q,
        SelectAs::Text => format!("{q}::text"),
        SelectAs::TextArray => format!("{q}::text[]"),
        SelectAs::ArrayJson => format!("array_to_json({q})::text"),
    }
}

impl ReadKind {
    /// The Arrow type this decoder produces.
    pub fn arrow_type(&self) -> DataType {
        match self {
            ReadKind::Bool => DataType::Boolean,
            ReadKind::Int16 => DataType::Int16,
            ReadKind::Int32 => DataType::Int32,
            ReadKind::Int64 => DataType::Int64,
            ReadKind::Float32 => DataType::Float32,
            ReadKind::Float64 => DataType::Float64,
            ReadKind::Text
            | ReadKind::Numeric
            | ReadKind::Uuid
            | ReadKind::Date
            | ReadKind::Timestamp
            | ReadKind::TimestampTz
            | ReadKind::Time
            | ReadKind::TimeTz
            | ReadKind::Json
            | ReadKind::Jsonb => DataType::Utf8,
            ReadKind::Bytea => DataType::Binary,
            ReadKind::Vector(dim) => list_of(DataType::Float32, *dim),
            ReadKind::HalfVec(dim) => list_of(DataType::Float16, *dim),
            ReadKind::SparseVec => DataType::Struct(sparse_fields()),
            ReadKind::Bit(bytes) => DataType::FixedSizeBinary(*bytes as i32),
            ReadKind::Array(elem) => {
                DataType::List(Arc::new(Field::new("item", elem.arrow_type(), true)))
            }
        }
    }
}

fn list_of(item: DataType, dim: Option<u32>) -> DataType {
    let field = Arc::new(Field::new("item", item, false));
    match dim {
        Some(d) => DataType::FixedSizeList(field, d as i32),
        None => DataType::List(field),
    }
}

/// The fields of the sparse vector struct.
pub fn sparse_fields() -> Fields {
    Fields::from(vec![
        Field::new("dim", DataType::Int32, false),
        Field::new(
            "indices",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, false))),
            false,
        ),
        Field::new(
            "values",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, false))),
            false,
        ),
    ])
}

/// Why a field's bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeProblem(pub String);

type R = Result<(), DecodeProblem>;

fn bad(what: &str, len: usize) -> DecodeProblem {
    DecodeProblem(format!("malformed {what} value ({len} bytes)"))
}

fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    b.get(at..at + 2).map(|s| i16::from_be_bytes([s[0], s[1]]))
}
fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}
fn be_i64(b: &[u8], at: usize) -> Option<i64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(i64::from_be_bytes)
}

/// Variable-length lists of fixed-width values being built (vectors without a declared
/// dimension, sparse vector parts).
pub struct Lists<T> {
    values: Vec<T>,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl<T> Lists<T> {
    fn new() -> Self {
        Lists {
            values: Vec::new(),
            offsets: vec![0],
            nulls: NullBufferBuilder::new(0),
        }
    }
    fn close(&mut self, valid: bool) {
        self.offsets.push(self.values.len() as i32);
        self.nulls.append(valid);
    }
    fn take(&mut self) -> (Vec<T>, OffsetBuffer<i32>, Option<NullBuffer>) {
        let values = std::mem::take(&mut self.values);
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        (
            values,
            OffsetBuffer::new(offsets.into()),
            self.nulls.finish(),
        )
    }
}

/// A column decoder with its builder.
pub enum ColumnDecoder {
    /// boolean
    Bool(BooleanBuilder),
    /// smallint
    Int16(Int16Builder),
    /// integer
    Int32(Int32Builder),
    /// bigint
    Int64(Int64Builder),
    /// real
    Float32(Float32Builder),
    /// double precision
    Float64(Float64Builder),
    /// Anything that becomes `Utf8`, with its text form.
    Utf8(ReadKind, StringBuilder, String),
    /// bytea
    Bytea(BinaryBuilder),
    /// vector / halfvec with a declared dimension: values flat, `dim` per row.
    Dense {
        /// Dimension.
        dim: usize,
        /// Whether the values are halfvec.
        half: bool,
        /// Values as f32 (vector) or f16 bits (halfvec).
        f32s: Vec<f32>,
        /// Halfvec bits.
        f16s: Vec<u16>,
        /// Row validity.
        nulls: NullBufferBuilder,
    },
    /// vector / halfvec without a declared dimension.
    Ragged {
        /// Whether the values are halfvec.
        half: bool,
        /// f32 values.
        f32s: Lists<f32>,
        /// f16 bits.
        f16s: Lists<u16>,
    },
    /// sparsevec
    Sparse {
        /// Declared dims.
        dims: Vec<i32>,
        /// Indices.
        indices: Lists<i32>,
        /// Values.
        values: Lists<f32>,
        /// Row validity.
        nulls: NullBufferBuilder,
    },
    /// bit(n)
    Bit(u32, FixedSizeBinaryBuilder),
    /// One-dimensional array.
    Array {
        /// The element decoder.
        elem: Box<ColumnDecoder>,
        /// The element kind (for the Arrow field).
        elem_kind: ReadKind,
        /// Offsets into the element decoder.
        offsets: Vec<i32>,
        /// Elements appended so far.
        count: i32,
        /// Row validity.
        nulls: NullBufferBuilder,
    },
}

impl ColumnDecoder {
    /// A decoder for `kind`.
    pub fn new(kind: &ReadKind) -> Self {
        match kind {
            ReadKind::Bool => ColumnDecoder::Bool(BooleanBuilder::new()),
            ReadKind::Int16 => ColumnDecoder::Int16(Int16Builder::new()),
            ReadKind::Int32 => ColumnDecoder::Int32(Int32Builder::new()),
            ReadKind::Int64 => ColumnDecoder::Int64(Int64Builder::new()),
            ReadKind::Float32 => ColumnDecoder::Float32(Float32Builder::new()),
            ReadKind::Float64 => ColumnDecoder::Float64(Float64Builder::new()),
            ReadKind::Bytea => ColumnDecoder::Bytea(BinaryBuilder::new()),
            ReadKind::Vector(Some(d)) | ReadKind::HalfVec(Some(d)) => ColumnDecoder::Dense {
                dim: *d as usize,
                half: matches!(kind, ReadKind::HalfVec(_)),
                f32s: Vec::new(),
                f16s: Vec::new(),
                nulls: NullBufferBuilder::new(0),
            },
            ReadKind::Vector(None) | ReadKind::HalfVec(None) => ColumnDecoder::Ragged {
                half: matches!(kind, ReadKind::HalfVec(_)),
                f32s: Lists::new(),
                f16s: Lists::new(),
            },
            ReadKind::SparseVec => ColumnDecoder::Sparse {
                dims: Vec::new(),
                indices: Lists::new(),
                values: Lists::new(),
                nulls: NullBufferBuilder::new(0),
            },
            ReadKind::Bit(bytes) => {
                ColumnDecoder::Bit(*bytes, FixedSizeBinaryBuilder::new(*bytes as i32))
            }
            ReadKind::Array(elem) => ColumnDecoder::Array {
                elem: Box::new(ColumnDecoder::new(elem)),
                elem_kind: (**elem).clone(),
                offsets: vec![0],
                count: 0,
                nulls: NullBufferBuilder::new(0),
            },
            other => ColumnDecoder::Utf8(other.clone(), StringBuilder::new(), String::new()),
        }
    }

    /// Appends one field: `None` is SQL NULL.
    pub fn append(&mut self, field: Option<&[u8]>) -> R {
        let Some(b) = field else {
            self.append_null();
            return Ok(());
        };
        match self {
            ColumnDecoder::Bool(x) => match b {
                [v] => x.append_value(*v != 0),
                _ => return Err(bad("boolean", b.len())),
            },
            ColumnDecoder::Int16(x) => x.append_value(
                be_i16(b, 0)
                    .filter(|_| b.len() == 2)
                    .ok_or_else(|| bad("smallint", b.len()))?,
            ),
            ColumnDecoder::Int32(x) => x.append_value(
                be_i32(b, 0)
                    .filter(|_| b.len() == 4)
                    .ok_or_else(|| bad("integer", b.len()))?,
            ),
            ColumnDecoder::Int64(x) => x.append_value(
                be_i64(b, 0)
                    .filter(|_| b.len() == 8)
                    .ok_or_else(|| bad("bigint", b.len()))?,
            ),
            ColumnDecoder::Float32(x) => {
                let v = be_i32(b, 0)
                    .filter(|_| b.len() == 4)
                    .ok_or_else(|| bad("real", b.len()))?;
                x.append_value(f32::from_bits(v as u32))
            }
            ColumnDecoder::Float64(x) => {
                let v = be_i64(b, 0)
                    .filter(|_| b.len() == 8)
                    .ok_or_else(|| bad("double", b.len()))?;
                x.append_value(f64::from_bits(v as u64))
            }
            ColumnDecoder::Bytea(x) => x.append_value(b),
            ColumnDecoder::Utf8(kind, x, scratch) => {
                scratch.clear();
                let s: &str = match kind {
                    ReadKind::Text | ReadKind::Json => std::str::from_utf8(b)
                        .map_err(|_| DecodeProblem("invalid UTF-8 in text".into()))?,
                    ReadKind::Jsonb => match b.split_first() {
                        Some((1, rest)) => std::str::from_utf8(rest)
                            .map_err(|_| DecodeProblem("invalid UTF-8 in jsonb".into()))?,
                        _ => return Err(DecodeProblem("unknown jsonb version byte".into())),
                    },
                    ReadKind::Numeric => {
                        text::numeric(b, scratch).ok_or_else(|| bad("numeric", b.len()))?;
                        scratch.as_str()
                    }
                    ReadKind::Uuid => {
                        let arr: &[u8; 16] = b.try_into().map_err(|_| bad("uuid", b.len()))?;
                        text::uuid(arr, scratch);
                        scratch.as_str()
                    }
                    ReadKind::Date => {
                        let d = be_i32(b, 0)
                            .filter(|_| b.len() == 4)
                            .ok_or_else(|| bad("date", b.len()))?;
                        text::date(d, scratch);
                        scratch.as_str()
                    }
                    ReadKind::Timestamp | ReadKind::TimestampTz => {
                        let t = be_i64(b, 0)
                            .filter(|_| b.len() == 8)
                            .ok_or_else(|| bad("timestamp", b.len()))?;
                        text::timestamp(t, *kind == ReadKind::TimestampTz, scratch);
                        scratch.as_str()
                    }
                    ReadKind::Time => {
                        let t = be_i64(b, 0)
                            .filter(|_| b.len() == 8)
                            .ok_or_else(|| bad("time", b.len()))?;
                        text::time(t, scratch);
                        scratch.as_str()
                    }
                    ReadKind::TimeTz => {
                        let t = be_i64(b, 0)
                            .filter(|_| b.len() == 12)
                            .ok_or_else(|| bad("timetz", b.len()))?;
                        let z = be_i32(b, 8).ok_or_else(|| bad("timetz", b.len()))?;
                        text::timetz(t, z, scratch);
                        scratch.as_str()
                    }
                    _ => return Err(DecodeProblem(format!("no text decoder for {kind:?}"))),
                };
                x.append_value(s);
            }
            ColumnDecoder::Dense {
                dim,
                half,
                f32s,
                f16s,
                nulls,
            } => {
                let d = be_i16(b, 0).ok_or_else(|| bad("vector", b.len()))? as u16 as usize;
                let width = if *half { 2 } else { 4 };
                if d != *dim || b.len() != 4 + d * width {
                    return Err(DecodeProblem(format!(
                        "vector of dimension {d} in a column declared with {dim}"
                    )));
                }
                let body = &b[4..];
                if *half {
                    f16s.extend(
                        body.chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]])),
                    );
                } else {
                    f32s.extend(
                        body.chunks_exact(4)
                            .map(|c| f32::from_bits(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))),
                    );
                }
                nulls.append_non_null();
            }
            ColumnDecoder::Ragged { half, f32s, f16s } => {
                let d = be_i16(b, 0).ok_or_else(|| bad("vector", b.len()))? as u16 as usize;
                let width = if *half { 2 } else { 4 };
                if b.len() != 4 + d * width {
                    return Err(bad("vector", b.len()));
                }
                let body = &b[4..];
                if *half {
                    f16s.values.extend(
                        body.chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]])),
                    );
                    f16s.close(true);
                } else {
                    f32s.values.extend(
                        body.chunks_exact(4)
                            .map(|c| f32::from_bits(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))),
                    );
                    f32s.close(true);
                }
            }
            ColumnDecoder::Sparse {
                dims,
                indices,
                values,
                nulls,
            } => {
                let dim = be_i32(b, 0).ok_or_else(|| bad("sparsevec", b.len()))?;
                let nnz = be_i32(b, 4).ok_or_else(|| bad("sparsevec", b.len()))?;
                let nnz = usize::try_from(nnz).map_err(|_| bad("sparsevec", b.len()))?;
                if b.len() != 12 + nnz * 8 {
                    return Err(bad("sparsevec", b.len()));
                }
                let idx = &b[12..12 + nnz * 4];
                let val = &b[12 + nnz * 4..];
                indices.values.extend(
                    idx.chunks_exact(4)
                        .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])),
                );
                values.values.extend(
                    val.chunks_exact(4)
                        .map(|c| f32::from_bits(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))),
                );
                indices.close(true);
                values.close(true);
                dims.push(dim);
                nulls.append_non_null();
            }
            ColumnDecoder::Bit(bytes, x) => {
                let len = be_i32(b, 0).ok_or_else(|| bad("bit", b.len()))?;
                if len as i64 != i64::from(*bytes) * 8 || b.len() != 4 + *bytes as usize {
                    return Err(bad("bit", b.len()));
                }
                x.append_value(&b[4..])
                    .map_err(|e| DecodeProblem(e.to_string()))?;
            }
            ColumnDecoder::Array {
                elem,
                offsets,
                count,
                nulls,
                ..
            } => {
                let ndim = be_i32(b, 0).ok_or_else(|| bad("array", b.len()))?;
                match ndim {
                    0 => {}
                    1 => {
                        let n = be_i32(b, 12).ok_or_else(|| bad("array", b.len()))?;
                        let mut at = 20usize;
                        for _ in 0..n {
                            let len = be_i32(b, at).ok_or_else(|| bad("array", b.len()))?;
                            at += 4;
                            if len < 0 {
                                elem.append(None)?;
                            } else {
                                let end = at + len as usize;
                                let v = b.get(at..end).ok_or_else(|| bad("array", b.len()))?;
                                elem.append(Some(v))?;
                                at = end;
                            }
                        }
                        *count += n;
                    }
                    n => {
                        return Err(DecodeProblem(format!(
                            "a {n}-dimensional value in a column declared one-dimensional; map it with `type: JSON`"
                        )));
                    }
                }
                offsets.push(*count);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            ColumnDecoder::Bool(x) => x.append_null(),
            ColumnDecoder::Int16(x) => x.append_null(),
            ColumnDecoder::Int32(x) => x.append_null(),
            ColumnDecoder::Int64(x) => x.append_null(),
            ColumnDecoder::Float32(x) => x.append_null(),
            ColumnDecoder::Float64(x) => x.append_null(),
            ColumnDecoder::Utf8(_, x, _) => x.append_null(),
            ColumnDecoder::Bytea(x) => x.append_null(),
            ColumnDecoder::Dense {
                dim,
                half,
                f32s,
                f16s,
                nulls,
            } => {
                if *half {
                    f16s.extend(std::iter::repeat_n(0, *dim));
                } else {
                    f32s.extend(std::iter::repeat_n(0.0, *dim));
                }
                nulls.append_null();
            }
            ColumnDecoder::Ragged { half, f32s, f16s } => {
                if *half {
                    f16s.close(false)
                } else {
                    f32s.close(false)
                }
            }
            ColumnDecoder::Sparse {
                dims,
                indices,
                values,
                nulls,
            } => {
                dims.push(0);
                indices.close(true);
                values.close(true);
                nulls.append_null();
            }
            ColumnDecoder::Bit(_, x) => x.append_null(),
            ColumnDecoder::Array {
                offsets,
                count,
                nulls,
                ..
            } => {
                offsets.push(*count);
                nulls.append_null();
            }
        }
    }

    /// Takes the values appended so far as an Arrow array and starts over.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnDecoder::Bool(x) => Arc::new(x.finish()),
            ColumnDecoder::Int16(x) => Arc::new(x.finish()),
            ColumnDecoder::Int32(x) => Arc::new(x.finish()),
            ColumnDecoder::Int64(x) => Arc::new(x.finish()),
            ColumnDecoder::Float32(x) => Arc::new(x.finish()),
            ColumnDecoder::Float64(x) => Arc::new(x.finish()),
            ColumnDecoder::Utf8(_, x, _) => Arc::new(x.finish()),
            ColumnDecoder::Bytea(x) => Arc::new(x.finish()),
            ColumnDecoder::Dense {
                dim,
                half,
                f32s,
                f16s,
                nulls,
            } => {
                // The next batch is about this size: allocated once, not grown by doubling
                // (each doubling a copy of everything decoded so far).
                let (item, values): (DataType, ArrayRef) = if *half {
                    let bits = std::mem::replace(f16s, Vec::with_capacity(f16s.len()));
                    (
                        DataType::Float16,
                        Arc::new(Float16Array::from(
                            bits.into_iter().map(f16::from_bits).collect::<Vec<_>>(),
                        )),
                    )
                } else {
                    (
                        DataType::Float32,
                        Arc::new(Float32Array::from(std::mem::replace(
                            f32s,
                            Vec::with_capacity(f32s.len()),
                        ))),
                    )
                };
                let field = Arc::new(Field::new("item", item, false));
                Arc::new(FixedSizeListArray::new(
                    field,
                    *dim as i32,
                    values,
                    nulls.finish(),
                ))
            }
            ColumnDecoder::Ragged { half, f32s, f16s } => {
                if *half {
                    let (v, o, n) = f16s.take();
                    let values: ArrayRef = Arc::new(Float16Array::from(
                        v.into_iter().map(f16::from_bits).collect::<Vec<_>>(),
                    ));
                    let field = Arc::new(Field::new("item", DataType::Float16, false));
                    Arc::new(ListArray::new(field, o, values, n))
                } else {
                    let (v, o, n) = f32s.take();
                    let field = Arc::new(Field::new("item", DataType::Float32, false));
                    Arc::new(ListArray::new(field, o, Arc::new(Float32Array::from(v)), n))
                }
            }
            ColumnDecoder::Sparse {
                dims,
                indices,
                values,
                nulls,
            } => {
                let (iv, io, _) = indices.take();
                let (vv, vo, _) = values.take();
                let fields = sparse_fields();
                let idx = ListArray::new(
                    Arc::new(Field::new("item", DataType::Int32, false)),
                    io,
                    Arc::new(Int32Array::from(iv)),
                    None,
                );
                let val = ListArray::new(
                    Arc::new(Field::new("item", DataType::Float32, false)),
                    vo,
                    Arc::new(Float32Array::from(vv)),
                    None,
                );
                Arc::new(StructArray::new(
                    fields,
                    vec![
                        Arc::new(Int32Array::from(std::mem::take(dims))),
                        Arc::new(idx),
                        Arc::new(val),
                    ],
                    nulls.finish(),
                ))
            }
            ColumnDecoder::Bit(_, x) => Arc::new(x.finish()),
            ColumnDecoder::Array {
                elem,
                elem_kind,
                offsets,
                count,
                nulls,
            } => {
                let values = elem.finish();
                let offs = std::mem::replace(offsets, vec![0]);
                *count = 0;
                let field = Arc::new(Field::new("item", elem_kind.arrow_type(), true));
                Arc::new(ListArray::new(
                    field,
                    OffsetBuffer::new(offs.into()),
                    values,
                    nulls.finish(),
                ))
            }
        }
    }
}
