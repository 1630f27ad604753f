//! The optimizer rule that turns `ORDER BY <distance>(column, constant) LIMIT k` over a
//! collection into an index search.
//!
//! It matches, after DataFusion's own rules have merged the LIMIT into the sort, a sort with a
//! fetch on one key that is `l2_distance` / `cosine_distance` (ascending) or `inner_product`
//! (descending) of a vector column and a constant, above only projections, aliases and
//! filters, down to a collection scan. The scan becomes a [`SearchTable`] of the same shape
//! that yields the `k` nearest rows passing the filters (translated to a Milvus expression);
//! the sort and filters stay, so the result is ordered by the exact distance. Anything else,
//! a filter it cannot translate, an index built for another metric, NULLS FIRST, is left to
//! the exact plan, which gives the same answer more slowly.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::expr::{InList, Like, ScalarFunction};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, Projection, TableScan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use etl_engine::{Collection, FieldType, QueryVector};
use serde_json::Value;

use super::table::{CollectionTable, SearchTable};
use super::udf::DistanceFn;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct VectorSearchRule;

impl OptimizerRule for VectorSearchRule {
    fn name(&self) -> &str {
        "vector_search"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        plan.transform_down(|node| match try_rewrite(&node)? {
            Some(new) => Ok(Transformed::yes(new)),
            None => Ok(Transformed::no(node)),
        })
    }
}

/// What the sort asks for.
struct Wanted {
    column: String,
    func: DistanceFn,
    query: Value,
    k: usize,
}

fn try_rewrite(node: &LogicalPlan) -> DfResult<Option<LogicalPlan>> {
    let LogicalPlan::Sort(sort) = node else {
        return Ok(None);
    };
    let (Some(k), [key]) = (sort.fetch, sort.expr.as_slice()) else {
        return Ok(None);
    };
    // The sort key, looked through an alias in the projection right below it.
    let (expr, start): (Expr, &LogicalPlan) = match (&key.expr, sort.input.as_ref()) {
        (Expr::Column(c), LogicalPlan::Projection(p)) => match output_expr(p, &c.name) {
            Some(e) if !matches!(e, Expr::Column(_)) => (e.clone(), p.input.as_ref()),
            _ => (key.expr.clone(), sort.input.as_ref()),
        },
        (e, _) => (e.clone(), sort.input.as_ref()),
    };
    let Some(mut wanted) = distance_call(&expr, k) else {
        return Ok(None);
    };
    let Some((_, ascending)) = wanted.func.metric() else {
        return Ok(None);
    };
    if key.asc != ascending {
        return Ok(None);
    }
    // Walk down to the scan. Names change only at projections: the vector column is followed
    // through each (it must stay a plain column), and a filter is kept only when every column
    // it reads reaches the scan under the same name.
    let mut levels: Vec<&LogicalPlan> = Vec::new();
    let mut at = start;
    let scan = loop {
        match at {
            LogicalPlan::Projection(p) => {
                levels.push(at);
                at = &p.input;
            }
            LogicalPlan::Filter(f) => {
                levels.push(at);
                at = &f.input;
            }
            LogicalPlan::SubqueryAlias(a) => at = &a.input,
            LogicalPlan::TableScan(t) => break t,
            _ => return Ok(None),
        }
    };
    let mut filters = Vec::new();
    for (i, level) in levels.iter().enumerate() {
        match level {
            LogicalPlan::Projection(p) => match column_below(p, &wanted.column) {
                Some(name) => wanted.column = name,
                None => return Ok(None),
            },
            LogicalPlan::Filter(f) => {
                let below = &levels[i + 1..];
                let unchanged = f.predicate.column_refs().iter().all(|c| {
                    let mut name = c.name.clone();
                    for l in below {
                        if let LogicalPlan::Projection(p) = l {
                            match column_below(p, &name) {
                                Some(n) => name = n,
                                None => return false,
                            }
                        }
                    }
                    name == c.name
                });
                if !unchanged {
                    return Ok(None);
                }
                filters.push(f.predicate.clone());
            }
            _ => {}
        }
    }
    let provider = source_as_provider(&scan.source)?;
    let Some(table) = provider.downcast_ref::<CollectionTable>() else {
        return Ok(None);
    };
    filters.extend(scan.filters.iter().cloned());
    let Some(search) = search_table(&table.collection, &wanted, &filters, key.nulls_first) else {
        return Ok(None);
    };
    let new_scan = LogicalPlan::TableScan(TableScan {
        source: provider_as_source(Arc::new(search)),
        ..scan.clone()
    });
    let input = Arc::unwrap_or_clone(sort.input.clone());
    let replaced = input.transform_down(|n| match n {
        LogicalPlan::TableScan(t) if t.table_name == scan.table_name => {
            Ok(Transformed::yes(new_scan.clone()))
        }
        other => Ok(Transformed::no(other)),
    })?;
    let mut new_sort = sort.clone();
    new_sort.input = Arc::new(replaced.data);
    Ok(Some(LogicalPlan::Sort(new_sort)))
}

