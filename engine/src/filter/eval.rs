//! Evaluation of a checked filter over one segment's columns.
//!
//! Leaves on a field with a scalar index are answered by the index (binary searches) before
//! the row loop; everything else is read row by row from the Arrow columns.

use std::borrow::Cow;
use std::cmp::Ordering;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
};

use super::{CmpOp, Contains, Expr, Literal, Operand, PathStep};
use crate::index::scalar::{Bound, Key, ScalarIndex};

/// What evaluation reads: a segment's columns and scalar indexes.
pub trait Columns {
    /// Rows in the segment.
    fn rows(&self) -> usize;
    /// A column by field name.
    fn column(&self, name: &str) -> Option<&ArrayRef>;
    /// A field's scalar index, if loaded.
    fn scalar_index(&self, _name: &str) -> Option<&ScalarIndex> {
        None
    }
}

/// One value read from a row.
#[derive(Debug, Clone)]
enum V<'a> {
    Null,
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Bool(bool),
    Json(serde_json::Value),
    List(ArrayRef),
}

enum Node<'e> {
    Leaf(&'e Expr),
    Pre(Vec<Option<bool>>),
    And(Box<Node<'e>>, Box<Node<'e>>),
    Or(Box<Node<'e>>, Box<Node<'e>>),
    Not(Box<Node<'e>>),
}

/// Which rows pass `expr` (true only where the expression is true, not unknown).
pub fn evaluate(expr: &Expr, cols: &dyn Columns) -> Vec<bool> {
    let node = plan(expr, cols);
    (0..cols.rows())
        .map(|r| eval_node(&node, cols, r) == Some(true))
        .collect()
}

fn plan<'e>(e: &'e Expr, cols: &dyn Columns) -> Node<'e> {
    match e {
        Expr::And(a, b) => Node::And(Box::new(plan(a, cols)), Box::new(plan(b, cols))),
        Expr::Or(a, b) => Node::Or(Box::new(plan(a, cols)), Box::new(plan(b, cols))),
        Expr::Not(a) => Node::Not(Box::new(plan(a, cols))),
        leaf => indexed(leaf, cols).map_or(Node::Leaf(leaf), Node::Pre),
    }
}

/// Answers `field op constant` and `field in [...]` from a scalar index.
fn indexed(e: &Expr, cols: &dyn Columns) -> Option<Vec<Option<bool>>> {
    let (name, lookups): (&str, Vec<(Bound, Key)>) = match e {
        Expr::Cmp(Operand::Field { name, path }, op, Operand::Literal(l)) if path.is_empty() => {
            let b = match op {
                CmpOp::Eq => Bound::Eq,
                CmpOp::Lt => Bound::Lt,
                CmpOp::Le => Bound::Le,
                CmpOp::Gt => Bound::Gt,
                CmpOp::Ge => Bound::Ge,
                CmpOp::Ne => return None,
            };
            (name, vec![(b, key(l))])
        }
        Expr::In(Operand::Field { name, path }, list, false) if path.is_empty() => {
            (name, list.iter().map(|l| (Bound::Eq, key(l))).collect())
        }
        _ => return None,
    };
    let column = cols.column(name)?;
    // Array columns are indexed per element; only array_contains reads them that way.
    if matches!(column.data_type(), DataType::List(_)) {
        return None;
    }
    let ix = cols.scalar_index(name)?;
    let mut out: Vec<Option<bool>> = (0..cols.rows())
        .map(|r| if column.is_null(r) { None } else { Some(false) })
        .collect();
    for (b, k) in lookups {
        for r in ix.lookup(b, &k)? {
            if let Some(slot) = out.get_mut(r as usize) {
                *slot = Some(true);
            }
        }
    }
    Some(out)
}

fn key(l: &Literal) -> Key {
    match l {
        Literal::Int(i) => Key::Int(*i),
        Literal::Float(f) => Key::Float(*f),
        Literal::Str(s) => Key::Str(s.clone()),
        Literal::Bool(b) => Key::Bool(*b),
    }
}

