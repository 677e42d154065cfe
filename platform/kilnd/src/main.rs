//! `kilnd`: the Kiln server, plus its sandbox process entry point and operator commands.

mod commands;
mod config;
mod logging;
mod server;

use std::process::ExitCode;

use config::Config;

const USAGE: &str = "usage:
  kilnd [serve]                      run the server (configured by KILN_* variables and DATABASE_URL)
  kilnd migrate                      apply database migrations and exit
  kilnd tenant create NAME [--kid K] [--secret S] [--issuer I] [--audience A]
                                     create a tenant with an HS256 key (prints the key as JSON)
  kilnd token mint --tenant T --secret S [--kid K] [--issuer I] [--audience A] [--ttl SECONDS]
                                     print a JWT for tenant T
  kilnd sandbox --state DIR          internal: the container sandbox process";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    // The sandbox must start before any thread exists: libcontainer forks with raw clone.
    if let ["sandbox", "--state", state] = words.as_slice() {
        // Log like the parent did; an unreadable format is the parent's to report.
        let format = match std::env::var("KILN_LOG_FORMAT").as_deref() {
            Ok("json") => config::LogFormat::Json,
            _ => config::LogFormat::Text,
        };
        logging::init(format);
        return kiln::run_sandbox(std::path::Path::new(state));
    }
    if let ["token", "mint", flags @ ..] = words.as_slice() {
        return commands::mint_token(flags);
    }
    if matches!(words.as_slice(), ["help" | "--help" | "-h"]) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
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
    let outcome = match words.as_slice() {
        [] | ["serve"] => runtime.block_on(server::run(config)),
        ["migrate"] => runtime.block_on(commands::migrate(&config)),
        ["tenant", "create", name, flags @ ..] => {
            runtime.block_on(commands::create_tenant(&config, name, flags))
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
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
