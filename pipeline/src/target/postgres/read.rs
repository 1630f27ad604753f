//! A target table read back for `etl verify`: the same parallel snapshot reader as the source,
//! pointed at the target, and the same mapping, so both sides reach the comparison through one
//! code path (a vector compares bit for bit, a value as the mapping renders it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use etl_connectors::postgres::{PgUrl, ReadOptions, connect, describe_tables};
use etl_engine::CollectionSchema;
use etl_mappings::{QualifiedName, SourceTable, TablePlan};
use futures::StreamExt;

use crate::error::PipelineError;
use crate::map::Mapper;
use crate::source::{Source, SourceScan};
use crate::target::{CollectionReader, EachBatch};

/// Reads a target table as the source is read.
pub(super) struct TableReader {
    url: PgUrl,
    table: SourceTable,
    mapper: Arc<Mapper>,
}

impl TableReader {
    /// A reader of `target`, or `None` when the table is not there.
    pub(super) async fn open(
        url: &PgUrl,
        target: &QualifiedName,
        plan: &TablePlan,
        schema: &CollectionSchema,
    ) -> Result<Option<Box<dyn CollectionReader>>, PipelineError> {
        let client = connect(url).await?;
        let Some(table) = describe_tables(&client, Some(std::slice::from_ref(target)))
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        Ok(Some(Box::new(TableReader {
            url: url.clone(),
            table,
            mapper: Arc::new(Mapper::new(plan.clone(), schema.clone())),
        })))
    }
}

#[async_trait]
impl CollectionReader for TableReader {
    async fn scan(&self, parallelism: usize, each: EachBatch) -> Result<u64, PipelineError> {
        let options = ReadOptions {
            partitions: parallelism.max(1),
            ..ReadOptions::default()
        };
        let scan = SourceScan::open(
            &Source::Postgres(Box::new(self.url.clone())),
            &self.table,
            options,
            &self.mapper.source_columns(),
            None,
        )
        .await?;
        let rows = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let parts = futures::stream::iter((0..scan.partitions()).map(|p| {
            let (scan, each, rows, stop) = (&scan, each.clone(), &rows, &stop);
            async move {
                let mut stream = scan.execute(p)?;
                while let Some(batch) = stream.next().await {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let batch = batch.map_err(PipelineError::from_datafusion)?;
                    // The mapper's output is the compared columns, in order.
                    let (compared, _) = self.mapper.map(&batch)?;
                    rows.fetch_add(compared.num_rows() as u64, Ordering::Relaxed);
                    if each(&compared)? {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
                Ok::<(), PipelineError>(())
            }
        }))
        .buffer_unordered(parallelism.max(1))
        .collect::<Vec<_>>()
        .await;
        parts.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(rows.into_inner())
    }
}
