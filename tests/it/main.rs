//! The one integration test binary: the `etl` CLI against a real PostgreSQL 16 with pgvector.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]
//!
//! Uses `ETL_TEST_PG_URL` when set; otherwise starts a throwaway server with
//! `scripts/pg-test-server` that stops when this process exits.

mod agreement;
mod client_stores;
mod clustered;
mod dump;
mod first_run;
mod init_plan;
mod milvus;
mod milvus_paths;
mod pg_read;
mod pg_target;
mod run;
mod stage;
mod support;
