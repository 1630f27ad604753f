//! The stores real pgvector clients write (issue 16): langchain-postgres' `PGVector` (an untyped
//! `vector` column and a collection table without one) and `PGVectorStore`, llama-index's
//! `PGVectorStore` (a generated tsvector column, a bigserial key, `json` metadata) and Supabase's
//! `vecs` (its own schema), each made by the library itself from PyPI (pinned in
//! `datasets/client-stores.txt`, clustered deterministic embeddings made by
//! `datasets/client_stores.py`). `etl init` → `etl plan` (runnable as written) → `etl run` →
//! `etl verify` (clean on every table) → `etl search`, whose top 10 must match pgvector's exact
//! `<=>` answer (recall ≥ 0.95), unfiltered and filtered on each store's metadata JSON.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::run::{etl_pw, init, verify_json};
use crate::support::{fresh_db, query_strings, repo_root, stderr, stdout};

/// The venv with the pinned client libraries (made once by `scripts/client-stores-venv`).
fn clients_python() -> PathBuf {
    let o = Command::new("bash")
        .arg(repo_root().join("scripts/client-stores-venv"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    PathBuf::from(stdout(&o).trim())
}

/// A hit's or a row's key as text.
fn key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn stores_written_by_langchain_llama_index_and_vecs_migrate_on_the_first_try() {
    let url = fresh_db("client_stores");
    let o = Command::new(clients_python())
        .arg(repo_root().join("datasets/client_stores.py"))
        .args(["--url", &url, "--rows", "2000", "--dim", "64"])
        .output()
        .unwrap();
    assert!(o.status.success(), "client_stores.py: {}", stderr(&o));
    let made: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let stores = made["stores"].as_array().unwrap();
    assert_eq!(stores.len(), 4, "{made}");

    // init → plan: runnable as init wrote it (the untyped vector's dim read from the data).
    let dir = tempfile::tempdir().unwrap();
    let mapping = init(&url, dir.path());
    let m = mapping.to_str().unwrap();
    let written = std::fs::read_to_string(&mapping).unwrap();
    assert!(
        written.contains("dim 64 inferred from the data"),
        "{written}"
    );
    let o = etl_pw(&url, &["plan", m]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let plan = stdout(&o);
    assert!(plan.contains("text_search_tsv: generated column"), "{plan}");

    // run → verify: every table, the vector-less langchain_pg_collection included.
    let o = etl_pw(&url, &["run", m, "--quiet", "--format", "json"]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let collection_of = |table: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table)
            .unwrap_or_else(|| panic!("{table} not loaded: {report}"))["collection"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(report["tables"].as_array().unwrap().len(), 5, "{report}");
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "{v:#}");
    for t in v["tables"].as_array().unwrap() {
        assert_eq!(t["success"], t["truth_rows_seen"], "{t}");
    }

    // search: each store against pgvector's exact answer, without and with a metadata filter.
    let data = dir.path().join("data");
    for s in stores {
        let table = s["table"].as_str().unwrap();
        let (id, emb, meta) = (
            s["id"].as_str().unwrap(),
            s["embedding"].as_str().unwrap(),
            s["metadata"].as_str().unwrap(),
        );
        let (fk, fv) = (
            s["filter"]["key"].as_str().unwrap(),
            s["filter"]["value"].as_str().unwrap(),
        );
        let collection = collection_of(table);
        let qtable = etl_mappings::QualifiedName::parse(table).unwrap().quoted();
        let queries = query_strings(
            &url,
            &format!(
                "SELECT {emb}::text FROM {qtable} ORDER BY md5({id}::text) LIMIT 8",
                emb = etl_mappings::quote_ident(emb),
                id = etl_mappings::quote_ident(id)
            ),
        );
        let (mut hits, mut wanted) = (0usize, 0usize);
        let (mut fhits, mut fwanted) = (0usize, 0usize);
        for q in &queries {
            let q = &q[0];
            for filtered in [false, true] {
                let cond = if filtered {
                    format!(
                        "WHERE ({} ->> '{fk}') = '{fv}'",
                        etl_mappings::quote_ident(meta)
                    )
                } else {
                    String::new()
                };
                let want: HashSet<String> = query_strings(
                    &url,
                    &format!(
                        "SELECT {id}::text FROM {qtable} {cond} ORDER BY {emb} <=> '{q}' LIMIT 10",
                        emb = etl_mappings::quote_ident(emb),
                        id = etl_mappings::quote_ident(id)
                    ),
                )
                .into_iter()
                .map(|r| r[0].clone())
                .collect();
                let mut args = vec![
                    "search".to_string(),
                    "--target".into(),
                    data.display().to_string(),
                    "--collection".into(),
                    collection.clone(),
                    "--vector".into(),
                    q.clone(),
                    "--limit".into(),
                    "10".into(),
                    "--output-fields".into(),
                    meta.into(),
                    "--format".into(),
                    "json".into(),
                ];
                if filtered {
                    args.extend(["--filter".into(), format!("{meta}[\"{fk}\"] == \"{fv}\"")]);
                }
                let o = etl_pw(&url, &args.iter().map(String::as_str).collect::<Vec<_>>());
                assert!(o.status.success(), "{table}: {}", stderr(&o));
                let got: Value = serde_json::from_str(&stdout(&o)).unwrap();
                let got = got.as_array().unwrap();
                assert_eq!(got.len(), 10, "{table}: {got:?}");
                let found = got.iter().filter(|h| want.contains(&key(&h["id"]))).count();
                if filtered {
                    for h in got {
                        let m = match &h[meta] {
                            Value::String(text) => serde_json::from_str(text).unwrap(),
                            other => other.clone(),
                        };
                        assert_eq!(m[fk], fv, "{table}: a hit outside the filter: {h}");
                    }
                    (fhits, fwanted) = (fhits + found, fwanted + want.len());
                } else {
                    (hits, wanted) = (hits + found, wanted + want.len());
                }
            }
        }
        let recall = hits as f64 / wanted as f64;
        let frecall = fhits as f64 / fwanted as f64;
        assert!(recall >= 0.95, "{table}: recall@10 {recall}");
        assert!(frecall >= 0.95, "{table}: filtered recall@10 {frecall}");
    }
}
