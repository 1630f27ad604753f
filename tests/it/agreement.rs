//! `etl plan` exiting 0 is a promise (issue 16): every refusal `etl run` makes on schema
//! grounds is a required fix in the plan first, found by the same code. One case per refusal
//! kind, over every target kind it applies to (the embedded engine, a stage, a real Milvus
//! 2.3.5, and a stage imported into that Milvus): the plan exits 1 naming the fix, the run
//! refuses with the same words before writing anything, and the fix applied makes both pass.

use std::path::Path;

use serde_json::Value;

use crate::run::etl_pw;
use crate::support::{fresh_db, milvus_client, milvus_url, sql, stderr, stdout, write};

/// The target kinds: name and the `target:` block for `dir`.
fn targets(dir: &Path) -> Vec<(&'static str, String)> {
    let stage = format!("'file://{}'", dir.join("stage").display());
    vec![
        (
            "engine",
            format!("  engine: '{}'\n", dir.join("engine").display()),
        ),
        ("stage", format!("  stage: {stage}\n")),
        ("milvus", format!("  milvus: '{}'\n", milvus_url())),
        (
            "staged milvus",
            format!("  stage: {stage}\n  milvus: '{}'\n", milvus_url()),
        ),
    ]
}

/// The plan's required fixes (messages), and its exit code.
fn plan_fixes(url: &str, m: &Path, extra: &[&str]) -> (Option<i32>, Vec<String>) {
    let mut args = vec!["plan", m.to_str().unwrap(), "--format", "json"];
    args.extend(extra);
    let o = etl_pw(url, &args);
    let v: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("plan printed no JSON ({e}): {}", stderr(&o)));
    let fixes = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["required_fixes"].as_array().unwrap().clone())
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect();
    (o.status.code(), fixes)
}

