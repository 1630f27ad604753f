//! The binary-COPY reader against a real server: every type checked value by value against
//! Postgres' own text output, a consistent parallel read while the source takes writes, and a
//! reader whose backend is terminated mid-read.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::arrow::array::{
    Array, BinaryArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, Float16Array,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::TableProvider;
use datafusion::prelude::SessionContext;
use etl_connectors::postgres::{PgTableProvider, PgUrl, ReadOptions, connect, describe_tables};
use etl_mappings::QualifiedName;
use futures::StreamExt;

use crate::support::{fresh_db, sql};

pub(crate) async fn provider(url: &str, table: &str, options: ReadOptions) -> Arc<PgTableProvider> {
    let pg = PgUrl::parse(url).unwrap();
    let client = connect(&pg).await.unwrap();
    let name = QualifiedName::parse(table).unwrap();
    let tables = describe_tables(&client, Some(&[name])).await.unwrap();
    Arc::new(PgTableProvider::new(pg, &tables[0], options))
}

pub(crate) async fn read_all(p: Arc<dyn TableProvider>, query: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    ctx.register_table("t", p).unwrap();
    ctx.sql(query).await.unwrap().collect().await.unwrap()
}

/// Renders one cell the way the expected-value SQL below renders it.
pub(crate) fn render(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        return "NULL".into();
    }
    let any = a.as_any();
    match a.data_type() {
        DataType::Boolean => any
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Int16 => any
            .downcast_ref::<Int16Array>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Int32 => any
            .downcast_ref::<Int32Array>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Int64 => any
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Float32 => float32(any.downcast_ref::<Float32Array>().unwrap().value(i)),
        DataType::Float64 => float(any.downcast_ref::<Float64Array>().unwrap().value(i)),
        DataType::Utf8 => any
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Binary => hex(any.downcast_ref::<BinaryArray>().unwrap().value(i)),
        DataType::FixedSizeBinary(_) => any
            .downcast_ref::<FixedSizeBinaryArray>()
            .unwrap()
            .value(i)
            .iter()
            .map(|b| format!("{b:08b}"))
            .collect(),
        DataType::FixedSizeList(_, _) => {
            let v = any.downcast_ref::<FixedSizeListArray>().unwrap().value(i);
            let items: Vec<String> = (0..v.len()).map(|j| render(v.as_ref(), j)).collect();
            format!("[{}]", items.join(","))
        }
        DataType::Float16 => float32(
            any.downcast_ref::<Float16Array>()
                .unwrap()
                .value(i)
                .to_f32(),
        ),
        DataType::List(_) => {
            let v = any.downcast_ref::<ListArray>().unwrap().value(i);
            let items: Vec<String> = (0..v.len()).map(|j| render(v.as_ref(), j)).collect();
            format!("[{}]", items.join(","))
        }
        DataType::Struct(_) => {
            // sparsevec: pgvector's text form is 1-based.
            let s = any.downcast_ref::<StructArray>().unwrap();
            let dim = s
                .column(0)
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .value(i);
            let idx = s
                .column(1)
                .as_any()
                .downcast_ref::<ListArray>()
                .unwrap()
                .value(i);
            let val = s
                .column(2)
                .as_any()
                .downcast_ref::<ListArray>()
                .unwrap()
                .value(i);
            let idx = idx.as_any().downcast_ref::<Int32Array>().unwrap();
            let val = val.as_any().downcast_ref::<Float32Array>().unwrap();
            let pairs: Vec<String> = (0..idx.len())
                .map(|j| format!("{}:{}", idx.value(j) + 1, float32(val.value(j))))
                .collect();
            format!("{{{}}}/{dim}", pairs.join(","))
        }
        other => panic!("no renderer for {other}"),
    }
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        format!("{v:e}")
    }
}

