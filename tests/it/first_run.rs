//! What new users hit first (issue 16), on the table shapes langchain-postgres' `PGVector`
//! writes (`../shared/REFERENCE.md`): a collection table without a vector column, an embedding
//! table whose `vector` column declares no dimension, a generated tsvector. `etl init` → `etl
//! plan` (exit 0) → `etl run` → `etl verify` clean must work on the first try.

use serde_json::Value;

use crate::run::{etl_pw, init, verify_json};
use crate::support::{fresh_db, sql, stderr, stdout};

#[test]
fn a_langchain_shaped_store_migrates_on_the_first_try() {
    let url = fresh_db("first_run");
    sql(
        &url,
        "CREATE TABLE langchain_pg_collection (uuid uuid PRIMARY KEY, name varchar NOT NULL, cmetadata json);
         CREATE TABLE langchain_pg_embedding (id varchar PRIMARY KEY, collection_id uuid REFERENCES langchain_pg_collection, \
             embedding vector, document varchar, cmetadata jsonb, \
             tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(document, ''))) STORED);
         INSERT INTO langchain_pg_collection VALUES ('5f0e7ae2-3a8c-4d6a-9d5b-0a7b6f1c2d3e', 'docs', '{\"k\": 1}');
         INSERT INTO langchain_pg_embedding (id, collection_id, embedding, document, cmetadata)
             SELECT 'doc-' || i, '5f0e7ae2-3a8c-4d6a-9d5b-0a7b6f1c2d3e',
                    ARRAY(SELECT sin(i * 0.1 * k) FROM generate_series(1, 8) k)::real[]::vector,
                    'chunk ' || i, jsonb_build_object('page', i % 7)
             FROM generate_series(1, 500) i;
         CREATE TABLE items_ivf (id bigint PRIMARY KEY, v vector(8));
         INSERT INTO items_ivf SELECT i, ARRAY(SELECT cos(i * 0.3 * k) FROM generate_series(1, 8) k)::real[]::vector
             FROM generate_series(1, 400) i;
         CREATE INDEX items_ivf_v ON items_ivf USING ivfflat (v vector_l2_ops) WITH (lists = 4);
         DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET ivfflat.probes = 3', current_database()); END $$;
         ANALYZE;",
    );
    let dir = tempfile::tempdir().unwrap();
    let mapping = init(&url, dir.path());
    let text = std::fs::read_to_string(&mapping).unwrap();
    assert!(text.contains("dim: 8"), "init reads the dimension: {text}");
    assert!(text.contains("dim 8 inferred from the data"), "{text}");
    // pgvector's IVFFlat keeps its kind, its lists and the database's probes.
    assert!(
        text.contains("type: IVF_FLAT, metric: L2, params: { nlist: 4, nprobe: 3 }"),
        "{text}"
    );

    let o = etl_pw(
        &url,
        &["plan", mapping.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let tables = plan["tables"].as_array().unwrap();
    let emb = tables
        .iter()
        .find(|t| t["collection"] == "langchain_pg_embedding")
        .unwrap();
    let suggestions = emb["suggestions"].to_string();
    assert!(suggestions.contains("generated column"), "{suggestions}");
    assert!(!suggestions.contains("no vector field"), "{suggestions}");

    // The table without vectors loads too; the run does not refuse what the plan accepted.
    let o = etl_pw(
        &url,
        &[
            "run",
            mapping.to_str().unwrap(),
            "--quiet",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}\n{}", stderr(&o), stdout(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let written: Vec<(String, u64)> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["collection"].as_str().unwrap().to_string(),
                t["rows_written"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        written.contains(&("langchain_pg_collection".into(), 1)),
        "{written:?}"
    );
    assert!(
        written.contains(&("langchain_pg_embedding".into(), 500)),
        "{written:?}"
    );
    let ivf = tables
        .iter()
        .find(|t| t["collection"] == "items_ivf")
        .unwrap();
    let v = ivf["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "v")
        .unwrap();
    assert_eq!(v["index"]["type"], "IVF_FLAT", "{v}");
    assert_eq!(v["index"]["ivf"]["nlist"], 4, "{v}");
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "{v}");

    // --quiet alone prints nothing on success.
    let o = etl_pw(
        &url,
        &["run", mapping.to_str().unwrap(), "--quiet", "--restart"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "--quiet prints nothing");

    // Similarity search on the table without vectors is refused, saying why.
    let data = dir.path().join("data");
    let o = etl_pw(
        &url,
        &[
            "search",
            "--target",
            data.to_str().unwrap(),
            "--collection",
            "langchain_pg_collection",
            "--vector",
            "[1]",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no vector field"), "{}", stderr(&o));
}
