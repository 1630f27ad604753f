//! A dump's table as a DataFusion [`TableProvider`]: one partition per data block (per leaf of
//! a partitioned table; big blocks of plain dumps split at line boundaries), each read on a
//! blocking thread into the live source's column decoders, batches handed over through a
//! bounded channel.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use etl_mappings::{PgKind, QualifiedName, SourceTable};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::archive::{At, Block, DumpArchive};
use super::value::{TextField, encode};
use crate::error::ConnectorError;
use crate::postgres::{
    BadRow, ColumnDecoder, ReadKind, ReadOptions, ReadStats, SelectAs, WIRE_TEXT, read_kind,
};

/// How one column is read: its decoder kind and how its text becomes the decoder's input.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: ReadKind,
    field: TextField,
}

fn column(name: &str, kind: &PgKind) -> Column {
    let (rk, how) = read_kind(kind);
    let field = match (kind, how) {
        (PgKind::Inet, _) => TextField::InetText { array: false },
        (PgKind::Array { element, ndims }, _) if **element == PgKind::Inet && *ndims <= 1 => {
            TextField::InetText { array: true }
        }
        (_, how) => match how {
            SelectAs::Plain | SelectAs::TextArray => TextField::Binary(rk.clone()),
            SelectAs::Text => TextField::AsText,
            SelectAs::ArrayJson => {
                let elem = match kind {
                    PgKind::Array { element, .. } => element.as_ref(),
                    other => other,
                };
                let numeric = elem.is_integer()
                    || matches!(
                        elem,
                        PgKind::Float4 | PgKind::Float8 | PgKind::Numeric { .. }
                    );
                TextField::ArrayJson {
                    quote: !numeric && *elem != PgKind::Bool,
                    boolean: *elem == PgKind::Bool,
                }
            }
        },
    };
    Column {
        name: name.to_string(),
        kind: rk,
        field,
    }
}

/// A table of a dump that DataFusion can scan.
#[derive(Debug)]
pub struct DumpTableProvider {
    archive: Arc<DumpArchive>,
    table: QualifiedName,
    columns: Vec<Column>,
    schema: SchemaRef,
    options: ReadOptions,
    stats: Arc<ReadStats>,
}

impl DumpTableProvider {
    /// A provider for `table` of `archive`. A `where` filter needs a live server: refused.
    pub fn new(
        archive: Arc<DumpArchive>,
        table: &SourceTable,
        options: ReadOptions,
    ) -> Result<Self, ConnectorError> {
        if let Some(f) = &options.filter {
            return Err(ConnectorError::Dump {
                file: archive.path().display().to_string(),
                at: None,
                reason: format!(
                    "table {}: `where: {f}` needs a live Postgres source; a dump is read whole",
                    table.name
                ),
            });
        }
        let mut columns: Vec<Column> = table
            .columns
            .iter()
            .map(|c| column(&c.name, &c.pg_type.kind))
            .collect();
        // For a target that speaks the wire format, each field as the binary COPY field the
        // live source would send; a table with a type this reader has no exact binary form for
        // keeps the dump's own COPY text instead (the schema says which).
        let text = options.wire
            && columns
                .iter()
                .any(|c| !matches!(c.field, TextField::Binary(_)));
        if options.wire {
            for c in &mut columns {
                c.kind = ReadKind::Bytea;
                if text {
                    c.field = TextField::AsText;
                }
            }
        }
        let fields: Vec<Field> = table
            .columns
            .iter()
            .zip(&columns)
            .map(|(c, col)| Field::new(&c.name, col.kind.arrow_type(), c.nullable))
            .collect();
        let mut schema = Schema::new(fields);
        if text {
            schema = schema.with_metadata(
                [(WIRE_TEXT.to_string(), "true".to_string())]
                    .into_iter()
                    .collect(),
            );
        }
        Ok(DumpTableProvider {
            archive,
            table: table.name.clone(),
            columns,
            schema: Arc::new(schema),
            options,
            stats: Arc::new(ReadStats::default()),
        })
    }

    /// Rows and bytes read so far.
    pub fn stats(&self) -> Arc<ReadStats> {
        self.stats.clone()
    }
}

