//! What a run has done on a Postgres target, kept on the target itself in a small `etl` schema,
//! so it commits with the data it describes: `etl.tables` (each target table this tool loads
//! and whether its load finished), `etl.checkpoints` (the committed ranges, written in the same
//! transaction as the range's rows) and `etl.steps` (post-data statements done). After Ctrl-C
//! or `kill -9` the same command reads them back: committed ranges are skipped, finished
//! post-data steps are not run again. `--restart` deletes a table's rows here with the table.

use etl_connectors::ConnectorError;
use etl_mappings::QualifiedName;
use tokio_postgres::GenericClient;

use crate::error::PipelineError;
use crate::target::{Answer, Checkpoint};

/// Creates the bookkeeping schema when missing.
pub(super) async fn ensure(client: &impl GenericClient) -> Result<(), PipelineError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS etl; \
             CREATE TABLE IF NOT EXISTS etl.tables (target text PRIMARY KEY, source text NOT NULL, \
               state text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, \
               created boolean NOT NULL DEFAULT true); \
             ALTER TABLE etl.tables ADD COLUMN IF NOT EXISTS created boolean NOT NULL DEFAULT true; \
             CREATE TABLE IF NOT EXISTS etl.checkpoints (target text NOT NULL, key text NOT NULL, \
               value jsonb NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (target, key)); \
             CREATE TABLE IF NOT EXISTS etl.steps (target text NOT NULL, step text NOT NULL, \
               done_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (target, step))",
        )
        .await
        .map_err(|e| ConnectorError::from_pg("creating the etl schema on the target", e))?;
    Ok(())
}

/// A target table's load as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    /// Not loaded by this tool (or its record was dropped).
    None,
    /// A load began and has not finished: the same command resumes it.
    Loading,
    /// A load finished.
    Done,
}

/// The record of `table` (none when the `etl` schema does not exist yet).
pub(super) async fn recorded(
    client: &impl GenericClient,
    table: &QualifiedName,
) -> Result<Recorded, PipelineError> {
    let exists = client
        .query_one("SELECT to_regclass('etl.tables') IS NOT NULL", &[])
        .await
        .map_err(|e| ConnectorError::from_pg("reading the etl schema on the target", e))?;
    if !exists.get::<_, bool>(0) {
        return Ok(Recorded::None);
    }
    let row = client
        .query_opt(
            "SELECT state FROM etl.tables WHERE target = $1",
            &[&table.to_string()],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(format!("reading the load record of {table}"), e))?;
    Ok(match row.map(|r| r.get::<_, String>(0)) {
        None => Recorded::None,
        Some(s) if s == "done" => Recorded::Done,
        Some(_) => Recorded::Loading,
    })
}

/// Starts a table's record afresh (no checkpoints, no steps); `created`: this load created
/// the table (its post-data is the source's), rather than adding to one that was there.
pub(super) async fn start(
    client: &impl GenericClient,
    table: &QualifiedName,
    source: &QualifiedName,
    created: bool,
) -> Result<(), PipelineError> {
    let t = table.to_string();
    forget(client, table).await?;
    client
        .execute(
            "INSERT INTO etl.tables (target, source, state, created) VALUES ($1, $2, 'loading', $3)",
            &[&t, &source.to_string(), &created],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(format!("recording the load of {t}"), e))?;
    Ok(())
}

/// Deletes every record of a table.
pub(super) async fn forget(
    client: &impl GenericClient,
    table: &QualifiedName,
) -> Result<(), PipelineError> {
    let t = table.to_string();
    for sql in [
        "DELETE FROM etl.checkpoints WHERE target = $1",
        "DELETE FROM etl.steps WHERE target = $1",
        "DELETE FROM etl.tables WHERE target = $1",
    ] {
        client
            .execute(sql, &[&t])
            .await
            .map_err(|e| ConnectorError::from_pg(format!("clearing the load record of {t}"), e))?;
    }
    Ok(())
}

/// Whether this tool created the table (rather than loading into one that was there).
pub(super) async fn created(
    client: &impl GenericClient,
    table: &QualifiedName,
) -> Result<bool, PipelineError> {
    let row = client
        .query_opt(
            "SELECT created FROM etl.tables WHERE target = $1",
            &[&table.to_string()],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(format!("reading the load record of {table}"), e))?;
    Ok(row.is_none_or(|r| r.get::<_, bool>(0)))
}

/// Marks a table's load finished.
pub(super) async fn finish(
    client: &impl GenericClient,
    table: &QualifiedName,
) -> Result<(), PipelineError> {
    client
        .execute(
            "UPDATE etl.tables SET state = 'done', finished_at = now() WHERE target = $1",
            &[&table.to_string()],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(format!("recording the end of {table}"), e))?;
    Ok(())
}