fn eval_node(n: &Node, cols: &dyn Columns, r: usize) -> Option<bool> {
    match n {
        Node::Pre(v) => v[r],
        Node::Leaf(e) => eval_leaf(e, cols, r),
        Node::And(a, b) => match (eval_node(a, cols, r), eval_node(b, cols, r)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Node::Or(a, b) => match (eval_node(a, cols, r), eval_node(b, cols, r)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Node::Not(a) => eval_node(a, cols, r).map(|b| !b),
    }
}

fn eval_leaf(e: &Expr, cols: &dyn Columns, r: usize) -> Option<bool> {
    match e {
        Expr::Cmp(a, op, b) => {
            let ord = compare(&value(a, cols, r), &value(b, cols, r))?;
            Some(match op {
                CmpOp::Eq => ord == Ordering::Equal,
                CmpOp::Ne => ord != Ordering::Equal,
                CmpOp::Lt => ord == Ordering::Less,
                CmpOp::Le => ord != Ordering::Greater,
                CmpOp::Gt => ord == Ordering::Greater,
                CmpOp::Ge => ord != Ordering::Less,
            })
        }
        Expr::In(a, list, negated) => {
            let v = value(a, cols, r);
            if matches!(v, V::Null) {
                return None;
            }
            let found = list
                .iter()
                .any(|l| compare(&v, &lit(l)) == Some(Ordering::Equal));
            Some(found != *negated)
        }
        Expr::Like(a, pattern, negated) => match value(a, cols, r) {
            V::Str(s) => Some(like(&s, pattern) != *negated),
            V::Json(serde_json::Value::String(s)) => Some(like(&s, pattern) != *negated),
            _ => None,
        },
        Expr::IsNull(a, negated) => {
            let null = matches!(
                value(a, cols, r),
                V::Null | V::Json(serde_json::Value::Null)
            );
            Some(null != *negated)
        }
        Expr::ArrayContains(a, kind, values) => {
            let elems: Vec<V> = match value(a, cols, r) {
                V::List(list) => (0..list.len()).map(|i| owned(scalar(&list, i))).collect(),
                V::Json(serde_json::Value::Array(items)) => {
                    items.into_iter().map(json_value).collect()
                }
                _ => return None,
            };
            let has = |l: &Literal| {
                elems
                    .iter()
                    .any(|e| compare(e, &lit(l)) == Some(Ordering::Equal))
            };
            Some(match kind {
                Contains::One | Contains::Any => values.iter().any(has),
                Contains::All => values.iter().all(has),
            })
        }
        Expr::Truth(a) => match value(a, cols, r) {
            V::Bool(b) => Some(b),
            V::Json(serde_json::Value::Bool(b)) => Some(b),
            _ => None,
        },
        Expr::And(..) | Expr::Or(..) | Expr::Not(..) => None,
    }
}

fn lit(l: &Literal) -> V<'static> {
    match l {
        Literal::Int(i) => V::Int(*i),
        Literal::Float(f) => V::Float(*f),
        Literal::Str(s) => V::Str(Cow::Owned(s.clone())),
        Literal::Bool(b) => V::Bool(*b),
    }
}

fn value<'a>(o: &Operand, cols: &'a dyn Columns, r: usize) -> V<'a> {
    match o {
        Operand::Literal(l) => lit(l),
        Operand::ArrayLength(name) => match cols.column(name) {
            Some(c) if c.is_valid(r) => match c.data_type() {
                DataType::List(_) => V::Int(i64::from(c.as_list::<i32>().value_length(r))),
                _ => V::Null,
            },
            _ => V::Null,
        },
        Operand::Field { name, path } => {
            let Some(c) = cols.column(name) else {
                return V::Null;
            };
            if c.is_null(r) {
                return V::Null;
            }
            let mut v = scalar(c, r);
            for step in path {
                v = match (v, step) {
                    (V::Str(text), _) => match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(j) => step_json(j, step),
                        Err(_) => V::Null,
                    },
                    (V::Json(j), _) => step_json(j, step),
                    (V::List(list), PathStep::Index(i)) => match usize::try_from(*i) {
                        Ok(i) if i < list.len() && list.is_valid(i) => owned(scalar(&list, i)),
                        _ => V::Null,
                    },
                    _ => V::Null,
                };
            }
            // A JSON field read whole stays text; a step into it yields JSON values.
            match v {
                V::Json(j) => json_value(j),
                other => other,
            }
        }
    }
}

