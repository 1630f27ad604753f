//! One test per row of the rules table.

use super::*;
use crate::types::{DataType as T, PgKind as K};

fn ty(kind: K) -> TypeChoice {
    default_rule(&kind).unwrap()
}

#[test]
fn integer_primary_keys_become_int64() {
    for k in [K::Int2, K::Int4, K::Int8] {
        assert_eq!(primary_key_type(&k), Some(T::Int64));
    }
}

#[test]
fn text_and_uuid_primary_keys_become_varchar() {
    for k in [
        K::Text,
        K::Varchar {
            max_length: Some(10),
        },
        K::Char { length: Some(3) },
        K::Uuid,
    ] {
        assert_eq!(primary_key_type(&k), Some(T::Varchar));
    }
    assert_eq!(primary_key_type(&K::Float8), None);
    assert_eq!(primary_key_type(&K::Date), None);
}

#[test]
fn vectors_and_halfvecs_keep_their_dimension() {
    let v = ty(K::Vector { dim: Some(768) });
    assert_eq!((v.data_type, v.dim), (T::FloatVector, Some(768)));
    let h = ty(K::HalfVec { dim: Some(3) });
    assert_eq!((h.data_type, h.dim), (T::Float16Vector, Some(3)));
    let fix = default_rule(&K::Vector { dim: None }).unwrap_err();
    assert!(fix.fix.contains("dim"), "{fix:?}");
}

#[test]
fn sparsevec_becomes_sparse_float_vector() {
    assert_eq!(
        ty(K::SparseVec { dim: Some(1000) }).data_type,
        T::SparseFloatVector
    );
    assert_eq!(
        ty(K::SparseVec { dim: None }).data_type,
        T::SparseFloatVector
    );
}

#[test]
fn bit_multiple_of_eight_becomes_binary_vector_else_a_fix() {
    let b = ty(K::Bit { length: Some(64) });
    assert_eq!((b.data_type, b.dim), (T::BinaryVector, Some(64)));
    let fix = default_rule(&K::Bit { length: Some(12) }).unwrap_err();
    assert!(fix.reason.contains("bit(12)"), "{fix:?}");
}

#[test]
fn integers_keep_their_width() {
    assert_eq!(ty(K::Int8).data_type, T::Int64);
    assert_eq!(ty(K::Int4).data_type, T::Int32);
    assert_eq!(ty(K::Int2).data_type, T::Int16);
}

#[test]
fn floats_and_bool() {
    assert_eq!(ty(K::Float8).data_type, T::Double);
    assert_eq!(ty(K::Float4).data_type, T::Float);
    assert_eq!(ty(K::Bool).data_type, T::Bool);
}

#[test]
fn narrow_numeric_is_double_wide_is_exact_text() {
    let n = ty(K::Numeric {
        precision: Some(15),
        scale: Some(2),
    });
    assert_eq!(n.data_type, T::Double);
    assert!(n.note.is_none());
    let wide = ty(K::Numeric {
        precision: Some(20),
        scale: Some(4),
    });
    assert_eq!((wide.data_type, wide.max_length), (T::Varchar, Some(22)));
    assert_eq!(wide.note.unwrap().severity, Severity::Warning);
    let free = ty(K::Numeric {
        precision: None,
        scale: None,
    });
    assert_eq!(
        (free.data_type, free.max_length),
        (T::Varchar, Some(MAX_VARCHAR_LENGTH))
    );
    assert_eq!(free.note.unwrap().severity, Severity::Warning);
}

#[test]
fn character_types_become_varchar() {
    assert_eq!(ty(K::Text).max_length, Some(65_535));
    let v = ty(K::Varchar {
        max_length: Some(80),
    });
    assert_eq!((v.data_type, v.max_length), (T::Varchar, Some(80)));
    let c = ty(K::Char { length: Some(2) });
    assert_eq!((c.data_type, c.max_length), (T::Varchar, Some(2)));
    assert_eq!(ty(K::Varchar { max_length: None }).max_length, Some(65_535));
    let huge = ty(K::Varchar {
        max_length: Some(100_000),
    });
    assert_eq!(huge.max_length, Some(65_535));
    assert!(huge.note.is_some());
}

