//! Issue 15's report, as a user would meet it: a table of tight clusters (chunks of the same
//! document, near-duplicate items) migrated by `etl run` with HNSW, then every sampled row
//! searched by its own vector. Read in many ranges, it ends as one merged segment with one
//! graph; crashes during the merge and during the build leave the collection whole and the
//! same command finishes it.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::run::{etl_pw, init, password, verify_json};
use crate::support::{fresh_db, query_rows, sql, stderr, stdout};

const ROWS: i64 = 20_000;

/// 40 clusters in 64-d, each value within ±0.15 of its cluster's centre.
fn clustered_table(url: &str) {
    sql(
        url,
        &format!(
            "CREATE TABLE chunks (id bigint PRIMARY KEY, doc int, v vector(64)); \
             INSERT INTO chunks SELECT i, i % 40, ARRAY(SELECT sin((i % 40) * 1.7 * k + k) + 0.15 * sin(i * 0.37 * k + i) \
                 FROM generate_series(1, 64) k)::real[]::vector FROM generate_series(1, {ROWS}) i; ANALYZE;"
        ),
    );
}

fn run_with(url: &str, mapping: &Path, crash_at: Option<&str>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etl"));
    c.args([
        "run",
        mapping.to_str().unwrap(),
        "--parallelism",
        "4",
        "--quiet",
        "--format",
        "json",
    ])
    .env("PGPASSWORD", password(url))
    .env("PGPASSFILE", "/nonexistent");
    if let Some(p) = crash_at {
        c.env("ETL_CRASH_AT", p);
    }
    c.output().unwrap()
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("data/chunks/manifest.json")).unwrap())
        .unwrap()
}

fn live_rows(m: &Value) -> i64 {
    m["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rows"].as_i64().unwrap() - s["deleted"].as_i64().unwrap_or(0))
        .sum()
}

#[test]
fn tight_clusters_merged_indexed_and_every_row_found_by_its_own_vector() {
    let url = fresh_db("clustered");
    clustered_table(&url);
    let dir = tempfile::tempdir().unwrap();
    let mapping = init(&url, dir.path());
    let text = std::fs::read_to_string(&mapping)
        .unwrap()
        .replace("HNSW, metric: COSINE", "HNSW, metric: L2");
    assert!(text.contains("metric: L2"), "{text}");
    std::fs::write(&mapping, &text).unwrap();

    // Killed after the merged segment is written, before it is committed: the ranges'
    // segments are still the collection, whole.
    let o = run_with(&url, &mapping, Some("merge"));
    assert!(!o.status.success(), "the crash point was not reached");
    let m = manifest(dir.path());
    let ranges = m["segments"].as_array().unwrap().len();
    assert!(ranges >= 4, "read in several ranges: {ranges} segments");
    assert_eq!(live_rows(&m), ROWS);

    // Killed after the first index file is written: merged, not indexed.
    let o = run_with(&url, &mapping, Some("index"));
    assert!(!o.status.success(), "the crash point was not reached");
    let m = manifest(dir.path());
    assert_eq!(
        m["segments"].as_array().unwrap().len(),
        1,
        "merged into one"
    );
    assert_eq!(live_rows(&m), ROWS);
    assert!(m["segments"][0]["indexes"]["v"].is_null());

    // The same command finishes: one segment, one graph, every row once.
    let o = run_with(&url, &mapping, None);
    assert!(o.status.success(), "{}\n{}", stderr(&o), stdout(&o));
    let m = manifest(dir.path());
    assert_eq!(m["segments"].as_array().unwrap().len(), 1);
    assert_eq!(live_rows(&m), ROWS);
    assert_eq!(
        m["segments"][0]["indexes"]["v"]["spec"]["index_type"],
        "HNSW"
    );
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "{v}");

    // Every sampled row is found by its own vector (hnsw_rs lost 26 of these 100).
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let vectors = query_vectors(&url);
    let mut lost = Vec::new();
    for (id, vector) in vectors.iter().step_by(vectors.len() / 100) {
        let hits = search(&url, data, vector, 1);
        if hits[0]["id"] != *id && hits[0]["distance"].as_f64().unwrap() > 0.0 {
            lost.push(*id);
        }
    }
    assert!(
        lost.is_empty(),
        "rows not found by their own vector: {lost:?}"
    );

    // Top-10 agrees with pgvector's exact answer.
    let mut misses = 0;
    for (id, vector) in vectors.iter().step_by(vectors.len() / 20) {
        let want: Vec<i64> = query_rows(
            &url,
            &format!(
                "SELECT id, (v <-> (SELECT v FROM chunks WHERE id = {id}))::float8 FROM chunks ORDER BY 2, 1 LIMIT 10"
            ),
        )
        .into_iter()
        .map(|r| r.0)
        .collect();
        let got = search(&url, data, vector, 10);
        misses += got
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| !want.contains(&h["id"].as_i64().unwrap()))
            .count();
    }
    assert!(
        misses <= 10,
        "{misses} of 200 neighbours differ from pgvector's"
    );
}

/// (id, vector as JSON text) of every row, in id order.
fn query_vectors(url: &str) -> Vec<(i64, String)> {
    let ids: Vec<(i64, f64)> = query_rows(url, "SELECT id, 0::float8 FROM chunks ORDER BY id");
    let mut out = Vec::new();
    for chunk in ids.chunks(5_000) {
        let lo = chunk[0].0;
        let hi = chunk[chunk.len() - 1].0;
        for (id, text) in crate::support::query_text(
            url,
            &format!("SELECT id, v::text FROM chunks WHERE id BETWEEN {lo} AND {hi} ORDER BY id"),
        ) {
            out.push((id, text));
        }
    }
    out
}

fn search(url: &str, data: &str, vector: &str, limit: usize) -> Value {
    let o = etl_pw(
        url,
        &[
            "search",
            "--target",
            data,
            "--collection",
            "chunks",
            "--vector",
            vector,
            "--limit",
            &limit.to_string(),
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}
