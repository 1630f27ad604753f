//! A Postgres-compatible database as the target (issue 18): a multi-table database moved into
//! a second Postgres 16 and into Postgres 18 + pgvector 0.8.6, its catalog compared with the
//! source's, `etl verify` clean (and able to fail), pgvector's exact neighbours identical on
//! both sides; `kill -9` in the data phase and in post-data, then the same command; and the
//! refusals `etl plan` and `etl run` share.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    etl, fresh_db, fresh_db_on, pg18_url, query_strings, server_url, sql, stderr, stdout, with_db,
    write,
};

/// Every kind of thing the issue names: composite key, no key, uuid key, quoted mixed-case
/// names, a partitioned table, halfvec, sparsevec, bit, arrays, jsonb, numeric, inet, enums,
/// a nullable vector, an identity column, a serial, a foreign key, an empty table, and HNSW
/// and IVFFlat indexes with non-default parameters.
const SOURCE: &str = r#"
CREATE SCHEMA shop;
CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN shop.positive AS numeric(12,2) CHECK (VALUE >= 0);
CREATE TABLE shop.docs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title text NOT NULL,
  "Mixed Case" text,
  mood shop.mood,
  price shop.positive,
  qty numeric(10,3),
  tags text[],
  moods shop.mood[],
  scores real[],
  meta jsonb,
  ip inet,
  created timestamptz DEFAULT now(),
  emb vector(3),
  h halfvec(3),
  s sparsevec(5),
  b bit(8),
  CONSTRAINT title_not_blank CHECK (title <> '')
);
CREATE TABLE shop.chunks (doc_id bigint REFERENCES shop.docs(id), n int, body text, v vector(3),
  PRIMARY KEY (doc_id, n));
CREATE TABLE shop.nokey (a int, b text);
CREATE TABLE shop.ser (id serial PRIMARY KEY, x int UNIQUE);
CREATE TABLE shop."CamelItems" (id uuid PRIMARY KEY, "Label" text, v vector(3));
CREATE TABLE shop.empty (id int PRIMARY KEY, v vector(3));
CREATE TABLE shop.parted (id int, region text, v vector(3), PRIMARY KEY (id, region))
  PARTITION BY LIST (region);
CREATE TABLE shop.parted_eu PARTITION OF shop.parted FOR VALUES IN ('eu');
CREATE TABLE shop.parted_us PARTITION OF shop.parted FOR VALUES IN ('us');
INSERT INTO shop.docs (title, "Mixed Case", mood, price, qty, tags, moods, scores, meta, ip, emb, h, s, b)
  SELECT 'doc ' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'ünïcødé ' || i || ' "q" \t' END,
         (ARRAY['sad','ok','happy'])[1 + i % 3]::shop.mood, i * 1.25, i / 7.0, ARRAY['a', 'b' || i],
         CASE WHEN i % 4 = 0 THEN NULL ELSE ARRAY['ok', 'happy']::shop.mood[] END,
         ARRAY[i::real, 0.5], jsonb_build_object('k', i, 'nested', jsonb_build_array(1, 'x')),
         ('10.0.' || (i % 200) || '.1')::inet,
         CASE WHEN i % 7 = 0 THEN NULL ELSE ('[' || sin(i) || ',' || cos(i) || ',' || (i % 11) || ']')::vector END,
         ('[' || (i % 5) || ',0.5,1]')::halfvec, ('{1:' || i || ',4:0.25}/5')::sparsevec,
         (i % 256)::bit(8)
  FROM generate_series(1, 3000) i;
INSERT INTO shop.chunks SELECT 1 + i % 3000, i, 'chunk ' || i,
  ('[' || (i % 13) || ',' || cos(i) || ',0.5]')::vector FROM generate_series(1, 12000) i;
INSERT INTO shop.nokey SELECT i % 10, 'x' FROM generate_series(1, 300) i;
INSERT INTO shop.ser (x) SELECT i FROM generate_series(1, 100) i;
INSERT INTO shop."CamelItems" SELECT md5(i::text)::uuid, 'L' || i, ('[' || i || ',1,1]')::vector
  FROM generate_series(1, 200) i;
INSERT INTO shop.parted SELECT i, CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END,
  ('[1,' || i || ',1]')::vector FROM generate_series(1, 1000) i;
