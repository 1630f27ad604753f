//! `etl stage` and `etl import` against a real S3-compatible server on loopback (moto) and
//! `file://`: a multi-table round trip that verifies clean, the staged files' column types as
//! pyarrow reads them, a stage and an import killed midway, a second import that changes
//! nothing, a flipped byte refused by its checksum, and no credential in any output.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::run::{SHAPES, init, password, verify_json};
use crate::support::{fresh_db, python, s3_url, sql, stderr, stdout, write};

const SECRET: &str = "s3cr3t-never-printed-4711";

/// Runs etl with the Postgres password and the S3 endpoint and (fake) keys in its environment.
fn etl_env(url: &str, args: &[&str]) -> Output {
    command(url, args).output().unwrap()
}

fn command(url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etl"));
    c.args(args)
        .env("PGPASSWORD", password(url))
        .env("PGPASSFILE", "/nonexistent")
        .env("AWS_ENDPOINT_URL", s3_url())
        .env("AWS_ACCESS_KEY_ID", "etl-test-key")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1");
    c
}

fn ok(o: &Output, what: &str) -> Value {
    assert!(o.status.success(), "{what}: {}\n{}", stderr(o), stdout(o));
    assert!(
        !stdout(o).contains(SECRET) && !stderr(o).contains(SECRET),
        "{what} printed the secret"
    );
    serde_json::from_str(&stdout(o))
        .unwrap_or_else(|e| panic!("{what}: no JSON ({e}): {}", stdout(o)))
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
    )
}

#[test]
fn a_multi_table_database_round_trips_through_s3_and_verifies_clean() {
    let url = fresh_db("stage_s3");
    sql(&url, SHAPES);
    let dir = tempfile::tempdir().unwrap();
    let mapping = init(&url, dir.path());
    let stage_url = format!("s3://etl-test/{}", unique("roundtrip"));
    let staged = ok(
        &etl_env(
            &url,
            &[
                "stage",
                mapping.to_str().unwrap(),
                "--to",
                &stage_url,
                "--quiet",
                "--format",
                "json",
            ],
        ),
        "stage",
    );
    assert!(staged["stage"]["files"].as_u64().unwrap() >= 6, "{staged}");
    // The engine directory the mapping names: import there, then verify against the source.
    let text = std::fs::read_to_string(&mapping).unwrap();
    let engine = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("engine: "))
        .unwrap()
        .trim_matches('\'')
        .to_string();
    let imported = ok(
        &etl_env(
            &url,
            &[
                "import", "--from", &stage_url, "--target", &engine, "--quiet", "--format", "json",
            ],
        ),
        "import",
    );
    let docs = imported["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["collection"] == "docs")
        .unwrap();
    assert_eq!(docs["collection_rows"], 500, "{imported}");
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "verify after the S3 round trip: {v}");
    assert_eq!(v["tables"].as_array().unwrap().len(), 7);

    // `target: { stage, engine }` in the mapping: `etl run` stages, then imports.
    let engine2 = dir.path().join("engine2");
    let engine_line = text
        .lines()
        .find(|l| l.trim().starts_with("engine: "))
        .unwrap();
    let both = text.replace(
        engine_line,
        &format!(
            "  engine: '{}'\n  stage: '{stage_url}-run'",
            engine2.display()
        ),
    );
    assert!(both.contains("stage:"), "{both}");
    let m2 = write(dir.path(), "both.yaml", &both);
    let r = ok(
        &etl_env(
            &url,
            &["run", m2.to_str().unwrap(), "--quiet", "--format", "json"],
        ),
        "run with stage",
    );
    assert!(r["stage"]["files"].as_u64().unwrap() >= 6, "{r}");
    let (code, v) = verify_json(&url, &m2);
    assert_eq!(code, Some(0), "verify after run through a stage: {v}");
}

