//! Crash points for the crash-safety tests: `ETL_CRASH_AT=<name>` makes the process abort at
//! the named point, as `kill -9` would, between writing files and the manifest swap that would
//! commit them. Unset, a point costs one environment lookup per commit.
//!
//! Points: `merge` (a merged segment written, not yet committed), `index` (a segment's index
//! file written, not yet committed); `post-data` (a Postgres target between two post-data
//! steps: some constraints or indexes made, others not).

/// Aborts the process if `ETL_CRASH_AT` names this point.
pub fn crash_point(name: &str) {
    if std::env::var_os("ETL_CRASH_AT").is_some_and(|v| v == name) {
        std::process::abort();
    }
}
