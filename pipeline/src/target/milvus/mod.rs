//! A real Milvus as a target. Here the target itself: the version asked of the server once,
//! the load records (`_milvus_jobs/` beside the mapping) that let a killed run resume by key,
//! and the end of a load (indexes, load, count). [`wire`] holds the server's vocabulary,
//! `rules` what a server's version can hold (the same findings in `etl plan` and refusals in
//! `etl run`), `nulls` how NULLs are written to a server without nullable fields; [`write`]
//! inserts batches, [`read`] pages collections back for `etl verify`, [`import`] loads a stage
//! through the server's bulk import, [`search`] answers `etl search`.

mod admin;
pub mod import;
pub mod job;
mod nulls;
pub mod read;
mod rules;
pub mod search;
mod wire;
pub mod write;

pub use nulls::{fill_nulls, null_stand_in, nullable_scalars};
pub use rules::{
    Existing, existing, fit_tables, foreign_finding, holds_nulls, null_vector_fixes,
    refuse_unsupported, relax_null_vectors, unsupported, unsupported_findings, version_before,
};
pub use wire::{from_wire, index_params, milvus_schema};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use etl_connectors::milvus::MilvusClient;
use etl_engine::{CollectionSchema, Hit, IndexSpec, SearchRequest};
use etl_mappings::{Finding, ParsedMapping, Plan, TablePlan};
use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use self::job::LoadRecord;
use super::{
    Admin, Answer, Begun, Checkpoint, CollectionReader, EachBatch, ImportOptions, OpenTable,
    RANGES_KEY, Target, TargetOptions,
};
use crate::error::PipelineError;
use crate::report::{Phase, RunObserver, RunReport, TableReport};

/// A Milvus server, loaded directly or (`via_stage`) through the import of a stage.
pub struct MilvusTarget {
    url: String,
    /// The stage a staged route imports from.
    via_stage: Option<String>,
    mapping: Option<ParsedMapping>,
    opts: TargetOptions,
    /// The client and the server's version, asked once.
    server: OnceCell<(MilvusClient, String)>,
    /// The unfinished loads `begin` resumes, by collection.
    resume: HashMap<String, LoadRecord>,
}

impl MilvusTarget {
    /// The server at `url`.
    pub fn new(
        url: &str,
        via_stage: Option<&str>,
        mapping: Option<&ParsedMapping>,
        opts: &TargetOptions,
    ) -> Self {
        MilvusTarget {
            url: url.to_string(),
            via_stage: via_stage.map(str::to_string),
            mapping: mapping.cloned(),
            opts: opts.clone(),
            server: OnceCell::new(),
            resume: HashMap::new(),
        }
    }

    async fn server(&self) -> Result<&(MilvusClient, String), PipelineError> {
        self.server
            .get_or_try_init(|| async { Ok(MilvusClient::connect(&self.url).await?) })
            .await
    }

    fn mapping(&self) -> Result<&ParsedMapping, PipelineError> {
        self.mapping
            .as_ref()
            .ok_or_else(|| PipelineError::Internal {
                message: "a run into Milvus without a mapping".into(),
            })
    }

    fn jobs(&self) -> Result<PathBuf, PipelineError> {
        Ok(crate::source::beside(self.mapping()?, "_milvus_jobs"))
    }

    /// Whether the server stores NULL scalars.
    pub(crate) async fn holds_nulls(&self) -> Result<bool, PipelineError> {
        Ok(holds_nulls(&self.server().await?.1))
    }

    /// What `etl plan` shows for this server: what its version cannot hold (required fixes,
    /// which `fit` refuses) and changes (suggestions), and what is already there under each
    /// collection's name, for a direct load or (`staged`) an import of the stage.
    pub(crate) async fn check_via(
        &self,
        plan: &mut Plan,
        recreate: bool,
        staged: bool,
    ) -> Result<(), PipelineError> {
        let (client, version) = self.server().await?;
        let (url, mapping) = (&self.url, self.mapping()?);
        let stage = self.via_stage.as_deref().filter(|_| staged);
        let null_fixes = null_vector_fixes(mapping, &plan.tables, version).await?;
        for (t, fixes) in plan.tables.iter_mut().zip(null_fixes) {
            if !t.required_fixes.is_empty() {
                // An incomplete plan (a type still to choose) is checked against the server once
                // it is complete, as `etl run` does: it refuses on those fixes first.
                continue;
            }
            let mut tp = t.clone();
            for column in relax_null_vectors(&mut tp, version) {
                if fixes.iter().any(|f| f.column.as_deref() == Some(&column)) {
                    continue;
                }
                t.suggestions.push(Finding {
                    column: Some(column),
                    message: format!(
                        "Milvus {version} has no NULL vectors: no row has a NULL here now; one that has at run time is rejected"
                    ),
                    fix: None,
                });
            }
            t.required_fixes.extend(fixes);
            let schema = crate::schema::collection_schema(&tp);
            if !holds_nulls(version) {
                for name in nullable_scalars(&schema) {
                    let t_ = schema.field(name).map(|f| f.data_type);
                    t.suggestions.push(Finding {
                        column: Some(name.to_string()),
                        message: format!(
                            "no NULL scalars are sent to Milvus {version} (before 2.5 it has none): a NULL here is written as {} (and `etl verify` expects that)",
                            t_.map(null_stand_in).unwrap_or("0")
                        ),
                        fix: Some("give the field a `default` to choose the value written".into()),
                    });
                }
            }
            let indexes = crate::schema::index_specs(&tp);
            t.required_fixes
                .extend(unsupported_findings(&schema, &indexes, url, version));
            // As `etl run` decides it: a direct load, or an import of the mapping's stage.
            match existing(client, url, mapping, t, stage).await? {
                Existing::Foreign { why } if !recreate => {
                    t.required_fixes.push(foreign_finding(&t.collection, url, why));
                }
                Existing::Absent => {}
                Existing::Resume(_) if !recreate => t.suggestions.push(Finding {
                    column: None,
                    message: format!("collection `{}` is an unfinished load of this mapping: `etl run` resumes it", t.collection),
                    fix: Some("`etl run --recreate` starts it over".into()),
                }),
                _ => t.suggestions.push(Finding {
                    column: None,
                    message: format!("collection `{}` already exists in Milvus at {url}: `etl run` drops and recreates it", t.collection),
                    fix: None,
                }),
            }
        }
        Ok(())
    }