CREATE INDEX docs_emb_hnsw ON shop.docs USING hnsw (emb vector_cosine_ops) WITH (m = 8, ef_construction = 40);
CREATE INDEX chunks_v_ivf ON shop.chunks USING ivfflat (v vector_l2_ops) WITH (lists = 10);
CREATE INDEX docs_meta_gin ON shop.docs USING gin (meta);
CREATE INDEX docs_title_lower ON shop.docs (lower(title)) WHERE price > 10;
COMMENT ON TABLE shop.docs IS 'the documents';
"#;

const TABLES: [&str; 7] = [
    "shop.docs",
    "shop.chunks",
    "shop.nokey",
    "shop.ser",
    "shop.\"CamelItems\"",
    "shop.empty",
    "shop.parted",
];

fn mapping(dir: &Path, source: &str, target: &str, extra: &str) -> std::path::PathBuf {
    // A URL is a live source, anything else a dump.
    let kind = if source.starts_with("postgres") {
        "postgres"
    } else {
        "dump"
    };
    let tables: String = TABLES
        .iter()
        .map(|t| format!("  - source: '{t}'\n"))
        .collect();
    write(
        dir,
        "mapping.yaml",
        &format!(
            "version: 1\nsource:\n  {kind}: {source}\ntarget:\n  postgres: {target}\n{extra}options:\n  parallelism: 2\n  maintenance_work_mem: 256MB\n  max_parallel_maintenance_workers: 1\ntables:\n{tables}"
        ),
    )
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// The parts of a database's catalog a restore must reproduce, schema `shop`.
fn catalog(url: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    out.extend(query_strings(
        url,
        "SELECT 'index', indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'shop' ORDER BY 2",
    ));
    out.extend(query_strings(
        url,
        "SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) \
         FROM pg_constraint WHERE connamespace = 'shop'::regnamespace AND contype IN ('p', 'u', 'c', 'f') \
         ORDER BY 2",
    ));
    out.extend(query_strings(
        url,
        "SELECT 'column', attrelid::regclass::text || '.' || attname, \
                format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END \
                || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') || attidentity::text \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d \
           ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE c.relnamespace = 'shop'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 \
           AND NOT a.attisdropped ORDER BY 2",
    ));
    out.extend(query_strings(
        url,
        "SELECT 'sequence', 'ser', last_value::text || ' ' || is_called::text FROM shop.ser_id_seq \
         UNION ALL SELECT 'sequence', 'docs', last_value::text || ' ' || is_called::text \
           FROM shop.docs_id_seq \
         UNION ALL SELECT 'comment', 'docs', obj_description('shop.docs'::regclass) \
         UNION ALL SELECT 'enum', 'mood', string_agg(enumlabel::text, ',' ORDER BY enumsortorder) \
           FROM pg_enum WHERE enumtypid = 'shop.mood'::regtype",
    ));
    out
}

/// pgvector's exact cosine top-10 for 20 query vectors, by document id (ordered by the distance
/// plus 0, then id: no index scan can answer that, so the scan is exact on both servers; on 18
/// an HNSW scan with an incremental sort by id would otherwise be chosen).
fn exact_neighbours(url: &str) -> Vec<Vec<String>> {
    query_strings(
        url,
        "SELECT q::text, (SELECT string_agg(id::text, ',') FROM \
            (SELECT id FROM shop.docs WHERE emb IS NOT NULL ORDER BY (emb <=> ('[' || sin(q) || ',' || cos(q) || ',1]')::vector) + 0, id LIMIT 10) t) \
         FROM generate_series(1, 20) q",
    )
}

/// Plans and runs mapping `m` into `target`, then checks what a restore must reproduce: every
/// table verified clean, the catalog and pgvector's exact neighbours as the source has them.
fn restores_whole(
    label: &str,
    m: &Path,
    target: &str,
    want: &[Vec<String>],
    want_neighbours: &[Vec<String>],
) {
    let plan = ok(&etl(["plan".as_ref(), m.as_os_str()]), "plan");
    assert!(plan.contains("creates shop.docs"), "{label}: {plan}");
    let run = ok(&etl(["run".as_ref(), m.as_os_str()]), "run");
    assert!(run.contains("total: "), "{label}: {run}");
    let verify = ok(&etl(["verify".as_ref(), m.as_os_str()]), "verify");
    assert!(
        verify.contains("verified: 7 tables match"),
        "{label}: {verify}"
    );
    assert!(
        verify.contains(
            "shop.docs → shop.docs [ok, by primary key (id)]: truth rows seen: 3000, success: 3000"
        ),
        "{label}: {verify}"
    );
    assert_eq!(catalog(target), want, "{label}: the catalog differs");
    assert_eq!(
        exact_neighbours(target),
        want_neighbours,
        "{label}: exact neighbours differ"
    );
}

#[test]
fn a_database_moves_into_postgres_16_and_18_with_its_catalog_and_verifies_clean() {
    let source = fresh_db("pgt_src");
    sql(&source, SOURCE);
    let want = catalog(&source);
    let want_neighbours = exact_neighbours(&source);
    for (label, server) in [("postgres 16", server_url()), ("postgres 18", pg18_url())] {
        let target = fresh_db_on(server, "pgt_dst");
        let dir = tempfile::tempdir().unwrap();
        let m = mapping(dir.path(), &source, &target, "");
        restores_whole(label, &m, &target, &want, &want_neighbours);
        let rows = query_strings(&target, "SELECT count(*)::text FROM shop.parted_eu");
        assert_eq!(rows, vec![vec!["500".to_string()]], "{label}");

        // Verify can fail: one changed vector on the target is one mismatch naming the column.
        sql(&target, "UPDATE shop.docs SET emb = '[9,9,9]' WHERE id = 5");
        let bad = etl(["verify".as_ref(), m.as_os_str()]);
        assert!(
            !bad.status.success(),
            "{label}: verify passed after a change"
        );
        let text = stdout(&bad);
        assert!(text.contains("mismatch: 1"), "{label}: {text}");

        // Running again is refused (the tables hold rows under if_exists: fail), by plan and
        // by run alike, until --restart replaces them.
        let again = etl(["plan".as_ref(), m.as_os_str()]);
        assert!(
            !again.status.success(),
            "{label}: plan passed over loaded tables"
        );
        assert!(
            stdout(&again).contains("already exists on the target and holds rows"),
            "{}",
            stdout(&again)
        );
        let rerun = etl(["run".as_ref(), m.as_os_str()]);
        assert!(!rerun.status.success());
        assert!(
            stderr(&rerun).contains("already exists on the target and holds rows"),
            "{}",
            stderr(&rerun)
        );
        ok(
            &etl(["run".as_ref(), m.as_os_str(), "--restart".as_ref()]),
            "run --restart",
        );
        ok(
            &etl(["verify".as_ref(), m.as_os_str()]),
            "verify after --restart",
        );
    }
}

/// Runs etl with `args` and kills it (SIGKILL) once `ready` returns true (polled every 20 ms).
#[test]
fn a_dump_in_each_format_restores_into_postgres_without_pg_restore() {
    let source = fresh_db("pgt_dsrc");
    sql(&source, SOURCE);
    let want = catalog(&source);
    let want_neighbours = exact_neighbours(&source);
    let dir = tempfile::tempdir().unwrap();
    let pg_dump = crate::dump::pg_bin().join("pg_dump");
    let formats = [
        ("plain", "-Fp", "dump.sql"),
        ("custom", "-Fc", "dump.custom"),
        ("directory", "-Fd", "dumpdir"),
        ("tar", "-Ft", "dump.tar"),
    ];
    for (label, format, file) in formats {
        let path = dir.path().join(file);
        let o = Command::new(&pg_dump)
            .args([format, "-f"])
            .arg(&path)
            .arg(&source)
            .env("PGPASSWORD", crate::run::password(&source))
            .output()
            .unwrap();
        assert!(o.status.success(), "pg_dump {label}: {}", stderr(&o));
        // Into Postgres 18 (across versions) and 16 (within one).
        for (version, server) in [("18", pg18_url()), ("16", server_url())] {
            let label = format!("{label} dump into Postgres {version}");
            let target = fresh_db_on(server, "pgt_ddst");
            let work = tempfile::tempdir().unwrap();
            let m = mapping(work.path(), &path.display().to_string(), &target, "");
            restores_whole(&label, &m, &target, &want, &want_neighbours);
        }
    }
    // A `where:` needs a live server: plan says so (and run refuses the same way).
    let work = tempfile::tempdir().unwrap();
    let m = write(
        work.path(),
        "mapping.yaml",
        &format!(
            "version: 1\nsource:\n  dump: {}\ntarget:\n  postgres: {}\ntables:\n  - source: shop.docs\n    where: \"id < 10\"\n",
            dir.path().join("dump.sql").display(),
            fresh_db_on(pg18_url(), "pgt_ddst")
        ),
    );
    let plan = etl(["plan".as_ref(), m.as_os_str()]);
    assert_eq!(plan.status.code(), Some(1), "{}", stdout(&plan));
    assert!(
        stdout(&plan).contains("`where: id < 10` needs a live Postgres source"),
        "{}",
        stdout(&plan)
    );
}

/// The CockroachDB dialect's plan for the test database, against a golden file: the converted
/// DDL, the post-data statements, the `IMPORT INTO` statements and every required fix and
/// suggestion by name. `ETL_BLESS=1` rewrites the golden file (to be read before committing).
#[test]
fn the_cockroachdb_dialect_converts_the_test_database_as_the_golden_file_says() {
    let source = fresh_db("pgt_crdb");
    sql(&source, SOURCE);
    let dir = tempfile::tempdir().unwrap();
    let m = mapping(
        dir.path(),
        &source,
        "postgres://root@127.0.0.1:26257/shop",
        "  dialect: cockroachdb\n",
    );
    let o = etl([
        "plan".as_ref(),
        m.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut got = String::new();
    for t in plan["tables"].as_array().unwrap() {
        got.push_str(&format!("== {}\n", t["source"].as_str().unwrap()));
        for (kind, key) in [
            ("required fix", "required_fixes"),
            ("suggestion", "suggestions"),
        ] {
            for f in t[key].as_array().unwrap() {
                let column = f["column"]
                    .as_str()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default();
                got.push_str(&format!(
                    "{kind}{column}: {}\n",
                    f["message"].as_str().unwrap()
                ));
                if let Some(fix) = f["fix"].as_str().filter(|f| *f != "nothing to do") {
                    got.push_str(&format!("  fix: {fix}\n"));
                }
            }
        }
        got.push('\n');
    }
    let golden = crate::support::repo_root().join("tests/golden/cockroachdb-plan.txt");
    if std::env::var_os("ETL_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(
        got,
        want,
        "the conversion differs from {}",
        golden.display()
    );
    // `etl run` refuses what the plan refuses.
    let run = etl(["run".as_ref(), m.as_os_str()]);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("loading into CockroachDB is not built yet"),
        "{}",
        stderr(&run)
    );
}

/// Runs etl, sampling its peak resident memory (`VmHWM`) until it exits: (output, MiB).
fn etl_peak_rss(args: &[&std::ffi::OsStr]) -> (Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    // Pipes drained by threads, so a full pipe never stalls the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut b).unwrap();
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut b).unwrap();
        b
    });
    loop {
        if let Ok(text) = std::fs::read_to_string(&status)
            && let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    let output = Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    };
    (output, peak_kb / 1024)
}

