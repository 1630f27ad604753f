//! The crate's one error type. Messages name the server by its redacted URL and the table or
//! column concerned; they never carry a password.

use tokio_postgres::error::SqlState;

/// Errors from sources and sinks.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The connection URL does not parse.
    #[error("invalid Postgres URL {url}: {reason}")]
    BadUrl {
        /// Redacted URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The server cannot be reached (refused, timed out, DNS).
    #[error("cannot reach Postgres at {url}: {reason}")]
    Unreachable {
        /// Redacted URL.
        url: String,
        /// The driver's description.
        reason: String,
    },
    /// The server refused the credentials.
    #[error("authentication failed for user `{user}` at {url}: {reason}")]
    Auth {
        /// Redacted URL.
        url: String,
        /// The user.
        user: String,
        /// The server's message.
        reason: String,
    },
    /// TLS could not be set up.
    #[error("TLS to {url} failed: {reason}")]
    Tls {
        /// Redacted URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The user lacks a privilege.
    #[error("permission denied {context}: {reason}")]
    PermissionDenied {
        /// What was being done.
        context: String,
        /// The server's message.
        reason: String,
    },
    /// A table the caller named does not exist.
    #[error("table {table} does not exist")]
    TableNotFound {
        /// The table.
        table: String,
    },
    /// A statement ran past `statement_timeout`.
    #[error("statement timeout {context}: {reason}")]
    StatementTimeout {
        /// What was being done.
        context: String,
        /// The server's message.
        reason: String,
    },
    /// The source is a hot standby that cannot export a snapshot for a consistent read.
    #[error(
        "{url} is a hot standby and cannot export a snapshot for a consistent parallel read ({reason}); read from the primary, or use --partitions 1"
    )]
    HotStandby {
        /// Redacted URL.
        url: String,
        /// The server's message.
        reason: String,
    },
    /// A hot standby cancelled the read to replay the primary's changes.
    #[error(
        "{context}: the hot standby cancelled the read to apply changes from the primary ({reason}); set hot_standby_feedback = on (or raise max_standby_streaming_delay) on the standby, or read from the primary"
    )]
    RecoveryConflict {
        /// What was being done.
        context: String,
        /// The server's message.
        reason: String,
    },
    /// The exported snapshot that all readers share is gone (its session ended).
    #[error(
        "the exported snapshot of {table} is gone ({reason}); the read cannot continue at the same point in time and must be restarted"
    )]
    SnapshotLost {
        /// The table being read.
        table: String,
        /// The server's message.
        reason: String,
    },
    /// A COPY stream could not be decoded.
    #[error("decoding {table}{}, row {row}: {reason}", column.as_ref().map(|c| format!(" column `{c}`")).unwrap_or_default())]
    Decode {
        /// The table.
        table: String,
        /// The column, when one field was at fault.
        column: Option<String>,
        /// Rows read before it in that range.
        row: u64,
        /// What was wrong.
        reason: String,
    },
    /// A dump file is unreadable, truncated or malformed; `at` says where (a line, a byte
    /// offset, or a row of a table's data).
    #[error("{file}{}: {reason}", at.as_ref().map(|a| format!(" at {a}")).unwrap_or_default())]
    Dump {
        /// The dump's path.
        file: String,
        /// Where in it.
        at: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A Milvus server refused a request or failed it.
    #[error("Milvus at {url}, {context}: {reason}")]
    Milvus {
        /// The server.
        url: String,
        /// What was being done.
        context: String,
        /// The server's message.
        reason: String,
    },
    /// An object store refused or failed (the URL holds no credentials).
    #[error("{url}: {reason}")]
    Store {
        /// The URL and path concerned.
        url: String,
        /// The store's message.
        reason: String,
    },
    /// A reader kept failing after its retries.
    #[error("reading {table} failed after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// The table.
        table: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        #[source]
        last: Box<ConnectorError>,
    },
    /// Any other server or protocol error.
    #[error("{context}: {reason}")]
    Query {
        /// What was being done.
        context: String,
        /// The server's or driver's message.
        reason: String,
        /// The cause.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The useful part of a driver error: the server's message and detail, or the driver's text.
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_string();
            if let Some(d) = db.detail() {
                s.push_str(" (");
                s.push_str(d);
                s.push(')');
            }
            s
        }
        None => {
            let mut s = err.to_string();
            let mut cause = std::error::Error::source(err);
            while let Some(c) = cause {
                s.push_str(": ");
                s.push_str(&c.to_string());
                cause = c.source();
            }
            s
        }
    }
}

impl ConnectorError {
    /// Classifies a driver error raised while doing `context`.
    pub fn from_pg(context: impl Into<String>, err: tokio_postgres::Error) -> Self {
        let context = context.into();
        let reason = describe(&err);
        match err.code() {
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
                ConnectorError::PermissionDenied { context, reason }
            }
            Some(c) if *c == SqlState::QUERY_CANCELED => {
                ConnectorError::StatementTimeout { context, reason }
            }
            Some(c)
                if (*c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED)
                    && reason.contains("conflict with recovery") =>
            {
                ConnectorError::RecoveryConflict { context, reason }
            }
            _ => ConnectorError::Query {
                context,
                reason,
                source: err,
            },
        }
    }

    /// Whether retrying on a new connection could help (the connection dropped, the server
    /// restarted, the backend was terminated).
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectorError::Query { source, .. } => match source.code() {
                Some(c) => {
                    *c == SqlState::ADMIN_SHUTDOWN
                        || *c == SqlState::CRASH_SHUTDOWN
                        || *c == SqlState::CANNOT_CONNECT_NOW
                        || *c == SqlState::CONNECTION_FAILURE
                }
                None => source.is_closed() || source.as_db_error().is_none(),
            },
            ConnectorError::Unreachable { .. } => true,
            ConnectorError::BadUrl { .. }
            | ConnectorError::Auth { .. }
            | ConnectorError::Tls { .. }
            | ConnectorError::PermissionDenied { .. }
            | ConnectorError::TableNotFound { .. }
            | ConnectorError::StatementTimeout { .. }
            | ConnectorError::HotStandby { .. }
            | ConnectorError::RecoveryConflict { .. }
            | ConnectorError::SnapshotLost { .. }
            | ConnectorError::Decode { .. }
            | ConnectorError::Dump { .. }
            | ConnectorError::Store { .. }
            | ConnectorError::Milvus { .. }
            | ConnectorError::RetriesExhausted { .. } => false,
        }
    }
}
