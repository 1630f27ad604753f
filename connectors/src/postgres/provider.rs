//! A Postgres table as a DataFusion [`TableProvider`]: projection, filter and limit pushdown;
//! one output partition per reader, all readers in one exported snapshot.
//!
//! Filters that the Postgres dialect unparser can write as SQL are pushed into the COPY query
//! as `Inexact` (DataFusion applies them again, so a filter Postgres evaluates slightly
//! differently can never let a wrong row through).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::PostgreSqlDialect;
use etl_mappings::{QualifiedName, SourceTable};
use futures::StreamExt;
use tokio::sync::{OnceCell, mpsc};

use super::config::PgUrl;
use super::decode::{ReadKind, SelectAs, read_kind};
use super::reader::{ReadSpec, ReadStats, SnapshotSession, read_partition};
use crate::error::ConnectorError;

/// Default batch bound in rows.
pub const DEFAULT_BATCH_ROWS: usize = 8_192;
/// Default batch bound in bytes of field data.
pub const DEFAULT_BATCH_BYTES: usize = 8 << 20;
/// Default reconnect attempts per range.
pub const DEFAULT_MAX_RETRIES: u32 = 5;

/// Options of a table read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Concurrent readers (output partitions).
    pub partitions: usize,
    /// Batch bound in rows.
    pub batch_rows: usize,
    /// Batch bound in field bytes.
    pub batch_bytes: usize,
    /// Reconnect attempts per range.
    pub max_retries: u32,
    /// A SQL condition always applied (the mapping's `where`).
    pub filter: Option<String>,
    /// Batches each reader may hold ahead of its consumer.
    pub channel_depth: usize,
    /// Rows of a dump that may be set aside as unreadable (in `ReadStats::bad_rows`) before
    /// the read fails; the table's `max_rejects`.
    pub max_bad_rows: u64,
    /// Every column as its binary COPY field bytes (`Binary`), undecoded: for a target that
    /// takes Postgres' own wire format.
    pub wire: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            partitions: 1,
            batch_rows: DEFAULT_BATCH_ROWS,
            batch_bytes: DEFAULT_BATCH_BYTES,
            max_retries: DEFAULT_MAX_RETRIES,
            filter: None,
            channel_depth: 2,
            max_bad_rows: 0,
            wire: false,
        }
    }
}

/// Schema metadata of a wire-format scan (`ReadOptions::wire`) whose fields are COPY *text*
/// (unescaped), not binary: a dump's own text, for a table with a type that has no exact
/// binary form here. The target then COPYs in text format.
pub const WIRE_TEXT: &str = "etl.wire_text";

/// A Postgres table that DataFusion can scan.
#[derive(Debug)]
pub struct PgTableProvider {
    url: PgUrl,
    table: QualifiedName,
    columns: Vec<(String, ReadKind, SelectAs)>,
    schema: SchemaRef,
    options: ReadOptions,
    stats: Arc<ReadStats>,
}

impl PgTableProvider {
    /// A provider for `table` as the catalog describes it.
    pub fn new(url: PgUrl, table: &SourceTable, options: ReadOptions) -> Self {
        let columns: Vec<(String, ReadKind, SelectAs)> = table
            .columns
            .iter()
            .map(|c| {
                let (k, how) = if options.wire {
                    (ReadKind::Bytea, SelectAs::Plain)
                } else {
                    read_kind(&c.pg_type.kind)
                };
                (c.name.clone(), k, how)
            })
            .collect();
        let fields: Vec<Field> = table
            .columns
            .iter()
            .zip(&columns)
            .map(|(c, (_, k, _))| Field::new(&c.name, k.arrow_type(), c.nullable))
            .collect();
        PgTableProvider {
            url,
            table: table.name.clone(),
            columns,
            schema: Arc::new(Schema::new(fields)),
            options,
            stats: Arc::new(ReadStats::default()),
        }
    }

    /// Rows and bytes read through this provider so far.
    pub fn stats(&self) -> Arc<ReadStats> {
        self.stats.clone()
    }
}

fn filter_sql(expr: &Expr) -> Option<String> {
    let dialect = PostgreSqlDialect {};
    Unparser::new(&dialect)
        .expr_to_sql(expr)
        .ok()
        .map(|e| e.to_string())
}

#[async_trait]
impl TableProvider for PgTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if filter_sql(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&indices)?);
        let columns = indices.iter().map(|i| self.columns[*i].clone()).collect();
        let mut conds: Vec<String> = self.options.filter.iter().cloned().collect();
        conds.extend(filters.iter().filter_map(filter_sql));
        let filter = (!conds.is_empty()).then(|| {
            conds
                .iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" AND ")
        });
        let spec = ReadSpec {
            url: self.url.clone(),
            table: self.table.clone(),
            columns,
            schema: schema.clone(),
            filter,
            limit,
            partitions: self.options.partitions.max(1),
            batch_rows: self.options.batch_rows.max(1),
            batch_bytes: self.options.batch_bytes.max(1),
            max_retries: self.options.max_retries,
        };
        Ok(Arc::new(PgScanExec::new(
            spec,
            self.stats.clone(),
            self.options.channel_depth,
        )))
    }
}

/// The physical scan: one partition per reader.
pub struct PgScanExec {
    spec: Arc<ReadSpec>,
    stats: Arc<ReadStats>,
    session: Arc<OnceCell<Arc<SnapshotSession>>>,
    properties: Arc<PlanProperties>,
    depth: usize,
}

impl PgScanExec {
    fn new(spec: ReadSpec, stats: Arc<ReadStats>, depth: usize) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(spec.schema.clone()),
            Partitioning::UnknownPartitioning(spec.partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        PgScanExec {
            spec: Arc::new(spec),
            stats,
            session: Arc::new(OnceCell::new()),
            properties: Arc::new(properties),
            depth: depth.max(1),
        }
    }
}

impl fmt::Debug for PgScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgScanExec({})", self.spec.table)
    }
}

impl DisplayAs for PgScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PgScanExec: table={}, partitions={}, filter={}",
            self.spec.table,
            self.spec.partitions,
            self.spec.filter.as_deref().unwrap_or("none")
        )
    }
}

impl ExecutionPlan for PgScanExec {
    fn name(&self) -> &str {
        "PgScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "PgScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let (tx, rx) = mpsc::channel(self.depth);
        let spec = self.spec.clone();
        let stats = self.stats.clone();
        let cell = self.session.clone();
        let task = tokio::spawn(async move {
            let session = cell
                .get_or_try_init(|| async { SnapshotSession::open(&spec).await.map(Arc::new) })
                .await
                .cloned();
            match session {
                Ok(s) => read_partition(spec, s, partition, stats, tx).await,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        let abort = AbortOnDrop(task);
        let stream = futures::stream::unfold((rx, abort), |(mut rx, abort)| async move {
            rx.recv().await.map(|item| {
                let item = item.map_err(|e: ConnectorError| DataFusionError::External(Box::new(e)));
                (item, (rx, abort))
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.spec.schema.clone(),
            stream.boxed(),
        )))
    }
}

/// Aborts the reader task when the stream is dropped, so a cancelled query stops reading.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