/// The committed checkpoints of a table.
pub(super) async fn checkpoints(
    client: &impl GenericClient,
    table: &QualifiedName,
) -> Result<Checkpoint, PipelineError> {
    let rows = client
        .query(
            "SELECT key, value::text FROM etl.checkpoints WHERE target = $1",
            &[&table.to_string()],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(format!("reading the checkpoints of {table}"), e))?;
    let mut out = Checkpoint::new();
    for r in rows {
        let value: String = r.get(1);
        out.insert(
            r.get(0),
            serde_json::from_str(&value).unwrap_or(serde_json::Value::Null),
        );
    }
    Ok(out)
}

/// Writes a range's checkpoint rows (inside the range's transaction).
pub(super) async fn save_checkpoint(
    client: &impl GenericClient,
    table: &QualifiedName,
    checkpoint: &Checkpoint,
) -> Result<(), PipelineError> {
    let t = table.to_string();
    for (key, value) in checkpoint {
        client
            .execute(
                "INSERT INTO etl.checkpoints (target, key, value) VALUES ($1, $2, $3::text::jsonb) \
                 ON CONFLICT (target, key) DO UPDATE SET value = EXCLUDED.value, committed_at = now()",
                &[&t, key, &value.to_string()],
            )
            .await
            .map_err(|e| ConnectorError::from_pg(format!("writing a checkpoint of {t}"), e))?;
    }
    Ok(())
}

/// The post-data steps of a table already done.
pub(super) async fn steps_done(
    client: &impl GenericClient,
    table: &QualifiedName,
) -> Result<Vec<String>, PipelineError> {
    Ok(client
        .query(
            "SELECT step FROM etl.steps WHERE target = $1",
            &[&table.to_string()],
        )
        .await
        .map_err(|e| ConnectorError::from_pg(format!("reading the steps done on {table}"), e))?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

/// Runs a post-data step and records it, in one transaction; `settings` (`SET LOCAL`
/// statements) go first when the step builds an index.
pub(super) async fn run_step(
    client: &mut tokio_postgres::Client,
    table: &QualifiedName,
    step: &super::ddl::Step,
    settings: &str,
) -> Result<(), PipelineError> {
    let context = format!("{} on {table}", step.name);
    let tx = client
        .transaction()
        .await
        .map_err(|e| ConnectorError::from_pg(context.clone(), e))?;
    if step.builds_index && !settings.is_empty() {
        tx.batch_execute(settings)
            .await
            .map_err(|e| ConnectorError::from_pg(format!("{context} ({settings})"), e))?;
    }
    tx.batch_execute(&step.sql)
        .await
        .map_err(|e| ConnectorError::from_pg(format!("{context} ({})", step.sql), e))?;
    tx.execute(
        "INSERT INTO etl.steps (target, step) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&table.to_string(), &step.name],
    )
    .await
    .map_err(|e| ConnectorError::from_pg(context.clone(), e))?;
    tx.commit()
        .await
        .map_err(|e| ConnectorError::from_pg(context, e))?;
    Ok(())
}

/// The loads recorded on the target (`etl jobs list --target postgres://…`): per table, its
/// source, state, committed ranges and post-data steps done, and when it started and finished.
pub(super) async fn loads(client: &impl GenericClient) -> Result<Answer, PipelineError> {
    let exists = client
        .query_one("SELECT to_regclass('etl.tables') IS NOT NULL", &[])
        .await
        .map_err(|e| ConnectorError::from_pg("reading the etl schema on the target", e))?;
    let rows = if exists.get::<_, bool>(0) {
        client
            .query(
                "SELECT t.target, t.source, t.state, \
                        to_char(t.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                        to_char(t.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                        (SELECT count(*) FROM etl.checkpoints c WHERE c.target = t.target AND c.key <> 'ranges'), \
                        (SELECT count(*) FROM etl.steps s WHERE s.target = t.target) \
                 FROM etl.tables t ORDER BY t.started_at, t.target",
                &[],
            )
            .await
            .map_err(|e| ConnectorError::from_pg("reading the load records on the target", e))?
    } else {
        Vec::new()
    };
    let loads: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "target": r.get::<_, String>(0),
                "source": r.get::<_, String>(1),
                "state": r.get::<_, String>(2),
                "started_at": r.get::<_, Option<String>>(3),
                "finished_at": r.get::<_, Option<String>>(4),
                "committed_ranges": r.get::<_, i64>(5),
                "steps_done": r.get::<_, i64>(6),
            })
        })
        .collect();
    let mut table = format!(
        "{:<32} {:<10} {:>7} {:>6}  {:<20}  {}\n",
        "table", "state", "ranges", "steps", "started", "source"
    );
    for l in &loads {
        table.push_str(&format!(
            "{:<32} {:<10} {:>7} {:>6}  {:<20}  {}\n",
            l["target"].as_str().unwrap_or_default(),
            l["state"].as_str().unwrap_or_default(),
            l["committed_ranges"],
            l["steps_done"],
            l["started_at"].as_str().unwrap_or_default(),
            l["source"].as_str().unwrap_or_default(),
        ));
    }
    let json = serde_json::to_string_pretty(&loads).map_err(|e| PipelineError::Internal {
        message: e.to_string(),
    })?;
    Ok(Answer {
        json: format!("{json}\n"),
        table,
    })
}
