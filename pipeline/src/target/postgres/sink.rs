//! The data section: each source range into the target table over its own connection, as
//! binary `COPY … FROM STDIN`, and committed in one transaction with its checkpoint rows. The
//! source's field bytes go through untouched (the run reads them undecoded for this target):
//! the same wire format on both sides is the physical limit of this copy.
//!
//! The writer thread hands each range's batches to a task of its own on the runtime, so the
//! target's backends parse and insert several ranges at once while the thread goes on; a
//! commit waits for its range's task to finish the COPY, write the checkpoint and commit.
//!
//! Into a table that was already there (`append`, `truncate`, an empty table under `fail`),
//! its constraints can refuse rows. Then each batch is its own COPY under a savepoint, and a
//! refused batch is halved until the refused rows are alone: they go to the rejects file with
//! the server's message, the rest is loaded.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray, BinaryArray, RecordBatch};
use etl_connectors::ConnectorError;
use etl_connectors::postgres::{PgUrl, WIRE_TEXT, connect};
use etl_mappings::QualifiedName;
use futures::SinkExt;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::PipelineError;
use crate::map::{Reject, RejectReason};
use crate::target::{Checkpoint, RejectRows, TableSink, closed};

/// The binary COPY header: signature, flags, header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The binary COPY trailer: a field count of -1.
const TRAILER: &[u8] = &[0xff, 0xff];

enum Msg {
    Rows(RecordBatch),
    Commit(Checkpoint, oneshot::Sender<Result<(), PipelineError>>),
}

struct RangeLoad {
    tx: mpsc::Sender<Msg>,
    task: JoinHandle<Result<(), PipelineError>>,
}

/// A table's sink: one loading task per open range.
pub(super) struct PgSink {
    handle: Handle,
    load: Load,
    ranges: HashMap<String, RangeLoad>,
}

/// What every range's task shares.
#[derive(Clone)]
struct Load {
    url: PgUrl,
    table: QualifiedName,
    /// The table has constraints of its own during the load: batch by batch under savepoints.
    careful: bool,
    rejects: Option<RejectRows>,
}

impl PgSink {
    pub(super) fn new(handle: Handle, url: PgUrl, table: QualifiedName, careful: bool) -> PgSink {
        PgSink {
            handle,
            load: Load {
                url,
                table,
                careful,
                rejects: None,
            },
            ranges: HashMap::new(),
        }
    }

    fn range(&mut self, range: &str) -> &mut RangeLoad {
        let (handle, load) = (&self.handle, &self.load);
        self.ranges.entry(range.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(2);
            let task = handle.spawn(load_range(load.clone(), range.to_string(), rx));
            RangeLoad { tx, task }
        })
    }

    /// The error a range's task ended with (it stopped taking batches).
    fn failed(&self, load: RangeLoad) -> PipelineError {
        match self.handle.block_on(load.task) {
            Ok(Err(e)) => e,
            Ok(Ok(())) => closed(),
            Err(e) => PipelineError::Internal {
                message: format!("loading {}: {e}", self.load.table),
            },
        }
    }
}

impl TableSink for PgSink {
    fn write(&mut self, range: &str, batch: &RecordBatch) -> Result<(), PipelineError> {
        if self
            .range(range)
            .tx
            .blocking_send(Msg::Rows(batch.clone()))
            .is_err()
        {
            let load = self.ranges.remove(range).ok_or_else(closed)?;
            return Err(self.failed(load));
        }
        Ok(())
    }

    fn commit(&mut self, range: &str, checkpoint: Checkpoint) -> Result<(), PipelineError> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .range(range)
            .tx
            .blocking_send(Msg::Commit(checkpoint, reply));
        let load = self.ranges.remove(range).ok_or_else(closed)?;
        if sent.is_err() {
            return Err(self.failed(load));
        }
        match answer.blocking_recv() {
            Ok(result) => {
                let _ = self.handle.block_on(load.task);
                result
            }
            Err(_) => Err(self.failed(load)),
        }
    }

    fn close(self: Box<Self>) -> Result<(), PipelineError> {
        Ok(())
    }

    fn report_rejects_to(&mut self, to: RejectRows) {
        self.load.rejects = Some(to);
    }
}