/// The expression a projection outputs under `name`.
fn output_expr<'a>(p: &'a Projection, name: &str) -> Option<&'a Expr> {
    p.expr.iter().find_map(|e| match e {
        Expr::Alias(a) if a.name == name => Some(a.expr.as_ref()),
        Expr::Column(c) if c.name == name => Some(e),
        other
            if !matches!(other, Expr::Alias(_) | Expr::Column(_))
                && other.schema_name().to_string() == name =>
        {
            Some(other)
        }
        _ => None,
    })
}

/// The input column a projection's output `name` is, when it is a plain column.
fn column_below(p: &Projection, name: &str) -> Option<String> {
    match output_expr(p, name)? {
        Expr::Column(c) => Some(c.name.clone()),
        _ => None,
    }
}

fn distance_call(expr: &Expr, k: usize) -> Option<Wanted> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = expr else {
        return None;
    };
    let f = DistanceFn::from_name(func.name())?;
    let [a, b] = args.as_slice() else { return None };
    let (col, lit) = match (a, b) {
        (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => (c, v),
        _ => return None,
    };
    Some(Wanted {
        column: col.name.clone(),
        func: f,
        query: literal_vector(lit)?,
        k,
    })
}

/// A constant vector: `'[1,2,3]'` or an array literal.
fn literal_vector(v: &ScalarValue) -> Option<Value> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => serde_json::from_str(s).ok(),
        ScalarValue::List(_) | ScalarValue::FixedSizeList(_) | ScalarValue::LargeList(_) => {
            let arr = v.to_array_of_size(1).ok()?;
            let json = etl_engine::convert::to_json(arr.as_ref(), 0, None);
            json.is_array().then_some(json)
        }
        _ => None,
    }
}

fn search_table(
    c: &Collection,
    w: &Wanted,
    filters: &[Expr],
    nulls_first: bool,
) -> Option<SearchTable> {
    let field = c.schema().field(&w.column)?;
    if !matches!(
        field.data_type,
        FieldType::FloatVector | FieldType::Float16Vector
    ) {
        return None;
    }
    // NULLS FIRST puts rows without a vector at the top, which a search never returns.
    if nulls_first && field.nullable {
        return None;
    }
    // Asking for every row: the exact plan costs the same and needs no index.
    if w.k as u64 >= c.count_rows() {
        return None;
    }
    let (metric, _) = w.func.metric()?;
    // An index built for another metric cannot rank by this one.
    if let Some(ix) = c.manifest().indexes.get(&w.column)
        && ix.metric.is_some_and(|m| m != metric)
    {
        return None;
    }
    let query = QueryVector::from_json(field, &w.query).ok()?;
    let filter = if filters.is_empty() {
        None
    } else {
        let parts: Option<Vec<String>> = filters.iter().map(milvus_filter).collect();
        let text = parts?
            .into_iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" and ");
        // Only what the engine's own parser accepts for this schema.
        c.parse_filter(&text).ok()?;
        Some(text)
    };
    Some(SearchTable::new(
        c.clone(),
        w.column.clone(),
        query,
        metric,
        w.k,
        filter,
    ))
}