fn float32(v: f32) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else {
        float(f64::from(v))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Each column, its type, the values to insert (SQL literals) and how Postgres renders them to
/// match [`render`]. `$` stands for the column in the expected-value expression; `f` marks a
/// float rendering done on the Rust side.
const COLUMNS: &[(&str, &str, &[&str], &str)] = &[
    ("b", "boolean", &["true", "false"], "$::text"),
    ("i2", "smallint", &["-32768", "32767"], "$::text"),
    ("i4", "integer", &["-2147483648", "0"], "$::text"),
    (
        "i8",
        "bigint",
        &["-9223372036854775808", "9223372036854775807"],
        "$::text",
    ),
    (
        "f4",
        "real",
        &["'NaN'", "'-Infinity'", "3.14159", "1e-38"],
        "f",
    ),
    (
        "f8",
        "double precision",
        &["'Infinity'", "-0.0", "1e300", "'NaN'"],
        "f",
    ),
    (
        "n",
        "numeric",
        &[
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "0.000001",
            "-123456789012345678901234567890.123456789",
            "0",
            "1e20",
        ],
        "$::text",
    ),
    ("n2", "numeric(12,4)", &["1.5", "-0.0001"], "$::text"),
    ("t", "text", &["''", "'héllo ✓ \"q\" \\ tab\t'"], "$"),
    ("vc", "varchar(10)", &["'abc'"], "$"),
    (
        "c",
        "char(3)",
        &["'a'"],
        "CASE WHEN $ IS NOT NULL THEN format('%s', $) END",
    ),
    (
        "u",
        "uuid",
        &["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"],
        "$::text",
    ),
    (
        "d",
        "date",
        &[
            "'infinity'",
            "'-infinity'",
            "'2024-02-29'",
            "'0044-03-15 BC'",
            "'1999-12-31'",
        ],
        "to_json($)#>>'{}'",
    ),
    (
        "ts",
        "timestamp",
        &[
            "'infinity'",
            "'-infinity'",
            "'2024-02-29 13:14:15.123456'",
            "'0100-01-01 00:00:00 BC'",
            "'1970-01-01'",
        ],
        "to_json($)#>>'{}'",
    ),
    (
        "tz",
        "timestamptz",
        &[
            "'infinity'",
            "'2024-06-01 12:00:00+02'",
            "'1999-12-31 23:59:59.5-08'",
        ],
        "to_json($)#>>'{}'",
    ),
    (
        "tm",
        "time",
        &["'00:00:00'", "'23:59:59.999999'"],
        "to_json($)#>>'{}'",
    ),
    (
        "ttz",
        "timetz",
        &["'12:00:00+05:30'", "'01:02:03-08'"],
        "to_json($)#>>'{}'",
    ),
    (
        "iv",
        "interval",
        &["'1 year 2 mons 3 days 04:05:06.7'"],
        "$::text",
    ),
    ("ip", "inet", &["'192.168.0.1/24'", "'::1'"], "$::text"),
    ("j", "json", &["'{\"b\": 1,  \"a\": [1, 2]}'"], "$::text"),
    (
        "jb",
        "jsonb",
        &["'{\"b\": 1, \"a\": [1, 2, null]}'"],
        "$::text",
    ),
    ("by", "bytea", &["'\\x00ff10'", "''"], "encode($, 'hex')"),
    ("e", "mood", &["'happy'"], "$::text"),
    ("dm", "short_text", &["'in a domain'"], "$::text"),
    ("v", "vector(3)", &["'[1,-2.5,3e-7]'", "'[0,0,0]'"], "vec"),
    ("vu", "vector", &["'[1,2]'", "'[1,2,3,4]'"], "vec"),
    ("h", "halfvec(2)", &["'[1.5,-65504]'"], "vec"),
    (
        "sv",
        "sparsevec(10)",
        &["'{1:1.5,10:-2}/10'", "'{}/10'"],
        "sparse",
    ),
    ("bt", "bit(16)", &["B'1010101011110000'"], "$::text"),
    ("bo", "bit(5)", &["B'10101'"], "$::text"),
    ("vb", "varbit(20)", &["B'101'"], "$::text"),
    ("ai", "int[]", &["'{}'", "'{1,NULL,3}'"], "arr"),
    ("at", "text[]", &["'{a,\"b c\",NULL,\"\"}'"], "arr"),
    ("an", "numeric[]", &["'{1.50,NaN}'"], "arr"),
    ("ad", "date[]", &["'{2024-01-01,infinity}'"], "arr"),
    (
        "au",
        "uuid[]",
        &["'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'"],
        "arr",
    ),
    ("ainet", "inet[]", &["'{10.0.0.1,::1}'"], "arr"),
    (
        "a2",
        "int[][]",
        &["'{{1,2},{3,4}}'"],
        "array_to_json($)::text",
    ),
];

/// The `alltypes` table: one column per type above, row k holding each column's k-th value.
pub(crate) fn alltypes_sql() -> String {
    let mut ddl = String::from(
        "CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN short_text AS varchar(40);\nCREATE TABLE alltypes (k int PRIMARY KEY",
    );
    for (name, ty, _, _) in COLUMNS {
        ddl.push_str(&format!(", {name} {ty}"));
    }
    ddl.push_str(");\n");
    // Row k sets every column to its k-th value (or NULL past the end); one row all NULL.
    let rows = COLUMNS.iter().map(|c| c.2.len()).max().unwrap() + 1;
    for k in 0..rows {
        let vals: Vec<String> = COLUMNS
            .iter()
            .map(|(_, ty, vs, _)| {
                vs.get(k)
                    .map_or("NULL".to_string(), |v| format!("({v})::{ty}"))
            })
            .collect();
        ddl.push_str(&format!(
            "INSERT INTO alltypes VALUES ({k}, {});\n",
            vals.join(", ")
        ));
    }
    ddl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_decodes_to_postgres_own_values() {
    let url = fresh_db("types");
    let ddl = alltypes_sql();
    sql(&url, &ddl);

    let p = provider(&url, "public.alltypes", ReadOptions::default()).await;
    let batches = read_all(p, "SELECT * FROM t ORDER BY k").await;
    let got: Vec<Vec<String>> = batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| {
                (1..b.num_columns())
                    .map(|c| render(b.column(c).as_ref(), i))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    assert_eq!(
        got.len(),
        COLUMNS.iter().map(|c| c.2.len()).max().unwrap() + 1
    );

    // What Postgres says, in the same shapes.
    let pg = PgUrl::parse(&url).unwrap();
    let client = connect(&pg).await.unwrap();
    client
        .batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
        .await
        .unwrap();
    for (ci, (name, ty, _, how)) in COLUMNS.iter().enumerate() {
        let expr = match *how {
            "f" | "vec" | "sparse" | "arr" => format!("{name}::text"),
            other => other.replace('$', name),
        };
        let expected: Vec<Option<String>> = client
            .query(
                &format!("SELECT ({expr})::text FROM alltypes ORDER BY k"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (row, exp) in expected.iter().enumerate() {
            let ours = &got[row][ci];
            let Some(exp) = exp else {
                assert_eq!(ours, "NULL", "{name} ({ty}) row {row}");
                continue;
            };
            let want = match *how {
                "f" if *ty == "real" => float32(exp.parse::<f32>().unwrap()),
                "f" => float(exp.parse::<f64>().unwrap()),
                "vec" => {
                    let inner = exp.trim_matches(|c| c == '[' || c == ']');
                    let items: Vec<String> = inner
                        .split(',')
                        .map(|x| {
                            let v: f32 = x.parse().unwrap();
                            if ty.starts_with("halfvec") {
                                float32(half::f16::from_f32(v).to_f32())
                            } else {
                                float32(v)
                            }
                        })
                        .collect();
                    format!("[{}]", items.join(","))
                }
                "sparse" => {
                    let (body, dim) = exp.rsplit_once('/').unwrap();
                    let body = body.trim_matches(|c| c == '{' || c == '}');
                    let pairs: Vec<String> = body
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (i, v) = p.split_once(':').unwrap();
                            format!("{i}:{}", float32(v.parse::<f32>().unwrap()))
                        })
                        .collect();
                    format!("{{{}}}/{dim}", pairs.join(","))
                }
                "arr" => {
                    // Postgres' own array elements, each in the element's canonical text.
                    let elem_ty = ty.trim_end_matches("[]");
                    let elem_expr = match elem_ty {
                        "date" => "to_json(x)#>>'{}'".to_string(),
                        _ => "x::text".to_string(),
                    };
                    let r = client
                        .query_one(&format!("SELECT array(SELECT coalesce({elem_expr}, 'NULL') FROM unnest({name}) WITH ORDINALITY AS u(x, o) ORDER BY o) FROM alltypes WHERE k = {row}"), &[])
                        .await
                        .unwrap();
                    let items: Vec<String> = r.get(0);
                    format!("[{}]", items.join(","))
                }
                _ => exp.clone(),
            };
            assert_eq!(ours, &want, "{name} ({ty}) row {row}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_read_is_one_point_in_time_while_the_source_takes_writes() {
    let url = fresh_db("consistent");
    const N: i64 = 40_000;
    sql(
        &url,
        &format!(
            "CREATE TABLE acct (id bigint PRIMARY KEY, bal int NOT NULL, pad text);
         INSERT INTO acct SELECT i, 100, repeat('x', 200) FROM generate_series(1, {N}) i;
         ANALYZE acct;"
        ),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let client = connect(&PgUrl::parse(&url).unwrap()).await.unwrap();
            let mut k: i64 = 0;
            let mut next_id = N + 1;
            let mut txs = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                // Transfers stay in the lower half, deletes in the upper half, so both sides of
                // every transfer exist and the invariants hold in every committed state.
                let half = N / 2;
                let a = 1 + (k * 7919) % half;
                let b = 1 + (k * 104_729 + half / 2) % half;
                let d = half + (k * 31) % half;
                // A transfer keeps the sum; a delete+insert keeps the count.
                let stmt = format!(
                    "BEGIN; UPDATE acct SET bal = bal - 1 WHERE id = {a}; UPDATE acct SET bal = bal + 1 WHERE id = {b};
                     WITH gone AS (DELETE FROM acct WHERE id = (SELECT min(id) FROM acct WHERE id > {d}) RETURNING bal)
                     INSERT INTO acct SELECT {next_id}, bal, 'new' FROM gone; COMMIT;"
                );
                next_id += 1;
                client.batch_execute(&stmt).await.unwrap();
                txs += 1;
            }
            txs
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let options = ReadOptions {
        partitions: 4,
        batch_rows: 500,
        ..ReadOptions::default()
    };
    let p = provider(&url, "public.acct", options).await;
    let batches = read_all(p, "SELECT id, bal FROM t").await;
    stop.store(true, Ordering::Relaxed);
    let txs = writer.await.unwrap();
    assert!(txs > 10, "the writer barely ran ({txs} transactions)");

    let mut ids = HashSet::new();
    let mut sum: i64 = 0;
    for b in &batches {
        let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let bal = b.column(1).as_any().downcast_ref::<Int32Array>().unwrap();
        for i in 0..b.num_rows() {
            assert!(ids.insert(id.value(i)), "id {} read twice", id.value(i));
            sum += i64::from(bal.value(i));
        }
    }
    assert_eq!(ids.len() as i64, N, "row count of a consistent snapshot");
    assert_eq!(sum, 100 * N, "balances of a consistent snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_whose_backend_is_terminated_resumes_without_loss_or_duplicates() {
    let url = fresh_db("fault");
    const N: i64 = 30_000;
    sql(&url, &format!(
        "CREATE TABLE big (id bigint PRIMARY KEY, v vector(256));
         INSERT INTO big SELECT i, array_fill(i::real, ARRAY[256])::vector FROM generate_series(1, {N}) i;
         ANALYZE big;"
    ));
    let options = ReadOptions {
        partitions: 2,
        batch_rows: 200,
        channel_depth: 1,
        ..ReadOptions::default()
    };
    let p = provider(&url, "public.big", options).await;
    let stats = p.stats();
    let ctx = SessionContext::new();
    ctx.register_table("t", p).unwrap();
    let df = ctx.sql("SELECT id, v FROM t").await.unwrap();
    let mut streams = df.execute_stream_partitioned().await.unwrap();

    let killer = {
        let url = url.clone();
        tokio::spawn(async move {
            let client = connect(&PgUrl::parse(&url).unwrap()).await.unwrap();
            for _ in 0..200 {
                let rows = client
                    .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'etl-reader-0' AND state = 'active' AND query LIKE 'COPY%'", &[])
                    .await
                    .unwrap();
                if !rows.is_empty() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            false
        })
    };
    let mut ids = HashSet::new();
    let mut count = 0usize;
    // Consume slowly so the readers are mid-COPY when the backend dies.
    let mut handles = Vec::new();
    for mut s in streams.drain(..) {
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while let Some(b) = s.next().await {
                let b = b.unwrap();
                let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                out.extend(id.values().iter().copied());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            out
        }));
    }
    for h in handles {
        for id in h.await.unwrap() {
            count += 1;
            assert!(ids.insert(id), "id {id} arrived twice");
        }
    }
    assert!(killer.await.unwrap(), "never caught a reader mid-COPY");
    assert_eq!(count as i64, N);
    assert!(
        stats.retries.load(Ordering::Relaxed) >= 1,
        "the reader did not retry"
    );
}

#[test]
fn bench_read_reports_the_documented_keys() {
    let url = fresh_db("benchread");
    sql(
        &url,
        "CREATE TABLE items (id bigint PRIMARY KEY, v vector(8)); INSERT INTO items SELECT i, array_fill(1::real, ARRAY[8])::vector FROM generate_series(1, 5000) i; ANALYZE items;",
    );
    for partitions in ["1", "3"] {
        let o = crate::support::etl([
            "bench",
            "read",
            "--source",
            &url,
            "--table",
            "public.items",
            "--partitions",
            partitions,
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{}", crate::support::stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["bytes", "mb_per_s", "rows", "rows_per_s", "seconds"]);
        assert_eq!(v["rows"], 5000);
        assert!(v["bytes"].as_u64().unwrap() > 5000 * 40);
    }
    let o = crate::support::etl(["bench", "read", "--source", &url, "--table", "public.nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(crate::support::stderr(&o).contains("table public.nope does not exist"));
}

#[test]
fn permission_denied_and_statement_timeout_are_named_without_the_password() {
    let url = fresh_db("pgerrors");
    let db = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    // Roles are cluster-wide: names unique to this database.
    let (nopriv, slow) = (format!("{db}_nopriv"), format!("{db}_slow"));
    sql(
        &url,
        &format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, v vector(64));
             INSERT INTO items SELECT i, array_fill(0.5::real, ARRAY[64])::vector FROM generate_series(1, 200000) i; ANALYZE items;
             CREATE ROLE {nopriv} LOGIN PASSWORD 'secret-np';
             CREATE ROLE {slow} LOGIN PASSWORD 'secret-sl';
             GRANT SELECT ON items TO {slow};
             ALTER ROLE {slow} SET statement_timeout = '20ms';"
        ),
    );
    let as_role = |role: &str, pw: &str| {
        let rest = url.split('@').nth(1).unwrap();
        format!("postgres://{role}:{pw}@{rest}")
    };
    let read = |u: &str| {
        crate::support::etl([
            "bench",
            "read",
            "--source",
            u,
            "--table",
            "public.items",
            "--partitions",
            "2",
        ])
    };

    let o = read(&as_role(&nopriv, "secret-np"));
    let err = crate::support::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert!(err.contains("items"), "{err}");
    assert!(!err.contains("secret-np"), "the password leaked: {err}");

    let o = read(&as_role(&slow, "secret-sl"));
    let err = crate::support::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("statement timeout"), "{err}");
    assert!(!err.contains("secret-sl"), "the password leaked: {err}");
}

#[test]
fn a_hot_standby_is_read_in_parallel_at_one_point_in_time() {
    // A small primary of its own (a base backup of the shared server would copy every test's
    // data), and a streaming replica of it.
    let script = crate::support::repo_root().join("scripts/pg-test-server");
    let owner = std::process::id().to_string();
    let start = |args: &[&str]| {
        let out = std::process::Command::new("bash")
            .arg(&script)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let primary = start(&["start", "--owner-pid", &owner]);
    sql(
        &primary,
        "CREATE TABLE items (id bigint PRIMARY KEY, v vector(4)); INSERT INTO items SELECT i, ARRAY[i, 0, 1, 2]::real[]::vector FROM generate_series(1, 30000) i; ANALYZE items;",
    );
    let standby = start(&["standby", &primary, "--owner-pid", &owner]);
    // Wait for the replica to have the table.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let o = crate::support::etl([
            "bench",
            "read",
            "--source",
            &standby,
            "--table",
            "public.items",
            "--partitions",
            "2",
            "--format",
            "json",
        ]);
        if o.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            if v["rows"] == 30000 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the standby never served the table: {}",
            crate::support::stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Ranges read one after another (as `etl run` reads its ranges, two at a time) share one
/// connection: the second range's reader takes the first's, still in the snapshot, instead of
/// connecting, authenticating and joining the snapshot again. Every row arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_read_one_after_another_share_one_connection() {
    let url = fresh_db("reuse");
    const N: i64 = 20_000;
    sql(&url, &format!(
        "CREATE TABLE seq (id bigint PRIMARY KEY, v vector(64));
         INSERT INTO seq SELECT i, array_fill(i::real, ARRAY[64])::vector FROM generate_series(1, {N}) i;
         ANALYZE seq;"
    ));
    const RANGES: usize = 6;
    let options = ReadOptions {
        partitions: RANGES,
        batch_rows: 500,
        channel_depth: 1,
        ..ReadOptions::default()
    };
    let p = provider(&url, "public.seq", options).await;
    let ctx = SessionContext::new();
    let plan = p.scan(&ctx.state(), None, &[], None).await.unwrap();
    assert_eq!(
        plan.properties().output_partitioning().partition_count(),
        RANGES
    );
    // Which readers' connections exist while the ranges are read.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (url, done) = (url.clone(), done.clone());
        tokio::spawn(async move {
            let client = connect(&PgUrl::parse(&url).unwrap()).await.unwrap();
            let mut seen = HashSet::new();
            while !done.load(Ordering::Relaxed) {
                for row in client
                    // This test's database only: other tests read their own at the same time.
                    .query("SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'etl-reader-%'", &[])
                    .await
                    .unwrap()
                {
                    seen.insert((row.get::<_, i32>(0), row.get::<_, String>(1)));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let mut ids = HashSet::new();
    for part in 0..RANGES {
        let mut s = plan.execute(part, ctx.task_ctx()).unwrap();
        while let Some(b) = s.next().await {
            let b = b.unwrap();
            let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            for v in id.values().iter() {
                assert!(ids.insert(*v), "id {v} arrived twice");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    done.store(true, Ordering::Relaxed);
    let seen = watcher.await.unwrap();
    assert_eq!(ids.len() as i64, N);
    assert_eq!(
        seen.len(),
        1,
        "one reader connection for {RANGES} ranges read in turn, saw {seen:?}"
    );
}
