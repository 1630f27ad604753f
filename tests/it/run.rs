//! `etl run` against the real server: every shape migrates and searches like pgvector; a run
//! killed with SIGKILL resumes to exactly the source's rows; bad rows go to the rejects file.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{fresh_db, sql, stderr, stdout, write};

pub(crate) fn password(url: &str) -> String {
    let after = url.split("://").nth(1).unwrap();
    after
        .split('@')
        .next()
        .unwrap()
        .split(':')
        .nth(1)
        .unwrap_or("")
        .to_string()
}

pub(crate) fn etl_pw(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .env("PGPASSWORD", password(url))
        .env("PGPASSFILE", "/nonexistent")
        .env("MILVUS_TOKEN", crate::support::MILVUS_TOKEN)
        .output()
        .unwrap()
}

/// `etl init` for the database into `dir`, with the engine under `dir/data`.
pub(crate) fn init(url: &str, dir: &Path) -> std::path::PathBuf {
    let mapping = dir.join("mapping.yaml");
    let data = dir.join("data");
    let o = etl_pw(
        url,
        &[
            "init",
            "--source",
            url,
            "--target",
            data.to_str().unwrap(),
            "-o",
            mapping.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    mapping
}

/// Runs etl and parses its stdout as JSON (callers assert on the JSON, not the exit code).
fn etl_json(url: &str, args: &[&str]) -> Value {
    let o = etl_pw(url, args);
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| {
        panic!(
            "etl {args:?} printed no JSON ({e}): {}\n{}",
            stdout(&o),
            stderr(&o)
        )
    })
}

fn run_json(url: &str, mapping: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "run",
        mapping.to_str().unwrap(),
        "--format",
        "json",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = etl_pw(url, &args);
    assert!(
        o.status.success(),
        "etl run failed: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

pub(crate) const SHAPES: &str = r#"
CREATE TABLE composite (doc int, chunk int, body text, emb vector(3), PRIMARY KEY (doc, chunk));
CREATE TABLE nokey (x int, v vector(2));
CREATE TABLE uuidkey (id uuid PRIMARY KEY, h halfvec(4), s sparsevec(50), b bit(16));
CREATE TABLE events (id bigint, at timestamptz NOT NULL, v vector(3), PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE kitchen (id int PRIMARY KEY, tags text[], nums int[], doc jsonb, price numeric(20,4), day date, nv vector(3), flag boolean);
CREATE TABLE empty (id int PRIMARY KEY, v vector(2));
CREATE TABLE docs (id bigint PRIMARY KEY, cat text, emb vector(8));
INSERT INTO composite SELECT d, c, 'body ' || d || '/' || c, ARRAY[d, c, d + c]::real[]::vector FROM generate_series(1, 20) d, generate_series(1, 5) c;
INSERT INTO nokey SELECT i, ARRAY[i, -i]::real[]::vector FROM generate_series(1, 50) i;
INSERT INTO uuidkey SELECT md5(i::text)::uuid, ARRAY[i, 1, 0, -i]::real[]::halfvec, ('{' || (i % 50) + 1 || ':' || i || '}/50')::sparsevec, (i % 65536)::bit(16) FROM generate_series(1, 40) i;
INSERT INTO events SELECT i, CASE WHEN i % 2 = 0 THEN '2024-06-01'::timestamptz ELSE '2025-06-01'::timestamptz END + i * interval '1 hour', ARRAY[i, i, i]::real[]::vector FROM generate_series(1, 30) i;
INSERT INTO kitchen SELECT i, ARRAY['t' || i, 'common'], ARRAY[i, i * 2], jsonb_build_object('color', CASE WHEN i % 3 = 0 THEN 'red' ELSE 'blue' END, 'n', i), i * 1.2345, DATE '2024-01-01' + i, CASE WHEN i % 4 = 0 THEN NULL ELSE ARRAY[i, 0, 1]::real[]::vector END, i % 2 = 0 FROM generate_series(1, 60) i;
INSERT INTO docs SELECT i, 'c' || (i % 5), ARRAY(SELECT sin(i * k + k) FROM generate_series(1, 8) k)::real[]::vector FROM generate_series(1, 500) i;
ANALYZE;
"#;

#[test]
fn every_shape_migrates_and_searches_like_pgvector() {
    let url = fresh_db("run_shapes");
    sql(&url, SHAPES);
    let dir = tempfile::tempdir().unwrap();
    let mapping = init(&url, dir.path());
    let report = run_json(&url, &mapping, &[]);
    for (t, n) in [
        ("public.composite", 100),
        ("public.nokey", 50),
        ("public.uuidkey", 40),
        ("public.events", 30),
        ("public.kitchen", 60),
        ("public.empty", 0),
        ("public.docs", 500),
    ] {
        let r = table(&report, t);
        assert_eq!(r["rows_read"], n, "{t}: {r}");
        assert_eq!(r["rows_written"], n, "{t}: {r}");
        assert_eq!(r["collection_rows"], n, "{t}: {r}");
        assert_eq!(r["rows_rejected"], 0, "{t}: {r}");
    }
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    // The job is recorded as successful.
    let jobs = etl_json(
        &url,
        &["jobs", "list", "--target", data, "--format", "json"],
    );
    assert_eq!(jobs[0]["state"], "Successful");
    // Search: the same nearest neighbours and cosine distances as pgvector's exact `<=>`.
    let q = "[0.3,-0.2,0.9,0.1,0.0,-0.5,0.4,0.2]";
    let o = etl_pw(
        &url,
        &[
            "search",
            "--target",
            data,
            "--collection",
            "docs",
            "--vector",
            q,
            "--limit",
            "5",
            "--output-fields",
            "cat",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let hits: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let want = crate::support::query_rows(
        &url,
        &format!("SELECT id, (emb <=> '{q}')::float8 FROM docs ORDER BY emb <=> '{q}' LIMIT 5"),
    );
    same_as_pgvector(&hits, "distance", &want);
    assert!(hits[0]["cat"].is_string());
    // SQL: pgvector's own query text, answered through the index with pgvector's numbers.
    let stmt = format!("SELECT id, cosine_distance(emb, '{q}') AS d FROM docs ORDER BY d LIMIT 5");
    let o = etl_pw(
        &url,
        &["query", "--target", data, "--format", "json", &stmt],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    same_as_pgvector(&rows, "d", &want);
    let o = etl_pw(
        &url,
        &["query", "--target", data, &format!("EXPLAIN {stmt}")],
    );
    assert!(
        stdout(&o).contains("VectorSearchExec: collection=docs, field=emb, metric=COSINE, k=5"),
        "{}",
        stdout(&o)
    );
    // A filter on JSON and arrays from the kitchen table, checked against Postgres.
    let o = etl_pw(
        &url,
        &[
            "search",
            "--target",
            data,
            "--collection",
            "kitchen",
            "--vector",
            "[1,0,1]",
            "--limit",
            "100",
            "--filter",
            r#"doc["color"] == "red" and array_contains(tags, "common") and flag"#,
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let hits: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut got: Vec<i64> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_i64().unwrap())
        .collect();
    got.sort();
    let want: Vec<i64> = crate::support::query_rows(&url, "SELECT id::int8, 0::float8 FROM kitchen WHERE doc->>'color' = 'red' AND 'common' = ANY(tags) AND flag AND nv IS NOT NULL ORDER BY id").into_iter().map(|r| r.0).collect();
    assert_eq!(got, want);

    // Verify: every table clean, by the key each shape has.
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "{v}");
    for (t, n, by) in [
        ("public.composite", 100, "source key (doc, chunk)"),
        ("public.nokey", 50, "row hash"),
        ("public.uuidkey", 40, "primary key (id)"),
        ("public.events", 30, "source key (id, at)"),
        ("public.kitchen", 60, "primary key (id)"),
        ("public.empty", 0, "primary key (id)"),
        ("public.docs", 500, "primary key (id)"),
    ] {
        let r = table(&v, t);
        assert_eq!(
            (r["truth_rows_seen"].as_u64(), r["success"].as_u64()),
            (Some(n), Some(n)),
            "{t}: {r}"
        );
        assert_eq!(
            (
                r["missing"].as_u64(),
                r["mismatch"].as_u64(),
                r["extraneous"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "{t}: {r}"
        );
        assert_eq!(r["keyed_by"], by, "{t}");
    }
    let o = etl_pw(&url, &["verify", mapping.to_str().unwrap()]);
    assert!(stdout(&o).contains("public.docs → docs [ok, by primary key (id)]: truth rows seen: 500, success: 500, missing: 0, mismatch: 0, extraneous: 0"), "{}", stdout(&o));

    // One row changed (a vector element, then a text field elsewhere), one deleted, one added.
    sql(&url, "UPDATE docs SET emb = (SELECT emb FROM docs WHERE id = 9) WHERE id = 8; DELETE FROM docs WHERE id = 10; INSERT INTO docs VALUES (1000, 'new', '[1,2,3,4,5,6,7,8]');
        UPDATE composite SET body = 'changed' WHERE doc = 1 AND chunk = 2; DELETE FROM composite WHERE doc = 2 AND chunk = 3; INSERT INTO composite VALUES (99, 1, 'n', '[1,1,1]');
        UPDATE uuidkey SET h = '[3,1,0,-3.001953125]' WHERE id = md5('3')::uuid;");
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["clean"], false);
    for t in ["public.docs", "public.composite"] {
        let r = table(&v, t);
        assert_eq!(
            (
                r["missing"].as_u64(),
                r["mismatch"].as_u64(),
                r["extraneous"].as_u64()
            ),
            (Some(1), Some(1), Some(1)),
            "{t}: {r}"
        );
    }
    let docs = table(&v, "public.docs");
    assert_eq!(docs["success"], 498);
    let kinds: Vec<(&str, &Value)> = docs["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), &d["key"]))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("missing", &Value::from(1000)),
            ("mismatch", &Value::from(8)),
            ("extraneous", &Value::from(10))
        ]
    );
    let changed: Vec<&str> = docs["differences"][1]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert_eq!(changed, vec!["emb"]);
    let comp = table(&v, "public.composite");
    assert_eq!(
        comp["differences"][1]["key"],
        serde_json::json!({"doc": 1, "chunk": 2})
    );
    assert_eq!(comp["differences"][1]["columns"][0]["column"], "body");
    // A halfvec compares as FLOAT16 bit for bit: its last element moved by one half-float step.
    let u = table(&v, "public.uuidkey");
    assert_eq!(
        (u["success"].as_u64(), u["mismatch"].as_u64()),
        (Some(39), Some(1)),
        "{u}"
    );
    assert_eq!(u["differences"][0]["columns"][0]["column"], "h");
    for t in [
        "public.nokey",
        "public.kitchen",
        "public.events",
        "public.empty",
    ] {
        assert_eq!(
            table(&v, t)["success"],
            table(&v, t)["truth_rows_seen"],
            "{t}"
        );
    }
    let o = etl_pw(
        &url,
        &["verify", mapping.to_str().unwrap(), "--tables", "docs"],
    );
    let text = stdout(&o);
    assert!(
        text.contains("truth rows seen: 500, success: 498, missing: 1, mismatch: 1, extraneous: 1"),
        "{text}"
    );
    assert!(text.contains("emb: source ["), "{text}");
}

/// The rows' `id`s are pgvector's, in order, and their `distance_key` values its distances.
fn same_as_pgvector(rows: &Value, distance_key: &str, want: &[(i64, f64)]) {
    let got: Vec<(i64, f64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r[distance_key].as_f64().unwrap()))
        .collect();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        want.iter().map(|w| w.0).collect::<Vec<_>>()
    );
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g.1 - w.1).abs() < 1e-5,
            "distance {} vs pgvector {}",
            g.1,
            w.1
        );
    }
}

/// `etl verify FILE --format json`: the exit code and the report.
pub(crate) fn verify_json(url: &str, mapping: &Path) -> (Option<i32>, Value) {
    let o = etl_pw(
        url,
        &["verify", mapping.to_str().unwrap(), "--format", "json"],
    );
    let v = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}\n{}",
            stdout(&o),
            stderr(&o)
        )
    });
    (o.status.code(), v)
}

