//! `etl`: move PostgreSQL tables, pgvector columns above all, into a vector engine.
//!
//! This binary only parses arguments, calls the library crates and prints; it picks exit codes
//! from the error variants.

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
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
