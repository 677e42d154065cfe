//! The sandbox process's entry point: the host program re-executed as
//! `PROGRAM sandbox --state DIR`, with the control socket as its stdin.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

/// The arguments the builder starts the sandbox process with.
pub(crate) fn sandbox_args(state: &Path) -> Vec<String> {
    vec![
        "sandbox".into(),
        "--state".into(),
        state.to_string_lossy().into_owned(),
    ]
}

/// When this process was started as Kiln's sandbox, runs it and exits; otherwise returns at
/// once. Call it first in `main`, before any thread exists.
pub fn run_sandbox_if_requested() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if let ["sandbox", "--state", state] = words.as_slice() {
        let code = run_sandbox(Path::new(state));
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
}

/// Runs the sandbox until its control socket (stdin) closes, then deletes every container.
pub fn run_sandbox(state: &Path) -> ExitCode {
    // SAFETY: Kiln hands fd 0 over as the control socket and nothing else in this process owns it.
    let control = UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) });
    match sandbox::serve(control, state) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kiln sandbox: {error}");
            ExitCode::FAILURE
        }
    }
}