#[test]
fn a_killed_run_resumes_to_exactly_the_source_rows() {
    let url = fresh_db("run_kill");
    // No key: auto IDs, so a range loaded twice would show as duplicates.
    sql(
        &url,
        "CREATE TABLE big (x int, v vector(16)); INSERT INTO big SELECT i, ARRAY(SELECT (i * k % 97)::real FROM generate_series(1, 16) k)::vector FROM generate_series(1, 300000) i; ANALYZE;",
    );
    let dir = tempfile::tempdir().unwrap();
    let mapping = init(&url, dir.path());
    let manifest = dir.path().join("data/big/manifest.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args([
            "run",
            mapping.to_str().unwrap(),
            "--quiet",
            "--parallelism",
            "2",
            "--batch-size",
            "2000",
        ])
        .env("PGPASSWORD", password(&url))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once at least one range is committed (and before the run ends).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let committed = std::fs::read_to_string(&manifest)
            .map(|m| m.contains("range/"))
            .unwrap_or(false);
        if committed || Instant::now() > deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("the run finished before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let data = dir.path().join("data");
    let jobs_list = || {
        etl_json(
            &url,
            &[
                "jobs",
                "list",
                "--target",
                data.to_str().unwrap(),
                "--format",
                "json",
            ],
        )
    };
    let jobs = jobs_list();
    assert_eq!(
        jobs[0]["state"], "InProgress",
        "a killed job stays in progress: {jobs}"
    );
    // The same command again resumes and ends with exactly the source's rows.
    let report = run_json(
        &url,
        &mapping,
        &["--parallelism", "2", "--batch-size", "2000"],
    );
    assert_eq!(report["resumed"], true, "{report}");
    let t = table(&report, "public.big");
    assert!(t["ranges_resumed"].as_u64().unwrap() >= 1, "{t}");
    assert_eq!(t["collection_rows"], 300_000, "{t}");
    let d = etl_json(
        &url,
        &[
            "collections",
            "describe",
            "--target",
            data.to_str().unwrap(),
            "big",
            "--format",
            "json",
        ],
    );
    assert_eq!(d["rows"], 300_000);
    let jobs = jobs_list();
    assert_eq!(
        jobs.as_array().unwrap().len(),
        1,
        "the resumed run continues the same job"
    );
    assert_eq!(jobs[0]["state"], "Successful");
    // And the source's rows, each exactly once (a table without a key: compared by row hash).
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "{v}");
    let t = table(&v, "public.big");
    assert_eq!(
        (
            t["truth_rows_seen"].as_u64(),
            t["success"].as_u64(),
            t["extraneous"].as_u64()
        ),
        (Some(300_000), Some(300_000), Some(0)),
        "{t}"
    );
}

