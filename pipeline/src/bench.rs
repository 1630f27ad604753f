//! `etl bench read`: read a whole table through the COPY reader and drop the batches, so users
//! can size a migration (and benchmarks can compare the reader with psql and ConnectorX).

mod hnsw;

pub use hnsw::{
    CollectionBenchOptions, HnswBench, HnswBenchOptions, SweepPoint, bench_collection, bench_hnsw,
};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use datafusion::datasource::TableProvider;
use datafusion::prelude::SessionContext;
use etl_connectors::ConnectorError;
use etl_connectors::postgres::{self, PgTableProvider, PgUrl, ReadOptions};
use etl_mappings::QualifiedName;
use futures::StreamExt;
use serde::Serialize;

use crate::error::PipelineError;

/// What `etl bench read` measured. JSON keys are a contract.
#[derive(Debug, Clone, Serialize)]
pub struct ReadBench {
    /// Rows read.
    pub rows: u64,
    /// COPY bytes received.
    pub bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Rows per second.
    pub rows_per_s: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
}

/// Reads `table` with `partitions` readers and drops the batches.
pub async fn bench_read(
    source: &str,
    table: &str,
    partitions: usize,
) -> Result<ReadBench, PipelineError> {
    let url = PgUrl::parse(source)?;
    let name = QualifiedName::parse(table)?;
    let client = postgres::connect(&url).await?;
    let described = postgres::describe_tables(&client, Some(std::slice::from_ref(&name))).await?;
    drop(client);
    let Some(t) = described.first() else {
        return Err(ConnectorError::TableNotFound {
            table: name.to_string(),
        }
        .into());
    };
    let provider = Arc::new(PgTableProvider::new(
        url,
        t,
        ReadOptions {
            partitions: partitions.max(1),
            ..ReadOptions::default()
        },
    ));
    let stats = provider.stats();
    let ctx = SessionContext::new();
    let start = Instant::now();
    let plan = provider
        .scan(&ctx.state(), None, &[], None)
        .await
        .map_err(PipelineError::from_datafusion)?;
    let mut tasks = Vec::new();
    for p in 0..plan.properties().partitioning.partition_count() {
        let mut stream = plan
            .execute(p, ctx.task_ctx())
            .map_err(PipelineError::from_datafusion)?;
        tasks.push(tokio::spawn(async move {
            while let Some(batch) = stream.next().await {
                batch?;
            }
            Ok::<(), datafusion::error::DataFusionError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| PipelineError::Internal {
                message: format!("reader task: {e}"),
            })?
            .map_err(PipelineError::from_datafusion)?;
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let rows = stats.rows.load(Ordering::Relaxed);
    let bytes = stats.bytes.load(Ordering::Relaxed);
    Ok(ReadBench {
        rows,
        bytes,
        seconds,
        rows_per_s: rows as f64 / seconds,
        mb_per_s: bytes as f64 / 1e6 / seconds,
    })
}