#[test]
fn staged_files_have_the_documented_column_types() {
    let url = fresh_db("stage_types");
    sql(&url, SHAPES);
    let dir = tempfile::tempdir().unwrap();
    let mapping = init(&url, dir.path());
    let stage_dir = dir.path().join("stage");
    let stage_url = format!("file://{}", stage_dir.display());
    ok(
        &etl_env(
            &url,
            &[
                "stage",
                mapping.to_str().unwrap(),
                "--to",
                &stage_url,
                "--quiet",
                "--format",
                "json",
            ],
        ),
        "stage",
    );
    let script = r#"
import glob, json, os, sys
import pyarrow as pa
import pyarrow.parquet as pq
root = sys.argv[1]
def norm(t):
    return f"list<{norm(t.value_type)}>" if pa.types.is_list(t) else str(t)
out = {}
for coll in sorted(os.listdir(root)):
    files = sorted(glob.glob(os.path.join(root, coll, "*.parquet")))
    if not files:
        continue
    f = pq.ParquetFile(files[0])
    out[coll] = {"codec": f.metadata.row_group(0).column(0).compression if f.metadata.num_row_groups else None,
                 "types": {fld.name: norm(fld.type) for fld in f.schema_arrow},
                 "first": f.read().slice(0, 1).to_pylist()}
print(json.dumps(out, default=str))
"#;
    let o = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&stage_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ty = |c: &str, f: &str| {
        v[c]["types"][f]
            .as_str()
            .unwrap_or_else(|| panic!("{c}.{f} in {v}"))
            .to_string()
    };
    assert_eq!(ty("docs", "emb"), "list<float>", "{v}");
    assert_eq!(ty("docs", "id"), "int64");
    assert_eq!(ty("docs", "cat"), "string");
    assert_eq!(ty("uuidkey", "h"), "list<uint8>", "halfvec as raw bytes");
    assert_eq!(ty("uuidkey", "b"), "list<uint8>", "bits as packed bytes");
    assert_eq!(ty("uuidkey", "s"), "string", "sparse as JSON text");
    assert_eq!(ty("kitchen", "doc"), "string", "jsonb as JSON text");
    assert_eq!(ty("kitchen", "tags"), "list<string>");
    assert_eq!(ty("kitchen", "nums"), "list<int32>");
    assert_eq!(v["docs"]["codec"], "ZSTD");
    // Auto-ID collections leave their key out; the source's key columns stay as fields.
    assert!(v["composite"]["types"].get("id").is_none(), "{v}");
    assert_eq!(ty("composite", "doc"), "int32");
    // Values: a halfvec's bytes are little-endian halves; a sparse vector's JSON has both arrays.
    let first = &v["uuidkey"]["first"][0];
    assert_eq!(first["h"].as_array().unwrap().len(), 8, "{first}");
    let sparse: Value = serde_json::from_str(first["s"].as_str().unwrap()).unwrap();
    assert!(
        sparse["indices"].is_array() && sparse["values"].is_array(),
        "{sparse}"
    );
    assert_eq!(first["b"].as_array().unwrap().len(), 2);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(stage_dir.join("manifest.json")).unwrap())
            .unwrap();
    for key in [
        "stage_id",
        "tool_version",
        "source_snapshot_time",
        "collections",
    ] {
        assert!(!manifest[key].is_null(), "manifest has {key}: {manifest}");
    }
    let file = &manifest["collections"][0]["files"][0];
    for key in ["path", "rows", "bytes", "sha256"] {
        assert!(!file[key].is_null(), "file entry has {key}: {file}");
    }
}

