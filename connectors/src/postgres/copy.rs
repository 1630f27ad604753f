//! The binary COPY frame (`PGCOPY\n\xff\r\n\0`, flags, header extension, then per tuple an
//! int16 field count and length-prefixed fields, ended by -1) decoded across CopyData chunk
//! boundaries into Arrow record batches.
//!
//! The first field of every tuple is the row's `ctid`: it is not part of the batch, but the
//! last one of each emitted batch is kept so a reader that loses its connection can resume
//! right after it without duplicating rows.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use super::decode::{ColumnDecoder, ReadKind};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// A heap tuple id: (block, offset).
pub type Tid = (u32, u16);

/// Why a COPY stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The column, when a field was at fault.
    pub column: Option<String>,
    /// Rows decoded before the fault.
    pub row: u64,
    /// What was wrong.
    pub reason: String,
}

/// Decodes one COPY stream into batches.
pub struct CopyDecoder {
    schema: SchemaRef,
    names: Vec<String>,
    columns: Vec<ColumnDecoder>,
    header_done: bool,
    ended: bool,
    pending: Vec<u8>,
    rows_in_batch: usize,
    bytes_in_batch: usize,
    rows_total: u64,
    last_tid: Option<Tid>,
}

impl CopyDecoder {
    /// A decoder for columns of these kinds (without the leading ctid), producing `schema`.
    pub fn new(schema: SchemaRef, kinds: &[ReadKind]) -> Self {
        CopyDecoder {
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            schema,
            columns: kinds.iter().map(ColumnDecoder::new).collect(),
            header_done: false,
            ended: false,
            pending: Vec::new(),
            rows_in_batch: 0,
            bytes_in_batch: 0,
            rows_total: 0,
            last_tid: None,
        }
    }

    /// Rows waiting in the builders.
    pub fn buffered_rows(&self) -> usize {
        self.rows_in_batch
    }

