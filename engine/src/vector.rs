//! Metrics, distances and vector data.
//!
//! Distances follow pgvector, so numbers users saw in Postgres still hold: L2 is the Euclidean
//! distance (`<->`), COSINE the cosine distance `1 - cos` (`<=>`), IP the negative inner
//! product (`<#>`), HAMMING and JACCARD as `bit_hamming_ops` / `bit_jaccard_ops`. Smaller is
//! always nearer. The kernels themselves live in [`simd`], chosen for the CPU at run time;
//! [`metric`] holds the metrics and distances, [`query`] the query vectors users send and
//! [`data`] the columnar vectors of a segment.

mod data;
mod finite;
mod metric;
mod query;
mod rows;
pub mod simd;

pub use data::{VectorData, VectorValues, sparse_children};
pub use finite::{first_non_finite, first_non_finite_f16};
pub use metric::{Metric, binary_distance, dense_distance, dot, l2_squared, norm, sparse_distance};
pub use query::{QueryVector, pack_bits};
pub use rows::Rows;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Field, FieldType};
    use arrow::array::{Array, ArrayRef, FixedSizeBinaryArray, FixedSizeListArray};
    use arrow::datatypes::DataType;

    #[test]
    fn concat_of_parts_equals_the_whole() {
        let whole = VectorData {
            values: VectorValues::Sparse {
                offsets: vec![0, 2, 2, 3, 5],
                indices: vec![1, 4, 0, 2, 9],
                values: vec![0.5, -1.0, 2.0, 3.0, 4.0],
            },
            valid: Some(vec![true, false, true, true]),
        };
        let dt = crate::schema::Field::new("s", crate::schema::FieldType::SparseFloatVector)
            .arrow_type();
        let arr = whole.take_arrow(&[0, 1, 2, 3], &dt).unwrap();
        let parts = vec![
            VectorData::from_array(arr.slice(0, 1).as_ref()).unwrap(),
            VectorData::from_array(arr.slice(1, 3).as_ref()).unwrap(),
        ];
        let joined = VectorData::concat(parts).unwrap();
        assert_eq!(joined.len(), 4);
        for r in 0..4 {
            assert_eq!(joined.row_json(r), whole.row_json(r), "row {r}");
        }
        let dense = |v: Vec<f32>, valid| VectorData {
            values: VectorValues::Dense {
                dim: 2,
                values: Rows::from_vec(v, 2),
            },
            valid,
        };
        let j = VectorData::concat(vec![
            dense(vec![1.0, 2.0], None),
            dense(vec![3.0, 4.0, 5.0, 6.0], Some(vec![false, true])),
        ])
        .unwrap();
        assert_eq!(j.valid, Some(vec![true, false, true]));
        assert_eq!(j.values.dense_row(2), &[5.0, 6.0]);
    }

    #[test]
    fn take_arrow_gives_back_the_stored_rows_of_every_layout() {
        use crate::schema::{Field, FieldType};
        use arrow::array::{Array, UInt32Array};
        let nulls = |n: usize| {
            arrow::buffer::NullBuffer::from((0..n).map(|r| r != 1).collect::<Vec<bool>>())
        };
        let fields = [
            Field {
                dim: Some(3),
                ..Field::new("f", FieldType::FloatVector)
            },
            Field {
                dim: Some(3),
                ..Field::new("h", FieldType::Float16Vector)
            },
            Field {
                dim: Some(16),
                ..Field::new("b", FieldType::BinaryVector)
            },
            Field::new("s", FieldType::SparseFloatVector),
        ];
        for f in fields {
            let dt = f.arrow_type();
            // Four rows, row 1 NULL, built through the JSON → Arrow path the engine tests use.
            let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
            let array: ArrayRef = match &dt {
                DataType::FixedSizeList(item, d) => {
                    let flat: ArrayRef =
                        std::sync::Arc::new(arrow::array::Float32Array::from(values.clone()));
                    let flat = arrow::compute::cast(&flat, item.data_type()).unwrap();
                    std::sync::Arc::new(
                        FixedSizeListArray::try_new(item.clone(), *d, flat, Some(nulls(4)))
                            .unwrap(),
                    )
                }
                DataType::FixedSizeBinary(w) => std::sync::Arc::new(
                    FixedSizeBinaryArray::try_new(
                        *w,
                        (0u8..8).collect::<Vec<u8>>().into(),
                        Some(nulls(4)),
                    )
                    .unwrap(),
                ),
                DataType::Struct(fs) => {
                    let data = VectorData {
                        values: VectorValues::Sparse {
                            offsets: vec![0, 2, 2, 3, 5],
                            indices: vec![1, 4, 0, 2, 9],
                            values: vec![0.5, -1.0, 2.0, 3.0, 4.0],
                        },
                        valid: Some(vec![true, false, true, true]),
                    };
                    let a = data.take_arrow(&[0, 1, 2, 3], &dt).unwrap();
                    assert_eq!(a.data_type(), &DataType::Struct(fs.clone()));
                    a
                }
                _ => unreachable!(),
            };
            let data = VectorData::from_array(array.as_ref()).unwrap();
            let got = data.take_arrow(&[3, 1, 0], &dt).unwrap();
            let want =
                arrow::compute::take(array.as_ref(), &UInt32Array::from(vec![3, 1, 0]), None)
                    .unwrap();
            assert_eq!(got.data_type(), want.data_type(), "{}", f.name);
            assert!(got.is_null(1) && !got.is_null(0), "{}", f.name);
            for r in [0, 2] {
                assert_eq!(
                    data.row_json([3, 1, 0][r] as usize),
                    VectorData::from_array(got.as_ref()).unwrap().row_json(r),
                    "{} row {r}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn distances_match_pgvector() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, 5.0, 6.0];
        assert!((dense_distance(Metric::L2, &a, &b) - 27f32.sqrt()).abs() < 1e-6);
        assert_eq!(dense_distance(Metric::Ip, &a, &b), -32.0);
        let cos = 1.0 - 32.0 / (14f32.sqrt() * 77f32.sqrt());
        assert!((dense_distance(Metric::Cosine, &a, &b) - cos).abs() < 1e-6);
        assert_eq!(
            binary_distance(Metric::Hamming, &[0b1010_0000], &[0b0110_0000]),
            2.0
        );
        assert!(
            (binary_distance(Metric::Jaccard, &[0b1110_0000], &[0b0110_0000]) - (1.0 - 2.0 / 3.0))
                .abs()
                < 1e-6
        );
        assert_eq!(
            sparse_distance(&[0, 3, 7], &[1.0, 2.0, 3.0], &[3, 7, 9], &[10.0, 1.0, 5.0]),
            -23.0
        );
    }

    #[test]
    fn long_vectors_use_every_lane() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let naive: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a), naive);
    }

    #[test]
    fn query_vectors_are_checked() {
        let f = Field {
            dim: Some(3),
            ..Field::new("v", FieldType::FloatVector)
        };
        assert!(QueryVector::from_json(&f, &serde_json::json!([1, 2, 3])).is_ok());
        let e = QueryVector::from_json(&f, &serde_json::json!([1, 2]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 dimensions") && e.contains("has 3"), "{e}");
        let b = Field {
            dim: Some(8),
            ..Field::new("b", FieldType::BinaryVector)
        };
        assert_eq!(
            QueryVector::from_json(&b, &serde_json::json!("10000001")).unwrap(),
            QueryVector::Binary(vec![0x81])
        );
        let s = Field::new("s", FieldType::SparseFloatVector);
        assert_eq!(
            QueryVector::from_json(&s, &serde_json::json!({"5": 1.0, "2": 0.5})).unwrap(),
            QueryVector::Sparse {
                indices: vec![2, 5],
                values: vec![0.5, 1.0]
            }
        );
    }
}
