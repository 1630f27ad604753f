//! A Postgres-compatible database as the target (`target: { postgres: URL }`): tables keep
//! their Postgres types, and a run is pg_restore's three sections, faster.
//!
//! - **Pre-data** ([`Target::begin`]): `CREATE EXTENSION vector` when a column needs it, the
//!   schemas, enum types and domains, serial sequences, and each table without its indexes and
//!   constraints (a partitioned table with its partitions). `if_exists` decides what happens to
//!   a table already there: `fail` (unless empty), `truncate`, `append` (its columns must take
//!   the source's types) or `replace`.
//! - **Data** ([`sink`]): every range of the source's snapshot as binary COPY, the source's
//!   field bytes untouched, each range committed with its checkpoint row.
//! - **Post-data** ([`Target::finish_table`], then foreign keys in [`Target::end`]):
//!   constraints, indexes (pgvector's HNSW and IVFFlat with their operator classes and
//!   `WITH` options; a table's index builds run together, as pg_restore -j runs them), sequence
//!   values, comments and `ANALYZE`, each a step recorded in the `etl` schema ([`state`]) so a
//!   resumed run does not redo it.
//!
//! Every refusal comes from [`PostgresTarget::findings`], which `etl plan` shows and `etl run`
//! refuses with before reading anything.

mod cockroach;
mod ddl;
mod findings;
mod read;
mod sink;
mod state;

use findings::{PGVECTOR_TYPES, ask, pgvector_columns};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use etl_connectors::dump::DumpArchive;
use etl_connectors::postgres::{PgUrl, TableDefinition, connect, table_definition};
use etl_engine::{CollectionSchema, Hit, SearchRequest};
use etl_mappings::{Dialect, IfExists, ParsedMapping, Plan, QualifiedName, TablePlan};
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::error::PipelineError;
use crate::report::{RunObserver, RunReport, TableReport};
use crate::target::{
    Admin, Answer, Begun, CollectionReader, Feed, OpenTable, Target, TargetOptions,
};

/// Where the source's table definitions are read.
enum Definer {
    /// A live server's catalog.
    Live(Box<PgUrl>),
    /// A dump's DDL.
    Dump(Arc<DumpArchive>),
}

/// Where a source table goes and what to do if it is there.
#[derive(Debug, Clone)]
struct Placement {
    target: QualifiedName,
    if_exists: IfExists,
}

/// A Postgres-compatible target.
pub struct PostgresTarget {
    url: PgUrl,
    mapping: Option<ParsedMapping>,
    opts: TargetOptions,
    dialect: Dialect,
    /// The target's `if_exists`, for tables that do not set their own.
    default_if_exists: IfExists,
    placements: HashMap<QualifiedName, Placement>,
    /// Source definitions, read once (by `begin`, or by the checks).
    definitions: Mutex<HashMap<QualifiedName, Arc<TableDefinition>>>,
}

impl PostgresTarget {
    /// A target at `url`; nothing is touched until a method needs it.
    pub fn new(
        url: &str,
        mapping: Option<&ParsedMapping>,
        opts: &TargetOptions,
    ) -> Result<Self, PipelineError> {
        let mut placements = HashMap::new();
        let dialect = mapping
            .and_then(|m| m.file.target.dialect)
            .unwrap_or_default();
        let default_if_exists = mapping
            .and_then(|m| m.file.target.if_exists)
            .unwrap_or_default();
        if let Some(m) = mapping {
            for t in &m.file.tables {
                let source = QualifiedName::parse(&t.source)?;
                let target = match &t.target {
                    Some(name) => QualifiedName::parse(name)?,
                    None => source.clone(),
                };
                placements.insert(
                    source,
                    Placement {
                        target,
                        if_exists: t.if_exists.unwrap_or(default_if_exists),
                    },
                );
            }
        }
        Ok(PostgresTarget {
            url: PgUrl::parse(url)?,
            mapping: mapping.cloned(),
            opts: opts.clone(),
            dialect,
            default_if_exists,
            placements,
            definitions: Mutex::new(HashMap::new()),
        })
    }