/// Loads one range: COPY started with its first batch (or, careful, one COPY per batch under a
/// savepoint), then the rejects and the checkpoint, then COMMIT. A range dropped without a
/// commit (a failed or cancelled run) rolls back.
async fn load_range(
    load: Load,
    range: String,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<(), PipelineError> {
    let table = &load.table;
    let context = |what: &str| format!("{what} {table} (range {range})");
    let mut client = connect(&load.url).await?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| ConnectorError::from_pg(context("starting to load"), e))?;
    let copying = |e: tokio_postgres::Error| ConnectorError::from_pg(context("copying into"), e);
    let mut copy = None;
    // The COPY statement and the framing (the array columns to patch), from the range's first
    // batch (every batch of a range has the same columns).
    let mut prepared: Option<(String, Framing)> = None;
    let mut refused: Vec<Reject> = Vec::new();
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Rows(batch) => {
                let (sql, framing) = match &prepared {
                    Some(p) => p,
                    None => {
                        let schema = batch.schema();
                        let columns: Vec<String> =
                            schema.fields().iter().map(|f| f.name().clone()).collect();
                        let (framing, text) = if schema.metadata().contains_key(WIRE_TEXT) {
                            (Framing::Text, true)
                        } else {
                            (
                                Framing::Binary(element_types(&tx, table, &columns).await?),
                                false,
                            )
                        };
                        prepared.insert((super::ddl::copy_in(table, &columns, text), framing))
                    }
                };
                if load.careful {
                    copy_refusing(&tx, sql, &batch, framing, &mut refused)
                        .await
                        .map_err(|e| match e {
                            Refusing::Pg(e) => copying(e).into(),
                            Refusing::Other(e) => e,
                        })?;
                    continue;
                }
                if copy.is_none() {
                    let mut sink = Box::pin(
                        tx.copy_in::<_, bytes::Bytes>(sql.as_str())
                            .await
                            .map_err(copying)?,
                    );
                    if let Some(header) = framing.header() {
                        sink.send(header).await.map_err(copying)?;
                    }
                    copy = Some(sink);
                }
                if let Some(sink) = copy.as_mut() {
                    sink.send(framing.encode(&batch)?).await.map_err(copying)?;
                }
            }
            Msg::Commit(checkpoint, reply) => {
                let done = async {
                    if let Some(mut sink) = copy.take() {
                        if let Some((_, framing)) = &prepared
                            && let Some(trailer) = framing.trailer()
                        {
                            sink.send(trailer).await.map_err(copying)?;
                        }
                        sink.as_mut().finish().await.map_err(copying)?;
                    }
                    // Refused rows are on disk before the rows around them commit.
                    if let Some(record) = &load.rejects {
                        record(&range, std::mem::take(&mut refused))?;
                    }
                    super::state::save_checkpoint(&tx, table, &checkpoint).await?;
                    Ok::<(), PipelineError>(())
                }
                .await;
                let done = match done {
                    Ok(()) => tx
                        .commit()
                        .await
                        .map_err(|e| ConnectorError::from_pg(context("committing"), e).into()),
                    Err(e) => Err(e),
                };
                let _ = reply.send(done);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// COPYs `batch` under a savepoint; when the server refuses it, halves it until each refused
/// row is alone, keeping every row the server takes and listing the others in `refused`.
async fn copy_refusing(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    batch: &RecordBatch,
    framing: &Framing,
    refused: &mut Vec<Reject>,
) -> Result<(), Refusing> {
    let mut pending = vec![batch.clone()];
    while let Some(part) = pending.pop() {
        let body = framing.encode(&part).map_err(Refusing::Other)?;
        tx.batch_execute("SAVEPOINT etl_batch").await?;
        match copy_once(tx, sql, framing, body).await {
            Ok(()) => tx.batch_execute("RELEASE SAVEPOINT etl_batch").await?,
            Err(e) => {
                let Some(db) = e.as_db_error() else {
                    return Err(Refusing::Pg(e));
                };
                tx.batch_execute("ROLLBACK TO SAVEPOINT etl_batch; RELEASE SAVEPOINT etl_batch")
                    .await?;
                if part.num_rows() > 1 {
                    let half = part.num_rows() / 2;
                    pending.push(part.slice(half, part.num_rows() - half));
                    pending.push(part.slice(0, half));
                } else {
                    refused.push(Reject {
                        primary_key: serde_json::Value::Null,
                        column: db.column().unwrap_or_default().to_string(),
                        reason: RejectReason::Refused,
                        value: serde_json::Value::Null,
                        message: match db.detail() {
                            Some(d) => format!("{} ({d})", db.message()),
                            None => db.message().to_string(),
                        },
                    });
                }
            }
        }
    }
    Ok(())
}

/// Why a careful COPY stopped: the server (not a refused row), or anything else.
enum Refusing {
    Pg(tokio_postgres::Error),
    Other(PipelineError),
}

impl From<tokio_postgres::Error> for Refusing {
    fn from(e: tokio_postgres::Error) -> Self {
        Refusing::Pg(e)
    }
}

/// One COPY of encoded rows.
async fn copy_once(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    framing: &Framing,
    body: bytes::Bytes,
) -> Result<(), tokio_postgres::Error> {
    let mut sink = Box::pin(tx.copy_in::<_, bytes::Bytes>(sql).await?);
    if let Some(header) = framing.header() {
        sink.send(header).await?;
    }
    sink.send(body).await?;
    if let Some(trailer) = framing.trailer() {
        sink.send(trailer).await?;
    }
    sink.as_mut().finish().await?;
    Ok(())
}

/// The array columns of `table` (by position in `columns`) with their element type's OID on
/// the target: an array's binary form names its element type by OID, which differs between
/// databases for user-defined types (enums, domains, pgvector's), and which a dump's text,
/// encoded here, can only guess for built-in ones (`varchar[]` read as `text[]`); those four
/// bytes are rewritten on the way through.
async fn element_types(
    client: &impl tokio_postgres::GenericClient,
    table: &QualifiedName,
    columns: &[String],
) -> Result<Vec<(usize, u32)>, PipelineError> {
    let rows = client
        .query(
            "SELECT a.attname::text, t.typelem FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
               AND t.typcategory = 'A'",
            &[&table.quoted()],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(format!("reading the array types of {table}"), e))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let name: String = r.get(0);
            Some((columns.iter().position(|c| *c == name)?, r.get::<_, u32>(1)))
        })
        .collect())
}

