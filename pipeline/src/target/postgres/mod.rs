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
mod read;
mod sink;
mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use etl_connectors::dump::DumpArchive;
use etl_connectors::postgres::{
    PgUrl, TableDefinition, connect, extension_state, table_definition,
};
use etl_engine::{CollectionSchema, Hit, SearchRequest};
use etl_mappings::{Dialect, Finding, IfExists, ParsedMapping, Plan, QualifiedName, TablePlan};
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

    /// What `etl plan` shows and `etl run` refuses, table by table: required fixes (the
    /// target cannot take the table as the mapping says) and suggestions (what it will do).
    async fn findings(
        &self,
        tables: &mut [TablePlan],
        recreate: bool,
    ) -> Result<(), PipelineError> {
        let fix = |column: Option<&str>, message: String, fix: &str| Finding {
            column: column.map(str::to_string),
            message,
            fix: Some(fix.to_string()),
        };
        if self.definer()?.is_none() {
            for t in tables.iter_mut() {
                t.required_fixes.push(fix(
                    None,
                    "a Postgres target is loaded from a live Postgres source or a pg_dump file; CSV and Parquet into Postgres are not built yet".into(),
                    "use `source: { postgres: URL }` or `source: { dump: FILE }`",
                ));
            }
            return Ok(());
        }
        if self.dialect == Dialect::Cockroachdb {
            return self.cockroach_findings(tables).await;
        }
        let client = connect(&self.url).await?;
        let defs = self.definitions(tables).await?;
        let (vector, available) = extension_state(&client, "vector").await?;
        let can_create_extension = ask(
            &client,
            "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                OR (coalesce((SELECT trusted FROM pg_available_extension_versions \
                              WHERE name = 'vector' AND version = (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')), false) \
                    AND has_database_privilege(current_database(), 'CREATE'))",
            &[],
            "checking the target's rights",
        )
        .await?;
        let url = self.url.redacted().to_string();
        let in_run: Vec<QualifiedName> = tables.iter().map(|t| t.source.clone()).collect();
        // The index builds' settings, tried (and rolled back) now rather than after the load.
        let settings = self.index_settings();
        let settings_error = if settings.is_empty() {
            None
        } else {
            let tried = client
                .batch_execute(&format!("BEGIN; {settings} ROLLBACK"))
                .await;
            let _ = client.batch_execute("ROLLBACK").await;
            tried.err().map(|e| {
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            })
        };
        // The load's checkpoints live in an `etl` schema on the target.
        let bookkeeping_ok = ask(
            &client,
            "SELECT to_regnamespace('etl') IS NOT NULL OR has_database_privilege(current_database(), 'CREATE')",
            &[],
            "checking the target's rights",
        )
        .await?;
        for (t, def) in tables.iter_mut().zip(defs) {
            let place = self.placement(&t.source);
            let target = &place.target;
            let vectors = pgvector_columns(&def, &t.excluded, &PGVECTOR_TYPES);
            let newer = pgvector_columns(&def, &t.excluded, &PGVECTOR_TYPES[1..]);
            match (&vector, &available) {
                (Some(v), _) if !newer.is_empty() && version_below(v, (0, 7)) => {
                    t.required_fixes.push(fix(
                        newer.first().map(String::as_str),
                        format!("pgvector {v} on {url} has no halfvec or sparsevec (0.7 added them); columns {} need them", newer.join(", ")),
                        "ALTER EXTENSION vector UPDATE on the target (pgvector 0.7 or later)",
                    ));
                }
                (None, None) if !vectors.is_empty() => t.required_fixes.push(fix(
                    vectors.first().map(String::as_str),
                    format!("{url} has no pgvector, which columns {} need", vectors.join(", ")),
                    "install pgvector on the target server (Neon and Azure offer it as the `vector` extension)",
                )),
                (None, Some(_)) if !vectors.is_empty() && !can_create_extension => {
                    t.required_fixes.push(fix(
                        vectors.first().map(String::as_str),
                        format!("{url} has pgvector available but not created, and this user may not create it"),
                        "run `CREATE EXTENSION vector` on the target as a superuser (or the database owner)",
                    ))
                }
                (None, Some(v)) if !vectors.is_empty() => t.suggestions.push(fix(
                    None,
                    format!("creates pgvector {v} on the target (`CREATE EXTENSION vector`)"),
                    "nothing to do",
                )),
                _ => {}
            }
            let schema_ok = ask(
                &client,
                "SELECT CASE WHEN n.oid IS NULL THEN has_database_privilege(current_database(), 'CREATE') \
                             ELSE has_schema_privilege(n.oid, 'CREATE') END \
                 FROM (SELECT 1) x LEFT JOIN pg_namespace n ON n.nspname = $1",
                &[&target.schema],
                "checking the target's rights",
            )
            .await?;
            let existing = self.existing(&client, target).await?;
            let recorded = state::recorded(&client, target).await?;
            if let Some(e) = &settings_error {
                t.required_fixes.push(fix(
                    None,
                    format!("the target refuses the index build settings in `options:` ({}): {e}", settings.trim()),
                    "give `maintenance_work_mem` as Postgres takes it (e.g. `2GB`) and `max_parallel_maintenance_workers` as a small whole number",
                ));
            }
            if !bookkeeping_ok {
                t.required_fixes.push(fix(
                    None,
                    format!("this user may not create the `etl` schema on {url}, where the load keeps its checkpoints"),
                    "GRANT CREATE ON DATABASE to the target user, or create schema `etl` for it (CREATE SCHEMA etl AUTHORIZATION <user>)",
                ));
            }
            if !schema_ok && existing.is_none() {
                t.required_fixes.push(fix(
                    None,
                    format!("this user may not create tables in schema `{}` on {url}", target.schema),
                    "GRANT CREATE ON SCHEMA (or DATABASE) to the target user, or choose another `target:` schema",
                ));
            }
            match existing {
                None => t.suggestions.push(fix(
                    None,
                    format!("creates {target}: {}", ddl::create_table(&def, target, &t.excluded).join("; ")),
                    "nothing to do",
                )),
                Some(_) if recreate => t.suggestions.push(fix(
                    None,
                    format!("--restart: drops {target} and loads it again"),
                    "nothing to do",
                )),
                Some(_) if recorded == state::Recorded::Loading => t.suggestions.push(fix(
                    None,
                    format!("resumes the unfinished load of {target}"),
                    "nothing to do",
                )),
                Some(rows) => match place.if_exists {
                    IfExists::Fail if rows => t.required_fixes.push(fix(
                        None,
                        format!("{target} already exists on the target and holds rows (if_exists: fail)"),
                        "set `if_exists: truncate | append | replace` for it, or drop it, or run with --restart if this tool loaded it",
                    )),
                    IfExists::Fail => t.suggestions.push(fix(
                        None,
                        format!("{target} exists and is empty: rows go into it, its definition is kept"),
                        "nothing to do",
                    )),
                    IfExists::Append | IfExists::Truncate => {
                        for clash in self.clashes(&client, &def, target, &t.excluded).await? {
                            t.required_fixes.push(fix(
                                Some(&clash.0),
                                clash.1,
                                "make the target column's type the source's, or `exclude:` the column, or use `if_exists: replace`",
                            ));
                        }
                        t.suggestions.push(fix(
                            None,
                            format!("{target} exists: {}", if place.if_exists == IfExists::Append { "rows are added to it" } else { "it is emptied first" }),
                            "nothing to do",
                        ));
                    }
                    IfExists::Replace => t.suggestions.push(fix(
                        None,
                        format!("{target} exists: it is dropped and created again (if_exists: replace)"),
                        "nothing to do",
                    )),
                },
            }
            let (_, outside) = ddl::foreign_keys(&def, target, &|r| {
                in_run.contains(r).then(|| self.placement(r).target)
            });
            t.suggestions.extend(not_copied(&def, outside));
        }
        Ok(())
    }

    /// The CockroachDB dialect's plan: each table converted (the DDL, the post-data steps, the
    /// `IMPORT INTO` statement for a staged load), with what does not convert as required
    /// fixes. Loading into CockroachDB is not built, and says so.
    async fn cockroach_findings(&self, tables: &mut [TablePlan]) -> Result<(), PipelineError> {
        let defs = self.definitions(tables).await?;
        let in_run: Vec<QualifiedName> = tables.iter().map(|t| t.source.clone()).collect();
        let note = |message: String| Finding {
            column: None,
            message,
            fix: Some("nothing to do".into()),
        };
        for (t, def) in tables.iter_mut().zip(defs) {
            let target = self.placement(&t.source).target;
            let c = cockroach::convert(&def, &target, &t.excluded, &|r| {
                in_run.contains(r).then(|| self.placement(r).target)
            });
            t.required_fixes.extend(c.required_fixes);
            t.required_fixes.push(Finding {
                column: None,
                message: "loading into CockroachDB is not built yet (the conversion is tested against CockroachDB's documented rules, not a live cluster)".into(),
                fix: Some("run the statements this plan shows on the cluster and load with IMPORT INTO, or use `dialect: postgres` for a PostgreSQL target".into()),
            });
            t.suggestions
                .push(note(format!("creates {target}: {}", c.pre_data.join("; "))));
            t.suggestions.extend(c.suggestions);
            let after: Vec<String> = c
                .post_data
                .iter()
                .chain(&c.foreign_keys)
                .map(|s| s.sql.clone())
                .collect();
            t.suggestions
                .push(note(format!("after the load: {}", after.join("; "))));
            t.suggestions.extend(not_copied(&def, c.left_out));
            let columns: Vec<String> = def
                .columns
                .iter()
                .filter(|c| {
                    !t.excluded.contains(&c.name)
                        && !matches!(c.fill, etl_connectors::postgres::ColumnFill::Generated(_))
                })
                .map(|c| c.name.clone())
                .collect();
            let file = format!("<stage URL>/{}/part-00000.csv", target);
            t.suggestions.push(note(format!(
                "a large load from CSV files on cloud storage (one URL per file): {}",
                cockroach::import_into(&target, &columns, &[file])
            )));
        }
        Ok(())
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

    /// Whether `table` exists on the target (`Some(holds rows)`).
    async fn existing(
        &self,
        client: &tokio_postgres::Client,
        table: &QualifiedName,
    ) -> Result<Option<bool>, PipelineError> {
        let found = ask(
            client,
            "SELECT to_regclass($1) IS NOT NULL",
            &[&table.quoted()],
            format!("looking up {table} on the target"),
        )
        .await?;
        if !found {
            return Ok(None);
        }
        let rows = ask(
            client,
            &format!("SELECT EXISTS (SELECT 1 FROM {})", table.quoted()),
            &[],
            format!("reading {table} on the target"),
        )
        .await?;
        Ok(Some(rows))
    }

    /// Columns whose type on the existing target table is not the source's.
    async fn clashes(
        &self,
        client: &tokio_postgres::Client,
        def: &TableDefinition,
        table: &QualifiedName,
        excluded: &[String],
    ) -> Result<Vec<(String, String)>, PipelineError> {
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[&table.quoted()],
            )
            .await
            .map_err(|e| {
                etl_connectors::ConnectorError::from_pg(
                    format!("reading the columns of {table} on the target"),
                    e,
                )
            })?;
        let there: HashMap<String, String> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut out = Vec::new();
        for c in def.columns.iter().filter(|c| !excluded.contains(&c.name)) {
            if matches!(c.fill, etl_connectors::postgres::ColumnFill::Generated(_)) {
                continue;
            }
            match there.get(&c.name) {
                None => out.push((
                    c.name.clone(),
                    format!("{table} on the target has no column `{}`", c.name),
                )),
                Some(t) if strip_schema(t) != strip_schema(&c.type_sql) => out.push((
                    c.name.clone(),
                    format!(
                        "column `{}` is {t} on the target and {} on the source",
                        c.name, c.type_sql
                    ),
                )),
                Some(_) => {}
            }
        }
        Ok(out)
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

/// pgvector's types; halfvec and sparsevec (after the first) came with 0.7.
const PGVECTOR_TYPES: [&str; 3] = ["vector", "halfvec", "sparsevec"];

/// The moved columns of `def` whose type is one of `types` (with or without a typmod or a
/// schema), by name: what needs pgvector on the target.
fn pgvector_columns(def: &TableDefinition, excluded: &[String], types: &[&str]) -> Vec<String> {
    def.columns
        .iter()
        .filter(|c| !excluded.contains(&c.name))
        .filter(|c| {
            let name = strip_schema(&c.type_sql);
            let name = name.split(['(', '[']).next().unwrap_or(name);
            types.contains(&name)
        })
        .map(|c| c.name.clone())
        .collect()
}

/// What `etl plan` says the target will not get: foreign keys to tables outside the run
/// (`outside`), and the source's triggers, rules and policies.
fn not_copied(def: &TableDefinition, outside: Vec<String>) -> Vec<Finding> {
    let note = |message: String, fix: &str| Finding {
        column: None,
        message,
        fix: Some(fix.to_string()),
    };
    let mut out: Vec<Finding> = outside
        .into_iter()
        .map(|k| {
            note(
                format!("foreign key {k} is left out: that table is not in this run"),
                "add the referenced table to the mapping to keep the key",
            )
        })
        .collect();
    for what in &def.left_out {
        out.push(note(
            format!("{what} on the source are not copied"),
            "create them on the target after the run if they are needed",
        ));
    }
    out
}

/// One boolean the target answers.
async fn ask(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    context: impl Into<String>,
) -> Result<bool, PipelineError> {
    Ok(client
        .query_one(sql, params)
        .await
        .map_err(|e| etl_connectors::ConnectorError::from_pg(context, e))?
        .get::<_, bool>(0))
}

/// `public.mood` and `mood` name the same type when comparing columns.
fn strip_schema(t: &str) -> &str {
    t.rsplit_once('.').map_or(t, |(_, n)| n)
}

/// Whether version text `v` ("0.6.2") is below `(major, minor)`.
fn version_below(v: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) < (major, minor)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(version_below("0.6.2", (0, 7)));
        assert!(!version_below("0.7.0", (0, 7)));
        assert!(!version_below("0.8.6", (0, 7)));
        assert_eq!(strip_schema("public.mood"), "mood");
        assert_eq!(strip_schema("vector(3)"), "vector(3)");
    }

    #[test]
    fn pgvector_columns_are_named_by_type_not_by_prefix() {
        use etl_connectors::postgres::{ColumnDefinition, ColumnFill};
        let col = |name: &str, type_sql: &str| ColumnDefinition {
            name: name.into(),
            type_sql: type_sql.into(),
            not_null: false,
            fill: ColumnFill::None,
            comment: None,
        };
        let def = TableDefinition {
            name: QualifiedName::new("public", "t"),
            columns: vec![
                col("v", "vector(3)"),
                col("h", "public.halfvec(2)"),
                col("s", "sparsevec"),
                col("arr", "vector(3)[]"),
                col("kind", "vector_kind"),
                col("gone", "vector(3)"),
            ],
            partition_by: None,
            partitions: vec![],
            constraints: vec![],
            indexes: vec![],
            sequences: vec![],
            types: vec![],
            comment: None,
            left_out: vec![],
        };
        let excluded = ["gone".to_string()];
        assert_eq!(
            pgvector_columns(&def, &excluded, &PGVECTOR_TYPES),
            ["v", "h", "s", "arr"]
        );
        assert_eq!(
            pgvector_columns(&def, &excluded, &PGVECTOR_TYPES[1..]),
            ["h", "s"]
        );
    }
}
