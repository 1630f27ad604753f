//! The crate's one error type: mapping mistakes, source failures and file errors stay apart so
//! the CLI can choose exit codes from the variant alone.

use etl_connectors::ConnectorError;
use etl_mappings::MappingError;

/// Errors of a run, plan or verify.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The mapping file is wrong.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The source or a sink failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// A file could not be read or written (the message names it).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A table named on the command line does not exist.
    #[error("table `{table}` does not exist in the source{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownTable {
        /// The table as given.
        table: String,
        /// The closest existing table.
        suggestion: Option<String>,
    },
    /// A query engine failure that is not one of ours.
    #[error("query engine: {source}")]
    DataFusion {
        /// The cause.
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// A bug: something that cannot happen did.
    #[error("internal error: {message}")]
    Internal {
        /// What happened.
        message: String,
    },
    /// The engine failed (or refused a request).
    #[error(transparent)]
    Engine(Box<etl_engine::EngineError>),
    /// A staged file's bytes are not what the stage's manifest says.
    #[error(
        "checksum mismatch in {file}: the manifest says {expected}, the file has {actual}; stage it again"
    )]
    Checksum {
        /// The file's URL.
        file: String,
        /// Size and hash in the manifest.
        expected: String,
        /// Size and hash of the bytes read.
        actual: String,
    },
    /// A bad argument or request, explained.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
    },
    /// The plan has problems that must be fixed before any data moves.
    #[error("table `{table}` needs fixes before it can be migrated (run `etl plan`):\n{fixes}")]
    NeedsFixes {
        /// The source table.
        table: String,
        /// One line per fix.
        fixes: String,
    },
    /// More rows were rejected than the table allows.
    #[error("table `{table}`: {rejected} rows rejected, more than max_rejects = {max}; see {file}")]
    TooManyRejects {
        /// The source table.
        table: String,
        /// Rows rejected.
        rejected: u64,
        /// The limit.
        max: u64,
        /// The rejects file.
        file: String,
    },
    /// The user stopped the run.
    #[error("cancelled; run the same command again to resume")]
    Cancelled,
    /// The mapping asks for a source this build cannot read yet.
    #[error("{file}: the `{kind}` source is not supported yet; use `postgres:`")]
    UnsupportedSource {
        /// The mapping file.
        file: String,
        /// `dump`, `csv` or `parquet`.
        kind: &'static str,
    },
}

impl From<etl_engine::EngineError> for PipelineError {
    fn from(e: etl_engine::EngineError) -> Self {
        PipelineError::Engine(Box::new(e))
    }
}

impl PipelineError {
    /// The refusal of a table whose plan has required fixes, one line each, with what to write
    /// when the plan knows: the same lines `etl plan` prints.
    pub(crate) fn needs_fixes(table: impl ToString, fixes: &[etl_mappings::Finding]) -> Self {
        let lines = fixes
            .iter()
            .map(|f| {
                format!(
                    "  - {}{}{}",
                    f.column
                        .as_deref()
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default(),
                    f.message,
                    f.fix
                        .as_deref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        PipelineError::NeedsFixes {
            table: table.to_string(),
            fixes: lines,
        }
    }

    /// Whether the source's data itself is unreadable (a corrupt or truncated dump), so that
    /// running again cannot get past it.
    pub fn is_bad_source_data(&self) -> bool {
        matches!(self, PipelineError::Connector(ConnectorError::Dump { .. }))
    }

    /// Unwraps a DataFusion error that carries one of our connector errors.
    pub fn from_datafusion(err: datafusion::error::DataFusionError) -> Self {
        match err {
            datafusion::error::DataFusionError::External(e) => match e.downcast::<ConnectorError>()
            {
                Ok(c) => PipelineError::Connector(*c),
                Err(other) => PipelineError::DataFusion {
                    source: datafusion::error::DataFusionError::External(other),
                },
            },
            other => PipelineError::DataFusion { source: other },
        }
    }
}
