//! Parallel, consistent reads of one table.
//!
//! A coordinator session opens a REPEATABLE READ transaction, exports its snapshot and sizes the
//! table's leaves from `pg_relation_size` (no `COUNT(*)` pre-scan). The blocks are cut into
//! ranges; each reader joins the snapshot (`SET TRANSACTION SNAPSHOT`) and streams
//! `COPY (SELECT ctid, … WHERE ctid >= '(b0,0)' AND ctid < '(b1,0)') TO STDOUT (FORMAT binary)`,
//! which Postgres 14+ answers with a TID range scan. So every reader sees the same point in
//! time while the source keeps taking writes.
//!
//! A reader whose connection drops reconnects with backoff and resumes right after the ctid of
//! the last batch it emitted, inside the same snapshot, for as long as the coordinator keeps it
//! alive; if the snapshot is gone it fails with [`ConnectorError::SnapshotLost`].
//!
//! A connection that finished its range cleanly is kept, still in the snapshot's transaction,
//! for the next range: a run cuts a table into up to 8 ranges per reader (checkpoints, balance)
//! and a new connection per range (authentication, a backend started, the snapshot joined,
//! its catalog caches cold) cost the run's readers ~5 % against one COPY per reader.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use etl_mappings::{QualifiedName, quote_literal};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::config::PgUrl;
use super::connect::connect;
use super::copy::{CopyDecoder, Tid};
use super::decode::{ReadKind, SelectAs, select_expr};
use crate::error::ConnectorError;

/// Rows and bytes read so far, shared with whoever reports progress.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Rows decoded and emitted.
    pub rows: AtomicU64,
    /// COPY bytes received.
    pub bytes: AtomicU64,
    /// Reconnects after a dropped connection.
    pub retries: AtomicU64,
    /// Rows of a dump or file that could not be read, set aside (up to the read's
    /// `max_bad_rows`) for the caller to put in its rejects file.
    pub bad_rows: std::sync::Mutex<Vec<BadRow>>,
    /// How many rows were set aside, over every partition.
    pub bad_count: AtomicU64,
}

impl ReadStats {
    /// Takes the rows partition `partition` set aside so far.
    pub fn take_bad_rows(&self, partition: usize) -> Vec<BadRow> {
        // Called after every batch of every read: no lock unless a row was set aside.
        if self.bad_count.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        let mut all = self.bad_rows.lock().unwrap_or_else(|e| e.into_inner());
        let (mine, rest) = std::mem::take(&mut *all)
            .into_iter()
            .partition(|r| r.partition == partition);
        *all = rest;
        mine
    }
}

/// A row of a dump that could not be read, left out of the batches it would have been in.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// The scan partition that read it.
    pub partition: usize,
    /// The dump file.
    pub file: String,
    /// Where in it (`line 12345`, a member's row and byte offset).
    pub at: String,
    /// The table.
    pub table: String,
    /// The first column that could not be read.
    pub column: String,
    /// Its text as the dump has it (shortened).
    pub value: String,
    /// Why.
    pub reason: String,
}

/// What to read.
#[derive(Debug, Clone)]
pub struct ReadSpec {
    /// The server.
    pub url: PgUrl,
    /// The table (partitioned tables are read through their leaves).
    pub table: QualifiedName,
    /// Columns: name, decoder, select form.
    pub columns: Vec<(String, ReadKind, SelectAs)>,
    /// The schema of emitted batches (the columns above, in order).
    pub schema: SchemaRef,
    /// A SQL condition on the rows.
    pub filter: Option<String>,
    /// At most this many rows per partition.
    pub limit: Option<usize>,
    /// Concurrent readers.
    pub partitions: usize,
    /// Batch bound in rows.
    pub batch_rows: usize,
    /// Batch bound in field bytes.
    pub batch_bytes: usize,
    /// Reconnect attempts per range.
    pub max_retries: u32,
}

/// One block range of one leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRange {
    /// The leaf relation.
    pub relation: QualifiedName,
    /// First block.
    pub start: u32,
    /// One past the last block; `None` for the open end of a leaf.
    pub end: Option<u32>,
}

