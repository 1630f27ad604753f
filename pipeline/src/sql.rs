//! SQL over collections (`etl query`): every collection of a target directory is a DataFusion
//! table, pgvector's distance functions are UDFs, and an optimizer rule answers
//! `ORDER BY <distance>(column, constant) LIMIT k` with an index search.

mod rule;
mod table;
mod udf;

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use etl_engine::Database;

pub use rule::VectorSearchRule;
pub use table::{CollectionTable, SearchTable};
pub use udf::{DistanceFn, DistanceUdf};

use crate::error::PipelineError;

/// A SQL session over the collections of `target`.
pub fn session(target: &Path) -> Result<SessionContext, PipelineError> {
    let db = Database::open_existing(target)?;
    let ctx = SessionContext::new();
    for f in DistanceFn::ALL {
        ctx.register_udf(DistanceUdf::udf(f));
    }
    ctx.add_optimizer_rule(Arc::new(VectorSearchRule));
    for name in db.list()? {
        let c = db.collection(&name)?;
        ctx.register_table(name.as_str(), Arc::new(CollectionTable::new(c)))
            .map_err(PipelineError::from_datafusion)?;
    }
    Ok(ctx)
}

/// Runs one statement; returns its schema and batches.
pub async fn query(
    target: &Path,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>), PipelineError> {
    let ctx = session(target)?;
    let df = ctx.sql(sql).await.map_err(sql_error)?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(sql_error)?;
    Ok((schema, batches))
}

fn sql_error(e: datafusion::error::DataFusionError) -> PipelineError {
    match PipelineError::from_datafusion(e) {
        PipelineError::DataFusion { source } => PipelineError::Usage {
            message: format!("SQL: {source}"),
        },
        other => other,
    }
}

/// The rows as one JSON array of objects (column name → value).
pub fn rows_json(schema: &SchemaRef, batches: &[RecordBatch]) -> serde_json::Value {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let row: serde_json::Map<String, serde_json::Value> = schema
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| {
                    (
                        f.name().clone(),
                        etl_engine::convert::to_json(c.as_ref(), r, None),
                    )
                })
                .collect();
            rows.push(serde_json::Value::Object(row));
        }
    }
    serde_json::Value::Array(rows)
}