    /// Field bytes waiting in the builders.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes_in_batch
    }

    /// Whether the trailer has been seen.
    pub fn ended(&self) -> bool {
        self.ended
    }

    fn err(&self, column: Option<usize>, reason: impl Into<String>) -> FrameError {
        FrameError {
            column: column.and_then(|c| self.names.get(c).cloned()),
            row: self.rows_total,
            reason: reason.into(),
        }
    }

    /// Feeds one CopyData chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), FrameError> {
        if self.pending.is_empty() {
            let used = self.parse(chunk)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            self.pending.extend_from_slice(chunk);
            let buf = std::mem::take(&mut self.pending);
            let used = self.parse(&buf)?;
            self.pending = buf[used..].to_vec();
        }
        Ok(())
    }

    /// Checks that the stream ended cleanly (the trailer, nothing after it).
    pub fn finish_stream(&self) -> Result<(), FrameError> {
        if !self.ended {
            return Err(self.err(None, "COPY stream ended without its trailer"));
        }
        if !self.pending.is_empty() {
            return Err(self.err(None, "bytes after the COPY trailer"));
        }
        Ok(())
    }

    /// Parses whole tuples from `buf`; returns the bytes consumed.
    fn parse(&mut self, buf: &[u8]) -> Result<usize, FrameError> {
        let mut at = 0;
        if !self.header_done {
            if buf.len() < SIGNATURE.len() + 8 {
                return Ok(0);
            }
            if &buf[..SIGNATURE.len()] != SIGNATURE {
                return Err(self.err(None, "not a binary COPY stream"));
            }
            let ext_at = SIGNATURE.len() + 4;
            let ext = u32::from_be_bytes([
                buf[ext_at],
                buf[ext_at + 1],
                buf[ext_at + 2],
                buf[ext_at + 3],
            ]) as usize;
            let body = ext_at + 4 + ext;
            if buf.len() < body {
                return Ok(0);
            }
            at = body;
            self.header_done = true;
        }
        let ncols = self.columns.len() + 1;
        while at + 2 <= buf.len() {
            if self.ended {
                return Err(self.err(None, "bytes after the COPY trailer"));
            }
            let count = i16::from_be_bytes([buf[at], buf[at + 1]]);
            if count == -1 {
                self.ended = true;
                at += 2;
                continue;
            }
            if count as usize != ncols {
                return Err(self.err(None, format!("tuple with {count} fields, expected {ncols}")));
            }
            // Find the tuple's end first, so a tuple split across chunks is never half-appended.
            let mut end = at + 2;
            let mut complete = true;
            for _ in 0..ncols {
                let Some(len) = buf.get(end..end + 4) else {
                    complete = false;
                    break;
                };
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                end += 4 + usize::try_from(len).unwrap_or(0);
                if end > buf.len() {
                    complete = false;
                    break;
                }
            }
            if !complete {
                break;
            }
            let mut p = at + 2;
            for c in 0..ncols {
                let len = i32::from_be_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]);
                p += 4;
                let field = if len < 0 {
                    None
                } else {
                    let f = &buf[p..p + len as usize];
                    p += len as usize;
                    Some(f)
                };
                if c == 0 {
                    match field {
                        Some(t) if t.len() == 6 => {
                            let block = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
                            let off = u16::from_be_bytes([t[4], t[5]]);
                            self.last_tid = Some((block, off));
                        }
                        _ => return Err(self.err(None, "malformed ctid")),
                    }
                    continue;
                }
                if let Err(problem) = self.columns[c - 1].append(field) {
                    return Err(self.err(Some(c - 1), problem.0));
                }
            }
            self.bytes_in_batch += end - at;
            self.rows_in_batch += 1;
            self.rows_total += 1;
            at = end;
        }
        Ok(at)
    }

    /// Takes the buffered rows as a batch, with the ctid of its last row.
    pub fn flush(&mut self) -> Result<Option<(RecordBatch, Option<Tid>)>, FrameError> {
        if self.rows_in_batch == 0 {
            return Ok(None);
        }
        let arrays = self.columns.iter_mut().map(ColumnDecoder::finish).collect();
        let options = datafusion::arrow::array::RecordBatchOptions::new()
            .with_row_count(Some(self.rows_in_batch));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|e| self.err(None, format!("building a batch: {e}")))?;
        self.rows_in_batch = 0;
        self.bytes_in_batch = 0;
        Ok(Some((batch, self.last_tid)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Int32Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn frame(rows: &[(Tid, Option<i32>, Option<&str>)]) -> Vec<u8> {
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        for (tid, n, s) in rows {
            b.extend_from_slice(&3i16.to_be_bytes());
            b.extend_from_slice(&6i32.to_be_bytes());
            b.extend_from_slice(&tid.0.to_be_bytes());
            b.extend_from_slice(&tid.1.to_be_bytes());
            match n {
                Some(v) => {
                    b.extend_from_slice(&4i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
            match s {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v.as_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b
    }

    fn decoder() -> CopyDecoder {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", datafusion::arrow::datatypes::DataType::Int32, true),
            Field::new("s", datafusion::arrow::datatypes::DataType::Utf8, true),
        ]));
        CopyDecoder::new(schema, &[ReadKind::Int32, ReadKind::Text])
    }

    #[test]
    fn decodes_across_any_chunking() {
        let bytes = frame(&[
            ((0, 1), Some(7), Some("a")),
            ((0, 2), None, Some("héllo")),
            ((3, 1), Some(-1), None),
        ]);
        for chunk in 1..bytes.len() {
            let mut d = decoder();
            for c in bytes.chunks(chunk) {
                d.push(c).unwrap();
            }
            d.finish_stream().unwrap();
            let (batch, tid) = d.flush().unwrap().unwrap();
            assert_eq!(tid, Some((3, 1)));
            let n = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap();
            let s = batch
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            assert_eq!((n.value(0), n.is_null(1), n.value(2)), (7, true, -1));
            assert_eq!((s.value(1), s.is_null(2)), ("héllo", true));
        }
    }

    #[test]
    fn truncated_and_corrupt_streams_are_errors() {
        let bytes = frame(&[((0, 1), Some(7), Some("a"))]);
        let mut d = decoder();
        d.push(&bytes[..bytes.len() - 3]).unwrap();
        assert!(d.finish_stream().is_err());
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(decoder().push(&bad).is_err());
        let mut bad = bytes;
        let pos = SIGNATURE.len() + 8 + 2 + 4 + 6; // the int field's length
        bad[pos..pos + 4].copy_from_slice(&3i32.to_be_bytes());
        let mut d = decoder();
        let r = d.push(&bad).and_then(|_| d.finish_stream());
        assert!(r.is_err(), "{r:?}");
    }
}
