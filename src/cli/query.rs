//! `etl query`: SQL over the collections of a target directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Format, out};

/// Arguments of `etl query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The engine's directory.
    #[arg(long)]
    pub target: PathBuf,
    /// Output format (json: one array of row objects).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The statement, e.g. "SELECT id, l2_distance(emb, '[1,2,3]') AS d FROM items ORDER BY d LIMIT 5".
    pub sql: String,
}

pub async fn run(a: QueryArgs) -> anyhow::Result<ExitCode> {
    let (schema, batches) = etl_pipeline::sql::query(&a.target, &a.sql).await?;
    match a.format {
        Format::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&etl_pipeline::sql::rows_json(&schema, &batches))?
        ))?,
        Format::Table => out(&format!("{}\n", etl_pipeline::sql::rows_table(&batches)?))?,
    }
    Ok(ExitCode::SUCCESS)
}
