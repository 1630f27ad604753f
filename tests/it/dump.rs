//! Dumps made by the real `pg_dump` (plain, gzip'd, INSERTs, custom with and without
//! compression or offsets, directory, tar) read without a server: every type gives the same Arrow
//! values as the live reader, `etl run` from each dump gives collections that `etl verify`
//! finds identical to the live database row by row, statements the tool does not need are
//! skipped with warnings, and truncated or corrupted dumps fail where they are bad with nothing
//! half-loaded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use etl_connectors::dump::{DumpArchive, DumpTableProvider};
use etl_connectors::postgres::ReadOptions;
use etl_mappings::QualifiedName;

use crate::pg_read::{alltypes_sql, provider, read_all, render};
use crate::run::{SHAPES, etl_pw, init, password, verify_json};
use crate::support::{fresh_db, repo_root, sql, stderr, stdout, write};

/// Objects a migration does not need, and text that is awkward in COPY and INSERT form.
const EXTRAS: &str = r#"
CREATE SEQUENCE counter START 5;
CREATE TABLE notes (id serial PRIMARY KEY, note text, created timestamptz DEFAULT now(), v vector(2) DEFAULT '[0,1]');
INSERT INTO notes (note, created) VALUES (E'tab\there', '2024-01-01 10:00+00'), (E'line\nbreak\r\n', '2024-01-02 10:00+00'),
  (E'back\\slash \\N', NULL), ('quote''s "dq" ; -- not a comment', NULL), ('ünïcødé ✓ 🦀', NULL), ('', NULL), (NULL, NULL),
  (E'\\.', NULL), ('$$ dollar $$', NULL);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN NEW.note := NEW.note || ';'; RETURN NEW; END; $fn$;
CREATE TRIGGER notes_touch BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION touch();
COMMENT ON TABLE notes IS 'has; a comment';
GRANT SELECT ON notes TO PUBLIC;
CREATE VIEW note_count AS SELECT count(*) FROM notes;
"#;

pub(crate) fn pg_bin() -> PathBuf {
    let o = Command::new("bash")
        .arg(repo_root().join("scripts/pg-test-server"))
        .arg("bin")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    PathBuf::from(stdout(&o).trim())
}

/// The dump variants: name, pg_dump arguments, output name.
const VARIANTS: &[(&str, &[&str], &str)] = &[
    ("plain", &["-Fp"], "dump.sql"),
    ("plain-gzip", &["-Fp", "-Z", "6"], "dump.sql.gz"),
    ("inserts", &["-Fp", "--inserts"], "inserts.sql"),
    (
        "column-inserts",
        &["-Fp", "--column-inserts", "--rows-per-insert=7"],
        "colinserts.sql",
    ),
    ("custom", &["-Fc"], "dump.custom"),
    ("custom-z0", &["-Fc", "-Z0"], "dump0.custom"),
    ("custom-inserts", &["-Fc", "--inserts"], "inserts.custom"),
    ("directory", &["-Fd"], "dumpdir"),
    ("directory-z0", &["-Fd", "-Z0"], "dumpdir0"),
    ("tar", &["-Ft"], "dump.tar"),
];

/// Makes every variant of a dump of `url` in `dir`, plus a custom dump written through a pipe
/// (so its table of contents has no data offsets).
fn make_dumps(url: &str, dir: &Path) -> Vec<(String, PathBuf)> {
    let pg_dump = pg_bin().join("pg_dump");
    let mut out = Vec::new();
    for (name, args, file) in VARIANTS {
        let path = dir.join(file);
        let o = Command::new(&pg_dump)
            .args(*args)
            .arg("-f")
            .arg(&path)
            .arg(url)
            .env("PGPASSWORD", password(url))
            .output()
            .unwrap();
        assert!(o.status.success(), "pg_dump {name}: {}", stderr(&o));
        out.push((name.to_string(), path));
    }
    let piped = dir.join("piped.custom");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' -Fc '{url}' | cat > '{}'",
            pg_dump.display(),
            piped.display()
        ))
        .env("PGPASSWORD", password(url))
        .output()
        .unwrap();
    assert!(o.status.success(), "pg_dump | cat: {}", stderr(&o));
    out.push(("custom-piped".into(), piped));
    out
}