/// The exported snapshot and the work it was cut into. Readers hold it; the coordinator's
/// connection, and so the snapshot, lives until the last reader drops it.
pub struct SnapshotSession {
    _client: Client,
    /// The snapshot id readers join.
    pub id: String,
    /// Ranges per partition.
    pub assignments: Vec<Vec<BlockRange>>,
    /// Readers' connections between ranges, already in the snapshot's transaction.
    idle: std::sync::Mutex<Vec<Client>>,
}

impl SnapshotSession {
    /// Exports a snapshot of `spec.table` and cuts it into `spec.partitions` shares.
    pub async fn open(spec: &ReadSpec) -> Result<Self, ConnectorError> {
        let client = connect(&spec.url).await?;
        let table = spec.table.to_string();
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| ConnectorError::from_pg(format!("starting the snapshot of {table}"), e))?;
        let id: String = match client.query_one("SELECT pg_export_snapshot()", &[]).await {
            Ok(row) => row.get(0),
            Err(e) => {
                let standby = client
                    .query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .map(|r| r.get::<_, bool>(0))
                    .unwrap_or(false);
                if standby {
                    return Err(ConnectorError::HotStandby {
                        url: spec.url.redacted().to_string(),
                        reason: crate::error::describe(&e),
                    });
                }
                return Err(ConnectorError::from_pg(
                    format!("exporting a snapshot of {table}"),
                    e,
                ));
            }
        };
        let exists = client
            .query_one("SELECT to_regclass($1)::oid", &[&spec.table.quoted()])
            .await
            .map_err(|e| ConnectorError::from_pg(format!("looking up {table}"), e))?;
        let Some(oid) = exists.get::<_, Option<u32>>(0) else {
            return Err(ConnectorError::TableNotFound { table });
        };
        let leaves = client
            .query(
                "SELECT n.nspname::text, c.relname::text, \
                        (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND (c.oid = $1 OR c.oid IN \
                   (SELECT relid FROM pg_partition_tree($1::oid::regclass) WHERE isleaf)) \
                 ORDER BY 1, 2",
                &[&oid],
            )
            .await
            .map_err(|e| ConnectorError::from_pg(format!("sizing {table}"), e))?;
        let leaves: Vec<(QualifiedName, u32)> = leaves
            .into_iter()
            .map(|r| {
                let blocks: i64 = r.get(2);
                (
                    QualifiedName::new(r.get::<_, String>(0), r.get::<_, String>(1)),
                    u32::try_from(blocks.max(0)).unwrap_or(u32::MAX),
                )
            })
            .collect();
        Ok(SnapshotSession {
            _client: client,
            id,
            assignments: assign(&leaves, spec.partitions.max(1)),
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A connection a reader left in the snapshot after its last range, if one is still open.
    fn take_idle(&self) -> Option<Client> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(client) = idle.pop() {
            if !client.is_closed() {
                return Some(client);
            }
        }
        None
    }

    /// Keeps a connection whose range ended cleanly for the next range.
    fn keep_idle(&self, client: Client) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(client);
        }
    }
}

/// Cuts leaves into block ranges of about `total / partitions` blocks and deals them out so
/// every partition gets a similar number of blocks. Each leaf's last range is open-ended.
pub fn assign(leaves: &[(QualifiedName, u32)], partitions: usize) -> Vec<Vec<BlockRange>> {
    let total: u64 = leaves.iter().map(|(_, b)| u64::from(*b)).sum();
    let target = (total / partitions as u64).max(1);
    let mut ranges: Vec<(u64, BlockRange)> = Vec::new();
    for (rel, blocks) in leaves {
        let blocks = u64::from(*blocks);
        let pieces = blocks.div_ceil(target).max(1);
        let step = blocks.div_ceil(pieces).max(1);
        for p in 0..pieces {
            let start = p * step;
            let end = (p + 1 < pieces).then(|| ((p + 1) * step) as u32);
            ranges.push((
                step.min(blocks.saturating_sub(start)),
                BlockRange {
                    relation: rel.clone(),
                    start: start as u32,
                    end,
                },
            ));
        }
    }
    ranges.sort_by_key(|b| std::cmp::Reverse(b.0));
    let mut out: Vec<(u64, Vec<BlockRange>)> = (0..partitions).map(|_| (0, Vec::new())).collect();
    for (size, r) in ranges {
        if let Some(slot) = out.iter_mut().min_by_key(|(s, v)| (*s, v.len())) {
            slot.0 += size;
            slot.1.push(r);
        }
    }
    out.into_iter().map(|(_, v)| v).collect()
}

