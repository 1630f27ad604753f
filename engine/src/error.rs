//! One error enum for the engine. User mistakes (an unknown collection, a bad filter, a query
//! vector of the wrong dimension) are separate variants from failures while working (I/O, a
//! corrupt file), so the CLI can choose exit codes without parsing messages.

use std::path::PathBuf;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No collection of that name in the target directory.
    #[error("unknown collection `{name}` in {dir}{hint}")]
    UnknownCollection {
        /// The name asked for.
        name: String,
        /// The target directory.
        dir: PathBuf,
        /// ", did you mean …" or empty.
        hint: String,
    },
    /// A collection of that name already exists.
    #[error("collection `{name}` already exists")]
    CollectionExists {
        /// The name.
        name: String,
    },
    /// No field of that name in the collection.
    #[error("collection `{collection}` has no field `{field}`{hint}")]
    UnknownField {
        /// The collection.
        collection: String,
        /// The field asked for.
        field: String,
        /// ", did you mean …" or empty.
        hint: String,
    },
    /// A schema that cannot be created (bad name, two primary keys, an index on the wrong type…).
    #[error("invalid schema for `{collection}`: {reason}")]
    InvalidSchema {
        /// The collection.
        collection: String,
        /// What is wrong.
        reason: String,
    },
    /// A request that does not fit the collection (wrong dimension, wrong metric, no vector field…).
    #[error("{0}")]
    InvalidRequest(String),
    /// A filter expression that does not parse or does not type-check.
    #[error("filter error at position {position}: {reason}\n  {expr}\n  {caret}")]
    Filter {
        /// The expression.
        expr: String,
        /// Character offset of the problem (0-based).
        position: usize,
        /// A caret line pointing at the position.
        caret: String,
        /// What is wrong.
        reason: String,
    },
    /// A batch that does not match the schema (the pipeline maps rows before they get here).
    #[error("batch for `{collection}` does not match field `{field}`: {reason}")]
    BadBatch {
        /// The collection.
        collection: String,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the collection's write lock.
    #[error("collection `{name}` is being written by another process (lock {path})")]
    Locked {
        /// The collection.
        name: String,
        /// The lock file.
        path: PathBuf,
    },
    /// A file of the collection is missing or does not decode.
    #[error("corrupt collection file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O failure on a named path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("write", "rename", …).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Arrow failed (decoding a segment, a kernel).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The HNSW library failed.
    #[error("hnsw index {path}: {reason}")]
    Hnsw {
        /// The index files' base path.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

impl EngineError {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| EngineError::Io { op, path, source }
    }

    /// True when the error is the user's to fix (bad name, filter, vector, schema).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            EngineError::UnknownCollection { .. }
                | EngineError::CollectionExists { .. }
                | EngineError::UnknownField { .. }
                | EngineError::InvalidSchema { .. }
                | EngineError::InvalidRequest(_)
                | EngineError::Filter { .. }
                | EngineError::BadBatch { .. }
                | EngineError::Locked { .. }
        )
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// ", did you mean `x`?" for the closest candidate, or "".
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!(", did you mean `{c}`?"))
        .unwrap_or_default()
}