#[async_trait]
impl TableProvider for DumpTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&indices)?);
        let columns: Vec<Column> = indices.iter().map(|i| self.columns[*i].clone()).collect();
        let blocks = self.archive.split(
            self.archive.blocks(&self.table),
            self.options.partitions.max(1),
        );
        let mut partitions: Vec<Arc<dyn PartitionStream>> = blocks
            .into_iter()
            .enumerate()
            .map(|(partition, block)| {
                Arc::new(BlockStream {
                    archive: self.archive.clone(),
                    block,
                    partition,
                    max_bad_rows: self.options.max_bad_rows,
                    columns: columns.clone(),
                    schema: schema.clone(),
                    batch_rows: self.options.batch_rows.max(1),
                    batch_bytes: self.options.batch_bytes.max(1),
                    limit,
                    stats: self.stats.clone(),
                    depth: self.options.channel_depth.max(1),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        if partitions.is_empty() {
            // A table without data: one empty partition.
            partitions.push(Arc::new(BlockStream {
                archive: self.archive.clone(),
                block: Block::empty(self.table.clone()),
                partition: 0,
                max_bad_rows: 0,
                columns,
                schema: schema.clone(),
                batch_rows: 1,
                batch_bytes: 1,
                limit,
                stats: self.stats.clone(),
                depth: 1,
            }));
        }
        Ok(Arc::new(StreamingTableExec::try_new(
            schema, partitions, None, None, false, None,
        )?))
    }
}

/// One block read as a stream of batches.
#[derive(Debug)]
struct BlockStream {
    archive: Arc<DumpArchive>,
    block: Block,
    partition: usize,
    max_bad_rows: u64,
    columns: Vec<Column>,
    schema: SchemaRef,
    batch_rows: usize,
    /// A batch ends at this many bytes of text, too: memory follows the data's width.
    batch_bytes: usize,
    limit: Option<usize>,
    stats: Arc<ReadStats>,
    depth: usize,
}

impl PartitionStream for BlockStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = mpsc::channel::<Result<RecordBatch, ConnectorError>>(self.depth);
        let archive = self.archive.clone();
        let block = self.block.clone();
        let columns = self.columns.clone();
        let schema = self.schema.clone();
        let (batch_rows, batch_bytes) = (self.batch_rows, self.batch_bytes);
        let limit = self.limit;
        let stats = self.stats.clone();
        let bad = BadRows {
            partition: self.partition,
            max: self.max_bad_rows,
        };
        tokio::task::spawn_blocking(move || {
            let result = read_block(
                &archive,
                &block,
                &columns,
                &schema,
                (batch_rows, batch_bytes),
                limit,
                &stats,
                &bad,
                &tx,
            );
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|item| (item.map_err(|e| DataFusionError::External(Box::new(e))), rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream.boxed(),
        ))
    }
}

/// Where a block's unreadable rows go: set aside in the read's stats, up to `max` over the
/// whole scan, for the caller's rejects file.
struct BadRows {
    partition: usize,
    max: u64,
}

#[allow(clippy::too_many_arguments)]
fn read_block(
    archive: &DumpArchive,
    block: &Block,
    columns: &[Column],
    schema: &SchemaRef,
    (batch_rows, batch_bytes): (usize, usize),
    limit: Option<usize>,
    stats: &ReadStats,
    bad: &BadRows,
    tx: &mpsc::Sender<Result<RecordBatch, ConnectorError>>,
) -> Result<(), ConnectorError> {
    // Where each wanted column sits in the block's data (absent: always NULL, e.g. a
    // generated column pg_dump does not write).
    let positions: Vec<Option<usize>> = columns
        .iter()
        .map(|c| block.columns.iter().position(|b| *b == c.name))
        .collect();
    let mut decoders: Vec<ColumnDecoder> = columns
        .iter()
        .map(|c| ColumnDecoder::new(&c.kind))
        .collect();
    // Batches are built nullable and the set-aside rows filtered out before they leave.
    let loose = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let mut scratch = Vec::new();
    let mut pending = 0usize;
    let mut dropped: Vec<usize> = Vec::new();
    let mut emitted = 0usize;
    let mut bytes = 0u64;
    let file = archive.path().display().to_string();
    let table = block.table.to_string();
    let internal = |e: datafusion::arrow::error::ArrowError| ConnectorError::Dump {
        file: file.clone(),
        at: None,
        reason: e.to_string(),
    };
    let flush = |decoders: &mut Vec<ColumnDecoder>,
                 pending: &mut usize,
                 dropped: &mut Vec<usize>|
     -> Result<bool, ConnectorError> {
        if *pending == 0 {
            return Ok(true);
        }
        let arrays = decoders.iter_mut().map(ColumnDecoder::finish).collect();
        // With no columns (`count(*)`), the batch still carries its row count.
        let options = RecordBatchOptions::new().with_row_count(Some(*pending));
        let mut batch =
            RecordBatch::try_new_with_options(loose.clone(), arrays, &options).map_err(internal)?;
        if !dropped.is_empty() {
            let mut keep = vec![true; *pending];
            for r in dropped.drain(..) {
                keep[r] = false;
            }
            batch = datafusion::arrow::compute::filter_record_batch(
                &batch,
                &datafusion::arrow::array::BooleanArray::from(keep),
            )
            .map_err(internal)?;
        }
        let rows = batch.num_rows();
        let batch = RecordBatch::try_new_with_options(
            schema.clone(),
            batch.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(internal)?;
        *pending = 0;
        Ok(tx.blocking_send(Ok(batch)).is_ok())
    };
    let mut stopped = false;
    let result = archive.read_block(block, &mut |line, at: &At| {
        let mut first_bad: Option<(usize, String)> = None;
        for (i, ((col, pos), dec)) in columns
            .iter()
            .zip(&positions)
            .zip(decoders.iter_mut())
            .enumerate()
        {
            let text = pos.and_then(|p| line.field(p));
            let decoded = match text {
                None => dec.append(None).map_err(|e| e.0),
                Some(text) => {
                    bytes += text.len() as u64 + 1;
                    encode(&col.field, text, &mut scratch)
                        .and_then(|()| dec.append(Some(&scratch)).map_err(|e| e.0))
                }
            };
            if let Err(reason) = decoded {
                // The row keeps its place with a NULL here and is filtered out at the flush.
                dec.append(None).ok();
                first_bad.get_or_insert((i, reason));
            }
        }
        if let Some((i, reason)) = first_bad {
            let col = &columns[i];
            let at = archive.locate(block, at);
            let seen = stats.bad_count.fetch_add(1, Ordering::Relaxed) + 1;
            if seen > bad.max {
                return Err(problem(archive, &at, &table, &col.name, reason));
            }
            let value = positions[i]
                .and_then(|p| line.field(p))
                .map(|t| short(&String::from_utf8_lossy(t)))
                .unwrap_or_default();
            stats
                .bad_rows
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(BadRow {
                    partition: bad.partition,
                    file: file.clone(),
                    at: at.clone(),
                    table: table.clone(),
                    column: col.name.clone(),
                    value,
                    reason,
                });
            dropped.push(pending);
        }
        pending += 1;
        emitted += 1;
        if pending >= batch_rows || bytes >= batch_bytes as u64 {
            stats
                .rows
                .fetch_add((pending - dropped.len()) as u64, Ordering::Relaxed);
            stats.bytes.fetch_add(bytes, Ordering::Relaxed);
            bytes = 0;
            if !flush(&mut decoders, &mut pending, &mut dropped)? {
                stopped = true;
            }
        }
        if limit.is_some_and(|l| emitted >= l) {
            stopped = true;
        }
        Ok(!stopped)
    });
    result?;
    stats
        .rows
        .fetch_add((pending - dropped.len()) as u64, Ordering::Relaxed);
    stats.bytes.fetch_add(bytes, Ordering::Relaxed);
    flush(&mut decoders, &mut pending, &mut dropped)?;
    Ok(())
}

/// A field's text as a reject shows it: at most 200 characters.
fn short(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn problem(
    archive: &DumpArchive,
    at: &str,
    table: &str,
    column: &str,
    reason: String,
) -> ConnectorError {
    ConnectorError::Dump {
        file: archive.path().display().to_string(),
        at: Some(at.to_string()),
        reason: format!(
            "table {table}, column `{column}`: {reason} (`max_rejects` on the table sets such rows aside in its rejects file)"
        ),
    }
}
