//! `kilnd`: the Kiln server, plus its sandbox process entry point and operator commands.

mod args;
mod commands;
mod config;
mod logging;
mod network_config;
mod server;

use std::process::ExitCode;

use args::{Cli, Command, TenantCommand, TokenCommand};
use clap::Parser;
use config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The sandbox must start before any thread exists: libcontainer forks with raw clone.
    if let Some(Command::Sandbox { state }) = &cli.command {
        // Log like the parent did; an unreadable format is the parent's to report.
        let format = match std::env::var("KILN_LOG_FORMAT").as_deref() {
            Ok("json") => config::LogFormat::Json,
            _ => config::LogFormat::Text,
        };
        logging::init(format);
        return kiln::run_sandbox(state);
    }
    let command = match cli.command {
        Some(Command::Token(TokenCommand::Mint(mint))) => return commands::mint_token(mint),
        command => command,
    };
    let config = match Config::from_lookup(|key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("kilnd: {error}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);
    limit_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kilnd: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match command {
        None | Some(Command::Serve) => runtime.block_on(server::run(config)),
        Some(Command::Migrate) => runtime.block_on(commands::migrate(&config)),
        Some(Command::Tenant(TenantCommand::Create(tenant))) => {
            runtime.block_on(commands::create_tenant(&config, tenant))
        }
        Some(Command::Token(_) | Command::Sandbox { .. }) => {
            unreachable!("handled before the runtime starts")
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kilnd: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each allocating thread its own arena; with tokio's threads that multiplies
/// retained memory (measured with scripts/bench.sh: ~285 KB of RSS per warm container with
/// default arenas, ~27 KB with one; throughput unchanged). Must run before any thread starts.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only adjusts allocator tuning; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
