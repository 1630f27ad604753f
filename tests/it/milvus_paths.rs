//! The multi-table pgvector database into the real Milvus 2.3.5 by both load paths (inserts
//! over gRPC; a file:// stage through the server's bulk import), each verified row by row and
//! searched against pgvector's exact neighbours; a bulk import killed with SIGKILL and run
//! again; and the bad inputs a user meets (wrong token, unreachable server, a collection that
//! is someone else's).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run::{SHAPES, etl_pw, password, verify_json};
use crate::support::{
    MILVUS_TOKEN, fresh_db, milvus_client, milvus_url, query_rows, sql, stderr, stdout, write,
};

/// A table with a NULL in every nullable scalar kind every other row.
const NULLS: &str = "
CREATE TABLE nulls (id int PRIMARY KEY, t text, n int, b boolean, j jsonb, a int[], d date, f float8, v vector(2) NOT NULL);
INSERT INTO nulls SELECT i,
  CASE WHEN i % 2 = 0 THEN NULL ELSE 'text ' || i END,
  CASE WHEN i % 2 = 0 THEN NULL ELSE i END,
  CASE WHEN i % 2 = 0 THEN NULL ELSE i % 3 = 0 END,
  CASE WHEN i % 2 = 0 THEN NULL ELSE jsonb_build_object('i', i, 'name', 'n' || i) END,
  CASE WHEN i % 2 = 0 THEN NULL WHEN i % 5 = 0 THEN ARRAY[i, NULL] ELSE ARRAY[i, i + 1] END,
  CASE WHEN i % 2 = 0 THEN NULL ELSE DATE '2024-01-01' + i END,
  CASE WHEN i % 2 = 0 THEN NULL ELSE i / 3.0 END,
  ARRAY[i, 1]::real[]::vector
FROM generate_series(1, 40) i;
";

fn target_url() -> String {
    milvus_url().replacen("http://", "milvus://", 1)
}

/// The mapping of every shape into collections suffixed with `tag`; `stage` adds a staged
/// import.
fn shapes_mapping(dir: &Path, url: &str, tag: &str, stage: Option<&Path>) -> PathBuf {
    let stage = stage
        .map(|p| format!("  stage: 'file://{}'\n", p.display()))
        .unwrap_or_default();
    let m = format!(
        "version: 1
source:
  postgres: '{url}'
target:
  milvus: '{milvus}'
{stage}tables:
  - source: public.composite
    collection: composite_{tag}
  - source: public.nokey
    collection: nokey_{tag}
  # Milvus 2.3 holds one vector field, and neither halfvec nor sparsevec: the bits stay.
  - source: public.uuidkey
    collection: uuidkey_{tag}
    exclude: [h, s]
  - source: public.events
    collection: events_{tag}
  # NULL vectors cannot be stored on 2.3: those rows are left out here, in run and verify.
  - source: public.kitchen
    collection: kitchen_{tag}
    where: nv IS NOT NULL
  - source: public.empty
    collection: empty_{tag}
  - source: public.docs
    collection: docs_{tag}
    fields:
      - {{ source: cat, partition_key: true }}
  - source: public.nulls
    collection: nulls_{tag}
    fields:
      - {{ source: f, dynamic: true }}
",
        milvus = milvus_url()
    );
    write(dir, &format!("milvus_{tag}.yaml"), &m)
}

/// `etl run --recreate` of `m`, its JSON report.
fn run_recreate(url: &str, m: &Path) -> Value {
    run_ok(
        url,
        &[
            "run",
            m.to_str().unwrap(),
            "--quiet",
            "--format",
            "json",
            "--recreate",
        ],
    )
}