/// How rows are framed for COPY.
enum Framing {
    /// Postgres' binary format; the array columns (by position) whose element type OID is
    /// replaced by the target's.
    Binary(Vec<(usize, u32)>),
    /// The text format (a dump's own text, for tables with types that have no binary form
    /// here).
    Text,
}

impl Framing {
    fn header(&self) -> Option<bytes::Bytes> {
        matches!(self, Framing::Binary(_)).then(|| bytes::Bytes::from_static(HEADER))
    }

    fn trailer(&self) -> Option<bytes::Bytes> {
        matches!(self, Framing::Binary(_)).then(|| bytes::Bytes::from_static(TRAILER))
    }

    fn encode(&self, batch: &RecordBatch) -> Result<bytes::Bytes, PipelineError> {
        match self {
            Framing::Binary(patches) => encode(batch, patches),
            Framing::Text => encode_text(batch),
        }
    }
}

/// A batch's columns as wire fields (`Binary`: each value a field's bytes).
fn wire_columns(batch: &RecordBatch) -> Result<Vec<&BinaryArray>, PipelineError> {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.as_binary_opt::<i32>()
                .ok_or_else(|| PipelineError::Internal {
                    message: format!(
                        "a Postgres target takes wire-format columns, got {}",
                        c.data_type()
                    ),
                })
        })
        .collect()
}

