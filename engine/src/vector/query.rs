//! Query vectors: JSON as users write them (`[0.1, …]`, bit strings, `{"3": 0.5}`), checked
//! against the field they search.

use crate::error::{EngineError, Result};
use crate::schema::{Field, FieldType};

/// A query vector, already checked against its field.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryVector {
    /// FLOAT_VECTOR or FLOAT16_VECTOR (as f32).
    Dense(Vec<f32>),
    /// BINARY_VECTOR, packed bits, most significant bit first.
    Binary(Vec<u8>),
    /// SPARSE_FLOAT_VECTOR.
    Sparse {
        /// Strictly increasing 0-based indices.
        indices: Vec<i32>,
        /// Values.
        values: Vec<f32>,
    },
}

impl QueryVector {
    /// Parses a JSON query vector for a field: `[0.1, …]` for dense; `[0,1,…]` (bits) or
    /// `"0101…"` for binary; `{"3": 0.5, …}` or `{"indices": […], "values": […]}` for sparse.
    pub fn from_json(field: &Field, value: &serde_json::Value) -> Result<QueryVector> {
        let bad = |why: String| {
            EngineError::InvalidRequest(format!(
                "query vector for `{}` ({}): {why}",
                field.name, field.data_type
            ))
        };
        let dim = field.dim_usize();
        match field.data_type {
            FieldType::FloatVector | FieldType::Float16Vector => {
                let arr = value
                    .as_array()
                    .ok_or_else(|| bad("expected a JSON array of numbers".into()))?;
                let v: Vec<f32> = arr
                    .iter()
                    .enumerate()
                    .map(|(i, x)| {
                        x.as_f64()
                            .map(|f| f as f32)
                            .ok_or_else(|| bad(format!("element {i} is not a number: {x}")))
                    })
                    .collect::<Result<_>>()?;
                if v.len() != dim {
                    return Err(bad(format!(
                        "has {} dimensions, the field has {dim}",
                        v.len()
                    )));
                }
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(bad(format!("element {i} is not finite")));
                }
                Ok(QueryVector::Dense(v))
            }
            FieldType::BinaryVector => {
                let bits: Vec<bool> = match value {
                    serde_json::Value::String(s) => s
                        .chars()
                        .map(|c| match c {
                            '0' => Ok(false),
                            '1' => Ok(true),
                            _ => Err(bad(format!("`{c}` is not a bit"))),
                        })
                        .collect::<Result<_>>()?,
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(|x| match x.as_u64() {
                            Some(0) => Ok(false),
                            Some(1) => Ok(true),
                            _ => Err(bad(format!("`{x}` is not a bit"))),
                        })
                        .collect::<Result<_>>()?,
                    _ => {
                        return Err(bad(
                            "expected a bit string \"0101…\" or an array of 0 and 1".into(),
                        ));
                    }
                };
                if bits.len() != dim {
                    return Err(bad(format!("has {} bits, the field has {dim}", bits.len())));
                }
                Ok(QueryVector::Binary(pack_bits(&bits)))
            }
            FieldType::SparseFloatVector => {
                let obj = value
                    .as_object()
                    .ok_or_else(|| bad("expected {\"index\": value, …}".into()))?;
                let mut pairs: Vec<(i32, f32)> =
                    if let (Some(i), Some(v)) = (obj.get("indices"), obj.get("values")) {
                        let i = i
                            .as_array()
                            .ok_or_else(|| bad("indices is not an array".into()))?;
                        let v = v
                            .as_array()
                            .ok_or_else(|| bad("values is not an array".into()))?;
                        if i.len() != v.len() {
                            return Err(bad("indices and values differ in length".into()));
                        }
                        i.iter()
                            .zip(v)
                            .map(|(i, v)| {
                                Ok((
                                    json_index(i).ok_or_else(|| bad(format!("bad index {i}")))?,
                                    v.as_f64().ok_or_else(|| bad(format!("bad value {v}")))? as f32,
                                ))
                            })
                            .collect::<Result<_>>()?
                    } else {
                        obj.iter()
                            .map(|(k, v)| {
                                Ok((
                                    k.parse::<i32>()
                                        .ok()
                                        .filter(|i| *i >= 0)
                                        .ok_or_else(|| bad(format!("bad index `{k}`")))?,
                                    v.as_f64().ok_or_else(|| bad(format!("bad value {v}")))? as f32,
                                ))
                            })
                            .collect::<Result<_>>()?
                    };
                pairs.sort_by_key(|p| p.0);
                if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(bad("an index appears twice".into()));
                }
                Ok(QueryVector::Sparse {
                    indices: pairs.iter().map(|p| p.0).collect(),
                    values: pairs.iter().map(|p| p.1).collect(),
                })
            }
            _ => Err(bad("the field is not a vector".into())),
        }
    }
}

fn json_index(v: &serde_json::Value) -> Option<i32> {
    v.as_i64()
        .and_then(|i| i32::try_from(i).ok())
        .filter(|i| *i >= 0)
}

/// Packs bits, most significant first (pgvector's `bit` layout).
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, &on)| if on { b | (0x80 >> i) } else { b })
        })
        .collect()
}