    /// `SET LOCAL` statements for index builds, from the mapping's options.
    fn index_settings(&self) -> String {
        let Some(o) = self.mapping.as_ref().map(|m| &m.file.options) else {
            return String::new();
        };
        let mut out = String::new();
        if let Some(m) = &o.maintenance_work_mem {
            out.push_str(&format!(
                "SET LOCAL maintenance_work_mem = {}; ",
                etl_mappings::quote_literal(m)
            ));
        }
        if let Some(n) = o.max_parallel_maintenance_workers {
            out.push_str(&format!(
                "SET LOCAL max_parallel_maintenance_workers = {n}; "
            ));
        }
        out
    }

    fn placement(&self, source: &QualifiedName) -> Placement {
        self.placements
            .get(source)
            .cloned()
            .unwrap_or_else(|| Placement {
                target: source.clone(),
                if_exists: self.default_if_exists,
            })
    }

    /// Where the source's table definitions come from: the live source's catalog or the
    /// dump's DDL (`None`: files, which carry no definitions).
    fn definer(&self) -> Result<Option<Definer>, PipelineError> {
        if let Some(dump) = &self.opts.dump {
            return Ok(Some(Definer::Dump(dump.clone())));
        }
        match &self.mapping {
            Some(m) if m.file.source.postgres.is_some() => Ok(Some(Definer::Live(Box::new(
                crate::source::postgres_url(m)?,
            )))),
            _ => Ok(None),
        }
    }

    /// The source definitions of `tables`, read once.
    async fn definitions(
        &self,
        tables: &[TablePlan],
    ) -> Result<Vec<Arc<TableDefinition>>, PipelineError> {
        let mut cache = self.definitions.lock().await;
        let missing: Vec<&TablePlan> = tables
            .iter()
            .filter(|t| !cache.contains_key(&t.source))
            .collect();
        if !missing.is_empty() {
            match self.definer()? {
                Some(Definer::Live(url)) => {
                    let client = connect(&url).await?;
                    for t in missing {
                        let def = table_definition(&client, &t.source).await?;
                        cache.insert(t.source.clone(), Arc::new(def));
                    }
                }
                Some(Definer::Dump(dump)) => {
                    for t in missing {
                        let def = dump.table_definition(&t.source)?;
                        cache.insert(t.source.clone(), Arc::new(def));
                    }
                }
                None => {}
            }
        }
        tables
            .iter()
            .map(|t| {
                cache
                    .get(&t.source)
                    .cloned()
                    .ok_or_else(|| PipelineError::Internal {
                        message: format!("no definition read for {}", t.source),
                    })
            })
            .collect()
    }

    /// Runs one post-data step and adds its time to the report's phases.
    async fn timed_step(
        &self,
        client: &mut tokio_postgres::Client,
        target: &QualifiedName,
        step: &ddl::Step,
        settings: &str,
        report: &mut TableReport,
    ) -> Result<(), PipelineError> {
        let started = Instant::now();
        state::run_step(client, target, step, settings).await?;
        // After a step is done, as `kill -9` would come: the crash-safety tests.
        etl_engine::fault::crash_point("post-data");
        let secs = started.elapsed().as_secs_f64();
        if step.builds_index {
            report.phases.index += secs;
            report.index_seconds += secs;
        } else {
            report.phases.load += secs;
        }
        Ok(())
    }

    /// Pre-data for one table: what `if_exists` (or `--restart`, or a resume) says, then the
    /// types, sequences and table.
    async fn prepare_table(
        &self,
        client: &tokio_postgres::Client,
        t: &TablePlan,
        def: &TableDefinition,
    ) -> Result<bool, PipelineError> {
        let place = self.placement(&t.source);
        let target = &place.target;
        let ctx = |what: &str| format!("{what} {target} on the target");
        let exec = |sql: String, what: &'static str| async move {
            client.batch_execute(&sql).await.map_err(|e| {
                etl_connectors::ConnectorError::from_pg(format!("{} ({sql})", ctx(what)), e)
            })
        };
        let recorded = state::recorded(client, target).await?;
        let existing = self.existing(client, target).await?;
        if existing.is_some() && recorded == state::Recorded::Loading && !self.opts.restart {
            return Ok(true);
        }
        let create = match existing {
            None => true,
            Some(_) if self.opts.restart || place.if_exists == IfExists::Replace => {
                exec(
                    format!("DROP TABLE {} CASCADE", target.quoted()),
                    "dropping",
                )
                .await?;
                true
            }
            Some(_) if place.if_exists == IfExists::Truncate => {
                exec(format!("TRUNCATE {}", target.quoted()), "emptying").await?;
                false
            }
            Some(_) => false,
        };
        if create {
            exec(
                format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    etl_mappings::quote_ident(&target.schema)
                ),
                "creating the schema of",
            )
            .await?;
            for ty in &def.types {
                let there = ask(
                    client,
                    "SELECT to_regtype($1) IS NOT NULL",
                    &[&ty.name().quoted()],
                    ctx("looking up the types of"),
                )
                .await?;
                if !there {
                    exec(
                        format!(
                            "CREATE SCHEMA IF NOT EXISTS {}; {}",
                            etl_mappings::quote_ident(&ty.name().schema),
                            ty.create_sql()
                        ),
                        "creating the types of",
                    )
                    .await?;
                }
            }
            for sql in ddl::create_sequences(def) {
                exec(sql, "creating the sequences of").await?;
            }
            for sql in ddl::create_table(def, target, &t.excluded) {
                exec(sql, "creating").await?;
            }
        }
        state::start(client, target, &t.source, create).await?;
        Ok(false)
    }
}

