//! Scalar indexes: STL_SORT (numbers) and INVERTED (VARCHAR, BOOL, numbers, array elements).
//!
//! Both are the same structure: every (value, row) pair sorted by value, so equality, `in` and
//! ranges are binary searches. Array fields contribute one pair per element. Stored as an
//! Arrow IPC file with columns `value` and `row`.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    UInt32Array,
};
use arrow::datatypes::{
    DataType, Field as ArrowField, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Schema,
};

use crate::error::{EngineError, Result};
use crate::segment::{SegmentWriter, read_segment};

/// A key in a scalar index; numbers compare across integer and float.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    /// BOOL.
    Bool(bool),
    /// Any integer type.
    Int(i64),
    /// FLOAT or DOUBLE.
    Float(f64),
    /// VARCHAR.
    Str(String),
}

/// Sorted keys of one segment's column: `keys[i]` is the value of row `rows[i]`.
#[allow(missing_docs)]
pub enum ScalarIndex {
    /// BOOL keys.
    Bool { keys: Vec<bool>, rows: Vec<u32> },
    /// Integer keys.
    Int { keys: Vec<i64>, rows: Vec<u32> },
    /// Float keys (NaN excluded).
    Float { keys: Vec<f64>, rows: Vec<u32> },
    /// String keys.
    Str { keys: Vec<String>, rows: Vec<u32> },
}

/// Comparison a lookup answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `== v`.
    Eq,
    /// `< v`.
    Lt,
    /// `<= v`.
    Le,
    /// `> v`.
    Gt,
    /// `>= v`.
    Ge,
}

fn pairs_of(column: &dyn Array, live: &dyn Fn(u32) -> bool) -> Result<(ArrayRef, Vec<u32>)> {
    // Flatten arrays to (element, row).
    let (values, rows): (ArrayRef, Vec<u32>) = match column.data_type() {
        DataType::List(_) => {
            let list = column.as_list::<i32>();
            let mut rows = Vec::new();
            for r in 0..list.len() {
                if list.is_valid(r) && live(r as u32) {
                    let n = list.value_length(r) as usize;
                    rows.extend(std::iter::repeat_n(r as u32, n));
                } else {
                    // Keep row alignment: elements of invalid rows are skipped below.
                }
            }
            let mut taken = Vec::new();
            for r in 0..list.len() {
                if list.is_valid(r) && live(r as u32) {
                    taken.push(list.value(r));
                }
            }
            let refs: Vec<&dyn Array> = taken.iter().map(|a| a.as_ref()).collect();
            let values = if refs.is_empty() {
                list.values().slice(0, 0)
            } else {
                arrow::compute::concat(&refs)?
            };
            (values, rows)
        }
        _ => {
            let rows: Vec<u32> = (0..column.len() as u32).filter(|r| live(*r)).collect();
            let idx = UInt32Array::from(rows.clone());
            (arrow::compute::take(column, &idx, None)?, rows)
        }
    };
    // Drop NULL values (they never match a comparison).
    let keep: Vec<usize> = (0..values.len()).filter(|i| values.is_valid(*i)).collect();
    if keep.len() == values.len() {
        return Ok((values, rows));
    }
    let idx = UInt32Array::from(keep.iter().map(|&i| i as u32).collect::<Vec<_>>());
    Ok((
        arrow::compute::take(&values, &idx, None)?,
        keep.iter().map(|&i| rows[i]).collect(),
    ))
}

fn sorted<K: Clone>(
    keys: Vec<K>,
    rows: Vec<u32>,
    cmp: impl Fn(&K, &K) -> std::cmp::Ordering,
) -> (Vec<K>, Vec<u32>) {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| cmp(&keys[a], &keys[b]).then(rows[a].cmp(&rows[b])));
    (
        order.iter().map(|&i| keys[i].clone()).collect(),
        order.iter().map(|&i| rows[i]).collect(),
    )
}

