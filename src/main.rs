//! `etl`: move PostgreSQL tables, pgvector columns above all, into a vector engine.
//!
//! This binary only parses arguments, calls the library crates and prints; it picks exit codes
//! from the error variants.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same position in its v2 and v3 option enums).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the kernel after 10 s unused instead of mimalloc's 1 s (×10 for
/// arenas): a pipeline frees and allocates batch-sized blocks continuously, and each block
/// returned early was faulted in again, its huge pages zeroed by the kernel (`perf` of `etl
/// stage`: 56k page faults and `clear_page_erms` a third of the samples; with the longer delay
/// 3.7k faults, system time 1.8 → 1.4 s, BENCHMARKS.md). `MIMALLOC_PURGE_DELAY` still wins.
#[allow(unsafe_code)]
fn keep_freed_memory_longer() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an integer option; mimalloc reads options atomically at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
    }
}

fn main() -> ExitCode {
    keep_freed_memory_longer();
    let args = cli::Cli::parse();
    cli::init_tracing(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(err) => {
            let code = cli::exit_code_for(&err);
            if !cli::is_broken_pipe(&err) {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}