/// `etl verify` of a 5M-row table pairs both sides in bounded memory: under 300 MB peak, with
/// every row seen and one changed row found.
#[test]
fn verify_of_a_five_million_row_table_stays_under_300_mb() {
    const ROWS: u64 = 5_000_000;
    let make = format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, n int, t text, v vector(4));
         INSERT INTO big SELECT i, i % 1000, 'row ' || i,
           ('[' || (i % 97) || ',' || (i % 89) || ',1,' || (i % 7) || ']')::vector
         FROM generate_series(1, {ROWS}) i;"
    );
    let source = fresh_db("pgt_big_src");
    sql(&source, &make);
    let target = fresh_db_on(pg18_url(), "pgt_big_dst");
    sql(&target, &make);
    sql(&target, "UPDATE big SET t = 'changed' WHERE id = 4321987");
    sql(&source, "ANALYZE big");
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "mapping.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: {source}\ntarget:\n  postgres: {target}\noptions:\n  parallelism: 2\ntables:\n  - source: public.big\n"
        ),
    );
    let (o, peak) = etl_peak_rss(&["verify".as_ref(), m.as_os_str()]);
    let text = stdout(&o);
    assert!(
        !o.status.success(),
        "a changed row must fail verify: {text}"
    );
    assert!(
        text.contains(&format!(
            "truth rows seen: {ROWS}, success: {}, missing: 0, mismatch: 1, extraneous: 0",
            ROWS - 1
        )),
        "{text}\n{}",
        stderr(&o)
    );
    assert!(text.contains("4321987"), "the changed row is named: {text}");
    assert!(peak < 300, "etl verify peaked at {peak} MB on {ROWS} rows");
    eprintln!("verify of {ROWS} rows: peak RSS {peak} MB");
    // Nearly a gigabyte between the two: not left behind on a developer's servers.
    for url in [&source, &target] {
        let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
        sql(
            &crate::support::with_db(url, "postgres"),
            &format!("DROP DATABASE {name}"),
        );
    }
}

