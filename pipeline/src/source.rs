//! Opening a source table for a run or a verify: the provider, the projection of the columns
//! the mapping reads, and the physical scan whose partitions are the parallel ranges.

use std::sync::Arc;

use datafusion::datasource::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use etl_connectors::postgres::{PgTableProvider, PgUrl, ReadOptions, ReadStats};
use etl_mappings::SourceTable;

use crate::error::PipelineError;

/// A planned scan of one source table.
pub(crate) struct SourceScan {
    plan: Arc<dyn ExecutionPlan>,
    session: SessionContext,
    /// Rows and bytes read so far, over every partition.
    pub stats: Arc<ReadStats>,
}

impl SourceScan {
    /// Plans a scan of `columns` (by name) in `options.partitions` ranges, reading at most
    /// `limit` rows.
    pub async fn open(
        url: &PgUrl,
        source: &SourceTable,
        options: ReadOptions,
        columns: &[String],
        limit: Option<usize>,
    ) -> Result<SourceScan, PipelineError> {
        let provider = Arc::new(PgTableProvider::new(url.clone(), source, options));
        let stats = provider.stats();
        let schema = provider.schema();
        let projection: Vec<usize> = columns
            .iter()
            .map(|c| {
                schema.index_of(c).map_err(|_| PipelineError::Internal {
                    message: format!("source table {} has no column `{c}`", source.name),
                })
            })
            .collect::<Result<_, _>>()?;
        let session = SessionContext::new();
        let plan = provider
            .scan(&session.state(), Some(&projection), &[], limit)
            .await
            .map_err(PipelineError::from_datafusion)?;
        Ok(SourceScan {
            plan,
            session,
            stats,
        })
    }

    /// The number of ranges (partitions) the scan reads.
    pub fn partitions(&self) -> usize {
        self.plan.properties().partitioning.partition_count()
    }

    /// Starts reading range `p`.
    pub fn execute(&self, p: usize) -> Result<SendableRecordBatchStream, PipelineError> {
        self.plan
            .execute(p, self.session.task_ctx())
            .map_err(PipelineError::from_datafusion)
    }
}