#[test]
fn other_scalars_become_varchar_with_a_note() {
    for k in [
        K::Date,
        K::Time,
        K::TimeTz,
        K::Timestamp,
        K::TimestampTz,
        K::Uuid,
        K::Inet,
        K::Cidr,
        K::Interval,
        K::Enum {
            type_name: "mood".into(),
        },
        K::Other {
            type_name: "money".into(),
        },
    ] {
        let c = ty(k.clone());
        assert_eq!(c.data_type, T::Varchar, "{k:?}");
        assert!(c.note.is_some(), "{k:?} has no note");
    }
    assert!(ty(K::TimestampTz).note.unwrap().text.contains("UTC"));
}

#[test]
fn one_dimensional_arrays_become_array_of_the_element() {
    let a = ty(K::Array {
        element: Box::new(K::Int4),
        ndims: 1,
    });
    assert_eq!(
        (a.data_type, a.element_type, a.max_capacity),
        (T::Array, Some(T::Int32), Some(4096))
    );
    let t = ty(K::Array {
        element: Box::new(K::Varchar {
            max_length: Some(20),
        }),
        ndims: 0,
    });
    assert_eq!((t.element_type, t.max_length), (Some(T::Varchar), Some(20)));
    // uuid[] elements are text, so ARRAY<VARCHAR>.
    assert_eq!(
        ty(K::Array {
            element: Box::new(K::Uuid),
            ndims: 1
        })
        .element_type,
        Some(T::Varchar)
    );
}

#[test]
fn json_and_multidimensional_arrays_become_json() {
    assert_eq!(ty(K::Json).data_type, T::Json);
    assert_eq!(ty(K::Jsonb).data_type, T::Json);
    assert_eq!(
        ty(K::Array {
            element: Box::new(K::Int4),
            ndims: 2
        })
        .data_type,
        T::Json
    );
    assert_eq!(
        ty(K::Array {
            element: Box::new(K::Jsonb),
            ndims: 1
        })
        .data_type,
        T::Json
    );
}

#[test]
fn bytea_is_a_required_fix() {
    let fix = default_rule(&K::Bytea).unwrap_err();
    assert!(fix.fix.contains("base64"), "{fix:?}");
    assert!(check_override(&K::Bytea, T::Varchar).is_ok());
    assert!(
        default_rule(&K::Array {
            element: Box::new(K::Bytea),
            ndims: 1
        })
        .is_err()
    );
}

#[test]
fn overrides_allowed_where_values_convert() {
    assert_eq!(check_override(&K::Int4, T::Int64), Ok(None));
    assert!(check_override(&K::Int8, T::Int16).unwrap().is_some());
    assert!(
        check_override(
            &K::Numeric {
                precision: Some(30),
                scale: Some(0)
            },
            T::Int64
        )
        .is_ok()
    );
    assert!(
        check_override(
            &K::Numeric {
                precision: Some(30),
                scale: Some(2)
            },
            T::Int64
        )
        .is_err()
    );
    assert!(check_override(&K::Vector { dim: Some(3) }, T::Float16Vector).is_ok());
    assert!(check_override(&K::Jsonb, T::Varchar).is_ok());
    assert!(check_override(&K::Text, T::Json).unwrap().is_some());
}

#[test]
fn overrides_refused_where_values_do_not_convert() {
    let why = check_override(&K::Text, T::FloatVector).unwrap_err();
    assert!(why.contains("not vectors"), "{why}");
    assert!(check_override(&K::Text, T::Int64).is_err());
    assert!(check_override(&K::Int4, T::Array).is_err());
    assert!(check_override(&K::Date, T::Json).is_err());
}