/// A batch of text fields as COPY text rows: tab-separated, `\N` for NULL, with backslash,
/// tab, newline and carriage return escaped.
fn encode_text(batch: &RecordBatch) -> Result<bytes::Bytes, PipelineError> {
    let cols = wire_columns(batch)?;
    let payload: usize = cols.iter().map(|c| c.values().len()).sum();
    let mut out = Vec::with_capacity(payload + payload / 16 + batch.num_rows() * (cols.len() + 1));
    for r in 0..batch.num_rows() {
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            if c.is_null(r) {
                out.extend_from_slice(b"\\N");
                continue;
            }
            for &b in c.value(r) {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
        }
        out.push(b'\n');
    }
    Ok(bytes::Bytes::from(out))
}

/// A batch of wire-format columns as binary COPY rows; `patches` gives the array columns whose
/// element type OID is replaced by the target's.
fn encode(batch: &RecordBatch, patches: &[(usize, u32)]) -> Result<bytes::Bytes, PipelineError> {
    let cols = wire_columns(batch)?;
    let rows = batch.num_rows();
    let payload: usize = cols.iter().map(|c| c.values().len()).sum();
    let mut out = Vec::with_capacity(payload + rows * (2 + 4 * cols.len()));
    let fields = i16::try_from(cols.len()).map_err(|_| PipelineError::Internal {
        message: "more than 32767 columns".into(),
    })?;
    for r in 0..rows {
        out.extend_from_slice(&fields.to_be_bytes());
        for (i, c) in cols.iter().enumerate() {
            if c.is_null(r) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                let v = c.value(r);
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                let start = out.len();
                out.extend_from_slice(v);
                // ndim, has-nulls flag, element type OID: the OID is bytes 8..12.
                if let Some((_, oid)) = patches.iter().find(|(col, _)| *col == i)
                    && v.len() >= 12
                {
                    out[start + 8..start + 12].copy_from_slice(&oid.to_be_bytes());
                }
            }
        }
    }
    Ok(bytes::Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn rows_are_framed_as_binary_copy_with_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Binary, true),
            Field::new("b", DataType::Binary, true),
        ]));
        let a = BinaryArray::from(vec![Some(&[0u8, 0, 0, 7][..]), None]);
        let b = BinaryArray::from(vec![Some(&b"hi"[..]), Some(&b""[..])]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(a), Arc::new(b)]).unwrap();
        let out = encode(&batch, &[]).unwrap();
        let want: Vec<u8> = [
            &[0u8, 2][..],
            &[0, 0, 0, 4, 0, 0, 0, 7],
            &[0, 0, 0, 2, b'h', b'i'],
            &[0, 2],
            &[0xff, 0xff, 0xff, 0xff],
            &[0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(&out[..], &want[..]);
        assert_eq!(HEADER.len(), 19);
    }

    #[test]
    fn text_rows_escape_what_copy_text_treats_specially() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Binary, true),
            Field::new("b", DataType::Binary, true),
        ]));
        let a = BinaryArray::from(vec![Some(&b"x\ty\\z"[..]), None]);
        let b = BinaryArray::from(vec![Some(&b"l1\nl2\r"[..]), Some(&b"\\N"[..])]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(a), Arc::new(b)]).unwrap();
        let out = encode_text(&batch).unwrap();
        assert_eq!(&out[..], &b"x\\ty\\\\z\tl1\\nl2\\r\n\\N\t\\\\N\n"[..]);
    }
}