fn run_ok(url: &str, args: &[&str]) -> Value {
    let o = etl_pw(url, args);
    assert!(
        o.status.success(),
        "etl {args:?}: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn table<'a>(report: &'a Value, t: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["table"] == t)
        .unwrap_or_else(|| panic!("{t} not in {report}"))
}

/// recall@10 of `etl search` on `collection` against pgvector's exact cosine neighbours, and
/// the largest difference between the two distances of a shared hit.
fn search_recall(url: &str, collection: &str) -> (f64, f64) {
    let mut hits = 0;
    let mut worst = 0f64;
    let queries = [7i64, 123, 250, 499];
    for q in queries {
        let want = query_rows(
            url,
            &format!(
                "SELECT id, (emb <=> (SELECT emb FROM docs WHERE id = {q}))::float8 FROM docs ORDER BY 2, id LIMIT 10"
            ),
        );
        let qv: Vec<f32> = (1..=8).map(|k| ((q * k + k) as f64).sin() as f32).collect();
        let qv = serde_json::to_string(&qv).unwrap();
        let got = run_ok(
            url,
            &[
                "search",
                "--target",
                &target_url(),
                "--collection",
                collection,
                "--vector",
                &qv,
                "--limit",
                "10",
                "--params",
                "{\"ef\": 64}",
                "--format",
                "json",
            ],
        );
        for h in got.as_array().unwrap() {
            let id = h["id"].as_i64().unwrap();
            if let Some((_, d)) = want.iter().find(|(w, _)| *w == id) {
                hits += 1;
                worst = worst.max((d - h["distance"].as_f64().unwrap()).abs());
            }
        }
    }
    (hits as f64 / (10 * queries.len()) as f64, worst)
}

fn assert_clean(url: &str, mapping: &Path) {
    let (code, v) = verify_json(url, mapping);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["clean"], true, "{v:#}");
    for t in v["tables"].as_array().unwrap() {
        assert_eq!(t["mismatch"], 0, "{t}");
        assert_eq!(t["missing"], 0, "{t}");
        assert_eq!(t["extraneous"], 0, "{t}");
        assert_eq!(t["success"], t["truth_rows_seen"], "{t}");
    }
}

