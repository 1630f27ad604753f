//! `etl init` and `etl plan` on a database with every awkward shape, and one clear message
//! (with the documented exit code) for each kind of bad input.

use std::process::Command;

use serde_json::Value;

use crate::support::{etl, fresh_db, server_url, sql, stderr, stdout, write};

const AWKWARD: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN short_text AS varchar(40);
CREATE TABLE composite (doc int, chunk int, body text, emb vector(3), PRIMARY KEY (doc, chunk));
CREATE TABLE nokey (x int, v vector(2));
CREATE TABLE uuidkey (id uuid PRIMARY KEY, h halfvec(4), s sparsevec(1000), b bit(16), m mood, d short_text);
CREATE SCHEMA "Knowledge Base";
CREATE TABLE "Knowledge Base"."Doc Chunks" ("ID" bigint PRIMARY KEY, "Body" text NOT NULL, embedding vector(3) NOT NULL);
CREATE TABLE events (id bigint, at timestamptz NOT NULL, v vector(3), PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE kitchen (id int PRIMARY KEY, tags text[], nums int[], grid int[][], doc jsonb, j json,
  price numeric(20,4), small numeric(10,2), free numeric, ip inet, at timestamptz, day date,
  nv vector(3), flag boolean, r real, dp double precision, si smallint);
CREATE INDEX ON kitchen USING hnsw (nv vector_ip_ops) WITH (m = 8, ef_construction = 32);
CREATE TABLE empty (id int PRIMARY KEY, v vector(2));
INSERT INTO composite VALUES (1, 1, 'a', '[1,2,3]');
INSERT INTO events VALUES (1, '2024-06-01', '[1,2,3]'), (2, '2025-06-01', NULL);
ANALYZE;
"#;

fn password(url: &str) -> String {
    let after = url.split("://").nth(1).unwrap();
    let userinfo = after.split('@').next().unwrap();
    userinfo.split(':').nth(1).unwrap_or("").to_string()
}

fn plan_json(file: &std::path::Path, pw: &str) -> (i32, Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["plan", file.to_str().unwrap(), "--format", "json"])
        .env("PGPASSWORD", pw)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o.status.code().unwrap(), v, stderr(&o))
}

fn field<'a>(plan: &'a Value, collection: &str, name: &str) -> &'a Value {
    let t = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["collection"] == collection)
        .unwrap_or_else(|| panic!("no collection {collection}"));
    t["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {collection}: {t}"))
}