    /// Refuses collections on the server that the import of the stage would refuse.
    pub(crate) async fn refuse_foreign(&self, tables: &[TablePlan]) -> Result<(), PipelineError> {
        let (client, _) = self.server().await?;
        for t in tables {
            if let Existing::Foreign { why } = existing(
                client,
                &self.url,
                self.mapping()?,
                t,
                self.via_stage.as_deref(),
            )
            .await?
            {
                return Err(PipelineError::needs_fixes(
                    &t.source,
                    &[foreign_finding(&t.collection, &self.url, why)],
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Target for MilvusTarget {
    async fn check(&self, plan: &mut Plan, recreate: bool) -> Result<(), PipelineError> {
        self.check_via(plan, recreate, false).await
    }

    async fn fit(&self, tables: &mut [TablePlan]) -> Result<(), PipelineError> {
        let version = &self.server().await?.1;
        fit_tables(self.mapping()?, tables, &self.url, version).await
    }

    async fn begin(&mut self, tables: &[TablePlan]) -> Result<Begun, PipelineError> {
        let (client, _) = self.server().await?;
        let mut resume = HashMap::new();
        for t in tables {
            match (
                existing(client, &self.url, self.mapping()?, t, None).await?,
                self.opts.restart,
            ) {
                (Existing::Absent, _) => {}
                (Existing::Resume(r), false) => {
                    resume.insert(t.collection.clone(), r);
                }
                (Existing::Foreign { why }, false) => {
                    return Err(PipelineError::needs_fixes(
                        &t.source,
                        &[foreign_finding(&t.collection, &self.url, why)],
                    ));
                }
                _ => client.drop_collection(&t.collection).await?,
            }
        }
        self.resume = resume;
        Ok(Begun {
            resumed: !self.resume.is_empty(),
        })
    }

    async fn open_table(
        &self,
        table: &TablePlan,
        schema: &CollectionSchema,
    ) -> Result<OpenTable, PipelineError> {
        let (client, _) = self.server().await?;
        let path = LoadRecord::path(&self.jobs()?, &table.collection);
        let resumed = self.resume.get(&table.collection).cloned();
        let upsert = resumed.is_some();
        let record = match resumed {
            Some(r) => r,
            None => {
                client
                    .create_collection(
                        &milvus_schema(&table.collection, schema),
                        schema.shards as i32,
                    )
                    .await?;
                // Recorded at once, so a run killed from here on finds the collection its own.
                let r = LoadRecord {
                    server: self.url.clone(),
                    collection_id: client.collection_id(&table.collection).await?,
                    ..Default::default()
                };
                r.save(&path)?;
                r
            }
        };
        let mut checkpoints = Checkpoint::new();
        if record.ranges > 0 {
            checkpoints.insert(RANGES_KEY.into(), serde_json::json!(record.ranges));
        }
        for k in &record.done {
            checkpoints.insert(k.clone(), serde_json::json!({}));
        }
        let sink = write::MilvusSink::new(
            client.clone(),
            &table.collection,
            schema,
            (path, record),
            upsert,
        );
        Ok(OpenTable {
            checkpoints,
            sink: Box::new(sink),
        })
    }

    async fn finish_table(
        &self,
        table: &TablePlan,
        report: &mut TableReport,
        observer: Arc<dyn RunObserver>,
    ) -> Result<(), PipelineError> {
        let (client, _) = self.server().await?;
        client.flush(&table.collection).await?;
        let indexes = crate::schema::index_specs(table);
        finish(
            client,
            &table.collection,
            &indexes,
            observer.as_ref(),
            report,
        )
        .await?;
        let path = LoadRecord::path(&self.jobs()?, &table.collection);
        if let Some(mut r) = LoadRecord::read(&path) {
            r.finished = true;
            r.save(&path)?;
        }
        Ok(())
    }

    fn rejects_dir(&self) -> PathBuf {
        super::rejects_beside(self.mapping.as_ref())
    }

    async fn reader(
        &self,
        table: &mut TablePlan,
        _schema: &CollectionSchema,
        columns: &[String],
        _projection: &[usize],
    ) -> Result<Option<Box<dyn CollectionReader>>, PipelineError> {
        let (client, version) = self.server().await?;
        // As `etl run` wrote it: NULL vectors rejected on servers without them.
        relax_null_vectors(table, version);
        if !client.has_collection(&table.collection).await? {
            return Ok(None);
        }
        // Queries need the collection loaded (a killed run may have stopped before).
        client.load(&table.collection).await?;
        Ok(Some(Box::new(MilvusReader {
            client: client.clone(),
            collection: table.collection.clone(),
            schema: crate::schema::collection_schema(table),
            columns: columns.to_vec(),
            fill_nulls: !holds_nulls(version),
        })))
    }

    async fn import(
        &self,
        stage: &str,
        opts: &ImportOptions,
        observer: Arc<dyn RunObserver>,
        cancel: BoxFuture<'static, ()>,
    ) -> Result<RunReport, PipelineError> {
        import::import(stage, &self.url, opts, observer, cancel).await
    }

    async fn search(
        &self,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Vec<Vec<Hit>>, PipelineError> {
        search::search(&self.server().await?.0, collection, request).await
    }

    async fn administer(&self, command: &Admin) -> Result<Answer, PipelineError> {
        let (client, version) = self.server().await?;
        admin::administer(client, &self.url, version, command).await
    }
}

/// A collection paged back in primary-key order.
struct MilvusReader {
    client: MilvusClient,
    collection: String,
    schema: CollectionSchema,
    columns: Vec<String>,
    /// The server has no NULLs: source rows are compared with the stand-ins written for them.
    fill_nulls: bool,
}

#[async_trait]
impl CollectionReader for MilvusReader {
    fn as_stored(&self, batch: RecordBatch) -> Result<RecordBatch, PipelineError> {
        if self.fill_nulls {
            return fill_nulls(&batch, &self.schema);
        }
        Ok(batch)
    }

    fn reserializes_json(&self) -> bool {
        true
    }

    async fn scan(&self, _parallelism: usize, each: EachBatch) -> Result<u64, PipelineError> {
        let mut pager = read::Pager::new(
            self.client.clone(),
            &self.collection,
            &self.schema,
            &self.columns,
        )?;
        let mut rows = 0u64;
        while let Some(batch) = pager.next_page().await? {
            rows += batch.num_rows() as u64;
            if each(&batch)? {
                break;
            }
        }
        Ok(rows)
    }

    /// The server counts rows that share a primary key (Milvus does not enforce keys); paging
    /// returns each key once. The surplus is extraneous.
    async fn surplus(&self, read: u64) -> Result<u64, PipelineError> {
        let counted = count(&self.client, &self.collection).await?;
        if read > counted {
            return Err(PipelineError::Internal {
                message: format!(
                    "collection `{}`: paging by primary key returned {read} rows, the server counts {counted}",
                    self.collection
                ),
            });
        }
        if counted > read {
            tracing::warn!(
                collection = %self.collection,
                "the server counts {counted} rows, {read} distinct primary keys: {} duplicates",
                counted - read
            );
        }
        Ok(counted - read)
    }
}

/// The end of a load into Milvus: the indexes built (and waited for), the collection loaded
/// and counted, the phases shown to `observer` under `table`. Returns the seconds spent
/// indexing and the server's row count.
pub async fn finish(
    client: &etl_connectors::milvus::MilvusClient,
    collection: &str,
    indexes: &[(String, IndexSpec)],
    observer: &dyn RunObserver,
    report: &mut TableReport,
) -> Result<(), PipelineError> {
    let started = std::time::Instant::now();
    observer.phase(&report.table, Phase::Indexing);
    for (field, spec) in indexes {
        if let Some(params) = index_params(spec) {
            client.create_index(collection, field, params).await?;
        }
    }
    report.index_seconds = started.elapsed().as_secs_f64();
    report.phases.index = report.index_seconds;
    observer.phase(&report.table, Phase::Loading);
    let loading = std::time::Instant::now();
    client.load(collection).await?;
    report.phases.load = loading.elapsed().as_secs_f64();
    report.collection_rows = count(client, collection).await?;
    Ok(())
}

/// A collection's row count as the server counts it (`count(*)`).
pub async fn count(
    client: &etl_connectors::milvus::MilvusClient,
    name: &str,
) -> Result<u64, PipelineError> {
    use etl_connectors::milvus::proto::{Field, Scalars};
    let counted = client
        .query(name, "", &["count(*)".to_string()], None)
        .await?;
    Ok(counted
        .first()
        .and_then(|f| match &f.field {
            Some(Field::Scalars(s)) => match &s.data {
                Some(Scalars::Long(l)) => l.data.first().copied(),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or(0)
        .max(0) as u64)
}