/// Waits until `cond` holds (or panics after `secs`).
fn wait_for(secs: u64, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs etl with `args` and kills it (SIGKILL) once the engine collection at `collection` has
/// committed its first staged file.
fn kill_after_first_import_commit(url: &str, args: &[&str], collection: &Path) {
    let mut child = command(url, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(120, "the import's first staged file committed", || {
        staged_checkpoint(collection).is_some()
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The first checkpoint (`<stage id>/<file>`, without `stage/`) an import committed into the
/// engine collection at `collection`, if any.
fn staged_checkpoint(collection: &Path) -> Option<String> {
    let text = std::fs::read_to_string(collection.join("manifest.json")).ok()?;
    let m: Value = serde_json::from_str(&text).ok()?;
    m["checkpoints"]
        .as_object()?
        .keys()
        .find_map(|k| k.strip_prefix("stage/").map(str::to_string))
}

/// A mapping in `dir` that stages `tables` (each with a FLAT-indexed `v`) at `dir/stage` and
/// imports them into the engine at `dir/engine` in the same command; returns the three paths.
fn stage_and_engine_mapping(
    dir: &Path,
    url: &str,
    tables: &[&str],
    parallelism: usize,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let engine = dir.join("engine");
    let stage_dir = dir.join("stage");
    let tables: String = tables
        .iter()
        .map(|t| {
            format!(
                "  - source: public.{t}\n    fields:\n      - source: v\n        index: {{ type: FLAT, metric: L2 }}\n"
            )
        })
        .collect();
    let mapping = write(
        dir,
        "m.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  engine: '{}'\n  stage: 'file://{}'\ntables:\n{tables}options:\n  batch_size: 2000\n  parallelism: {parallelism}\n",
            engine.display(),
            stage_dir.display()
        ),
    );
    (engine, stage_dir, mapping)
}

fn parquet_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn killed_stage_and_import_resume_cleanly_and_a_second_import_changes_nothing() {
    const N: u64 = 120_000;
    let url = fresh_db("stage_kill");
    sql(
        &url,
        &format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, v vector(32));
             INSERT INTO items SELECT i, array_fill((i % 97)::real, ARRAY[32])::vector FROM generate_series(1, {N}) i;
             ANALYZE items;"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let engine = dir.path().join("engine");
    let mapping = write(
        dir.path(),
        "m.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  engine: '{}'\ntables:\n  - source: public.items\n    fields:\n      - source: v\n        index: {{ type: FLAT, metric: L2 }}\noptions:\n  batch_size: 2000\n",
            engine.display()
        ),
    );
    let stage_dir = dir.path().join("stage");
    let stage_url = format!("file://{}", stage_dir.display());
    let stage_args = [
        "stage",
        mapping.to_str().unwrap(),
        "--to",
        &stage_url,
        "--max-file-size",
        "200000",
        "--quiet",
        "--format",
        "json",
    ];
    // A first, complete stage; then a re-stage killed once files are being written: its manifest
    // must be gone (the old one named files the re-stage replaces).
    ok(&etl_env(&url, &stage_args), "first stage");
    assert!(stage_dir.join("manifest.json").exists());
    let coll_dir = stage_dir.join("items");
    let before = parquet_files(&coll_dir);
    let mut child = command(&url, &stage_args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        60,
        "the re-stage to delete the old files and write new ones",
        || {
            !stage_dir.join("manifest.json").exists()
                && parquet_files(&coll_dir) >= 2
                && parquet_files(&coll_dir) < before
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !stage_dir.join("manifest.json").exists(),
        "a killed stage left a manifest"
    );
    // The re-run completes: every file the manifest names is there, with its size and rows.
    let staged = ok(&etl_env(&url, &stage_args), "stage after the kill");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(stage_dir.join("manifest.json")).unwrap())
            .unwrap();
    let files = manifest["collections"][0]["files"]
        .as_array()
        .unwrap()
        .clone();
    assert!(files.len() >= 4, "size-bounded files: {staged}");
    let mut rows = 0;
    for f in &files {
        let p = stage_dir.join(f["path"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            f["bytes"].as_u64().unwrap(),
            "{p:?}"
        );
        rows += f["rows"].as_u64().unwrap();
    }
    assert_eq!(rows, N);
    assert_eq!(
        parquet_files(&coll_dir),
        files.len(),
        "no stray files from the killed stage"
    );

    // An import killed after its first file committed resumes without duplicates.
    let import_args = [
        "import",
        "--from",
        &stage_url,
        "--target",
        engine.to_str().unwrap(),
        "--parallelism",
        "1",
        "--quiet",
        "--format",
        "json",
    ];
    kill_after_first_import_commit(&url, &import_args, &engine.join("items"));
    let resumed = ok(&etl_env(&url, &import_args), "import after the kill");
    let t = &resumed["tables"][0];
    assert!(t["ranges_resumed"].as_u64().unwrap() >= 1, "{resumed}");
    assert!(
        t["ranges_resumed"].as_u64().unwrap() < files.len() as u64,
        "{resumed}"
    );
    assert_eq!(t["collection_rows"], N, "{resumed}");
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "verify after a resumed import: {v}");

    // The same stage again: nothing to do, nothing changes.
    let again = ok(&etl_env(&url, &import_args), "second import");
    assert_eq!(again["tables"][0]["rows_written"], 0, "{again}");
    assert_eq!(again["tables"][0]["ranges_resumed"], files.len(), "{again}");
    assert_eq!(again["tables"][0]["collection_rows"], N);

    // One flipped byte in a staged file: refused by its checksum, naming the file.
    let victim = stage_dir.join(files[1]["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();
    let fresh = dir.path().join("engine-fresh");
    let o = etl_env(
        &url,
        &[
            "import",
            "--from",
            &stage_url,
            "--target",
            fresh.to_str().unwrap(),
            "--quiet",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("checksum") && err.contains(files[1]["path"].as_str().unwrap()),
        "{err}"
    );
}

#[test]
fn no_credential_appears_in_output_or_the_manifest() {
    let url = fresh_db("stage_secret");
    sql(
        &url,
        "CREATE TABLE t (id int PRIMARY KEY, v vector(2)); INSERT INTO t VALUES (1, '[1,2]');",
    );
    let dir = tempfile::tempdir().unwrap();
    let mapping = init(&url, dir.path());
    let stage_url = format!("s3://etl-test/{}", unique("secret"));
    let o = etl_env(
        &url,
        &[
            "stage",
            mapping.to_str().unwrap(),
            "--to",
            &stage_url,
            "-v",
            "-v",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for text in [stdout(&o), stderr(&o)] {
        assert!(!text.contains(SECRET), "secret in output: {text}");
    }
    // A failing request (no such bucket) names the URL, not the key.
    let o = etl_env(
        &url,
        &[
            "stage",
            mapping.to_str().unwrap(),
            "--to",
            "s3://no-such-bucket-etl/x",
            "--quiet",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("s3://no-such-bucket-etl"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(SECRET));
    // A URL with credentials in it is refused without echoing them.
    let o = etl_env(
        &url,
        &[
            "import",
            "--from",
            &format!("s3://user:{SECRET}@etl-test/x"),
            "--target",
            dir.path().join("e").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains(SECRET), "{}", stderr(&o));
}

/// `target: { stage, engine }` in one command, killed while it imports the stage: the same
/// command again ends with every source row in the engine exactly once, and verify is clean.
#[test]
fn a_killed_stage_and_import_command_finishes_with_every_row_once() {
    const N: u64 = 200_000;
    let url = fresh_db("stage_engine_kill");
    sql(
        &url,
        &format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, v vector(32));
             INSERT INTO items SELECT i, array_fill((i % 89)::real, ARRAY[32])::vector FROM generate_series(1, {N}) i;
             ANALYZE items;"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let (engine, _, mapping) = stage_and_engine_mapping(dir.path(), &url, &["items"], 4);
    // Four readers, four ranges, four staged files, imported one commit each.
    let args = [
        "run",
        mapping.to_str().unwrap(),
        "--quiet",
        "--format",
        "json",
    ];
    kill_after_first_import_commit(&url, &args, &engine.join("items"));
    let done = ok(&etl_env(&url, &args), "the same command after the kill");
    let t = &done["tables"][0];
    assert_eq!(t["collection_rows"], N, "{done}");
    assert!(done["stage"]["files"].as_u64().unwrap() >= 2, "{done}");
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "verify after the resumed command: {v}");
    assert_eq!(v["tables"][0]["success"], N, "{v}");
}

/// `target: { stage, engine }` imports each staged file as soon as the stage has finished it:
/// the first table is in the engine (committed under the stage's id) while the stage is still
/// writing the second, so the stage's manifest does not exist yet; and the stage's id in the
/// engine is the manifest's, so a later `etl import` of the stage finds everything in.
#[test]
fn the_combined_command_imports_a_table_while_the_stage_writes_the_next() {
    const BIG: u64 = 300_000;
    let url = fresh_db("stage_engine_overlap");
    sql(
        &url,
        &format!(
            "CREATE TABLE a_small (id bigint PRIMARY KEY, v vector(8));
             INSERT INTO a_small SELECT i, array_fill(i::real, ARRAY[8])::vector FROM generate_series(1, 1000) i;
             CREATE TABLE b_big (id bigint PRIMARY KEY, v vector(32));
             INSERT INTO b_big SELECT i, array_fill((i % 97)::real, ARRAY[32])::vector FROM generate_series(1, {BIG}) i;
             ANALYZE;"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let (engine, stage_dir, mapping) =
        stage_and_engine_mapping(dir.path(), &url, &["a_small", "b_big"], 1);
    let args = [
        "run",
        mapping.to_str().unwrap(),
        "--quiet",
        "--format",
        "json",
    ];
    let child = command(&url, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let small = engine.join("a_small");
    wait_for(120, "the small table's staged file imported", || {
        staged_checkpoint(&small).is_some()
    });
    assert!(
        !stage_dir.join("manifest.json").exists(),
        "the first table was imported only after the whole stage was written"
    );
    let key = staged_checkpoint(&small).unwrap();
    let out = child.wait_with_output().unwrap();
    let done = ok(&out, "the combined command");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(stage_dir.join("manifest.json")).unwrap())
            .unwrap();
    let stage_id = manifest["stage_id"].as_str().unwrap();
    // Both tables are keyed by their own primary key: the import may keep no keys.
    for c in manifest["collections"].as_array().unwrap() {
        assert_eq!(c["unique_keys"], true, "{c}");
    }
    assert!(
        key.starts_with(&format!("{stage_id}/")),
        "{key} vs {stage_id}"
    );
    assert_eq!(done["stage"]["stage_id"], stage_id, "{done}");
    let rows: Vec<u64> = done["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["collection_rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, vec![1000, BIG], "{done}");
    assert_eq!(done["totals"]["rows_read"], 1000 + BIG, "{done}");
    // The report's phases cover both halves: the source mapped by the stage, the files written
    // into the engine by the import.
    let phases = &done["tables"][1]["phases"];
    for key in ["read", "map", "write", "commit"] {
        assert!(phases[key].as_f64().unwrap() > 0.0, "{key}: {done}");
    }
    // Importing the same stage again finds every file in.
    let again = ok(
        &etl_env(
            &url,
            &[
                "import",
                "--from",
                &format!("file://{}", stage_dir.display()),
                "--target",
                engine.to_str().unwrap(),
                "--format",
                "json",
            ],
        ),
        "a second import of the stage",
    );
    for t in again["tables"].as_array().unwrap() {
        assert_eq!(t["rows_written"], 0, "{again}");
        assert_eq!(t["ranges_resumed"], t["ranges"], "{again}");
    }
    let (code, v) = verify_json(&url, &mapping);
    assert_eq!(code, Some(0), "verify after the combined command: {v}");
}