#[test]
fn init_writes_a_mapping_that_plan_accepts_and_shows_right() {
    let url = fresh_db("initplan");
    sql(&url, AWKWARD);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mapping.yaml");
    let o = etl([
        "init",
        "--source",
        &url,
        "--target",
        "./data",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let yaml = fs_err::read_to_string(&out).unwrap();
    let pw = password(&url);
    assert!(!yaml.contains(&pw), "the password leaked into the mapping");
    // Partitions are not tables of their own.
    assert!(!yaml.contains("events_2024"), "{yaml}");

    let (code, plan, err) = plan_json(&out, &pw);
    assert_eq!(code, 0, "plan refused the init mapping: {err}\n{yaml}");
    assert_eq!(plan["runnable"], true);
    assert!(!plan.to_string().contains(&pw));
    assert_eq!(plan["tables"].as_array().unwrap().len(), 7);

    // Composite and missing keys get an auto ID; the key columns stay.
    assert_eq!(field(&plan, "composite", "id")["auto_id"], true);
    assert_eq!(field(&plan, "composite", "doc")["data_type"], "INT32");
    assert_eq!(field(&plan, "nokey", "id")["auto_id"], true);
    // uuid key, halfvec, sparsevec, bit, enum, domain.
    let id = field(&plan, "uuidkey", "id");
    assert_eq!(
        (id["data_type"].as_str(), id["primary_key"].as_bool()),
        (Some("VARCHAR"), Some(true))
    );
    assert_eq!(field(&plan, "uuidkey", "h")["data_type"], "FLOAT16_VECTOR");
    assert_eq!(field(&plan, "uuidkey", "h")["dim"], 4);
    assert_eq!(
        field(&plan, "uuidkey", "s")["data_type"],
        "SPARSE_FLOAT_VECTOR"
    );
    assert_eq!(
        field(&plan, "uuidkey", "s")["index"]["type"],
        "SPARSE_INVERTED_INDEX"
    );
    assert_eq!(field(&plan, "uuidkey", "b")["data_type"], "BINARY_VECTOR");
    assert_eq!(field(&plan, "uuidkey", "b")["dim"], 16);
    assert_eq!(field(&plan, "uuidkey", "m")["data_type"], "VARCHAR");
    assert_eq!(field(&plan, "uuidkey", "d")["max_length"], 40);
    // Quoted mixed-case names.
    let t = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["collection"] == "Doc_Chunks")
        .unwrap();
    assert_eq!(t["source"], "\"Knowledge Base\".\"Doc Chunks\"");
    assert_eq!(field(&plan, "Doc_Chunks", "ID")["primary_key"], true);
    assert_eq!(field(&plan, "Doc_Chunks", "embedding")["nullable"], false);
    // Partitioned: one table, estimated across its partitions.
    let ev = plan["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["collection"] == "events")
        .unwrap();
    assert_eq!(ev["partitioned"], true);
    assert_eq!(ev["estimated_rows"], 2);
    assert_eq!(field(&plan, "events", "at")["data_type"], "VARCHAR");
    // Arrays, JSON, numerics, inet, the source's own index, a nullable vector.
    assert_eq!(field(&plan, "kitchen", "tags")["element_type"], "VARCHAR");
    assert_eq!(field(&plan, "kitchen", "nums")["element_type"], "INT32");
    assert_eq!(field(&plan, "kitchen", "grid")["data_type"], "JSON");
    assert_eq!(field(&plan, "kitchen", "doc")["data_type"], "JSON");
    assert_eq!(field(&plan, "kitchen", "j")["data_type"], "JSON");
    assert_eq!(field(&plan, "kitchen", "price")["data_type"], "VARCHAR");
    assert_eq!(field(&plan, "kitchen", "small")["data_type"], "DOUBLE");
    assert_eq!(field(&plan, "kitchen", "free")["data_type"], "VARCHAR");
    assert_eq!(field(&plan, "kitchen", "ip")["data_type"], "VARCHAR");
    assert_eq!(field(&plan, "kitchen", "r")["data_type"], "FLOAT");
    assert_eq!(field(&plan, "kitchen", "si")["data_type"], "INT16");
    let nv = field(&plan, "kitchen", "nv");
    assert_eq!(nv["nullable"], true);
    assert_eq!(nv["index"]["metric"], "IP");
    assert_eq!(nv["index"]["hnsw"]["M"], 8);
    // init spells the source's index out, and says where it came from.
    assert!(
        yaml.contains("from the source's index kitchen_nv_idx"),
        "{yaml}"
    );
    // The empty table is planned like any other.
    assert_eq!(field(&plan, "empty", "v")["dim"], 2);

    // The table report shows the same.
    let o = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["plan", out.to_str().unwrap()])
        .env("PGPASSWORD", &pw)
        .output()
        .unwrap();
    let text = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        text.contains("Table \"Knowledge Base\".\"Doc Chunks\" → collection Doc_Chunks"),
        "{text}"
    );
    assert!(
        text.contains("halfvec(4)") && text.contains("FLOAT16_VECTOR(4)"),
        "{text}"
    );
    assert!(text.contains(": runnable"), "{text}");
}