#[test]
fn bad_rows_go_to_the_rejects_file_with_their_reason() {
    let url = fresh_db("run_rejects");
    // pgvector refuses NaN, so the vector comes from a real[] column, as hand-rolled embeddings do.
    sql(&url, "CREATE TABLE items (id int PRIMARY KEY, name text, v real[], tags int[]);
        INSERT INTO items VALUES (1, 'ok', '{1,2,3}', '{1}'), (2, NULL, '{1,2,3}', '{1}'), (3, 'much too long', '{1,2,3}', '{1}'),
          (4, 'ok', '{1,2}', '{1}'), (5, 'ok', '{1,2,3}', '{1,2,3}'), (6, 'fine', '{4,5,6}', NULL), (7, 'nan', '{1,NaN,3}', '{1}'), (8, 'inf', '{1,2,Infinity}', '{1}');");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mapping = write(
        dir.path(),
        "m.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: {}\ntarget:\n  engine: {}\ntables:\n  - source: public.items\n    max_rejects: {{MAX}}\n    fields:\n      - {{ source: name, type: VARCHAR, max_length: 8, nullable: false }}\n      - {{ source: v, type: FLOAT_VECTOR, dim: 3 }}\n      - {{ source: tags, type: ARRAY, element_type: INT32, max_capacity: 2, nullable: true }}\n",
            url.replace(&format!(":{}@", password(&url)), "@"),
            data.display()
        ),
    );
    let text = std::fs::read_to_string(&mapping).unwrap();
    // With max_rejects 0 the run fails and names the file.
    std::fs::write(&mapping, text.replace("{MAX}", "0")).unwrap();
    let o = etl_pw(&url, &["run", mapping.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("max_rejects = 0") && stderr(&o).contains("items.jsonl"),
        "{}",
        stderr(&o)
    );
    // With room for them, every bad row is in the file with its reason; the good rows load.
    std::fs::write(&mapping, text.replace("{MAX}", "10")).unwrap();
    let report = run_json(&url, &mapping, &[]);
    let t = table(&report, "public.items");
    assert_eq!(
        (
            t["rows_read"].as_u64(),
            t["rows_written"].as_u64(),
            t["rows_rejected"].as_u64()
        ),
        (Some(8), Some(2), Some(6)),
        "{t}"
    );
    let rejects = std::fs::read_to_string(data.join("_rejects/items.jsonl")).unwrap();
    let lines: Vec<Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut by_key: Vec<(i64, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["primary_key"].as_i64().unwrap(),
                l["column"].as_str().unwrap().to_string(),
                l["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    by_key.sort();
    assert_eq!(
        by_key,
        vec![
            (2, "name".into(), "null_not_allowed".into()),
            (3, "name".into(), "too_long".into()),
            (4, "v".into(), "wrong_dimension".into()),
            (5, "tags".into(), "over_capacity".into()),
            (7, "v".into(), "not_finite".into()),
            (8, "v".into(), "not_finite".into()),
        ]
    );
    assert_eq!(lines[0]["table"], "public.items");
    // Verify counts rejected rows as missing and says why.
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(1), "{v}");
    let t = table(&v, "public.items");
    assert_eq!(
        (t["success"].as_u64(), t["missing"].as_u64()),
        (Some(2), Some(6)),
        "{t}"
    );
    assert!(
        t["differences"][0]["note"]
            .as_str()
            .unwrap()
            .starts_with("rejected by the mapping"),
        "{t}"
    );
}

#[test]
fn an_index_build_killed_midway_leaves_the_collection_whole_and_a_rerun_finishes() {
    let url = fresh_db("index_kill");
    sql(
        &url,
        "CREATE TABLE pts (id bigint PRIMARY KEY, v vector(16)); INSERT INTO pts SELECT i, ARRAY(SELECT sin(i * 0.01 * k + k) FROM generate_series(1, 16) k)::real[]::vector FROM generate_series(1, 40000) i; ANALYZE;",
    );
    let dir = tempfile::tempdir().unwrap();
    let mapping = init(&url, dir.path());
    // Segments of at most 10,000 rows, so four ranges stay four segments after the merge, each
    // with its own index commit.
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(&mapping, format!("{text}  max_segment_rows: 10000\n")).unwrap();
    run_json(&url, &mapping, &["--parallelism", "4"]);
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let manifest = dir.path().join("data/pts/manifest.json");
    let l2_segments = || -> usize {
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        m["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["indexes"]["v"]["spec"]["metric"] == "L2")
            .count()
    };
    let segments = {
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        m["segments"].as_array().unwrap().len()
    };
    assert!(segments >= 2, "want several segments, got {segments}");
    // Rebuild under another metric; SIGKILL once the first segment's new index is committed.
    let build = [
        "index",
        "build",
        "--target",
        data,
        "--collection",
        "pts",
        "--field",
        "v",
        "--type",
        "HNSW",
        "--metric",
        "L2",
        "--params",
        r#"{"M": 16, "efConstruction": 100}"#,
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(build)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while l2_segments() == 0 && Instant::now() < deadline {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the build finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let built = l2_segments();
    assert!(
        built >= 1 && built < segments,
        "killed midway: {built} of {segments} segments rebuilt"
    );
    // The last committed state is whole: every row, searchable (unbuilt segments exactly).
    let describe = || -> Value {
        let o = etl_pw(
            &url,
            &[
                "collections",
                "describe",
                "--target",
                data,
                "pts",
                "--format",
                "json",
            ],
        );
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let d = describe();
    assert_eq!(d["rows"], 40_000);
    let q = format!(
        "{:?}",
        (1..=16)
            .map(|k| ((777.0f64 * 0.01 * k as f64) + k as f64).sin() as f32)
            .collect::<Vec<f32>>()
    );
    let o = etl_pw(
        &url,
        &[
            "search",
            "--target",
            data,
            "--collection",
            "pts",
            "--vector",
            &q,
            "--limit",
            "3",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let hits: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(hits[0]["id"], 777, "{hits}");
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "{v}");
    // The same command again finishes the build.
    let o = etl_pw(&url, &build);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(l2_segments(), segments);
    let d = describe();
    assert_eq!(d["indexes"][0]["built_segments"], segments, "{d}");
    // The next writer removes what no manifest names: the killed attempt's files and the
    // indexes the rebuild replaced (kept until then for readers of the older manifest).
    let o = etl_pw(&url, &build);
    assert!(o.status.success(), "{}", stderr(&o));
    let referenced: Vec<String> = {
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        m["segments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                let mut f = vec![s["file"].as_str().unwrap().to_string()];
                f.extend(
                    s["indexes"]["v"]["files"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string()),
                );
                f
            })
            .collect()
    };
    for e in std::fs::read_dir(dir.path().join("data/pts")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            referenced.contains(&name)
                || ["manifest.json", ".lock", "state.json"].contains(&name.as_str()),
            "leftover file {name}"
        );
    }
}

#[test]
fn dynamic_fields_pack_into_meta_and_verify_clean() {
    let url = fresh_db("run_dynamic");
    sql(
        &url,
        "CREATE TABLE dyn (id int PRIMARY KEY, title text, score float8, tag text, v vector(2));
         INSERT INTO dyn SELECT i, 't' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE i / 4.0 END, 'g' || (i % 2), ARRAY[i, 1]::real[]::vector
         FROM generate_series(1, 30) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = crate::support::write(
        dir.path(),
        "dyn.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  engine: '{}'\ntables:\n  - source: public.dyn\n    fields:\n      - {{ source: score, dynamic: true }}\n      - {{ source: tag, dynamic: true }}\n",
            data.display()
        ),
    );
    let report = run_json(&url, &m, &[]);
    assert_eq!(
        table(&report, "public.dyn")["collection_rows"],
        30,
        "{report}"
    );
    let (code, v) = verify_json(&url, &m);
    assert_eq!(code, Some(0), "{v:#}");
    // The packed keys answer filters as fields do.
    let o = etl_pw(
        &url,
        &[
            "search",
            "--target",
            data.to_str().unwrap(),
            "--collection",
            "dyn",
            "--vector",
            "[1, 1]",
            "--filter",
            "tag == \"g1\" and score > 5",
            "--output-fields",
            "tag,score",
            "--limit",
            "50",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let hits: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<i64> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_i64().unwrap())
        .collect();
    let mut ids = ids;
    ids.sort();
    // Odd ids (tag g1) with i / 4 > 5 and a score (not every third): 23, 25, 29.
    assert_eq!(ids, vec![23, 25, 29], "{hits}");
}

/// An HNSW index with no params: `etl run` (the mapping's default) and `etl index build` (the
/// engine's default) store the same build parameters, pgvector's `m = 16, ef_construction = 64`.
#[test]
fn run_and_index_build_default_to_the_same_hnsw_params() {
    let url = fresh_db("hnsw_defaults");
    sql(
        &url,
        "CREATE TABLE pts (id int PRIMARY KEY, v vector(4));
         INSERT INTO pts SELECT i, ARRAY[i, i % 7, i % 3, 1]::real[]::vector FROM generate_series(1, 300) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = crate::support::write(
        dir.path(),
        "m.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  engine: '{}'\ntables:\n  - source: public.pts\n",
            data.display()
        ),
    );
    let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let params = || {
        let o = etl_pw(
            &url,
            &[
                "collections",
                "describe",
                "--target",
                data.to_str().unwrap(),
                "pts",
                "--format",
                "json",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let d: Value = serde_json::from_str(&stdout(&o)).unwrap();
        d["indexes"][0]["params"].clone()
    };
    let from_run = params();
    assert_eq!(from_run["efConstruction"], 64, "{from_run}");
    assert_eq!(from_run["M"], 16, "{from_run}");
    let o = etl_pw(
        &url,
        &[
            "index",
            "build",
            "--target",
            data.to_str().unwrap(),
            "--collection",
            "pts",
            "--field",
            "v",
            "--type",
            "HNSW",
            "--metric",
            "COSINE",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(params(), from_run);
}

/// The run report says where each table's time went: read, map, write, commit, merge, index
/// and load seconds, in `--format json` and in the human summary.
#[test]
fn the_report_breaks_each_table_down_by_phase() {
    let url = fresh_db("phases");
    sql(
        &url,
        "CREATE TABLE docs (id int PRIMARY KEY, v vector(8));
         INSERT INTO docs SELECT i, ARRAY[i % 5, i % 7, i % 3, 1, i % 11, 2, i % 13, 3]::real[]::vector
         FROM generate_series(1, 3000) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = write(
        dir.path(),
        "m.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  engine: '{}'\ntables:\n  - source: public.docs\n",
            data.display()
        ),
    );
    let report = etl_json(
        &url,
        &["run", m.to_str().unwrap(), "--quiet", "--format", "json"],
    );
    let phases = &report["tables"][0]["phases"];
    let keys: Vec<&str> = phases
        .as_object()
        .unwrap_or_else(|| panic!("no phases in {report}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["read", "map", "write", "commit", "merge", "index", "load"],
        "{phases}"
    );
    for step in ["read", "map", "write", "commit", "index"] {
        assert!(
            phases[step].as_f64().unwrap() > 0.0,
            "{step} took no time: {phases}"
        );
    }
    let seconds = report["tables"][0]["seconds"].as_f64().unwrap();
    assert!(
        phases["index"].as_f64().unwrap() <= seconds,
        "the index build outlasts the table: {report}"
    );
    let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--restart"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = stdout(&o);
    assert!(
        summary.contains("phases (s): read ") && summary.contains(" index "),
        "{summary}"
    );
}
