use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray};
use arrow::datatypes::Int32Type;

use super::eval::like;
use super::*;
use crate::index::scalar::ScalarIndex;
use crate::schema::{CollectionSchema, Field, FieldType};

fn schema(dynamic: bool) -> CollectionSchema {
    CollectionSchema {
        fields: vec![
            Field {
                primary_key: true,
                ..Field::new("id", FieldType::Int64)
            },
            Field {
                max_length: Some(20),
                nullable: true,
                ..Field::new("name", FieldType::Varchar)
            },
            Field {
                nullable: true,
                ..Field::new("attrs", FieldType::Json)
            },
            Field {
                element_type: Some(FieldType::Int32),
                max_capacity: Some(8),
                nullable: true,
                ..Field::new("tags", FieldType::Array)
            },
            Field {
                nullable: true,
                ..Field::new("ok", FieldType::Bool)
            },
            Field {
                dim: Some(2),
                ..Field::new("v", FieldType::FloatVector)
            },
        ],
        auto_id: false,
        dynamic_field: dynamic,
        shards: 1,
        description: String::new(),
    }
}

struct Batch(RecordBatch, Option<ScalarIndex>);
impl Columns for Batch {
    fn rows(&self) -> usize {
        self.0.num_rows()
    }
    fn column(&self, name: &str) -> Option<&ArrayRef> {
        self.0.column_by_name(name)
    }
    fn scalar_index(&self, name: &str) -> Option<&ScalarIndex> {
        if name == "id" { self.1.as_ref() } else { None }
    }
}

fn batch(indexed: bool) -> Batch {
    let id: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5]));
    let name: ArrayRef = Arc::new(StringArray::from(vec![
        Some("apple"),
        Some("banana"),
        None,
        Some("apricot"),
        Some("a_c"),
    ]));
    let attrs: ArrayRef = Arc::new(StringArray::from(vec![
        Some(r#"{"color":"red","n":1}"#),
        Some(r#"{"color":"blue","n":2.5}"#),
        None,
        Some(r#"{"n":null}"#),
        Some(r#"{"color":"red"}"#),
    ]));
    let tags: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        Some(vec![]),
        None,
        Some(vec![Some(3)]),
        Some(vec![Some(2), Some(3)]),
    ]));
    let ok: ArrayRef = Arc::new(BooleanArray::from(vec![
        Some(true),
        Some(false),
        None,
        Some(true),
        Some(false),
    ]));
    let b = RecordBatch::try_from_iter(vec![
        ("id", id.clone()),
        ("name", name),
        ("attrs", attrs),
        ("tags", tags),
        ("ok", ok),
    ])
    .unwrap();
    Batch(
        b,
        indexed.then(|| ScalarIndex::build(id.as_ref(), &|_| true).unwrap()),
    )
}

fn ids(expr: &str) -> Vec<i64> {
    let e = parse(expr, &schema(false)).unwrap_or_else(|e| panic!("{e}"));
    let plain = evaluate(&e, &batch(false));
    let with_index = evaluate(&e, &batch(true));
    assert_eq!(plain, with_index, "index and scan disagree on {expr}");
    plain
        .iter()
        .enumerate()
        .filter(|(_, p)| **p)
        .map(|(i, _)| i as i64 + 1)
        .collect()
}

#[test]
fn comparisons_and_logic() {
    assert_eq!(ids("id == 2"), vec![2]);
    assert_eq!(ids("id != 2 and id < 4"), vec![1, 3]);
    assert_eq!(ids("id >= 4 || id <= 1"), vec![1, 4, 5]);
    assert_eq!(ids("not (id > 1 and id < 5)"), vec![1, 5]);
    assert_eq!(ids("id in [1, 3, 9]"), vec![1, 3]);
    assert_eq!(ids("id not in [1, 3]"), vec![2, 4, 5]);
    assert_eq!(ids("id > 2.5"), vec![3, 4, 5]);
    assert_eq!(ids("3 > id"), vec![1, 2]);
}

#[test]
fn nulls_are_unknown() {
    // Row 3 has NULL name: neither `== ` nor `!=` nor their negations pass.
    assert_eq!(ids("name != \"apple\""), vec![2, 4, 5]);
    assert_eq!(ids("not (name == \"apple\")"), vec![2, 4, 5]);
    assert_eq!(ids("name is null"), vec![3]);
    assert_eq!(ids("name is not null and ok"), vec![1, 4]);
    assert_eq!(ids("not ok"), vec![2, 5]);
}

#[test]
fn like_json_and_arrays() {
    assert_eq!(ids("name like \"ap%\""), vec![1, 4]);
    assert_eq!(ids("name like \"a\\_c\""), vec![5]);
    assert_eq!(ids("name not like \"%an%\""), vec![1, 4, 5]);
    assert_eq!(ids("attrs[\"color\"] == \"red\""), vec![1, 5]);
    assert_eq!(ids("attrs[\"n\"] > 1"), vec![2]);
    assert_eq!(ids("attrs[\"n\"] is null"), vec![3, 4, 5]);
    assert_eq!(ids("array_contains(tags, 2)"), vec![1, 5]);
    assert_eq!(ids("array_contains_all(tags, [2, 3])"), vec![5]);
    assert_eq!(ids("array_contains_any(tags, [1, 3])"), vec![1, 4, 5]);
    assert_eq!(ids("array_length(tags) == 0"), vec![2]);
    assert_eq!(ids("tags[0] == 2"), vec![5]);
}

#[test]
fn dynamic_fields_resolve_to_meta() {
    let e = parse("color == \"red\"", &schema(true)).unwrap();
    assert_eq!(
        e,
        Expr::Cmp(
            Operand::Field {
                name: "$meta".into(),
                path: vec![PathStep::Key("color".into())]
            },
            CmpOp::Eq,
            Operand::Literal(Literal::Str("red".into()))
        )
    );
}

#[test]
fn errors_point_at_the_problem() {
    let msg = |s: &str| parse(s, &schema(false)).unwrap_err().to_string();
    let m = msg("id == 1 and nmae == \"x\"");
    assert!(
        m.contains("position 12")
            && m.contains("unknown field `nmae`")
            && m.contains("did you mean `name`"),
        "{m}"
    );
    assert!(msg("id = 1").contains("use `==`"));
    assert!(msg("(id == 1").contains("expected `)`"));
    assert!(msg("name == 3").contains("cannot be compared with a number"));
    assert!(msg("v == 1").contains("vector field"));
    assert!(msg("id in [1, 2").contains("expected `]`"));
    assert!(msg("name == \"x").contains("not closed"));
    assert!(msg("").contains("empty"));
}

#[test]
fn like_matches_sql() {
    assert!(like("abc", "a%"));
    assert!(like("abc", "%c"));
    assert!(like("abc", "a_c"));
    assert!(!like("abc", "a_"));
    assert!(like("a%c", "a\\%c"));
    assert!(!like("abc", "a\\%c"));
    assert!(like("", "%"));
    assert!(like("mississippi", "%iss%pi"));
}