impl ScalarIndex {
    /// Builds the index over a segment column's live rows.
    pub fn build(column: &dyn Array, live: &dyn Fn(u32) -> bool) -> Result<ScalarIndex> {
        let (values, rows) = pairs_of(column, live)?;
        Ok(match values.data_type() {
            DataType::Boolean => {
                let keys: Vec<bool> = values
                    .as_boolean()
                    .iter()
                    .map(|v| v.unwrap_or(false))
                    .collect();
                let (keys, rows) = sorted(keys, rows, |a, b| a.cmp(b));
                ScalarIndex::Bool { keys, rows }
            }
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                let keys: Vec<i64> = match values.data_type() {
                    DataType::Int8 => values
                        .as_primitive::<Int8Type>()
                        .values()
                        .iter()
                        .map(|v| i64::from(*v))
                        .collect(),
                    DataType::Int16 => values
                        .as_primitive::<Int16Type>()
                        .values()
                        .iter()
                        .map(|v| i64::from(*v))
                        .collect(),
                    DataType::Int32 => values
                        .as_primitive::<Int32Type>()
                        .values()
                        .iter()
                        .map(|v| i64::from(*v))
                        .collect(),
                    _ => values.as_primitive::<Int64Type>().values().to_vec(),
                };
                let (keys, rows) = sorted(keys, rows, |a, b| a.cmp(b));
                ScalarIndex::Int { keys, rows }
            }
            DataType::Float32 | DataType::Float64 => {
                let all: Vec<f64> = match values.data_type() {
                    DataType::Float32 => values
                        .as_primitive::<Float32Type>()
                        .values()
                        .iter()
                        .map(|v| f64::from(*v))
                        .collect(),
                    _ => values.as_primitive::<Float64Type>().values().to_vec(),
                };
                let (keys, rows): (Vec<f64>, Vec<u32>) = all
                    .into_iter()
                    .zip(rows)
                    .filter(|(k, _)| !k.is_nan())
                    .unzip();
                let (keys, rows) = sorted(keys, rows, |a, b| a.total_cmp(b));
                ScalarIndex::Float { keys, rows }
            }
            DataType::Utf8 => {
                let keys: Vec<String> = values
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or_default().to_string())
                    .collect();
                let (keys, rows) = sorted(keys, rows, |a, b| a.cmp(b));
                ScalarIndex::Str { keys, rows }
            }
            other => {
                return Err(EngineError::InvalidRequest(format!(
                    "no scalar index for {other}"
                )));
            }
        })
    }

    /// Writes the index as an IPC file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let (values, rows): (ArrayRef, &Vec<u32>) = match self {
            ScalarIndex::Bool { keys, rows } => (Arc::new(BooleanArray::from(keys.clone())), rows),
            ScalarIndex::Int { keys, rows } => (Arc::new(Int64Array::from(keys.clone())), rows),
            ScalarIndex::Float { keys, rows } => (Arc::new(Float64Array::from(keys.clone())), rows),
            ScalarIndex::Str { keys, rows } => {
                (Arc::new(StringArray::from_iter_values(keys)), rows)
            }
        };
        let schema = Arc::new(Schema::new(vec![
            ArrowField::new("value", values.data_type().clone(), false),
            ArrowField::new("row", DataType::UInt32, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![values, Arc::new(UInt32Array::from(rows.clone()))],
        )?;
        let mut w = SegmentWriter::create(path.to_path_buf(), &schema)?;
        w.write(&batch)?;
        w.finish()?;
        Ok(())
    }

    /// Reads an index written by [`ScalarIndex::write`].
    pub fn load(path: &Path) -> Result<ScalarIndex> {
        let batch = read_segment(path, None)?;
        let corrupt = |why: &str| EngineError::Corrupt {
            path: path.to_path_buf(),
            reason: why.to_string(),
        };
        if batch.num_columns() != 2 {
            return Err(corrupt("expected columns value and row"));
        }
        let rows = batch
            .column(1)
            .as_primitive_opt::<arrow::datatypes::UInt32Type>()
            .ok_or_else(|| corrupt("row is not UInt32"))?
            .values()
            .to_vec();
        let v = batch.column(0);
        Ok(match v.data_type() {
            DataType::Boolean => ScalarIndex::Bool {
                keys: v.as_boolean().iter().map(|x| x.unwrap_or(false)).collect(),
                rows,
            },
            DataType::Int64 => ScalarIndex::Int {
                keys: v.as_primitive::<Int64Type>().values().to_vec(),
                rows,
            },
            DataType::Float64 => ScalarIndex::Float {
                keys: v.as_primitive::<Float64Type>().values().to_vec(),
                rows,
            },
            DataType::Utf8 => ScalarIndex::Str {
                keys: v
                    .as_string::<i32>()
                    .iter()
                    .map(|x| x.unwrap_or_default().to_string())
                    .collect(),
                rows,
            },
            _ => return Err(corrupt("unknown value type")),
        })
    }

    /// Rows whose value (or one of whose elements) satisfies `value <bound> key`.
    /// `None` when the key's type cannot be compared with this index.
    pub fn lookup(&self, bound: Bound, key: &Key) -> Option<Vec<u32>> {
        fn range<K>(
            keys: &[K],
            rows: &[u32],
            bound: Bound,
            cmp: impl Fn(&K) -> std::cmp::Ordering,
        ) -> Vec<u32> {
            use std::cmp::Ordering::*;
            let lo = keys.partition_point(|k| cmp(k) == Less);
            let hi = keys.partition_point(|k| cmp(k) != Greater);
            let r = match bound {
                Bound::Eq => lo..hi,
                Bound::Lt => 0..lo,
                Bound::Le => 0..hi,
                Bound::Gt => hi..keys.len(),
                Bound::Ge => lo..keys.len(),
            };
            rows[r].to_vec()
        }
        Some(match (self, key) {
            (ScalarIndex::Bool { keys, rows }, Key::Bool(b)) => {
                range(keys, rows, bound, |k| k.cmp(b))
            }
            (ScalarIndex::Int { keys, rows }, Key::Int(i)) => {
                range(keys, rows, bound, |k| k.cmp(i))
            }
            (ScalarIndex::Int { keys, rows }, Key::Float(f)) => {
                range(keys, rows, bound, |k| (*k as f64).total_cmp(f))
            }
            (ScalarIndex::Float { keys, rows }, Key::Float(f)) => {
                range(keys, rows, bound, |k| k.total_cmp(f))
            }
            (ScalarIndex::Float { keys, rows }, Key::Int(i)) => {
                range(keys, rows, bound, |k| k.total_cmp(&(*i as f64)))
            }
            (ScalarIndex::Str { keys, rows }, Key::Str(s)) => {
                range(keys, rows, bound, |k| k.as_str().cmp(s.as_str()))
            }
            _ => return None,
        })
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        match self {
            ScalarIndex::Bool { keys, rows } => keys.len() + rows.len() * 4,
            ScalarIndex::Int { keys, rows } => keys.len() * 8 + rows.len() * 4,
            ScalarIndex::Float { keys, rows } => keys.len() * 8 + rows.len() * 4,
            ScalarIndex::Str { keys, rows } => {
                keys.iter().map(|k| k.len() + 24).sum::<usize>() + rows.len() * 4
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_ranges() {
        let col = Int64Array::from(vec![Some(5), None, Some(1), Some(5), Some(9)]);
        let ix = ScalarIndex::build(&col, &|_| true).unwrap();
        let mut eq = ix.lookup(Bound::Eq, &Key::Int(5)).unwrap();
        eq.sort();
        assert_eq!(eq, vec![0, 3]);
        assert_eq!(ix.lookup(Bound::Lt, &Key::Int(5)).unwrap(), vec![2]);
        assert_eq!(ix.lookup(Bound::Gt, &Key::Float(5.5)).unwrap(), vec![4]);
        assert!(ix.lookup(Bound::Eq, &Key::Str("x".into())).is_none());
    }

    #[test]
    fn arrays_index_each_element() {
        use arrow::array::ListArray;
        let col = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![Some(2)]),
        ]);
        let ix = ScalarIndex::build(&col, &|_| true).unwrap();
        assert_eq!(ix.lookup(Bound::Eq, &Key::Int(2)).unwrap(), vec![0, 2]);
    }
}
