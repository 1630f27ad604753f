//! `etl run --dry-run`: a target that checks and fits like the real one (the refusals a run
//! would make are made) and writes nothing: no job, no collection, sinks that drop the rows.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use etl_engine::{CollectionSchema, Hit, SearchRequest};
use etl_mappings::{Plan, TablePlan};
use futures::future::BoxFuture;

use super::{
    Admin, Answer, Begun, Checkpoint, CollectionReader, Feed, ImportOptions, OpenTable, TableSink,
    Target,
};
use crate::error::PipelineError;
use crate::report::{RunObserver, RunReport};

/// The real target, consulted for its rules only.
pub struct DryRun(pub Box<dyn Target>);

/// Rows mapped and dropped.
struct Nowhere;

impl TableSink for Nowhere {
    fn write(&mut self, _range: &str, _batch: &RecordBatch) -> Result<(), PipelineError> {
        Ok(())
    }
    fn commit(&mut self, _range: &str, _checkpoint: Checkpoint) -> Result<(), PipelineError> {
        Ok(())
    }
    fn close(self: Box<Self>) -> Result<(), PipelineError> {
        Ok(())
    }
}

fn writes_nothing() -> PipelineError {
    PipelineError::Usage {
        message: "a dry run writes and reads no collection".into(),
    }
}

#[async_trait]
impl Target for DryRun {
    fn feed(&self) -> Feed {
        self.0.feed()
    }

    async fn check(&self, plan: &mut Plan, recreate: bool) -> Result<(), PipelineError> {
        self.0.check(plan, recreate).await
    }

    async fn fit(&self, tables: &mut [TablePlan]) -> Result<(), PipelineError> {
        self.0.fit(tables).await
    }

    async fn begin(&mut self, _tables: &[TablePlan]) -> Result<Begun, PipelineError> {
        Ok(Begun::default())
    }

    async fn open_table(
        &self,
        _table: &TablePlan,
        _schema: &CollectionSchema,
    ) -> Result<OpenTable, PipelineError> {
        Ok(OpenTable {
            checkpoints: Checkpoint::new(),
            sink: Box::new(Nowhere),
        })
    }

    async fn end(
        &mut self,
        outcome: Result<&mut RunReport, &PipelineError>,
    ) -> Result<(), PipelineError> {
        if let Ok(report) = outcome {
            report.dry_run = true;
        }
        Ok(())
    }

    fn rejects_dir(&self) -> PathBuf {
        self.0.rejects_dir()
    }

    async fn reader(
        &self,
        _table: &mut TablePlan,
        _schema: &CollectionSchema,
        _columns: &[String],
        _projection: &[usize],
    ) -> Result<Option<Box<dyn CollectionReader>>, PipelineError> {
        Err(writes_nothing())
    }

    async fn import(
        &self,
        _stage: &str,
        _opts: &ImportOptions,
        _observer: Arc<dyn RunObserver>,
        _cancel: BoxFuture<'static, ()>,
    ) -> Result<RunReport, PipelineError> {
        Err(writes_nothing())
    }

    async fn search(
        &self,
        _collection: &str,
        _request: &SearchRequest,
    ) -> Result<Vec<Vec<Hit>>, PipelineError> {
        Err(writes_nothing())
    }

    async fn administer(&self, _command: &Admin) -> Result<Answer, PipelineError> {
        Err(writes_nothing())
    }
}