/// Plan and run agree on `tables_yaml` into `target`: plan exits 1 with a fix containing
/// `expect`, the run refuses quoting every fix and writes nothing.
async fn refused_alike(
    url: &str,
    dir: &Path,
    tag: &str,
    target: &str,
    tables_yaml: &str,
    expect: &str,
) {
    let m = write(
        dir,
        &format!("{}.yaml", tag.replace(' ', "_")),
        &format!(
            "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n{target}tables:\n{tables_yaml}"
        ),
    );
    let (code, fixes) = plan_fixes(url, &m, &[]);
    assert_eq!(code, Some(1), "{tag}: plan should need fixes: {fixes:?}");
    assert!(
        fixes.iter().any(|f| f.contains(expect)),
        "{tag}: no fix says `{expect}`: {fixes:?}"
    );
    let o = etl_pw(url, &["run", m.to_str().unwrap(), "--quiet"]);
    assert_ne!(o.status.code(), Some(0), "{tag}: run should refuse");
    let err = stderr(&o);
    for f in &fixes {
        assert!(
            err.contains(f.as_str()),
            "{tag}: the run does not say `{f}`: {err}"
        );
    }
    let collections = std::fs::read_dir(dir.join("engine"))
        .map(|d| {
            d.filter(|e| e.as_ref().unwrap().path().join("manifest.json").exists())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(collections, 0, "{tag}: the engine was written");
    assert!(
        !dir.join("stage").join("manifest.json").exists(),
        "{tag}: a stage was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_run_refuse_alike_on_every_target() {
    let url = fresh_db("agreement");
    let pid = std::process::id();
    sql(
        &url,
        "CREATE TABLE untyped (id int PRIMARY KEY, e vector);
         INSERT INTO untyped VALUES (1, '[1,2,3]'), (2, '[3,2,1]');
         CREATE SCHEMA kb;
         CREATE TABLE public.docs (id int PRIMARY KEY, v vector(3));
         CREATE TABLE kb.docs (id int PRIMARY KEY, v vector(3));
         CREATE TABLE halves (id int PRIMARY KEY, h halfvec(4));
         INSERT INTO halves VALUES (1, '[1,2,3,4]');
         CREATE TABLE plain (id int PRIMARY KEY, name text);
         INSERT INTO plain VALUES (1, 'a');",
    );
    let (client, _) = milvus_client().await;
    let docs_before = client.has_collection("docs").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (kind, _) in targets(dir.path()) {
        let sub = dir.path().join(kind.replace(' ', "_"));
        std::fs::create_dir_all(&sub).unwrap();
        let (_, target) = targets(&sub).into_iter().find(|(k, _)| *k == kind).unwrap();
        let milvus = kind.contains("milvus");
        // A vector column without a dimension, and none in the mapping.
        refused_alike(
            &url,
            &sub,
            &format!("{kind} untyped"),
            &target,
            &format!("  - source: public.untyped\n    collection: untyped_{pid}\n"),
            "dim",
        )
        .await;
        // Two tables that would be the same collection.
        refused_alike(
            &url,
            &sub,
            &format!("{kind} collision"),
            &target,
            "  - source: public.docs\n  - source: kb.docs\n",
            "kb.docs",
        )
        .await;
        if milvus {
            // What Milvus 2.3 cannot hold: halfvec, a collection without a vector field.
            refused_alike(
                &url,
                &sub,
                &format!("{kind} halfvec"),
                &target,
                &format!("  - source: public.halves\n    collection: halves_{pid}\n"),
                "FLOAT16_VECTOR",
            )
            .await;
            refused_alike(
                &url,
                &sub,
                &format!("{kind} scalar-only"),
                &target,
                &format!("  - source: public.plain\n    collection: plain_{pid}\n"),
                "vector field",
            )
            .await;
        }
    }
    // None of the refused runs created its collection (other tests use the server meanwhile,
    // so the names are checked, not the count).
    let now = client.list_collections().await.unwrap();
    for name in [
        format!("untyped_{pid}"),
        format!("halves_{pid}"),
        format!("plain_{pid}"),
    ] {
        assert!(!now.contains(&name), "a refused run created `{name}`");
    }
    assert_eq!(
        now.contains(&"docs".to_string()),
        docs_before,
        "a refused run created `docs`"
    );

    // A collection on the server that is not this mapping's: a required fix unless planned
    // (and run) with --recreate, for a direct load and for a staged import alike.
    let name = format!("taken_{pid}");
    for kind in ["milvus", "staged milvus"] {
        let sub = dir.path().join(format!("taken_{}", kind.replace(' ', "_")));
        std::fs::create_dir_all(&sub).unwrap();
        let (_, target) = targets(&sub).into_iter().find(|(k, _)| *k == kind).unwrap();
        let tables = format!("  - source: public.docs\n    collection: {name}\n");
        let m = write(
            &sub,
            "m.yaml",
            &format!(
                "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n{target}tables:\n{tables}"
            ),
        );
        // Someone else's collection of that name (made by another mapping's run).
        let other = write(
            &sub,
            "other.yaml",
            &format!(
                "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  milvus: '{}'\ntables:\n{tables}",
                milvus_url()
            ),
        );
        let other_dir = sub.join("other");
        std::fs::create_dir_all(&other_dir).unwrap();
        let other = {
            let moved = other_dir.join("other.yaml");
            std::fs::rename(&other, &moved).unwrap();
            moved
        };
        let o = etl_pw(
            &url,
            &["run", other.to_str().unwrap(), "--quiet", "--recreate"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let (code, fixes) = plan_fixes(&url, &m, &[]);
        assert_eq!(code, Some(1), "{kind}: {fixes:?}");
        assert!(
            fixes.iter().any(|f| f.contains("already exists")),
            "{kind}: {fixes:?}"
        );
        let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
        assert_ne!(o.status.code(), Some(0), "{kind}");
        for f in &fixes {
            assert!(stderr(&o).contains(f.as_str()), "{kind}: {}", stderr(&o));
        }
        assert!(
            !sub.join("stage").join("manifest.json").exists(),
            "{kind}: staged before refusing"
        );
        let (code, fixes) = plan_fixes(&url, &m, &["--recreate"]);
        assert_eq!(code, Some(0), "{kind}: {fixes:?}");
        let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet", "--recreate"]);
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
    }
    client.drop_collection(&name).await.unwrap();
}

/// An untyped `vector` column whose rows have two dimensions: the plan lists them with their
/// counts; with a `dim:` the rows of the other dimension are a required fix (they would be
/// rejected beyond `max_rejects`), and either choice it names (a `where:` on the dimension, or
/// `max_rejects` covering them) gives a plan that exits 0 and a run that does what it said.
#[test]
fn mixed_dimensions_are_counted_by_the_plan() {
    let url = fresh_db("mixed_dims");
    sql(
        &url,
        "CREATE TABLE mixed (id int PRIMARY KEY, e vector);
         INSERT INTO mixed SELECT i, CASE WHEN i <= 5 THEN '[1,2,3]'::vector ELSE '[1,2,3,4]'::vector END
         FROM generate_series(1, 7) i;",
    );
    let dir = tempfile::tempdir().unwrap();
    let mapping = |tag: &str, table: &str| {
        write(
            dir.path(),
            &format!("{tag}.yaml"),
            &format!(
                "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  engine: '{}'\ntables:\n  - source: public.mixed\n{table}",
                dir.path().join(tag).display()
            ),
        )
    };
    let m = mapping("open", "");
    let (code, fixes) = plan_fixes(&url, &m, &[]);
    assert_eq!(code, Some(1), "{fixes:?}");
    assert!(
        fixes.iter().any(|f| f.contains("3 (5 rows), 4 (2 rows)")),
        "{fixes:?}"
    );
    let o = etl_pw(&url, &["run", m.to_str().unwrap(), "--quiet"]);
    assert!(
        stderr(&o).contains("3 (5 rows), 4 (2 rows)"),
        "{}",
        stderr(&o)
    );

    let m = mapping("dim3", "    fields:\n      - { source: e, dim: 3 }\n");
    let (code, fixes) = plan_fixes(&url, &m, &[]);
    assert_eq!(code, Some(1), "{fixes:?}");
    assert!(
        fixes
            .iter()
            .any(|f| f.contains("2 rows are not of dimension 3")),
        "{fixes:?}"
    );
    for (tag, table, written) in [
        (
            "where3",
            "    where: vector_dims(e) = 3\n    fields:\n      - { source: e, dim: 3 }\n",
            5,
        ),
        (
            "rejects2",
            "    max_rejects: 2\n    fields:\n      - { source: e, dim: 3 }\n",
            5,
        ),
        (
            "where4",
            "    where: vector_dims(e) = 4\n    fields:\n      - { source: e, dim: 4 }\n",
            2,
        ),
    ] {
        let m = mapping(tag, table);
        let (code, fixes) = plan_fixes(&url, &m, &[]);
        assert_eq!(code, Some(0), "{tag}: {fixes:?}");
        let o = etl_pw(
            &url,
            &["run", m.to_str().unwrap(), "--quiet", "--format", "json"],
        );
        assert!(o.status.success(), "{tag}: {}", stderr(&o));
        let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(
            report["tables"][0]["collection_rows"], written,
            "{tag}: {report}"
        );
    }
}

/// A `target:` that names both the engine and Milvus is refused with the same words by
/// `etl plan`, `etl run` and `etl verify` (it once loaded the engine while the plan applied
/// Milvus' rules and verify read the engine), before anything is read or written.
#[test]
fn an_ambiguous_target_is_refused_alike_by_plan_run_and_verify() {
    let url = fresh_db("ambiguous");
    sql(
        &url,
        "CREATE TABLE t (id int PRIMARY KEY, v vector(2)); INSERT INTO t VALUES (1, '[1,2]');",
    );
    let dir = tempfile::tempdir().unwrap();
    let engine = dir.path().join("engine");
    for (tag, extra) in [
        ("engine_milvus", String::new()),
        (
            "engine_stage_milvus",
            format!("  stage: 'file://{}'\n", dir.path().join("stage").display()),
        ),
    ] {
        let m = write(
            dir.path(),
            &format!("{tag}.yaml"),
            &format!(
                "version: 1\nsource:\n  postgres: '{url}'\ntarget:\n  engine: '{}'\n{extra}  milvus: 'http://127.0.0.1:9'\ntables:\n  - source: public.t\n",
                engine.display()
            ),
        );
        for command in ["plan", "run", "verify"] {
            let o = etl_pw(&url, &[command, m.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(2), "{tag} {command}: {}", stderr(&o));
            assert!(
                stderr(&o).contains("names both `engine` and `milvus`"),
                "{tag} {command}: {}",
                stderr(&o)
            );
        }
        assert!(!engine.exists(), "{tag}: the engine was written");
    }
}