/// Reads one partition's ranges into `tx`, retrying dropped connections.
pub async fn read_partition(
    spec: Arc<ReadSpec>,
    session: Arc<SnapshotSession>,
    partition: usize,
    stats: Arc<ReadStats>,
    tx: mpsc::Sender<Result<RecordBatch, ConnectorError>>,
) {
    let ranges = session
        .assignments
        .get(partition)
        .cloned()
        .unwrap_or_default();
    let mut remaining = spec.limit;
    for range in ranges {
        if remaining == Some(0) {
            break;
        }
        let mut resume: Option<Tid> = None;
        let mut attempt = 0u32;
        loop {
            // A retry always connects anew: a kept connection may be what failed.
            let kept = if attempt == 0 {
                session.take_idle()
            } else {
                None
            };
            let result = read_range(
                &spec,
                &session,
                partition,
                &range,
                remaining,
                &stats,
                &tx,
                &mut resume,
                kept,
            )
            .await;
            match result {
                Ok(sent) => {
                    if let Some(r) = remaining.as_mut() {
                        *r = r.saturating_sub(sent);
                    }
                    break;
                }
                Err(RangeError::Closed) => return,
                Err(RangeError::Failed { error, sent }) => {
                    if let Some(r) = remaining.as_mut() {
                        *r = r.saturating_sub(sent);
                    }
                    if error.is_transient() && attempt < spec.max_retries {
                        attempt += 1;
                        stats.retries.fetch_add(1, Ordering::Relaxed);
                        let wait = Duration::from_millis(100u64 << attempt.min(6));
                        tracing::warn!(table = %spec.table, partition, attempt, error = %error, "reader lost its connection; resuming in the same snapshot");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    let error = if attempt > 0 && error.is_transient() {
                        ConnectorError::RetriesExhausted {
                            table: spec.table.to_string(),
                            attempts: attempt + 1,
                            last: Box::new(error),
                        }
                    } else {
                        error
                    };
                    let _ = tx.send(Err(error)).await;
                    return;
                }
            }
        }
    }
}

enum RangeError {
    /// The consumer went away: stop quietly.
    Closed,
    /// The read failed after `sent` rows were emitted.
    Failed { error: ConnectorError, sent: usize },
}

/// The COPY statement for a range.
pub fn copy_sql(
    spec: &ReadSpec,
    range: &BlockRange,
    after: Option<Tid>,
    limit: Option<usize>,
) -> String {
    let cols: Vec<String> = std::iter::once("ctid".to_string())
        .chain(spec.columns.iter().map(|(n, _, how)| select_expr(n, *how)))
        .collect();
    let mut conds = vec![format!("ctid >= '({},0)'::tid", range.start)];
    if let Some(end) = range.end {
        conds.push(format!("ctid < '({end},0)'::tid"));
    }
    if let Some((b, o)) = after {
        conds.push(format!("ctid > '({b},{o})'::tid"));
    }
    if let Some(f) = &spec.filter {
        conds.push(format!("({f})"));
    }
    let mut sql = format!(
        "COPY (SELECT {} FROM ONLY {} WHERE {}",
        cols.join(", "),
        range.relation.quoted(),
        conds.join(" AND ")
    );
    if let Some(l) = limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    sql.push_str(") TO STDOUT (FORMAT binary)");
    sql
}

#[allow(clippy::too_many_arguments)]
async fn read_range(
    spec: &ReadSpec,
    session: &SnapshotSession,
    partition: usize,
    range: &BlockRange,
    limit: Option<usize>,
    stats: &ReadStats,
    tx: &mpsc::Sender<Result<RecordBatch, ConnectorError>>,
    last_sent: &mut Option<Tid>,
    kept: Option<Client>,
) -> Result<usize, RangeError> {
    let table = spec.table.to_string();
    let fail = |error: ConnectorError, sent: usize| RangeError::Failed { error, sent };
    let client = match kept {
        Some(client) => client,
        None => join_snapshot(spec, session, partition)
            .await
            .map_err(|e| fail(e, 0))?,
    };
    // Resume right after the last row this range already emitted (none on the first try).
    let sql = copy_sql(spec, range, *last_sent, limit);
    let stream = client
        .copy_out(sql.as_str())
        .await
        .map_err(|e| fail(ConnectorError::from_pg(format!("reading {table}"), e), 0))?;
    futures::pin_mut!(stream);
    let kinds: Vec<ReadKind> = spec.columns.iter().map(|(_, k, _)| k.clone()).collect();
    let mut decoder = CopyDecoder::new(spec.schema.clone(), &kinds);
    let mut sent = 0usize;
    let decode_err = |e: super::copy::FrameError| ConnectorError::Decode {
        table: table.clone(),
        column: e.column,
        row: e.row,
        reason: e.reason,
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| fail(ConnectorError::from_pg(format!("reading {table}"), e), sent))?;
        stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        decoder
            .push(&chunk)
            .map_err(|e| fail(decode_err(e), sent))?;
        if decoder.buffered_rows() >= spec.batch_rows
            || decoder.buffered_bytes() >= spec.batch_bytes
        {
            let flushed = decoder.flush().map_err(|e| fail(decode_err(e), sent))?;
            sent += emit(flushed, tx, stats, last_sent).await?;
        }
    }
    decoder
        .finish_stream()
        .map_err(|e| fail(decode_err(e), sent))?;
    let flushed = decoder.flush().map_err(|e| fail(decode_err(e), sent))?;
    sent += emit(flushed, tx, stats, last_sent).await?;
    session.keep_idle(client);
    Ok(sent)
}

