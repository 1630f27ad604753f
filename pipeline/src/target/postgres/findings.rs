//! What `etl plan` shows and `etl run` refuses for a Postgres target, found by one piece of
//! code for both: per table, the required fixes (pgvector missing or too old, no right to
//! create, a non-empty table under `if_exists: fail`, type clashes under `append`, index
//! settings the server refuses, a dialect's conversions it cannot make) and the suggestions
//! (what it creates, replaces or resumes; what is left out).

use std::collections::HashMap;

use etl_connectors::postgres::{TableDefinition, connect, extension_state};
use etl_mappings::{Dialect, Finding, IfExists, QualifiedName, TablePlan};

use super::{PostgresTarget, cockroach, ddl, state};
use crate::error::PipelineError;

impl PostgresTarget {
    /// What `etl plan` shows and `etl run` refuses, table by table: required fixes (the
    /// target cannot take the table as the mapping says) and suggestions (what it will do).
    pub(super) async fn findings(
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
    pub(super) async fn cockroach_findings(
        &self,
        tables: &mut [TablePlan],
    ) -> Result<(), PipelineError> {
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

    /// Whether `table` exists on the target (`Some(holds rows)`).
    pub(super) async fn existing(
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
    pub(super) async fn clashes(
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
}

/// pgvector's types; halfvec and sparsevec (after the first) came with 0.7.
pub(super) const PGVECTOR_TYPES: [&str; 3] = ["vector", "halfvec", "sparsevec"];

/// The moved columns of `def` whose type is one of `types` (with or without a typmod or a
/// schema), by name: what needs pgvector on the target.
pub(super) fn pgvector_columns(
    def: &TableDefinition,
    excluded: &[String],
    types: &[&str],
) -> Vec<String> {
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
pub(super) fn not_copied(def: &TableDefinition, outside: Vec<String>) -> Vec<Finding> {
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
pub(super) async fn ask(
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
pub(super) fn strip_schema(t: &str) -> &str {
    t.rsplit_once('.').map_or(t, |(_, n)| n)
}

/// Whether version text `v` ("0.6.2") is below `(major, minor)`.
pub(super) fn version_below(v: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) < (major, minor)
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
