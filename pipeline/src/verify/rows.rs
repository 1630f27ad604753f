//! How rows compare: 128-bit fingerprints, one-value equality bit for bit, and JSON text made
//! canonical (keys in order) so a target that reorders keys is not a mismatch.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::row::{RowConverter, SortField};
use serde_json::Value;

use crate::error::PipelineError;

/// JSON text parsed and written again (keys sorted, no spaces); unparsable text kept.
pub(super) fn canonical_json(c: &ArrayRef) -> ArrayRef {
    use datafusion::arrow::array::{AsArray, StringArray};
    let Some(s) = c.as_string_opt::<i32>() else {
        return c.clone();
    };
    let out: StringArray = s
        .iter()
        .map(|v| {
            v.map(|t| match serde_json::from_str::<Value>(t) {
                Ok(j) => sorted(j).to_string(),
                Err(_) => t.to_string(),
            })
        })
        .collect();
    Arc::new(out)
}

/// A JSON value with every object's keys in order.
pub(super) fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// 128 bits of SipHash over a row's bytes (two keyed passes); the same in every process run.
pub(super) fn fingerprint(bytes: &[u8]) -> u128 {
    let mut a = DefaultHasher::new();
    bytes.hash(&mut a);
    let mut b = DefaultHasher::new();
    0xa5a5_5a5a_u32.hash(&mut b);
    bytes.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// Whether two one-row columns hold the same value, bit for bit.
pub(super) fn same_value(a: &ArrayRef, b: &ArrayRef) -> Result<bool, PipelineError> {
    let conv = RowConverter::new(vec![SortField::new(a.data_type().clone())]).map_err(arrow_err)?;
    let ra = conv
        .convert_columns(std::slice::from_ref(a))
        .map_err(arrow_err)?;
    let rb = conv
        .convert_columns(std::slice::from_ref(b))
        .map_err(arrow_err)?;
    Ok(ra.row(0) == rb.row(0))
}

pub(super) fn internal(message: String) -> PipelineError {
    PipelineError::Internal { message }
}

pub(super) fn arrow_err(e: datafusion::arrow::error::ArrowError) -> PipelineError {
    internal(format!("row encoding: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_rows_apart_and_repeat() {
        assert_eq!(fingerprint(b"abc"), fingerprint(b"abc"));
        assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
        assert_ne!(fingerprint(b""), fingerprint(b"\0"));
    }
}