/// A SQL predicate as a Milvus filter expression, when it has one.
fn milvus_filter(e: &Expr) -> Option<String> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => {
                let word = if *op == Operator::And { "and" } else { "or" };
                Some(format!(
                    "({}) {word} ({})",
                    milvus_filter(left)?,
                    milvus_filter(right)?
                ))
            }
            _ => {
                let sym = match op {
                    Operator::Eq => "==",
                    Operator::NotEq => "!=",
                    Operator::Lt => "<",
                    Operator::LtEq => "<=",
                    Operator::Gt => ">",
                    Operator::GtEq => ">=",
                    _ => return None,
                };
                match (&**left, &**right) {
                    (Expr::Column(c), Expr::Literal(v, _)) => {
                        Some(format!("{} {sym} {}", ident(&c.name)?, literal(v)?))
                    }
                    (Expr::Literal(v, _), Expr::Column(c)) => {
                        Some(format!("{} {sym} {}", literal(v)?, ident(&c.name)?))
                    }
                    _ => None,
                }
            }
        },
        Expr::Not(inner) => Some(format!("not ({})", milvus_filter(inner)?)),
        Expr::IsNull(inner) => match &**inner {
            Expr::Column(c) => Some(format!("{} is null", ident(&c.name)?)),
            _ => None,
        },
        Expr::IsNotNull(inner) => match &**inner {
            Expr::Column(c) => Some(format!("{} is not null", ident(&c.name)?)),
            _ => None,
        },
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let Expr::Column(c) = &**expr else {
                return None;
            };
            let items: Option<Vec<String>> = list
                .iter()
                .map(|l| {
                    if let Expr::Literal(v, _) = l {
                        literal(v)
                    } else {
                        None
                    }
                })
                .collect();
            Some(format!(
                "{} {}in [{}]",
                ident(&c.name)?,
                if *negated { "not " } else { "" },
                items?.join(", ")
            ))
        }
        Expr::Like(Like {
            negated: false,
            expr,
            pattern,
            escape_char: None,
            case_insensitive: false,
        }) => match (&**expr, &**pattern) {
            (Expr::Column(c), Expr::Literal(v, _)) => {
                Some(format!("{} like {}", ident(&c.name)?, literal(v)?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Words the filter parser reads as keywords or literals, not field names.
const RESERVED: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "like",
    "is",
    "null",
    "true",
    "false",
    "array_contains",
    "array_contains_all",
    "array_contains_any",
    "array_length",
];

fn ident(name: &str) -> Option<String> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&name.to_ascii_lowercase().as_str());
    ok.then(|| name.to_string())
}

/// A string in the filter syntax, whose lexer knows `\\`, `\"`, `\n` and `\t` only: other
/// control characters, and backslashes (LIKE gives them a meaning of its own), are declined.
fn string_literal(s: &str) -> Option<String> {
    if s.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    Some(format!("\"{}\"", s.replace('"', "\\\"")))
}

fn literal(v: &ScalarValue) -> Option<String> {
    if v.is_null() {
        return None;
    }
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => string_literal(s),
        ScalarValue::Boolean(Some(b)) => Some(b.to_string()),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_) => Some(v.to_string()),
        // The engine compares in f64: a REAL constant keeps its exact f32 value.
        ScalarValue::Float32(Some(f)) if f.is_finite() => Some(format!("{:?}", f64::from(*f))),
        ScalarValue::Float64(Some(f)) if f.is_finite() => Some(format!("{f:?}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn sql_predicates_become_milvus_filters() {
        let e = col("cat")
            .eq(lit("c1"))
            .and(col("n").gt(lit(3i64)).or(col("n").is_null()));
        assert_eq!(
            milvus_filter(&e).unwrap(),
            r#"(cat == "c1") and ((n > 3) or (n is null))"#
        );
        let e = col("n").in_list(vec![lit(1i64), lit(2i64)], true);
        assert_eq!(milvus_filter(&e).unwrap(), "n not in [1, 2]");
        // Functions it does not know leave the query to the exact plan.
        assert!(
            milvus_filter(&datafusion::functions::expr_fn::upper(col("cat")).eq(lit("C1")))
                .is_none()
        );
        assert!(milvus_filter(&col("$meta").eq(lit("x"))).is_none());
        // Strings keep their exact value or are declined; REAL constants keep their f32 value.
        assert_eq!(
            milvus_filter(&col("cat").eq(lit(r#"a "b""#))).unwrap(),
            r#"cat == "a \"b\"""#
        );
        assert!(milvus_filter(&col("cat").not_eq(lit("\r"))).is_none());
        assert!(milvus_filter(&col("cat").like(lit("a\\%"))).is_none());
        assert_eq!(
            milvus_filter(&col("score").lt_eq(lit(0.1f32))).unwrap(),
            format!("score <= {:?}", f64::from(0.1f32))
        );
        assert!(milvus_filter(&col("true").is_not_null()).is_none());
    }
}