#[test]
fn init_with_tables_and_a_required_fix() {
    let url = fresh_db("initfix");
    sql(
        &url,
        "CREATE TABLE blobs (id int PRIMARY KEY, data bytea, odd bit(12)); CREATE TABLE other (id int PRIMARY KEY);",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.yaml");
    let o = etl([
        "init",
        "--source",
        &url,
        "--tables",
        "public.blobs",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let yaml = fs_err::read_to_string(&out).unwrap();
    assert!(!yaml.contains("other"), "{yaml}");
    assert!(yaml.contains("REQUIRED FIX"), "{yaml}");
    let (code, plan, _) = plan_json(&out, &password(&url));
    assert_eq!(code, 1);
    assert_eq!(plan["runnable"], false);
    let fixes = plan["tables"][0]["required_fixes"].as_array().unwrap();
    assert_eq!(fixes.len(), 2, "{fixes:?}");

    let o = etl(["init", "--source", &url, "--tables", "public.blobz"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "table `public.blobz` does not exist in the source; did you mean `public.blobs`?"
        ),
        "{}",
        stderr(&o)
    );
}

fn mapping(url: &str, tables: &str) -> String {
    format!("version: 1\nsource:\n  postgres: {url}\ntarget:\n  engine: ./data\ntables:\n{tables}")
}

fn assert_plan_fails(file: &std::path::Path, code: i32, wanted: &[&str]) {
    let o = etl(["plan", file.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{err}");
    for w in wanted {
        assert!(err.contains(w), "expected {w:?} in: {err}");
    }
    assert!(
        stdout(&o).is_empty(),
        "nothing runs, nothing is printed: {}",
        stdout(&o)
    );
}

#[test]
fn bad_input_gets_one_clear_message_each() {
    let url = fresh_db("badinput");
    sql(
        &url,
        "CREATE TABLE items (id int PRIMARY KEY, title text, embedding vector(3));",
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good_table = "  - source: public.items\n";

    let f = write(d, "malformed.yaml", "version: 1\nsource: [postgres\n");
    assert_plan_fails(&f, 2, &["malformed.yaml:"]);

    let f = write(
        d,
        "key.yaml",
        &mapping(
            &url,
            "  - source: public.items\n    fields:\n      - source: embedding\n        index: { type: HNSW, metirc: COSINE }\n",
        ),
    );
    assert_plan_fails(
        &f,
        2,
        &[
            "key.yaml:10:",
            "unknown key `metirc`; did you mean `metric`?",
        ],
    );

    let f = write(
        d,
        "table.yaml",
        &mapping(&url, "  - source: public.itemz\n"),
    );
    assert_plan_fails(
        &f,
        2,
        &[
            "table.yaml:7:5",
            "table `public.itemz` does not exist",
            "did you mean `public.items`?",
        ],
    );

    let f = write(
        d,
        "column.yaml",
        &mapping(
            &url,
            "  - source: public.items\n    fields:\n      - source: titel\n",
        ),
    );
    assert_plan_fails(
        &f,
        2,
        &[
            "column.yaml:9:9",
            "column `titel` does not exist in table `public.items`; did you mean `title`?",
        ],
    );

    let f = write(
        d,
        "override.yaml",
        &mapping(
            &url,
            "  - source: public.items\n    fields:\n      - source: title\n        type: FLOAT_VECTOR\n",
        ),
    );
    assert_plan_fails(
        &f,
        2,
        &[
            "override.yaml:10:9",
            "`title`",
            "`text` and cannot become FLOAT_VECTOR",
        ],
    );

    // Nothing listens on port 1.
    let dead = url.replacen(
        &url[url.rfind(':').unwrap()..url.rfind('/').unwrap()],
        ":1",
        1,
    );
    let f = write(d, "unreachable.yaml", &mapping(&dead, good_table));
    assert_plan_fails(
        &f,
        2,
        &["cannot reach Postgres at postgres://postgres:***@127.0.0.1:1/"],
    );

    let pw = password(&url);
    let wrong = url.replacen(&format!(":{pw}@"), ":not-the-password@", 1);
    let f = write(d, "password.yaml", &mapping(&wrong, good_table));
    let o = etl(["plan", f.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("authentication failed for user `postgres`"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "password leaked: {err}");

    let f = write(d, "ok.yaml", &mapping(&url, good_table));
    let o = etl(["plan", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let _ = server_url();
}