/// Every cell rendered, in order: the comparison survives NaN (which is not equal to itself).
fn cells(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            rows.push(b.columns().iter().map(|c| render(c.as_ref(), r)).collect());
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_reads_from_each_dump_as_from_the_server() {
    let url = fresh_db("dump_types");
    sql(&url, &alltypes_sql());
    // pg_dump writes `integer[]` for an `int[][]` column (format_type drops the declared
    // dimensions), so a dump cannot know to read it as JSON the way the live catalog does.
    sql(&url, "ALTER TABLE alltypes DROP COLUMN a2");
    sql(&url, EXTRAS);
    let dir = tempfile::tempdir().unwrap();
    let dumps = make_dumps(&url, dir.path());
    for table in ["public.alltypes", "public.notes"] {
        let live = provider(&url, table, ReadOptions::default()).await;
        let live_schema = datafusion::datasource::TableProvider::schema(live.as_ref());
        let want = cells(&read_all(live, "SELECT * FROM t ORDER BY 1").await);
        assert!(want.len() > 5, "{table}: {want:?}");
        for (name, path) in &dumps {
            let archive =
                Arc::new(DumpArchive::open(path).unwrap_or_else(|e| panic!("{name}: {e}")));
            let catalog = archive.catalog();
            let qn = QualifiedName::parse(table).unwrap();
            let source = catalog
                .iter()
                .find(|t| t.name == qn)
                .unwrap_or_else(|| panic!("{name}: no {table} in {catalog:?}"));
            let p = Arc::new(
                DumpTableProvider::new(archive.clone(), source, ReadOptions::default()).unwrap(),
            );
            let schema = datafusion::datasource::TableProvider::schema(p.as_ref());
            assert_eq!(
                schema, live_schema,
                "{name} {table}: the Arrow schema differs"
            );
            let got = cells(&read_all(p, "SELECT * FROM t ORDER BY 1").await);
            assert_eq!(got.len(), want.len(), "{name} {table}");
            for (g, w) in got.iter().zip(&want) {
                for (i, (gc, wc)) in g.iter().zip(w).enumerate() {
                    assert_eq!(
                        gc,
                        wc,
                        "{name} {table}: column {} of row {:?}",
                        schema.field(i).name(),
                        w[0]
                    );
                }
            }
            let skipped = archive.skipped();
            for kind in ["SET", "COMMENT"] {
                assert!(
                    skipped.keys().any(|k| k.contains(kind)),
                    "{name}: no skipped {kind} statements in {skipped:?}"
                );
            }
        }
    }
}

#[test]
fn etl_run_from_each_dump_gives_the_live_database_row_by_row() {
    let url = fresh_db("dump_shapes");
    sql(&url, SHAPES);
    sql(&url, EXTRAS);
    sql(
        &url,
        "CREATE INDEX docs_emb ON docs USING hnsw (emb vector_l2_ops) WITH (m = 8, ef_construction = 40); ANALYZE;",
    );
    let dir = tempfile::tempdir().unwrap();
    let live_mapping = init(&url, dir.path());
    let live_text = std::fs::read_to_string(&live_mapping).unwrap();
    let postgres_line = live_text
        .lines()
        .find(|l| l.trim_start().starts_with("postgres:"))
        .unwrap()
        .to_string();
    let engine_line = live_text
        .lines()
        .find(|l| l.trim_start().starts_with("engine:"))
        .unwrap()
        .to_string();
    let dumps = make_dumps(&url, dir.path());
    for (name, path) in &dumps {
        let engine = dir.path().join(format!("engine-{name}"));
        let from_dump = live_text
            .replace(&postgres_line, &format!("  dump: '{}'", path.display()))
            .replace(&engine_line, &format!("  engine: '{}'", engine.display()));
        let m = write(dir.path(), &format!("{name}.yaml"), &from_dump);
        let o = etl_pw(
            &url,
            &["run", m.to_str().unwrap(), "--quiet", "--format", "json"],
        );
        assert!(o.status.success(), "{name}: {}\n{}", stderr(&o), stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains("skipped") && err.contains("SET"),
            "{name}: no warnings: {err}"
        );
        let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let notes = report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == "public.notes")
            .unwrap();
        assert_eq!(notes["rows_written"], 9, "{name}: {notes}");
        // The live database against what the dump loaded: row by row, every table.
        let check = live_text.replace(&engine_line, &format!("  engine: '{}'", engine.display()));
        let cm = write(dir.path(), &format!("{name}-verify.yaml"), &check);
        let (code, v) = verify_json(&url, &cm);
        assert_eq!(code, Some(0), "{name}: verify found differences: {v}");
        for t in v["tables"].as_array().unwrap() {
            assert_eq!(t["missing"], 0, "{name}: {t}");
            assert_eq!(t["mismatch"], 0, "{name}: {t}");
            assert_eq!(t["extraneous"], 0, "{name}: {t}");
        }
    }
    // `etl init --dump` gives the same mapping as `etl init --source`, but for the source line.
    let (_, custom) = dumps.iter().find(|(n, _)| n == "custom").unwrap();
    let o = etl_pw(
        &url,
        &["init", "--dump", custom.to_str().unwrap(), "--target", "x"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let from_dump = stdout(&o);
    assert!(from_dump.contains("  dump: "), "{from_dump}");
    let tables = |s: &str| {
        s.lines()
            .filter(|l| l.contains("- source: public."))
            .count()
    };
    assert_eq!(tables(&from_dump), tables(&live_text));
    assert!(
        from_dump.contains("M: 8") || from_dump.contains("M: 8,"),
        "the pgvector index parameters carry over: {from_dump}"
    );
}

#[test]
fn a_truncated_or_corrupted_dump_fails_where_it_is_bad_and_loads_nothing_half() {
    let url = fresh_db("dump_bad");
    sql(
        &url,
        "CREATE TABLE items (id bigint PRIMARY KEY, v vector(16));
         INSERT INTO items SELECT i, array_fill(i::real, ARRAY[16])::vector FROM generate_series(1, 20000) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let dumps = make_dumps(&url, dir.path());
    let run = |dump: &Path, tag: &str| {
        let engine = dir.path().join(format!("engine-{tag}"));
        let m = write(
            dir.path(),
            &format!("{tag}.yaml"),
            &format!(
                "version: 1\nsource:\n  dump: '{}'\ntarget:\n  engine: '{}'\noptions:\n  batch_size: 1000\n",
                dump.display(),
                engine.display()
            ),
        );
        let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
        let listed = etl_pw(
            &url,
            &["collections", "list", "--target", engine.to_str().unwrap()],
        );
        (o, stdout(&listed))
    };

    // A plain dump cut inside its COPY data: refused while scanning, with the line.
    let (_, plain) = dumps.iter().find(|(n, _)| n == "plain").unwrap();
    let text = std::fs::read_to_string(plain).unwrap();
    let cut = text.find("10000\t").unwrap();
    let truncated = write(dir.path(), "truncated.sql", &text[..cut + 20]);
    let (o, listed) = run(&truncated, "truncated");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("truncated.sql at line ") && err.contains("truncated"),
        "{err}"
    );
    assert!(!listed.contains("items"), "nothing loaded: {listed}");

    // A row with a field missing in the middle of a plain dump: refused with its line.
    let broken_line = text.lines().position(|l| l.starts_with("777\t")).unwrap() + 1;
    let mangled = text.replacen("777\t", "777", 1);
    let mangled = write(dir.path(), "mangled.sql", &mangled);
    let (o, listed) = run(&mangled, "mangled");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("mangled.sql at line {broken_line}")),
        "{}",
        stderr(&o)
    );
    assert!(!listed.contains("items"), "nothing loaded: {listed}");

    // A custom archive cut inside its (compressed) data: the run fails naming the place, and the
    // partly loaded collection is dropped.
    for variant in ["custom", "custom-z0"] {
        let (_, custom) = dumps.iter().find(|(n, _)| n == variant).unwrap();
        let bytes = std::fs::read(custom).unwrap();
        let short = dir.path().join(format!("{variant}-short"));
        std::fs::write(&short, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let (o, listed) = run(&short, &format!("{variant}-short"));
        assert_eq!(o.status.code(), Some(2), "{variant}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("byte offset") && err.contains("truncated"),
            "{variant}: {err}"
        );
        assert!(
            !listed.contains("items"),
            "{variant}: nothing half-loaded: {listed}"
        );
    }

    // One flipped byte inside the zlib data of a custom archive.
    let (_, custom) = dumps.iter().find(|(n, _)| n == "custom").unwrap();
    let mut bytes = std::fs::read(custom).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    let flipped = dir.path().join("flipped.custom");
    std::fs::write(&flipped, &bytes).unwrap();
    let (o, listed) = run(&flipped, "flipped");
    assert_ne!(
        o.status.code(),
        Some(0),
        "a corrupted archive must not load"
    );
    assert!(stderr(&o).contains("flipped.custom"), "{}", stderr(&o));
    assert!(!listed.contains("items"), "nothing half-loaded: {listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_parquet_files_load_like_the_live_table() {
    let url = fresh_db("files");
    sql(
        &url,
        "CREATE TABLE docs (id bigint PRIMARY KEY, cat text, day date, emb vector(8));
         INSERT INTO docs SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'c, \"' || (i % 5) || '\"' END, DATE '2024-01-01' + i,
           ARRAY(SELECT sin(i * k + k) FROM generate_series(1, 8) k)::real[]::vector FROM generate_series(1, 300) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    // Postgres' own CSV (vectors as pgvector's text), and Parquet of the live reader's batches.
    let csv = dir.path().join("docs.csv");
    let o = Command::new(pg_bin().join("psql"))
        .arg(&url)
        .arg("-c")
        .arg(format!(
            "\\copy (SELECT * FROM docs ORDER BY id) TO '{}' CSV HEADER",
            csv.display()
        ))
        .env("PGPASSWORD", password(&url))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let live = provider(&url, "public.docs", ReadOptions::default()).await;
    let batches = read_all(live, "SELECT * FROM t ORDER BY id").await;
    let pq_dir = dir.path().join("pq");
    std::fs::create_dir(&pq_dir).unwrap();
    let file = std::fs::File::create(pq_dir.join("docs.parquet")).unwrap();
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();

    let table_spec = "tables:\n  - source: public.docs\n    fields:\n      - source: id\n        primary_key: true\n";
    let live_mapping = |engine: &Path| {
        format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  engine: '{}'\n{table_spec}",
            engine.display()
        )
    };
    for (kind, spec) in [
        ("csv", csv.display().to_string()),
        ("parquet", pq_dir.display().to_string()),
    ] {
        let engine = dir.path().join(format!("engine-{kind}"));
        let m = write(
            dir.path(),
            &format!("{kind}.yaml"),
            &format!(
                "version: 1\nsource:\n  {kind}: '{spec}'\ntarget:\n  engine: '{}'\n{table_spec}",
                engine.display()
            ),
        );
        let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{kind}: {}\n{}", stderr(&o), stdout(&o));
        let v = write(
            dir.path(),
            &format!("{kind}-verify.yaml"),
            &live_mapping(&engine),
        );
        let (code, report) = verify_json(&url, &v);
        assert_eq!(
            code,
            Some(0),
            "{kind}: the files' collection differs from the live table: {report}"
        );
        assert_eq!(report["tables"][0]["success"], 300, "{kind}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_columns_inheritance_rules_and_partition_root_dumps_read_right() {
    let url = fresh_db("dump_quirks");
    sql(
        &url,
        "CREATE TYPE color AS ENUM ('red', 'green', 'blue');
         CREATE TABLE gen_t (id int PRIMARY KEY, v vector(2), g int GENERATED ALWAYS AS (id * 2) STORED);
         INSERT INTO gen_t (id, v) SELECT i, ARRAY[i, 0]::real[]::vector FROM generate_series(1, 10) i;
         CREATE TABLE parent_t (id int NOT NULL, v vector(2));
         CREATE TABLE child_t (note text) INHERITS (parent_t);
         INSERT INTO child_t VALUES (1, '[1,2]', 'c1'), (2, '[3,4]', 'c2');
         CREATE TABLE a (x int); CREATE TABLE b (x int);
         INSERT INTO a SELECT generate_series(1, 3); INSERT INTO b SELECT generate_series(1, 4);
         CREATE VIEW ab AS SELECT x FROM a;
         CREATE RULE ab_ins AS ON INSERT TO ab DO INSTEAD (INSERT INTO a VALUES (new.x); INSERT INTO b (x) VALUES (new.x));
         CREATE FUNCTION add_both() RETURNS void LANGUAGE sql BEGIN ATOMIC INSERT INTO a VALUES (100); INSERT INTO b VALUES (200); END;
         CREATE TABLE my_values (id int PRIMARY KEY, values_json jsonb, v vector(2));
         INSERT INTO my_values SELECT i, jsonb_build_object('k', i), ARRAY[i, i]::real[]::vector FROM generate_series(1, 5) i;
         CREATE TABLE hp (id int NOT NULL, c color NOT NULL, v vector(2)) PARTITION BY HASH (c);
         CREATE TABLE hp0 PARTITION OF hp FOR VALUES WITH (MODULUS 2, REMAINDER 0);
         CREATE TABLE hp1 PARTITION OF hp FOR VALUES WITH (MODULUS 2, REMAINDER 1);
         INSERT INTO hp SELECT i, (ARRAY['red','green','blue']::color[])[1 + i % 3], ARRAY[i, 1]::real[]::vector FROM generate_series(1, 30) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let pg_dump = pg_bin().join("pg_dump");
    for (name, args) in [
        ("plain", vec!["-Fp"]),
        (
            "inserts",
            vec!["-Fp", "--inserts", "--on-conflict-do-nothing"],
        ),
        ("custom-root", vec!["-Fc", "--load-via-partition-root"]),
        (
            "column-inserts-root",
            vec!["-Fp", "--column-inserts", "--load-via-partition-root"],
        ),
    ] {
        let path = dir.path().join(name);
        let o = Command::new(&pg_dump)
            .args(&args)
            .arg("-f")
            .arg(&path)
            .arg(&url)
            .env("PGPASSWORD", password(&url))
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let archive = Arc::new(DumpArchive::open(&path).unwrap_or_else(|e| panic!("{name}: {e}")));
        let catalog = archive.catalog();
        let table = |t: &str| {
            catalog
                .iter()
                .find(|s| s.name.name == t)
                .unwrap_or_else(|| panic!("{name}: no {t}"))
                .clone()
        };
        let count = |t: &str| {
            let source = table(t);
            let archive = archive.clone();
            async move {
                let p = Arc::new(
                    DumpTableProvider::new(archive, &source, ReadOptions::default()).unwrap(),
                );
                let b = read_all(p, "SELECT count(*) AS n FROM t").await;
                render(b[0].column(0).as_ref(), 0)
            }
        };
        // A generated column has no values in a dump: left out, with a warning.
        let gen_cols: Vec<String> = table("gen_t")
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(gen_cols, vec!["id", "v"], "{name}");
        assert!(
            archive
                .skipped()
                .keys()
                .any(|k| k.contains("generated column public.gen_t.g")),
            "{name}: {:?}",
            archive.skipped()
        );
        assert_eq!(count("gen_t").await, "10", "{name}");
        // Inherited columns come first, as the live catalog lists them.
        let child: Vec<String> = table("child_t")
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(child, vec!["id", "v", "note"], "{name}");
        assert_eq!(count("child_t").await, "2", "{name}");
        // Rule actions and atomic function bodies are not data.
        assert_eq!(count("a").await, "3", "{name}");
        assert_eq!(count("b").await, "4", "{name}");
        assert_eq!(count("my_values").await, "5", "{name}");
        // Partition data written under the root (hash on an enum) is the root's.
        assert_eq!(count("hp").await, "30", "{name}");
    }
}

/// A value that is not of its column's type (`42x42` in an integer column) and a vector of
/// another dimension, in a plain dump (the vector in the second of two read ranges) and in a
/// tar dump: with `max_rejects` 0 the run stops naming the file, the line (the tar's member),
/// the table and the column; under `max_rejects` the rows go to the rejects file with their
/// place and everything else loads, and `etl verify` counts them missing.
#[test]
fn bad_rows_in_dumps_name_their_place_and_go_to_rejects_under_max_rejects() {
    let url = fresh_db("dump_bad_rows");
    sql(
        &url,
        "CREATE TABLE items (id bigint PRIMARY KEY, n int, v vector(16));
         INSERT INTO items SELECT i, CASE WHEN i = 777 THEN 424242 ELSE i END,
           array_fill((i % 97)::real, ARRAY[16])::vector FROM generate_series(1, 200000) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let pg_dump = pg_bin().join("pg_dump");
    let dump = |args: &[&str], file: &str| {
        let path = dir.path().join(file);
        let o = Command::new(&pg_dump)
            .args(args)
            .arg("-f")
            .arg(&path)
            .arg(&url)
            .env("PGPASSWORD", password(&url))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        path
    };
    // Plain: `42x42` on row 777, and row 190000's vector one value short.
    let plain = dump(&["-Fp"], "good.sql");
    let text = std::fs::read_to_string(&plain).unwrap();
    let x = (190000 % 97).to_string();
    let short_row = format!("190000\t190000\t[{}]", vec![x.as_str(); 16].join(","));
    assert!(text.contains(&short_row), "the dump's vector text changed");
    let text = text.replacen("\t424242\t", "\t42x42\t", 1).replacen(
        &short_row,
        &format!("190000\t190000\t[{}]", vec![x.as_str(); 15].join(",")),
        1,
    );
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    let (bad_n, bad_v) = (line_of("777\t"), line_of("190000\t"));
    let bad_plain = write(dir.path(), "bad.sql", &text);
    // Tar: the same integer, same length, inside the table's member.
    let tar = dump(&["-Ft"], "good.tar");
    let mut bytes = std::fs::read(&tar).unwrap();
    let at = bytes.windows(8).position(|w| w == b"\t424242\t").unwrap();
    bytes[at + 1..at + 7].copy_from_slice(b"4242x2");
    let bad_tar = dir.path().join("bad.tar");
    std::fs::write(&bad_tar, &bytes).unwrap();
    // Custom (uncompressed) and directory (uncompressed): the same edit in the block or file.
    let custom = dump(&["-Fc", "-Z0"], "bad.custom");
    let mut bytes = std::fs::read(&custom).unwrap();
    let at = bytes.windows(8).position(|w| w == b"\t424242\t").unwrap();
    bytes[at + 1..at + 7].copy_from_slice(b"4242x2");
    std::fs::write(&custom, &bytes).unwrap();
    let directory = dump(&["-Fd", "-Z0"], "bad.dir");
    let data_file = std::fs::read_dir(&directory)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "dat")
                && std::fs::read(p)
                    .unwrap()
                    .windows(8)
                    .any(|w| w == b"\t424242\t")
        })
        .unwrap();
    let text = std::fs::read_to_string(&data_file).unwrap();
    std::fs::write(&data_file, text.replacen("\t424242\t", "\t4242x2\t", 1)).unwrap();

    let mapping = |dump: &Path, tag: &str, max_rejects: u64| {
        write(
            dir.path(),
            &format!("{tag}.yaml"),
            &format!(
                "version: 1\nsource:\n  dump: '{}'\ntarget:\n  engine: '{}'\ntables:\n  - source: public.items\n    max_rejects: {max_rejects}\n    fields:\n      - {{ source: v, index: {{ type: FLAT }} }}\noptions:\n  parallelism: 2\n",
                dump.display(),
                dir.path().join(format!("engine-{tag}")).display()
            ),
        )
    };
    // Stopped at the first bad row, named in full.
    let m = mapping(&bad_plain, "plain0", 0);
    let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let n_place = format!("bad.sql at line {bad_n}");
    let v_place = format!("bad.sql at line {bad_v}");
    assert!(
        err.contains("public.items")
            && ((err.contains(&n_place) && err.contains("`n`"))
                || (err.contains(&v_place) && err.contains("`v`"))),
        "{err}"
    );
    let m = mapping(&bad_tar, "tar0", 0);
    let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("bad.tar")
            && err.contains("member")
            && err.contains("public.items")
            && err.contains("`n`")
            && err.contains("4242x2"),
        "{err}"
    );

    for (dump, tag, place) in [
        (&custom, "custom0", "data block at byte offset"),
        (&directory, "dir0", "data file "),
    ] {
        let m = mapping(dump, tag, 0);
        let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
        assert_eq!(o.status.code(), Some(2), "{tag}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(place) && err.contains("public.items") && err.contains("`n`"),
            "{tag}: {err}"
        );
    }

    // Set aside under max_rejects: everything else loads, the rejects say where.
    for (dump, tag, bad) in [(&bad_plain, "plain5", 2u64), (&bad_tar, "tar5", 1)] {
        let m = mapping(dump, tag, 5);
        let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--format", "json"]);
        assert!(o.status.success(), "{tag}: {}", stderr(&o));
        let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let t = &report["tables"][0];
        assert_eq!(t["rows_rejected"], bad, "{tag}: {report}");
        assert_eq!(t["collection_rows"], 200000 - bad, "{tag}: {report}");
        let rejects = std::fs::read_to_string(t["rejects_file"].as_str().unwrap()).unwrap();
        assert_eq!(rejects.lines().count() as u64, bad, "{rejects}");
        assert!(rejects.contains("\"unreadable\""), "{rejects}");
        if tag == "plain5" {
            assert!(
                rejects.contains(&n_place) && rejects.contains(&v_place),
                "{rejects}"
            );
        } else {
            assert!(rejects.contains("member "), "{rejects}");
        }
        let (code, v) = verify_json(&url, &m);
        assert_eq!(code, Some(1), "{v:#}");
        assert_eq!(v["tables"][0]["missing"], bad, "{v:#}");
        assert_eq!(v["tables"][0]["mismatch"], 0, "{v:#}");
        assert_eq!(v["tables"][0]["extraneous"], 0, "{v:#}");
    }
}