/// The rows as a text table.
pub fn rows_table(batches: &[RecordBatch]) -> Result<String, PipelineError> {
    datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .map(|t| t.to_string())
        .map_err(|e| PipelineError::Internal {
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::{FixedSizeListArray, Float32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field as ArrowField};
    use etl_engine::{
        CollectionSchema, Field, FieldType, HnswParams, IndexSpec, IndexType, Metric,
    };

    use super::*;

    const DIM: usize = 8;

    fn vector(i: usize) -> Vec<f32> {
        (0..DIM)
            .map(|k| {
                ((i * 7 + k * 13) % 29) as f32 / 29.0 - 0.5 + (i as f32 * 0.37 + k as f32).sin()
            })
            .collect()
    }

    /// 2,000 rows in two segments, emb indexed with HNSW under `metric`.
    fn collection(dir: &Path, metric: Metric) {
        let schema = CollectionSchema {
            fields: vec![
                Field {
                    primary_key: true,
                    ..Field::new("id", FieldType::Int64)
                },
                Field {
                    max_length: Some(8),
                    nullable: true,
                    ..Field::new("cat", FieldType::Varchar)
                },
                Field {
                    dim: Some(DIM as u32),
                    ..Field::new("emb", FieldType::FloatVector)
                },
            ],
            auto_id: false,
            dynamic_field: false,
            shards: 1,
            description: String::new(),
        };
        let db = Database::open(dir).unwrap();
        let c = db.create_collection("docs", schema.clone()).unwrap();
        for half in 0..2 {
            let ids: Vec<usize> = (half * 1000..(half + 1) * 1000).collect();
            let values: Vec<f32> = ids.iter().flat_map(|i| vector(*i)).collect();
            let item = Arc::new(ArrowField::new("item", DataType::Float32, false));
            let batch = RecordBatch::try_new(
                schema.arrow_schema(),
                vec![
                    Arc::new(Int64Array::from(
                        ids.iter().map(|i| *i as i64).collect::<Vec<_>>(),
                    )),
                    Arc::new(StringArray::from(
                        ids.iter()
                            .map(|i| Some(format!("c{}", i % 5)))
                            .collect::<Vec<_>>(),
                    )),
                    Arc::new(FixedSizeListArray::new(
                        item,
                        DIM as i32,
                        Arc::new(Float32Array::from(values)),
                        None,
                    )),
                ],
            )
            .unwrap();
            let mut w = c.writer().unwrap();
            w.write(&batch).unwrap();
            w.commit(BTreeMap::new()).unwrap();
        }
        let spec = IndexSpec {
            ivf: None,
            index_type: IndexType::Hnsw,
            metric: Some(metric),
            hnsw: Some(HnswParams::default()),
        };
        c.create_index("emb", spec, &|_| {}).unwrap();
    }

    async fn ids(dir: &Path, sql: &str) -> Vec<i64> {
        let (schema, batches) = query(dir, sql).await.unwrap();
        rows_json(&schema, &batches)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    }

    async fn plan(dir: &Path, sql: &str) -> String {
        let (schema, batches) = query(dir, &format!("EXPLAIN {sql}")).await.unwrap();
        rows_json(&schema, &batches).to_string()
    }

    fn q() -> String {
        format!("{:?}", vector(4242))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn order_by_distance_limit_is_an_index_search_with_the_exact_answer() {
        let dir = tempfile::tempdir().unwrap();
        collection(dir.path(), Metric::Cosine);
        let q = q();
        let fast = format!(
            "SELECT id, cosine_distance(emb, '{q}') AS d FROM docs WHERE cat = 'c1' ORDER BY d LIMIT 10"
        );
        // `+ 0` hides the distance from the rule: the same query, answered exactly.
        let exact = format!(
            "SELECT id, cosine_distance(emb, '{q}') + 0 AS d FROM docs WHERE cat = 'c1' ORDER BY d LIMIT 10"
        );
        assert!(plan(dir.path(), &fast).await.contains("VectorSearchExec: collection=docs, field=emb, metric=COSINE, k=10, filter=(cat == \\\"c1\\\")"));
        assert!(!plan(dir.path(), &exact).await.contains("VectorSearchExec"));
        let (got, want) = (ids(dir.path(), &fast).await, ids(dir.path(), &exact).await);
        assert_eq!(want.len(), 10);
        // HNSW on 400 passing rows: allow one miss in ten.
        let hits = got.iter().filter(|i| want.contains(i)).count();
        assert!(hits >= 9, "index search {got:?} vs exact {want:?}");
        // Alias-free ORDER BY and OFFSET too.
        let s =
            format!("SELECT id FROM docs ORDER BY cosine_distance(emb, '{q}') LIMIT 3 OFFSET 2");
        assert!(plan(dir.path(), &s).await.contains("k=5"));
        assert_eq!(ids(dir.path(), &s).await.len(), 3);
        // Fewer rows pass than asked for: the search hands every row to the exact sort.
        let s = format!(
            "SELECT id FROM docs WHERE id < 3 ORDER BY cosine_distance(emb, '{q}') LIMIT 10"
        );
        assert!(plan(dir.path(), &s).await.contains("VectorSearchExec"));
        let mut got = ids(dir.path(), &s).await;
        got.sort();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_shapes_stay_exact() {
        let dir = tempfile::tempdir().unwrap();
        collection(dir.path(), Metric::L2);
        let q = q();
        for (sql, rewritten) in [
            (
                format!("SELECT id FROM docs ORDER BY l2_distance(emb, '{q}') LIMIT 5"),
                true,
            ),
            // Another metric than the index's, L1 (no index metric), no LIMIT,
            // and a filter with a function the engine lacks: all exact.
            (
                format!("SELECT id FROM docs ORDER BY cosine_distance(emb, '{q}') LIMIT 5"),
                false,
            ),
            (
                format!("SELECT id FROM docs ORDER BY l1_distance(emb, '{q}') LIMIT 5"),
                false,
            ),
            // NULLS FIRST is safe only when no row lacks a vector (emb is not nullable here).
            (
                format!("SELECT id FROM docs ORDER BY l2_distance(emb, '{q}') NULLS FIRST LIMIT 5"),
                true,
            ),
            // As many rows as the collection holds: exact.
            (
                format!("SELECT id FROM docs ORDER BY l2_distance(emb, '{q}') LIMIT 5000"),
                false,
            ),
            (
                format!("SELECT id FROM docs ORDER BY l2_distance(emb, '{q}')"),
                false,
            ),
            (
                format!(
                    "SELECT id FROM docs WHERE upper(cat) = 'C1' ORDER BY l2_distance(emb, '{q}') LIMIT 5"
                ),
                false,
            ),
        ] {
            assert_eq!(
                plan(dir.path(), &sql).await.contains("VectorSearchExec"),
                rewritten,
                "{sql}"
            );
            assert!(!ids(dir.path(), &sql).await.is_empty(), "{sql}");
        }
        // The exact L2 answer matches a brute force over the same vectors.
        let qv = vector(4242);
        let mut all: Vec<(f32, i64)> = (0..2000)
            .map(|i| {
                (
                    etl_engine::vector::dense_distance(Metric::L2, &qv, &vector(i)),
                    i as i64,
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let want: Vec<i64> = all[..5].iter().map(|p| p.1).collect();
        let got = ids(
            dir.path(),
            &format!("SELECT id FROM docs ORDER BY l2_distance(emb, '{q}') + 0 LIMIT 5"),
        )
        .await;
        assert_eq!(got, want);
        // A vector column renamed in a subquery is followed to the stored field.
        let renamed = format!(
            "SELECT id FROM (SELECT id, emb AS v FROM docs) t ORDER BY l2_distance(v, '{q}') LIMIT 5"
        );
        assert!(
            plan(dir.path(), &renamed)
                .await
                .contains("VectorSearchExec")
        );
        assert_eq!(ids(dir.path(), &renamed).await, want);
        // SQL aggregates read every live row.
        let (schema, batches) = query(dir.path(), "SELECT count(*) AS n FROM docs")
            .await
            .unwrap();
        assert_eq!(rows_json(&schema, &batches)[0]["n"], 2000);
        // Errors name the problem.
        let err = query(dir.path(), "SELECT l2_distance(emb, '[1,2]') FROM docs")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("different vector dimensions 8 and 2"), "{err}");
    }
}
