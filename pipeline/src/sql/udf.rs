//! pgvector's distance functions as DataFusion UDFs, so SQL written for Postgres runs here:
//! `l2_distance`, `cosine_distance`, `inner_product` and `l1_distance`, on FLOAT_VECTOR and
//! FLOAT16_VECTOR columns (or arrays), against a column or a constant such as `'[1,2,3]'`.
//!
//! The numbers are the engine's (and pgvector's): L2 the Euclidean distance, cosine `1 - cos`,
//! inner product the plain dot product (pgvector's `<#>` is its negative), L1 the taxicab
//! distance. Vectors of different dimensions are an error, as in pgvector.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float32Type};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use etl_engine::Metric;
use etl_engine::vector::{dense_distance, dot};

/// Which pgvector function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistanceFn {
    /// `l2_distance`, `<->`.
    L2,
    /// `cosine_distance`, `<=>`.
    Cosine,
    /// `inner_product` (larger is nearer).
    InnerProduct,
    /// `l1_distance`, `<+>`.
    L1,
}

impl DistanceFn {
    /// All of them.
    pub const ALL: [DistanceFn; 4] = [
        DistanceFn::L2,
        DistanceFn::Cosine,
        DistanceFn::InnerProduct,
        DistanceFn::L1,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            DistanceFn::L2 => "l2_distance",
            DistanceFn::Cosine => "cosine_distance",
            DistanceFn::InnerProduct => "inner_product",
            DistanceFn::L1 => "l1_distance",
        }
    }

    /// The function a SQL name calls.
    pub fn from_name(name: &str) -> Option<DistanceFn> {
        DistanceFn::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The index metric that ranks like this function, and whether nearer means ascending.
    pub fn metric(self) -> Option<(Metric, bool)> {
        match self {
            DistanceFn::L2 => Some((Metric::L2, true)),
            DistanceFn::Cosine => Some((Metric::Cosine, true)),
            DistanceFn::InnerProduct => Some((Metric::Ip, false)),
            DistanceFn::L1 => None,
        }
    }

    fn eval(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            DistanceFn::L2 => f64::from(dense_distance(Metric::L2, a, b)),
            DistanceFn::Cosine => f64::from(dense_distance(Metric::Cosine, a, b)),
            DistanceFn::InnerProduct => f64::from(dot(a, b)),
            DistanceFn::L1 => a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())).sum(),
        }
    }
}

/// The UDF of one distance function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DistanceUdf {
    func: DistanceFn,
    signature: Signature,
}

impl DistanceUdf {
    /// The UDF, ready to register.
    pub fn udf(func: DistanceFn) -> ScalarUDF {
        ScalarUDF::new_from_impl(DistanceUdf {
            func,
            signature: Signature::any(2, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for DistanceUdf {
    fn name(&self) -> &str {
        self.func.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let [a, b] = args.args.as_slice() else {
            return exec_err!("{} takes two vectors", self.func.name());
        };
        let a = Vectors::new(a, self.func)?;
        let b = Vectors::new(b, self.func)?;
        let mut out = Vec::with_capacity(n);
        for r in 0..n {
            out.push(match (a.row(r), b.row(r)) {
                (Some(x), Some(y)) if x.len() != y.len() => {
                    return exec_err!(
                        "different vector dimensions {} and {} in {}",
                        x.len(),
                        y.len(),
                        self.func.name()
                    );
                }
                (Some(x), Some(y)) => Some(self.func.eval(x, y)),
                _ => None,
            });
        }
        let all_scalar = matches!(
            (&args.args[0], &args.args[1]),
            (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
        );
        let arr = Float64Array::from(out);
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&arr, 0)?));
        }
        Ok(ColumnarValue::Array(Arc::new(arr)))
    }
}

/// One side of a distance: a constant vector or a column of them, as f32 rows.
enum Vectors {
    Const(Option<Vec<f32>>),
    Rows {
        values: Vec<f32>,
        offsets: Vec<usize>,
        valid: Vec<bool>,
    },
}

impl Vectors {
    fn new(v: &ColumnarValue, func: DistanceFn) -> Result<Vectors> {
        match v {
            ColumnarValue::Scalar(s) => {
                let arr = s.to_array_of_size(1)?;
                let rows = Vectors::from_array(&arr, func)?;
                Ok(Vectors::Const(rows.row(0).map(<[f32]>::to_vec)))
            }
            ColumnarValue::Array(a) => Vectors::from_array(a, func),
        }
    }

    fn from_array(a: &ArrayRef, func: DistanceFn) -> Result<Vectors> {
        let mut values = Vec::new();
        let mut offsets = vec![0];
        let mut valid = Vec::with_capacity(a.len());
        match a.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let s = cast(a, &DataType::Utf8)?;
                let s = s.as_string::<i32>();
                for r in 0..s.len() {
                    valid.push(s.is_valid(r));
                    if s.is_valid(r) {
                        let parsed: Vec<f32> = serde_json::from_str(s.value(r)).map_err(|e| {
                            DataFusionError::Execution(format!(
                                "{}: `{}` is not a vector like '[1,2,3]': {e}",
                                func.name(),
                                s.value(r)
                            ))
                        })?;
                        values.extend(parsed);
                    }
                    offsets.push(values.len());
                }
            }
            DataType::FixedSizeList(..)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::ListView(_) => {
                let list = cast(
                    a,
                    &DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
                )?;
                let list = list.as_list::<i32>();
                let flat = list.values().as_primitive::<Float32Type>();
                for r in 0..list.len() {
                    valid.push(list.is_valid(r));
                    if list.is_valid(r) {
                        let (s, e) = (
                            list.value_offsets()[r] as usize,
                            list.value_offsets()[r + 1] as usize,
                        );
                        values.extend_from_slice(&flat.values()[s..e]);
                    }
                    offsets.push(values.len());
                }
            }
            DataType::Null => {
                valid.resize(a.len(), false);
                offsets.resize(a.len() + 1, 0);
            }
            other => return exec_err!("{} takes vectors, not {other}", func.name()),
        }
        Ok(Vectors::Rows {
            values,
            offsets,
            valid,
        })
    }

    fn row(&self, r: usize) -> Option<&[f32]> {
        match self {
            Vectors::Const(v) => v.as_deref(),
            Vectors::Rows {
                values,
                offsets,
                valid,
            } => valid
                .get(r)
                .copied()
                .unwrap_or(false)
                .then(|| &values[offsets[r]..offsets[r + 1]]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_match_pgvector_definitions() {
        let (a, b) = ([1.0f32, 2.0, 3.0], [4.0f32, 6.0, 3.0]);
        assert!((DistanceFn::L2.eval(&a, &b) - 5.0).abs() < 1e-6);
        assert!((DistanceFn::L1.eval(&a, &b) - 7.0).abs() < 1e-6);
        assert!((DistanceFn::InnerProduct.eval(&a, &b) - 25.0).abs() < 1e-6);
        let cos = 25.0 / (14f64.sqrt() * 61f64.sqrt());
        assert!((DistanceFn::Cosine.eval(&a, &b) - (1.0 - cos)).abs() < 1e-6);
    }
}