const ROWS: [(&str, u64); 8] = [
    ("public.composite", 100),
    ("public.nokey", 50),
    ("public.uuidkey", 40),
    ("public.events", 30),
    ("public.kitchen", 45),
    ("public.empty", 0),
    ("public.docs", 500),
    ("public.nulls", 40),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_multi_table_database_reaches_milvus_by_both_paths_and_verifies_clean() {
    let url = fresh_db("milvus_paths");
    sql(&url, SHAPES);
    sql(&url, NULLS);
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let (client, _) = milvus_client().await;

    // 1. Inserts over gRPC.
    let tag = format!("i{pid}");
    let m = shapes_mapping(dir.path(), &url, &tag, None);
    // The plan says how NULLs are written on this server.
    let o = etl_pw(&url, &["plan", m.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("no NULL"), "{}", stdout(&o));
    let report = run_recreate(&url, &m);
    for (t, n) in ROWS {
        assert_eq!(table(&report, t)["collection_rows"], n, "{t}: {report}");
    }
    assert_clean(&url, &m);
    let (recall, worst) = search_recall(&url, &format!("docs_{tag}"));
    assert!(recall >= 0.95, "recall@10 {recall}");
    assert!(worst < 1e-4, "distances differ from pgvector's by {worst}");
    // A filtered search returns only matching rows, with the fields asked for.
    let hits = run_ok(
        &url,
        &[
            "search",
            "--target",
            &target_url(),
            "--collection",
            &format!("docs_{tag}"),
            "--vector",
            "[0.3,-0.2,0.9,0.1,0.0,-0.5,0.4,0.2]",
            "--filter",
            "cat == \"c1\"",
            "--output-fields",
            "cat",
            "--limit",
            "20",
            "--format",
            "json",
        ],
    );
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 20, "{hits:?}");
    assert!(
        hits.iter()
            .all(|h| h["cat"] == "c1" && h["id"].as_i64().unwrap() % 5 == 1),
        "{hits:?}"
    );
    // The partition key reached the server's schema.
    let docs = client
        .describe_collection(&format!("docs_{tag}"))
        .await
        .unwrap();
    assert!(
        docs.fields
            .iter()
            .any(|f| f.name == "cat" && f.is_partition_key),
        "{docs:?}"
    );
    // A changed row is found: verify is not blind on this target.
    sql(&url, "UPDATE nulls SET t = 'changed' WHERE id = 3");
    let (code, v) = verify_json(&url, &m);
    assert_eq!(code, Some(1), "{v:#}");
    let nulls = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.nulls")
        .unwrap();
    assert_eq!(nulls["mismatch"], 1, "{nulls}");
    assert!(nulls.to_string().contains("changed"), "{nulls}");
    sql(&url, "UPDATE nulls SET t = 'text 3' WHERE id = 3");

    // 2. Staged, then the server's bulk import of the files.
    let tag = format!("s{pid}");
    let stage = dir.path().join("stage");
    let m = shapes_mapping(dir.path(), &url, &tag, Some(&stage));
    let report = run_recreate(&url, &m);
    assert!(report["stage"]["files"].as_u64().unwrap() >= 7, "{report}");
    for (t, n) in ROWS {
        assert_eq!(table(&report, t)["collection_rows"], n, "{t}: {report}");
    }
    assert_clean(&url, &m);
    let (recall, _) = search_recall(&url, &format!("docs_{tag}"));
    assert!(recall >= 0.95, "recall@10 {recall}");
    // The same command again replaces its own earlier import: still each row once.
    let report = run_ok(
        &url,
        &["run", m.to_str().unwrap(), "--quiet", "--format", "json"],
    );
    assert_eq!(
        table(&report, "public.docs")["collection_rows"],
        500,
        "{report}"
    );
    assert_clean(&url, &m);

    for tag in [format!("i{pid}"), format!("s{pid}")] {
        for (t, _) in ROWS {
            let _ = client
                .drop_collection(&format!("{}_{tag}", t.trim_start_matches("public.")))
                .await;
        }
    }
}

fn etl_import(url: &str, stage: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etl"));
    c.args([
        "import",
        "--from",
        stage,
        "--target",
        &target_url(),
        "--quiet",
        "--format",
        "json",
    ])
    .args(extra)
    .env("PGPASSWORD", password(url))
    .env("MILVUS_TOKEN", MILVUS_TOKEN);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_import_killed_mid_way_resumes_without_duplicates() {
    let url = fresh_db("milvus_kill");
    sql(
        &url,
        "CREATE TABLE big (id bigint PRIMARY KEY, body text, emb vector(16));
         INSERT INTO big SELECT i, 'row ' || i, ARRAY(SELECT sin(i * k) FROM generate_series(1, 16) k)::real[]::vector
         FROM generate_series(1, 30000) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let coll = format!("big_{}", std::process::id());
    let m = write(
        dir.path(),
        "big.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  milvus: '{}'\ntables:\n  - source: public.big\n    collection: {coll}\n",
            milvus_url()
        ),
    );
    let stage = format!("file://{}", dir.path().join("stage").display());
    let o = etl_pw(
        &url,
        &[
            "stage",
            m.to_str().unwrap(),
            "--to",
            &stage,
            "--max-file-size",
            "100000",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (client, _) = milvus_client().await;
    if client.has_collection(&coll).await.unwrap() {
        client.drop_collection(&coll).await.unwrap();
    }

    // Killed once the server has import tasks for it.
    let mut child = etl_import(&url, &stage, &["--parallelism", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no import task appeared");
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("the import ended before it was killed: {err}");
        }
        if client.has_collection(&coll).await.unwrap()
            && !client.list_import_tasks(&coll).await.unwrap().is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The same command again: ends clean, each row once.
    let o: Output = etl_import(&url, &stage, &["--parallelism", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\n{}", stderr(&o), stdout(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let t = table(&report, "public.big");
    assert_eq!(t["collection_rows"], 30000, "{report}");
    assert!(t["ranges"].as_u64().unwrap() >= 3, "{report}");
    // The killed run's task was picked up (waited for or done), not started again.
    assert!(t["ranges_resumed"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["resumed"], true, "{report}");
    assert_clean(&url, &m);
    // The stage records what went in (the server forgets finished tasks after a day).
    let records: Vec<_> = std::fs::read_dir(dir.path().join("stage/_imports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&records[0]).unwrap()).unwrap();
    assert_eq!(
        rec["files"].as_array().unwrap().len() as u64,
        t["ranges"].as_u64().unwrap(),
        "{rec}"
    );
    // And again: nothing to do, nothing changes.
    let o = etl_import(&url, &stage, &[]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let t = table(&report, "public.big");
    assert_eq!(t["ranges_resumed"], t["ranges"], "{report}");
    assert_eq!(t["collection_rows"], 30000, "{report}");

    // Bad input. A collection that is not this stage's: refused unless --recreate.
    let other = format!("{stage}-other");
    let o = etl_pw(
        &url,
        &["stage", m.to_str().unwrap(), "--to", &other, "--quiet"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = etl_import(&url, &other, &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&coll) && stderr(&o).contains("--recreate"),
        "{}",
        stderr(&o)
    );
    let o = etl_import(&url, &other, &["--recreate"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // A wrong token: one clear message naming the user and the server, never the secret.
    let o = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["collections", "list", "--target", &target_url()])
        .env("MILVUS_TOKEN", "root:N0tTheSecret")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(err.contains("root") && err.contains("19530"), "{err}");
    assert!(!err.contains("N0tTheSecret"), "{err}");
    // An API key (no user in it) is a secret whole.
    let o = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["collections", "list", "--target", &target_url()])
        .env("MILVUS_TOKEN", "sk-N0tTheSecretKey")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(!stderr(&o).contains("N0tTheSecretKey"), "{}", stderr(&o));
    // Credentials in the URL are refused without echoing them.
    let o = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args([
            "collections",
            "list",
            "--target",
            "milvus://root:Hunter2@127.0.0.1:19530",
        ])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(!stderr(&o).contains("Hunter2"), "{}", stderr(&o));
    assert!(stderr(&o).contains("MILVUS_TOKEN"), "{}", stderr(&o));
    // No token at all on a server that wants one.
    let o = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["collections", "list", "--target", &target_url()])
        .env_remove("MILVUS_TOKEN")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("19530"), "{}", stderr(&o));
    // An unreachable server: one line naming it.
    let bad = write(
        dir.path(),
        "unreachable.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  milvus: 'http://127.0.0.1:9'\ntables:\n  - source: public.big\n"
        ),
    );
    let o = etl_pw(&url, &["run", bad.to_str().unwrap(), "--quiet"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("127.0.0.1:9"), "{}", stderr(&o));
    client.drop_collection(&coll).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_insert_resumes_without_duplicates() {
    let url = fresh_db("milvus_resume");
    sql(
        &url,
        "CREATE TABLE keyed (id bigint PRIMARY KEY, body text, emb vector(16));
         INSERT INTO keyed SELECT i, 'row ' || i, ARRAY(SELECT sin(i * k) FROM generate_series(1, 16) k)::real[]::vector
         FROM generate_series(1, 200000) i;
         CREATE TABLE unkeyed (x int, emb vector(4));
         INSERT INTO unkeyed SELECT i, ARRAY[i, 1, 0, -i]::real[]::vector FROM generate_series(1, 20000) i;
         ANALYZE;",
    );
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let m = write(
        dir.path(),
        "resume.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  milvus: '{}'\noptions:\n  parallelism: 4\ntables:\n  - source: public.keyed\n    collection: keyed_{pid}\n  - source: public.unkeyed\n    collection: unkeyed_{pid}\n",
            milvus_url()
        ),
    );
    let (client, _) = milvus_client().await;
    for c in [format!("keyed_{pid}"), format!("unkeyed_{pid}")] {
        if client.has_collection(&c).await.unwrap() {
            client.drop_collection(&c).await.unwrap();
        }
    }
    let record = dir
        .path()
        .join("_milvus_jobs")
        .join(format!("keyed_{pid}.json"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["run", m.to_str().unwrap(), "--quiet"])
        .env("PGPASSWORD", password(&url))
        .env("MILVUS_TOKEN", MILVUS_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed once the load has started sending rows.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the load never started");
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("the run ended before it was killed: {err}");
        }
        if record.exists() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(before["finished"], false, "{before}");

    // The same command again: resumed, each row once.
    let report = run_ok(
        &url,
        &["run", m.to_str().unwrap(), "--quiet", "--format", "json"],
    );
    assert_eq!(report["resumed"], true, "{report}");
    assert_eq!(
        table(&report, "public.keyed")["collection_rows"],
        200000,
        "{report}"
    );
    assert_eq!(
        table(&report, "public.unkeyed")["collection_rows"],
        20000,
        "{report}"
    );
    assert_clean(&url, &m);
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(after["finished"], true, "{after}");

    // A finished load is not touched again without --recreate.
    let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--recreate"), "{}", stderr(&o));
    for c in [format!("keyed_{pid}"), format!("unkeyed_{pid}")] {
        client.drop_collection(&c).await.unwrap();
    }
}

/// A nullable `vector(8)` with NULLs in 50 of 2,000 rows, into Milvus 2.3.5 (no NULL vectors):
/// `etl plan` counts them and makes the choice a required fix (exit 1); `etl run` and a staged
/// load refuse with the same fix before anything is written; `on_null: skip` leaves the 50 out
/// (counted as skipped, not rejected; verify clean) and a `default:` vector writes all 2,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_vectors_into_milvus_are_a_required_fix_the_plan_counts() {
    let url = fresh_db("milvus_null_vectors");
    sql(
        &url,
        "CREATE TABLE holes (id int PRIMARY KEY, v vector(8));
         INSERT INTO holes SELECT i, CASE WHEN i % 40 = 0 THEN NULL
           ELSE ARRAY(SELECT sin(i * k)::real FROM generate_series(1, 8) k)::vector END
         FROM generate_series(1, 2000) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let pid = std::process::id();
    let (client, _) = milvus_client().await;
    let mapping = |tag: &str, field: &str, stage: bool| {
        let stage = if stage {
            format!("  stage: 'file://{}'\n", dir.path().join("stage").display())
        } else {
            String::new()
        };
        write(
            dir.path(),
            &format!("{tag}.yaml"),
            &format!(
                "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  milvus: '{}'\n{stage}tables:\n  - source: public.holes\n    collection: holes_{tag}_{pid}\n{field}",
                milvus_url()
            ),
        )
    };

    // Undecided: plan exit 1 naming the count and the three choices; run and stage refuse alike.
    for stage in [false, true] {
        let m = mapping(if stage { "staged" } else { "plain" }, "", stage);
        let o = etl_pw(&url, &["plan", m.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("50 rows have a NULL `v`"), "{out}");
        for choice in ["IS NOT NULL", "on_null: skip", "default:"] {
            assert!(out.contains(choice), "{choice}: {out}");
        }
        let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
        assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
        assert!(
            stderr(&o).contains("50 rows have a NULL `v`"),
            "{}",
            stderr(&o)
        );
        let name = format!("holes_{}_{pid}", if stage { "staged" } else { "plain" });
        assert!(
            !client.has_collection(&name).await.unwrap(),
            "{name} was created"
        );
    }

    // `on_null: skip`: runnable, the 50 rows left out and counted, verify clean.
    let m = mapping(
        "skip",
        "    fields:\n      - { source: v, on_null: skip }\n",
        false,
    );
    let o = etl_pw(&url, &["plan", m.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let report = run_recreate(&url, &m);
    let t = table(&report, "public.holes");
    assert_eq!(t["rows_written"], 1950, "{report}");
    assert_eq!(t["rows_skipped"], 50, "{report}");
    assert_eq!(t["rows_rejected"], 0, "{report}");
    assert_eq!(t["collection_rows"], 1950, "{report}");
    let (code, v) = verify_json(&url, &m);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["tables"][0]["success"], 1950, "{v:#}");
    assert_eq!(v["tables"][0]["missing"], 0, "{v:#}");

    // A `default:` vector: every row written, the NULL rows as that vector.
    let m = mapping(
        "default",
        "    fields:\n      - { source: v, default: [0, 0, 0, 0, 0, 0, 0, 1] }\n",
        false,
    );
    let report = run_recreate(&url, &m);
    assert_eq!(
        table(&report, "public.holes")["collection_rows"],
        2000,
        "{report}"
    );
    assert_clean(&url, &m);
    let hits = run_ok(
        &url,
        &[
            "search",
            "--target",
            &target_url(),
            "--collection",
            &format!("holes_default_{pid}"),
            "--vector",
            "[0,0,0,0,0,0,0,1]",
            "--limit",
            "1",
            "--format",
            "json",
        ],
    );
    assert_eq!(hits[0]["id"].as_i64().unwrap() % 40, 0, "{hits}");
    for tag in ["skip", "default"] {
        client
            .drop_collection(&format!("holes_{tag}_{pid}"))
            .await
            .unwrap();
    }
}
