//! `etl collections list|describe|load|release|drop`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use etl_pipeline::Admin;
use etl_pipeline::route::TargetUrl;

use super::{Format, out};

/// Arguments of `etl collections`.
#[derive(Debug, Args)]
pub struct CollectionsArgs {
    #[command(subcommand)]
    pub what: CollectionsCommand,
}

/// What to do with collections.
#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// List the collections of a target directory.
    List(Target),
    /// Show a collection's schema, rows, indexes and load state.
    Describe(Named),
    /// Load a collection's indexes and filter columns into memory; report the memory it holds.
    Load(Named),
    /// Release a loaded collection.
    Release(Named),
    /// Delete a collection and its files.
    Drop(Named),
}

/// A target directory.
#[derive(Debug, Args)]
pub struct Target {
    /// The engine's target directory, or a Milvus server (`milvus://host:19530`).
    #[arg(long)]
    pub target: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// A collection in a target directory.
#[derive(Debug, Args)]
pub struct Named {
    #[command(flatten)]
    pub target: Target,
    /// The collection.
    pub name: String,
}

pub fn run(args: CollectionsArgs) -> anyhow::Result<ExitCode> {
    let (target, format, command) = match args.what {
        CollectionsCommand::List(t) => (t.target, t.format, Admin::List),
        CollectionsCommand::Describe(n) => {
            (n.target.target, n.target.format, Admin::Describe(n.name))
        }
        CollectionsCommand::Load(n) => (n.target.target, n.target.format, Admin::Load(n.name)),
        CollectionsCommand::Release(n) => {
            (n.target.target, n.target.format, Admin::Release(n.name))
        }
        CollectionsCommand::Drop(n) => (n.target.target, n.target.format, Admin::Drop(n.name)),
    };
    let target = TargetUrl::parse(&target);
    let answer = super::block_on(async { etl_pipeline::administer(&target, &command).await })?;
    out(match format {
        Format::Json => &answer.json,
        Format::Table => &answer.table,
    })?;
    Ok(ExitCode::SUCCESS)
}