fn kill_when(args: &[&str], ready: impl Fn() -> bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("etl ended ({status}) before the kill point");
        }
        if ready() {
            break;
        }
        assert!(Instant::now() < deadline, "the kill point never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_killed_load_resumes_in_the_data_phase_and_in_post_data_without_doubles() {
    let source = fresh_db("pgt_kill_src");
    sql(
        &source,
        "CREATE TABLE big (id bigint PRIMARY KEY, body text, v vector(64)); \
         INSERT INTO big SELECT i, repeat('x', 1400), \
           array_fill(sin(i)::real, ARRAY[64])::vector \
         FROM generate_series(1, 120000) i; \
         CREATE INDEX big_v ON big USING hnsw (v vector_l2_ops) WITH (m = 4, ef_construction = 8); \
         CREATE INDEX big_body ON big (body);",
    );
    let target = fresh_db_on(pg18_url(), "pgt_kill_dst");
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "mapping.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: {source}\ntarget:\n  postgres: {target}\noptions:\n  parallelism: 1\n  batch_size: 2000\ntables:\n  - source: public.big\n"
        ),
    );
    let m = m.to_str().unwrap();
    // The data phase (~200 MB, rows under the TOAST threshold: 3 ranges, read one at a time): killed once a range is committed
    // and before the last one is.
    let committed = || {
        query_strings(
            &target,
            "SELECT count(*)::text FROM pg_tables WHERE schemaname = 'etl' AND tablename = 'checkpoints'",
        ) == vec![vec!["1".to_string()]]
            && query_strings(
                &target,
                "SELECT count(*)::text FROM etl.checkpoints WHERE key LIKE 'range/%'",
            )[0][0]
                != "0"
    };
    kill_when(&["run", m], committed);
    let ranges = query_strings(
        &target,
        "SELECT value::text FROM etl.checkpoints WHERE key = 'ranges'",
    );
    let done = query_strings(
        &target,
        "SELECT count(*)::text FROM etl.checkpoints WHERE key LIKE 'range/%'",
    );
    assert!(
        ranges.len() == 1
            && done[0][0].parse::<u64>().unwrap() < ranges[0][0].parse::<u64>().unwrap(),
        "killed after every range was in: {ranges:?} {done:?}"
    );
    // `etl jobs list` reads the load's record on the target: unfinished, some ranges in.
    let jobs = ok(
        &etl(["jobs", "list", "--target", &target, "--format", "json"]),
        "jobs list",
    );
    let jobs: serde_json::Value = serde_json::from_str(&jobs).unwrap();
    assert_eq!(jobs[0]["target"], "public.big", "{jobs}");
    assert_eq!(jobs[0]["state"], "loading", "{jobs}");
    assert_eq!(
        jobs[0]["committed_ranges"].to_string(),
        done[0][0],
        "{jobs}"
    );
    // Post-data: the same command, crashing after its first post-data step.
    let crashed = Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["run", m])
        .env("ETL_CRASH_AT", "post-data")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the crash point did not fire");
    let steps = query_strings(&target, "SELECT step FROM etl.steps ORDER BY 1");
    assert_eq!(
        steps,
        vec![vec!["constraint:big_pkey".to_string()]],
        "one post-data step done"
    );
    // The same command again: the primary key is not added twice (that would fail), the rest is.
    let out = ok(&etl(["run", m]), "run after the kills");
    assert!(out.contains("(resumed)"), "{out}");
    let steps = query_strings(
        &target,
        "SELECT string_agg(step, ',' ORDER BY step) FROM etl.steps",
    );
    assert_eq!(
        steps[0][0], "analyze,constraint:big_pkey,index:big_body,index:big_v",
        "every post-data step, once"
    );
    let counts = query_strings(
        &target,
        "SELECT count(*)::text, count(DISTINCT id)::text FROM big",
    );
    assert_eq!(
        counts,
        vec![vec!["120000".to_string(), "120000".to_string()]]
    );
    let verify = ok(&etl(["verify", m]), "verify");
    assert!(
        verify.contains("success: 120000, missing: 0, mismatch: 0, extraneous: 0"),
        "{verify}"
    );
    let jobs = ok(&etl(["jobs", "list", "--target", &target]), "jobs list");
    let line = jobs
        .lines()
        .find(|l| l.starts_with("public.big"))
        .unwrap_or_default();
    assert!(line.contains(" done ") && line.contains(" 4 "), "{jobs}");
}

