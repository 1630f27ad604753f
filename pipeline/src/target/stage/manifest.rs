//! `manifest.json` at the root of a stage: the resolved schemas, every file with its rows,
//! bytes and SHA-256, the source's snapshot time and the tool's version. It is written last,
//! so a stage without one is unfinished and nothing imports from it.

use serde::{Deserialize, Serialize};

use etl_engine::{CollectionSchema, IndexSpec};

/// The manifest's name under the stage prefix.
pub const MANIFEST: &str = "manifest.json";
/// The format written here.
pub const FORMAT: &str = "etl-stage/1";

/// A staged file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagedFile {
    /// Path under the stage prefix: `<collection>/<name>.parquet`.
    pub path: String,
    /// Rows in it.
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// An index to build after the import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagedIndex {
    /// The field.
    pub field: String,
    /// The index.
    pub spec: IndexSpec,
}

/// A staged collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagedCollection {
    /// Its name.
    pub name: String,
    /// The source table it came from.
    pub source_table: String,
    /// The schema, as the engine (and Milvus) take it.
    pub schema: CollectionSchema,
    /// Indexes to build after loading.
    pub indexes: Vec<StagedIndex>,
    /// Its key is the source table's own primary key, read in one snapshot: no value repeats,
    /// so an import into an empty collection keeps no keys (absent in older manifests: false).
    #[serde(default)]
    pub unique_keys: bool,
    /// Rows in all its files.
    pub rows: u64,
    /// Its files.
    pub files: Vec<StagedFile>,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageManifest {
    /// [`FORMAT`].
    pub format: String,
    /// A fresh id per stage: imports record their progress under it.
    pub stage_id: String,
    /// `etl` version that wrote it.
    pub tool_version: String,
    /// When the source was read (RFC 3339, UTC).
    pub source_snapshot_time: String,
    /// The source (a redacted URL or a path).
    pub source: String,
    /// The collections.
    pub collections: Vec<StagedCollection>,
}

/// A finished SHA-256 as the lowercase hex the manifest holds.
pub fn sha256_hex(hash: sha2::Sha256) -> String {
    use sha2::Digest;
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 UTC time of a Unix timestamp (seconds).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