/// A new reader connection inside the session's snapshot.
async fn join_snapshot(
    spec: &ReadSpec,
    session: &SnapshotSession,
    partition: usize,
) -> Result<Client, ConnectorError> {
    let table = spec.table.to_string();
    let mut url = spec.url.clone();
    url.set_application_name(&format!("etl-reader-{partition}"));
    let client = connect(&url).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(&session.id)
        ))
        .await
        .map_err(|e| {
            let lost = e
                .as_db_error()
                .is_some_and(|d| d.message().contains("snapshot"));
            if lost {
                ConnectorError::SnapshotLost {
                    table: table.clone(),
                    reason: crate::error::describe(&e),
                }
            } else {
                ConnectorError::from_pg(format!("joining the snapshot of {table}"), e)
            }
        })?;
    Ok(client)
}

/// Sends a flushed batch downstream and remembers its last ctid; returns the rows sent.
async fn emit(
    flushed: Option<(RecordBatch, Option<Tid>)>,
    tx: &mpsc::Sender<Result<RecordBatch, ConnectorError>>,
    stats: &ReadStats,
    last_sent: &mut Option<Tid>,
) -> Result<usize, RangeError> {
    let Some((batch, tid)) = flushed else {
        return Ok(0);
    };
    let n = batch.num_rows();
    if tx.send(Ok(batch)).await.is_err() {
        return Err(RangeError::Closed);
    }
    stats.rows.fetch_add(n as u64, Ordering::Relaxed);
    *last_sent = tid;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_block_once_and_balance() {
        let leaves = vec![
            (QualifiedName::new("p", "a"), 100),
            (QualifiedName::new("p", "b"), 10),
            (QualifiedName::new("p", "c"), 0),
        ];
        let parts = assign(&leaves, 4);
        assert_eq!(parts.len(), 4);
        for leaf in ["a", "b", "c"] {
            let mut rs: Vec<&BlockRange> = parts
                .iter()
                .flatten()
                .filter(|r| r.relation.name == leaf)
                .collect();
            rs.sort_by_key(|r| r.start);
            assert_eq!(rs[0].start, 0);
            for w in rs.windows(2) {
                assert_eq!(w[0].end, Some(w[1].start));
            }
            assert_eq!(rs.last().unwrap().end, None, "each leaf ends open");
        }
        assert!(parts.iter().all(|p| !p.is_empty()));
    }
}
