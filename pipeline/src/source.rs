//! A mapping's source, opened (a live server, or a dump read without one), and the scan of one
//! of its tables for a run or a verify: the provider, the projection of the columns the mapping
//! reads, and the physical scan whose partitions are the parallel ranges.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::datasource::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use etl_connectors::dump::{DumpArchive, DumpTableProvider};
use etl_connectors::files::FileSource;
use etl_connectors::postgres::{PgTableProvider, PgUrl, ReadOptions, ReadStats};
use etl_mappings::{ParsedMapping, SourceTable};

use crate::error::PipelineError;

/// Where a mapping's rows come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A live server.
    Postgres(Box<PgUrl>),
    /// A pg_dump file or directory, already scanned.
    Dump(Arc<DumpArchive>),
    /// CSV or Parquet files, described.
    Files(Arc<FileSource>),
}

impl Source {
    /// What `etl plan` and reports call the source (passwords redacted).
    pub fn label(&self) -> String {
        match self {
            Source::Postgres(url) => url.redacted().to_string(),
            Source::Dump(a) => format!("dump {}", a.path().display()),
            Source::Files(f) => format!("{:?} files", f.format()).to_lowercase(),
        }
    }

    /// The opened dump, when this source is one.
    pub fn dump(&self) -> Option<Arc<DumpArchive>> {
        match self {
            Source::Dump(a) => Some(a.clone()),
            _ => None,
        }
    }

    /// Opens a dump (scanning it on a blocking thread) and reports what it skipped.
    pub async fn open_dump(path: PathBuf) -> Result<Source, PipelineError> {
        let archive = tokio::task::spawn_blocking(move || DumpArchive::open(&path))
            .await
            .map_err(|e| PipelineError::Internal {
                message: e.to_string(),
            })??;
        for (kind, count) in archive.skipped() {
            tracing::warn!(
                "{}: skipped {count} {kind} statement(s) the migration does not need",
                archive.path().display()
            );
        }
        Ok(Source::Dump(Arc::new(archive)))
    }
}

/// A path in a mapping, relative to the mapping file's folder.
pub(crate) fn beside(mapping: &ParsedMapping, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    Path::new(mapping.locator.file())
        .parent()
        .map(|d| d.join(p))
        .unwrap_or_else(|| p.to_path_buf())
}

/// A planned scan of one source table.
pub(crate) struct SourceScan {
    plan: Arc<dyn ExecutionPlan>,
    session: SessionContext,
    /// Rows and bytes read so far, over every partition.
    pub stats: Arc<ReadStats>,
}

impl SourceScan {
    /// Plans a scan of `columns` (by name) in about `options.partitions` ranges, reading at most
    /// `limit` rows.
    pub async fn open(
        source: &Source,
        table: &SourceTable,
        options: ReadOptions,
        columns: &[String],
        limit: Option<usize>,
    ) -> Result<SourceScan, PipelineError> {
        let (provider, stats): (Arc<dyn TableProvider>, Arc<ReadStats>) = match source {
            Source::Postgres(url) => {
                let p = PgTableProvider::new((**url).clone(), table, options);
                let stats = p.stats();
                (Arc::new(p), stats)
            }
            Source::Dump(archive) => {
                let p = DumpTableProvider::new(archive.clone(), table, options)?;
                let stats = p.stats();
                (Arc::new(p), stats)
            }
            Source::Files(files) => {
                let p = files.provider(&table.name, options)?;
                let stats = p.stats();
                (Arc::new(p), stats)
            }
        };
        let schema = provider.schema();
        let projection: Vec<usize> = columns
            .iter()
            .map(|c| {
                schema.index_of(c).map_err(|_| PipelineError::Internal {
                    message: format!("source table {} has no column `{c}`", table.name),
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

/// The live source's URL.
pub fn postgres_url(mapping: &ParsedMapping) -> Result<PgUrl, PipelineError> {
    let file = mapping.locator.file().to_string();
    let source = &mapping.file.source;
    match (&source.postgres, &source.dump, &source.csv) {
        (Some(url), _, _) => Ok(PgUrl::parse(url)?),
        (None, Some(_), _) => Err(PipelineError::UnsupportedSource { file, kind: "dump" }),
        (None, None, Some(_)) => Err(PipelineError::UnsupportedSource { file, kind: "csv" }),
        (None, None, None) => Err(PipelineError::UnsupportedSource {
            file,
            kind: "parquet",
        }),
    }
}