#[async_trait]
impl Target for PostgresTarget {
    fn feed(&self) -> Feed {
        Feed::Wire
    }

    async fn check(&self, plan: &mut Plan, recreate: bool) -> Result<(), PipelineError> {
        self.findings(&mut plan.tables, recreate).await
    }

    async fn fit(&self, tables: &mut [TablePlan]) -> Result<(), PipelineError> {
        let mut checked = tables.to_vec();
        self.findings(&mut checked, self.opts.restart).await?;
        for t in &checked {
            if !t.required_fixes.is_empty() {
                return Err(PipelineError::needs_fixes(&t.source, &t.required_fixes));
            }
        }
        Ok(())
    }

    async fn begin(&mut self, tables: &[TablePlan]) -> Result<Begun, PipelineError> {
        let client = connect(&self.url).await?;
        let defs = self.definitions(tables).await?;
        let needs_vector = tables
            .iter()
            .zip(&defs)
            .any(|(t, d)| !pgvector_columns(d, &t.excluded, &PGVECTOR_TYPES).is_empty());
        if needs_vector {
            client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS vector")
                .await
                .map_err(|e| {
                    etl_connectors::ConnectorError::from_pg("creating pgvector on the target", e)
                })?;
        }
        state::ensure(&client).await?;
        let mut resumed = false;
        for (t, def) in tables.iter().zip(defs) {
            resumed |= self.prepare_table(&client, t, &def).await?;
        }
        Ok(Begun { resumed })
    }