#[test]
fn a_postgres_target_refuses_bad_input_with_one_clear_message() {
    let source = fresh_db("pgt_bad_src");
    sql(
        &source,
        "CREATE TABLE items (id int PRIMARY KEY, name text, v vector(3)); \
         INSERT INTO items VALUES (1, 'a', '[1,2,3]');",
    );
    let dir = tempfile::tempdir().unwrap();
    let one = |target: &str, extra: &str| {
        write(
            dir.path(),
            "m.yaml",
            &format!(
                "version: 1\nsource:\n  postgres: {source}\ntarget:\n  postgres: {target}\n{extra}tables:\n  - source: public.items\n"
            ),
        )
    };
    // Unreachable target: named, exit non-zero, for plan and run.
    let m = one("postgres://postgres@127.0.0.1:1/x", "");
    for cmd in ["plan", "run"] {
        let o = etl([cmd.as_ref(), m.as_os_str()]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("127.0.0.1:1"), "{cmd}: {}", stderr(&o));
    }
    // A wrong password is refused and never echoed.
    let target = fresh_db_on(pg18_url(), "pgt_bad_dst");
    let wrong = target.replace("etl-test-pw", "sekrit-wrong-pw");
    let m = one(&wrong, "");
    let o = etl(["run".as_ref(), m.as_os_str()]);
    assert!(!o.status.success());
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains("sekrit"), "the password was echoed: {text}");
    // A non-empty table under if_exists: fail; a type clash under append.
    sql(
        &target,
        "CREATE TABLE items (id int PRIMARY KEY, name int, v vector(3)); INSERT INTO items VALUES (7, 1, '[0,0,0]');",
    );
    let m = one(&target, "");
    let plan = etl(["plan".as_ref(), m.as_os_str()]);
    assert!(!plan.status.success());
    assert!(
        stdout(&plan).contains("public.items already exists on the target and holds rows"),
        "{}",
        stdout(&plan)
    );
    let m = one(&target, "  if_exists: append\n");
    let plan = etl(["plan".as_ref(), m.as_os_str()]);
    assert!(!plan.status.success());
    assert!(
        stdout(&plan).contains("column `name` is integer on the target and text on the source"),
        "{}",
        stdout(&plan)
    );
    let run = etl(["run".as_ref(), m.as_os_str()]);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("column `name` is integer on the target and text on the source"),
        "{}",
        stderr(&run)
    );
    // Under append the existing table's constraints stay: a row they refuse goes to the rejects
    // file with the server's message (its key named), the rest is loaded.
    sql(
        &source,
        "INSERT INTO items SELECT i, 'n' || i, '[1,1,1]' FROM generate_series(2, 40) i;",
    );
    sql(
        &target,
        "ALTER TABLE items ALTER COLUMN name TYPE text; DELETE FROM items; \
                  INSERT INTO items VALUES (7, 'theirs', '[0,0,0]');",
    );
    let dir2 = tempfile::tempdir().unwrap();
    let m = write(
        dir2.path(),
        "m.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: {source}\ntarget:\n  postgres: {target}\n  if_exists: append\ntables:\n  - source: public.items\n    max_rejects: 1\n"
        ),
    );
    let out = ok(
        &etl(["run".as_ref(), m.as_os_str()]),
        "run under append with a refused row",
    );
    assert!(out.contains("1 rejected"), "{out}");
    let rejects = std::fs::read_to_string(dir2.path().join("_rejects/public.items.jsonl"))
        .unwrap_or_else(|e| panic!("no rejects file ({e}): {out}"));
    assert_eq!(rejects.lines().count(), 1, "{rejects}");
    assert!(
        rejects.contains("duplicate key value violates unique constraint")
            && rejects.contains("(id)=(7)"),
        "{rejects}"
    );
    let rows = query_strings(&target, "SELECT count(*)::text FROM items");
    assert_eq!(
        rows,
        vec![vec!["40".to_string()]],
        "39 new rows beside theirs"
    );
    let theirs = query_strings(&target, "SELECT name FROM items WHERE id = 7");
    assert_eq!(theirs, vec![vec!["theirs".to_string()]]);
    // Index build settings the server refuses are a required fix before anything is read.
    let dir3 = tempfile::tempdir().unwrap();
    let m = write(
        dir3.path(),
        "m.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: {source}\ntarget:\n  postgres: {target}\n  if_exists: replace\noptions:\n  maintenance_work_mem: lots\ntables:\n  - source: public.items\n"
        ),
    );
    let plan = etl(["plan".as_ref(), m.as_os_str()]);
    assert!(!plan.status.success());
    assert!(
        stdout(&plan).contains("the target refuses the index build settings"),
        "{}",
        stdout(&plan)
    );
    // A user without the right to create tables (or the `etl` schema) there.
    sql(
        pg18_url(),
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'etl_limited') THEN \
           CREATE ROLE etl_limited LOGIN PASSWORD 'limited-pw'; END IF; END $$",
    );
    let limited = fresh_db_on(pg18_url(), "pgt_limited");
    let limited = limited.replace("postgres:etl-test-pw@", "etl_limited:limited-pw@");
    let m = one(&limited, "");
    let plan = etl(["plan".as_ref(), m.as_os_str()]);
    assert!(!plan.status.success());
    let text = stdout(&plan);
    assert!(
        text.contains("may not create tables in schema `public`"),
        "{text}"
    );
    assert!(text.contains("may not create the `etl` schema"), "{text}");
    let run = etl(["run".as_ref(), m.as_os_str()]);
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("may not create tables in schema `public`"),
        "{}",
        stderr(&run)
    );
    // Replace makes it the source's table.
    let m = one(&target, "  if_exists: replace\n");
    ok(&etl(["run".as_ref(), m.as_os_str()]), "run with replace");
    ok(
        &etl(["verify".as_ref(), m.as_os_str()]),
        "verify after replace",
    );
}

