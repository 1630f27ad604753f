//! Collections as DataFusion tables: a scan of live rows (one partition per segment), and the
//! index search the optimizer rule swaps in for `ORDER BY <distance> LIMIT k`.
//!
//! The engine is synchronous, so every partition runs on a blocking thread and hands its
//! batches over a channel two deep: a slow consumer stops the reader (backpressure).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;
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
use etl_engine::{Collection, Metric, QueryVector, SearchRequest, SegmentScan};
use tokio::sync::mpsc;

/// A collection as a table.
#[derive(Debug, Clone)]
pub struct CollectionTable {
    /// The collection.
    pub collection: Collection,
    schema: SchemaRef,
}

impl CollectionTable {
    /// A table over `collection`.
    pub fn new(collection: Collection) -> CollectionTable {
        let schema = collection.schema().arrow_schema();
        CollectionTable { collection, schema }
    }
}

fn projected(
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
) -> DfResult<(SchemaRef, Vec<usize>)> {
    let idx: Vec<usize> = match projection {
        Some(p) => p.clone(),
        None => (0..schema.fields().len()).collect(),
    };
    Ok((Arc::new(schema.project(&idx)?), idx))
}

fn engine_err(e: etl_engine::EngineError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl TableProvider for CollectionTable {
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
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (schema, idx) = projected(&self.schema, projection)?;
        let segments = self.collection.scan();
        let detail = format!(
            "collection={}, segments={}",
            self.collection.name(),
            segments.len()
        );
        let parts: Vec<Part> = segments
            .into_iter()
            .map(|s| {
                let idx = idx.clone();
                let schema = schema.clone();
                Arc::new(move || segment_batches(&s, &idx, &schema)) as Part
            })
            .collect();
        Ok(Arc::new(BlockingExec::new(
            "CollectionScanExec",
            detail,
            schema,
            parts,
        )))
    }
}

/// An index search over a collection: at most `k` rows, nearest first.
#[derive(Debug, Clone)]
pub struct SearchTable {
    /// The collection.
    pub collection: Collection,
    /// The vector field.
    pub field: String,
    /// The query vector.
    pub query: QueryVector,
    /// The metric the distance function ranks by.
    pub metric: Metric,
    /// Rows wanted.
    pub k: usize,
    /// The SQL filter, as a Milvus expression.
    pub filter: Option<String>,
    schema: SchemaRef,
}

impl SearchTable {
    /// A search over `collection`'s `field`.
    pub fn new(
        collection: Collection,
        field: String,
        query: QueryVector,
        metric: Metric,
        k: usize,
        filter: Option<String>,
    ) -> SearchTable {
        let schema = collection.schema().arrow_schema();
        SearchTable {
            collection,
            field,
            query,
            metric,
            k,
            filter,
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for SearchTable {
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
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let (schema, idx) = projected(&self.schema, projection)?;
        let detail = format!(
            "collection={}, field={}, metric={}, k={}, filter={}",
            self.collection.name(),
            self.field,
            self.metric,
            self.k,
            self.filter.as_deref().unwrap_or("none")
        );
        let me = self.clone();
        let part: Part = Arc::new(move || -> DfResult<BatchIter> {
            let req = SearchRequest {
                field: Some(me.field.clone()),
                limit: me.k,
                metric: Some(me.metric),
                filter: me.filter.clone(),
                ..SearchRequest::default()
            };
            let (batch, _distances) = me
                .collection
                .search_batch(&me.field, &me.query, &req, &idx)
                .map_err(engine_err)?;
            if batch.num_rows() < me.k {
                // Fewer than k rows have a vector and pass the filter: the exact answer also
                // holds rows with NULL distances, so hand every row to the sort and filter
                // above (a superset of the answer is still the answer).
                return scan_all(&me.collection, &idx, &schema);
            }
            let batch = rebatch(&schema, &batch)?;
            Ok(Box::new(std::iter::once(Ok(batch))))
        });
        Ok(Arc::new(BlockingExec::new(
            "VectorSearchExec",
            detail,
            projected(&self.schema, projection)?.0,
            vec![part],
        )))
    }
}

/// Every live row of `collection`, segment after segment.
fn scan_all(collection: &Collection, idx: &[usize], schema: &SchemaRef) -> DfResult<BatchIter> {
    let iters = collection
        .scan()
        .iter()
        .map(|s| segment_batches(s, idx, schema))
        .collect::<DfResult<Vec<_>>>()?;
    Ok(Box::new(iters.into_iter().flatten()))
}

/// One segment's live rows, projected, under the table's schema.
fn segment_batches(s: &SegmentScan, idx: &[usize], schema: &SchemaRef) -> DfResult<BatchIter> {
    let schema = schema.clone();
    let it = s.batches(Some(idx)).map_err(engine_err)?;
    Ok(Box::new(
        it.map(move |b| rebatch(&schema, &b.map_err(engine_err)?)),
    ))
}

/// `b` under the table's schema (the file's may differ in metadata only); keeps the row count
/// when no column is projected (`count(*)`).
fn rebatch(schema: &SchemaRef, b: &RecordBatch) -> DfResult<RecordBatch> {
    let opts = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        b.columns().to_vec(),
        &opts,
    )?)
}

type BatchIter = Box<dyn Iterator<Item = DfResult<RecordBatch>> + Send>;
type Part = Arc<dyn Fn() -> DfResult<BatchIter> + Send + Sync>;

/// A leaf whose partitions are blocking iterators of batches.
struct BlockingExec {
    name: &'static str,
    detail: String,
    schema: SchemaRef,
    parts: Vec<Part>,
    properties: Arc<PlanProperties>,
}

impl BlockingExec {
    fn new(
        name: &'static str,
        detail: String,
        schema: SchemaRef,
        parts: Vec<Part>,
    ) -> BlockingExec {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(parts.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        BlockingExec {
            name,
            detail,
            schema,
            parts,
            properties: Arc::new(properties),
        }
    }
}

impl fmt::Debug for BlockingExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name, self.detail)
    }
}

impl DisplayAs for BlockingExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

impl ExecutionPlan for BlockingExec {
    fn name(&self) -> &str {
        self.name
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
            Err(DataFusionError::Internal(format!(
                "{} has no children",
                self.name
            )))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let (tx, rx) = mpsc::channel::<DfResult<RecordBatch>>(2);
        if let Some(part) = self.parts.get(partition).cloned() {
            tokio::task::spawn_blocking(move || {
                let iter = match part() {
                    Ok(it) => it,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                for b in iter {
                    let failed = b.is_err();
                    if tx.blocking_send(b).is_err() || failed {
                        return;
                    }
                }
            });
        }
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}