    async fn open_table(
        &self,
        table: &TablePlan,
        _schema: &CollectionSchema,
    ) -> Result<OpenTable, PipelineError> {
        let target = self.placement(&table.source).target;
        let client = connect(&self.url).await?;
        let checkpoints = state::checkpoints(&client, &target).await?;
        // A table with constraints during the load (one that was already there) can refuse
        // rows: its sink loads batch by batch and sets refused rows aside.
        let careful = ask(
            &client,
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) \
                            AND contype IN ('p', 'u', 'c', 'f', 'x')) \
                 OR EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisunique) \
                 OR EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal)",
            &[&target.quoted()],
            format!("reading the constraints of {target}"),
        )
        .await?;
        Ok(OpenTable {
            checkpoints,
            sink: Box::new(sink::PgSink::new(
                tokio::runtime::Handle::current(),
                self.url.clone(),
                target,
                careful,
            )),
        })
    }

    async fn finish_table(
        &self,
        table: &TablePlan,
        report: &mut TableReport,
        observer: Arc<dyn RunObserver>,
    ) -> Result<(), PipelineError> {
        let target = self.placement(&table.source).target;
        let def = self.definitions(std::slice::from_ref(table)).await?;
        let Some(def) = def.first() else {
            return Ok(());
        };
        let mut client = connect(&self.url).await?;
        let done = state::steps_done(&client, &target).await?;
        let name = table.source.to_string();
        observer.phase(&name, crate::report::Phase::Indexing);
        // A table that was there keeps its own definition: only ANALYZE after adding rows.
        let created = state::created(&client, &target).await?;
        let settings = self.index_settings();
        let steps: Vec<ddl::Step> = ddl::post_data(def, &target, &table.excluded)
            .into_iter()
            .filter(|s| !done.contains(&s.name) && (created || s.name == "analyze"))
            .collect();
        // As pg_restore -j does: constraints first, one at a time (ALTER TABLE locks the table
        // whole), then the plain index builds together (their SHARE locks do not conflict),
        // each on its own connection, then sequences, comments and ANALYZE.
        let (constraints, rest): (Vec<_>, Vec<_>) = steps
            .into_iter()
            .partition(|s| s.name.starts_with("constraint:"));
        let (indexes, rest): (Vec<_>, Vec<_>) =
            rest.into_iter().partition(|s| s.name.starts_with("index:"));
        for step in &constraints {
            self.timed_step(&mut client, &target, step, &settings, report)
                .await?;
        }
        let at_once = self
            .mapping
            .as_ref()
            .and_then(|m| m.file.options.parallelism)
            .unwrap_or(2)
            .max(1);
        let started = Instant::now();
        let any_index = !indexes.is_empty();
        // Owned per build: each future stands alone on the runtime.
        let builds = indexes.into_iter().map(|step| {
            let (url, target, settings) = (self.url.clone(), target.clone(), settings.clone());
            async move {
                let mut client = connect(&url).await?;
                state::run_step(&mut client, &target, &step, &settings).await?;
                etl_engine::fault::crash_point("post-data");
                Ok::<(), PipelineError>(())
            }
        });
        let built: Vec<Result<(), PipelineError>> = futures::stream::iter(builds)
            .buffer_unordered(at_once)
            .collect()
            .await;
        built.into_iter().collect::<Result<Vec<()>, _>>()?;
        if any_index {
            let secs = started.elapsed().as_secs_f64();
            report.phases.index += secs;
            report.index_seconds += secs;
        }
        for step in &rest {
            self.timed_step(&mut client, &target, step, &settings, report)
                .await?;
        }
        Ok(())
    }

    async fn end(
        &mut self,
        outcome: Result<&mut RunReport, &PipelineError>,
    ) -> Result<(), PipelineError> {
        let Ok(report) = outcome else {
            return Ok(());
        };
        // Foreign keys once every table is in, then the loads are recorded as done.
        let sources: Vec<QualifiedName> = report
            .tables
            .iter()
            .filter_map(|t| QualifiedName::parse(&t.table).ok())
            .collect();
        let cache = self.definitions.lock().await.clone();
        let mut client = connect(&self.url).await?;
        for source in &sources {
            let Some(def) = cache.get(source) else {
                continue;
            };
            let target = self.placement(source).target;
            if !state::created(&client, &target).await? {
                continue;
            }
            let done = state::steps_done(&client, &target).await?;
            let (steps, _) = ddl::foreign_keys(def, &target, &|r| {
                sources.contains(r).then(|| self.placement(r).target)
            });
            for step in steps.iter().filter(|s| !done.contains(&s.name)) {
                state::run_step(&mut client, &target, step, "").await?;
            }
        }
        for source in &sources {
            state::finish(&client, &self.placement(source).target).await?;
        }
        Ok(())
    }

    fn rejects_dir(&self) -> PathBuf {
        super::rejects_beside(self.mapping.as_ref())
    }

    async fn reader(
        &self,
        table: &mut TablePlan,
        schema: &CollectionSchema,
        _columns: &[String],
        _projection: &[usize],
    ) -> Result<Option<Box<dyn CollectionReader>>, PipelineError> {
        let target = self.placement(&table.source).target;
        read::TableReader::open(&self.url, &target, table, schema).await
    }

    async fn search(
        &self,
        _collection: &str,
        _request: &SearchRequest,
    ) -> Result<Vec<Vec<Hit>>, PipelineError> {
        Err(PipelineError::Usage {
            message: "a Postgres target is searched with SQL (pgvector's `ORDER BY v <=> q`), not `etl search`".into(),
        })
    }

    async fn administer(&self, command: &Admin) -> Result<Answer, PipelineError> {
        match command {
            Admin::Jobs => {
                let client = connect(&self.url).await?;
                state::loads(&client).await
            }
            _ => Err(PipelineError::Usage {
                message: "`etl collections` manages collections; a Postgres target's tables are managed with SQL".into(),
            }),
        }
    }
}