/// A test CA, a server certificate it signs for 127.0.0.1 (no host name), and a second CA that
/// signed nothing, made with openssl in `dir`.
fn make_certificates(dir: &Path) {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=etl test CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj "/CN=another CA" 2>/dev/null
chmod a+r ca.pem other.pem server.crt server.key
"#;
    let out = Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server of Debian's PostgreSQL 15 for this test process, speaking TLS with the certificate
/// in `ssl_dir` when given: the wheels' servers have no SSL compiled in (Debian's has no
/// pgvector, which TLS does not need).
fn debian_server(ssl_dir: Option<&Path>) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(crate::support::repo_root().join("scripts/pg-test-server"))
        .args(["start", "--owner-pid", &std::process::id().to_string()])
        .env("ETL_PG_SERVER", "debian");
    if let Some(dir) = ssl_dir {
        cmd.env("ETL_PG_SSL_DIR", dir);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn tls_connects_source_and_target_and_refuses_a_wrong_ca_or_host_name() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let server = debian_server(Some(certs.path()));
    sql(&server, "CREATE DATABASE tls_src");
    sql(&server, "CREATE DATABASE tls_dst");
    let (source, target) = (with_db(&server, "tls_src"), with_db(&server, "tls_dst"));
    sql(
        &source,
        "CREATE TABLE items (id int PRIMARY KEY, label text, tags text[]); \
         INSERT INTO items SELECT i, 'label ' || i, ARRAY['a', i::text] FROM generate_series(1, 500) i;",
    );
    let ca = certs.path().join("ca.pem");
    let other = certs.path().join("other.pem");
    let with = |url: &str, params: &str| format!("{url}?{params}");
    let dir = tempfile::tempdir().unwrap();
    let mapping = |src: &str, dst: &str| {
        write(
            dir.path(),
            "m.yaml",
            &format!(
                "version: 1\nsource:\n  postgres: '{src}'\ntarget:\n  postgres: '{dst}'\n  if_exists: replace\ntables:\n  - source: public.items\n"
            ),
        )
    };
    // verify-full with the test CA on the source, require on the target: the whole run.
    let m = mapping(
        &with(
            &source,
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
        &with(&target, "sslmode=require"),
    );
    ok(&etl(["plan".as_ref(), m.as_os_str()]), "plan over TLS");
    ok(&etl(["run".as_ref(), m.as_os_str()]), "run over TLS");
    let verify = ok(&etl(["verify".as_ref(), m.as_os_str()]), "verify over TLS");
    assert!(verify.contains("success: 500"), "{verify}");
    // And the other way round: verify-full on the target.
    let m = mapping(
        &with(&source, "sslmode=require"),
        &with(
            &target,
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
    );
    ok(
        &etl(["run".as_ref(), m.as_os_str()]),
        "run with verify-full on the target",
    );
    // A CA that did not sign the server's certificate: refused, saying it is about TLS.
    let m = mapping(
        &with(
            &source,
            &format!("sslmode=verify-full&sslrootcert={}", other.display()),
        ),
        &with(&target, "sslmode=require"),
    );
    let o = etl(["plan".as_ref(), m.as_os_str()]);
    assert!(!o.status.success(), "a wrong CA was accepted");
    let e = stderr(&o);
    assert!(e.contains("TLS") && e.contains("UnknownIssuer"), "{e}");
    // A host name the certificate does not name: verify-full refuses, verify-ca accepts.
    let by_name = target.replace("127.0.0.1", "localhost");
    let m = mapping(
        &with(&source, "sslmode=require"),
        &with(
            &by_name,
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
    );
    let o = etl(["plan".as_ref(), m.as_os_str()]);
    assert!(!o.status.success(), "a wrong host name was accepted");
    let e = stderr(&o);
    assert!(e.contains("TLS") && e.contains("not valid for name"), "{e}");
    let m = mapping(
        &with(&source, "sslmode=require"),
        &with(
            &by_name,
            &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        ),
    );
    ok(
        &etl(["plan".as_ref(), m.as_os_str()]),
        "verify-ca by another name",
    );
}

#[test]
fn a_target_without_pgvector_is_a_required_fix_in_plan_and_run() {
    // Debian's PostgreSQL 15 has no pgvector.
    let server = debian_server(None);
    let source = fresh_db("pgt_novec_src");
    sql(
        &source,
        "CREATE TABLE items (id int PRIMARY KEY, v vector(3), h halfvec(2)); \
         INSERT INTO items VALUES (1, '[1,2,3]', '[1,2]');",
    );
    let dir = tempfile::tempdir().unwrap();
    let m = write(
        dir.path(),
        "m.yaml",
        &format!(
            "version: 1\nsource:\n  postgres: {source}\ntarget:\n  postgres: {server}\ntables:\n  - source: public.items\n"
        ),
    );
    let plan = etl(["plan".as_ref(), m.as_os_str()]);
    assert!(!plan.status.success());
    assert!(
        stdout(&plan).contains("has no pgvector, which columns v, h need"),
        "{}",
        stdout(&plan)
    );
    let run = etl(["run".as_ref(), m.as_os_str()]);
    assert!(!run.status.success());
    assert!(stderr(&run).contains("has no pgvector"), "{}", stderr(&run));
    // Nothing was created on the target.
    let tables = query_strings(
        &server,
        "SELECT count(*)::text FROM pg_tables WHERE tablename = 'items'",
    );
    assert_eq!(tables, vec![vec!["0".to_string()]]);
}

#[test]
fn etl_init_writes_a_postgres_mapping_that_plans_runs_and_verifies() {
    let source = fresh_db("pgt_init_src");
    sql(
        &source,
        "CREATE TABLE notes (id bigserial PRIMARY KEY, body text, embedding vector); \
         INSERT INTO notes (body, embedding) SELECT 'n' || i, ('[' || i || ',2]')::vector \
           FROM generate_series(1, 50) i;",
    );
    let target = fresh_db_on(pg18_url(), "pgt_init_dst");
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.yaml");
    ok(
        &etl([
            "init".as_ref(),
            "--source".as_ref(),
            source.as_ref(),
            "--tables".as_ref(),
            "public.notes".as_ref(),
            "--target".as_ref(),
            target.as_ref(),
            "-o".as_ref(),
            m.as_os_str(),
        ]),
        "init",
    );
    let text = std::fs::read_to_string(&m).unwrap();
    assert!(
        text.contains("  postgres: ") && text.contains("target: public.notes"),
        "{text}"
    );
    assert!(
        !text.contains("etl-test-pw"),
        "init wrote the password: {text}"
    );
    // The password comes from the environment, as the mapping's header says.
    let with_pw = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_etl"))
            .args(args)
            .env("PGPASSWORD", "etl-test-pw")
            .output()
            .unwrap()
    };
    ok(&with_pw(&["plan".as_ref(), m.as_os_str()]), "plan");
    ok(&with_pw(&["run".as_ref(), m.as_os_str()]), "run");
    let verify = ok(&with_pw(&["verify".as_ref(), m.as_os_str()]), "verify");
    assert!(
        verify.contains("success: 50, missing: 0, mismatch: 0, extraneous: 0"),
        "{verify}"
    );
    // An untyped `vector` column and a bigserial keep their shape.
    let cols = query_strings(
        &target,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = 'notes'::regclass AND attnum > 0 ORDER BY attnum",
    );
    assert_eq!(
        cols,
        vec![
            vec!["bigint".to_string()],
            vec!["text".to_string()],
            vec!["vector".to_string()]
        ]
    );
    let next = query_strings(&target, "SELECT nextval('notes_id_seq')::text");
    assert_eq!(
        next,
        vec![vec!["51".to_string()]],
        "the sequence continues after the source's rows"
    );
}
