//! Shared test plumbing: the server, fresh databases, and running the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A test server's URL: the environment variable `env` (set by `scripts/test`, which starts
/// each server once for the run), or a server started for this process with `script start
/// --owner-pid` (it stops when this process exits).
fn test_server(cell: &'static OnceLock<String>, env: &str, script: &str) -> &'static str {
    test_server_with(cell, env, script, &[])
}

/// [`test_server`] with environment variables for the script.
fn test_server_with(
    cell: &'static OnceLock<String>,
    env: &str,
    script: &str,
    script_env: &[(&str, &str)],
) -> &'static str {
    cell.get_or_init(|| {
        if let Ok(u) = std::env::var(env)
            && !u.is_empty()
        {
            return u;
        }
        let out = Command::new("bash")
            .arg(repo_root().join("scripts").join(script))
            .args(["start", "--owner-pid", &std::process::id().to_string()])
            .envs(script_env.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
        assert!(
            out.status.success(),
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
}

/// The Postgres server's base URL (database `postgres`).
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    test_server(&URL, "ETL_TEST_PG_URL", "pg-test-server")
}

/// The second Postgres server: PostgreSQL 18 with pgvector 0.8.6 (database `postgres`).
pub fn pg18_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    test_server_with(
        &URL,
        "ETL_TEST_PG18_URL",
        "pg-test-server",
        &[("ETL_PG_SERVER", "18")],
    )
}

/// The loopback S3 server's endpoint (bucket `etl-test`).
pub fn s3_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    test_server(&URL, "ETL_TEST_S3_URL", "s3-test-server")
}

/// The Milvus 2.3.5 server's gRPC URL (one per machine: the tests share it, a collection each).
pub fn milvus_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    test_server(&URL, "ETL_TEST_MILVUS_URL", "milvus-test-server")
}

/// The test Milvus' credentials (its default user: the test server runs with authentication).
pub const MILVUS_TOKEN: &str = "root:Milvus";

/// A client of the test Milvus, and its version.
pub async fn milvus_client() -> (etl_connectors::milvus::MilvusClient, String) {
    etl_connectors::milvus::MilvusClient::connect_with(milvus_url(), Some(MILVUS_TOKEN.into()))
        .await
        .unwrap()
}

/// The python with pyarrow that the S3 test server's venv holds.
pub fn python() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/s3-test-server"))
        .arg("python")
        .output()
        .expect("run scripts/s3-test-server python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `url` with its database replaced by `db`.
pub fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let cut = base.rfind('/').expect("url has a path");
    format!("{}/{db}{query}", &base[..cut])
}

/// Runs `f` with a client of `url` in a throwaway runtime on its own thread (so async tests
/// can call it too).
fn with_client<T, F>(url: &str, f: F) -> T
where
    T: Send + 'static,
    F: for<'c> FnOnce(
            &'c tokio_postgres::Client,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'c>>
        + Send
        + 'static,
{
    let url = url.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let cfg: tokio_postgres::Config = url.parse().unwrap();
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
            let handle = tokio::spawn(conn);
            let out = f(&client).await;
            drop(client);
            let _ = handle.await;
            out
        })
    })
    .join()
    .unwrap()
}

/// Runs SQL statements on the server.
pub fn sql(url: &str, statements: &str) {
    let statements = statements.to_string();
    with_client(url, move |c| {
        Box::pin(async move {
            c.batch_execute(&statements)
                .await
                .unwrap_or_else(|e| panic!("{e:?}\n{statements}"))
        })
    })
}

/// A new, empty database (with pgvector) and its URL.
pub fn fresh_db(prefix: &str) -> String {
    fresh_db_on(server_url(), prefix)
}

/// A new, empty database (with pgvector) on the server at `server`, and its URL.
pub fn fresh_db_on(server: &str, prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    sql(server, &format!("CREATE DATABASE {name}"));
    let url = with_db(server, &name);
    sql(&url, "CREATE EXTENSION IF NOT EXISTS vector");
    url
}

/// Runs `etl` with `args`.
pub fn etl<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(args)
        .env_remove("PGPASSWORD")
        .env("PGPASSFILE", "/nonexistent")
        .output()
        .expect("run etl")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs_err::write(&p, text).unwrap();
    p
}

/// Rows of a query, each turned into a `T` by `row`.
pub fn query_map<T: Send + 'static>(
    url: &str,
    query: &str,
    row: fn(&tokio_postgres::Row) -> T,
) -> Vec<T> {
    let query = query.to_string();
    with_client(url, move |c| {
        Box::pin(async move {
            let rows = c
                .query(&query, &[])
                .await
                .unwrap_or_else(|e| panic!("{e:?}\n{query}"));
            rows.iter().map(row).collect()
        })
    })
}

/// Rows of `(int8, float8)` from a query (for comparing with pgvector's own results).
pub fn query_rows(url: &str, query: &str) -> Vec<(i64, f64)> {
    query_map(url, query, |r| (r.get(0), r.get(1)))
}

/// Rows of `(int8, text)` from a query.
pub fn query_text(url: &str, query: &str) -> Vec<(i64, String)> {
    query_map(url, query, |r| (r.get(0), r.get(1)))
}

/// Rows of text columns from a query (cast what is not text).
pub fn query_strings(url: &str, query: &str) -> Vec<Vec<String>> {
    query_map(url, query, |r| (0..r.len()).map(|i| r.get(i)).collect())
}