fn owned(v: V<'_>) -> V<'static> {
    match v {
        V::Str(s) => V::Str(Cow::Owned(s.into_owned())),
        V::Null => V::Null,
        V::Int(i) => V::Int(i),
        V::Float(f) => V::Float(f),
        V::Bool(b) => V::Bool(b),
        V::Json(j) => V::Json(j),
        V::List(l) => V::List(l),
    }
}

fn step_json(j: serde_json::Value, step: &PathStep) -> V<'static> {
    let next = match (j, step) {
        (serde_json::Value::Object(mut m), PathStep::Key(k)) => m.remove(k),
        (serde_json::Value::Array(mut a), PathStep::Index(i)) => usize::try_from(*i)
            .ok()
            .filter(|i| *i < a.len())
            .map(|i| a.swap_remove(i)),
        _ => None,
    };
    next.map_or(V::Null, V::Json)
}

fn json_value(j: serde_json::Value) -> V<'static> {
    match j {
        serde_json::Value::Null => V::Null,
        serde_json::Value::Bool(b) => V::Bool(b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(V::Int)
            .or_else(|| n.as_f64().map(V::Float))
            .unwrap_or(V::Null),
        serde_json::Value::String(s) => V::Str(Cow::Owned(s)),
        other => V::Json(other),
    }
}

fn scalar(c: &ArrayRef, r: usize) -> V<'_> {
    if c.is_null(r) {
        return V::Null;
    }
    match c.data_type() {
        DataType::Boolean => V::Bool(c.as_boolean().value(r)),
        DataType::Int8 => V::Int(i64::from(c.as_primitive::<Int8Type>().value(r))),
        DataType::Int16 => V::Int(i64::from(c.as_primitive::<Int16Type>().value(r))),
        DataType::Int32 => V::Int(i64::from(c.as_primitive::<Int32Type>().value(r))),
        DataType::Int64 => V::Int(c.as_primitive::<Int64Type>().value(r)),
        DataType::Float32 => V::Float(f64::from(c.as_primitive::<Float32Type>().value(r))),
        DataType::Float64 => V::Float(c.as_primitive::<Float64Type>().value(r)),
        DataType::Utf8 => V::Str(Cow::Borrowed(c.as_string::<i32>().value(r))),
        DataType::List(_) => V::List(c.as_list::<i32>().value(r)),
        _ => V::Null,
    }
}

fn compare(a: &V, b: &V) -> Option<Ordering> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::Int(x), V::Float(y)) => (*x as f64).partial_cmp(y),
        (V::Float(x), V::Int(y)) => x.partial_cmp(&(*y as f64)),
        (V::Float(x), V::Float(y)) => x.partial_cmp(y),
        (V::Str(x), V::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// SQL LIKE: `%` any run of characters, `_` exactly one, `\` escapes.
pub(crate) fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let mut p: Vec<(char, bool)> = Vec::new(); // (char, literal?)
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                p.push((n, true));
            }
        } else {
            p.push((c, false));
        }
    }
    // Iterative wildcard match with backtracking to the last `%`.
    let (mut i, mut j) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while i < s.len() {
        if j < p.len()
            && (p[j] == ('_', false)
                || (p[j].0 == s[i] && (p[j].1 || (p[j].0 != '%' && p[j].0 != '_'))))
        {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == ('%', false) {
            star = Some(j);
            mark = i;
            j += 1;
        } else if let Some(st) = star {
            j = st + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while j < p.len() && p[j] == ('%', false) {
        j += 1;
    }
    j == p.len()
}
