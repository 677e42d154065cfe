//! The invocation loop: next → handler → respond or fail, for as long as the container lives.

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::process;

use crate::failure::Failure;
use crate::invocation::Invocation;
use crate::response::Response;
use crate::runtime::{ApiError, Runtime};

/// Connects to the runtime socket from the environment and serves invocations with
/// `handler` until the container is retired (exit code 0) or the runtime socket fails (a
/// line on stderr, exit code 1).
///
/// ```no_run
/// kiln_sdk::serve(|invocation| Ok(kiln_sdk::Response::text(200, format!("hi from {}", invocation.path))))
/// ```
pub fn serve<F>(handler: F) -> !
where
    F: FnMut(&Invocation) -> Result<Response, Failure>,
{
    let mut runtime = match Runtime::connect_from_env() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kiln-sdk: cannot reach the runtime API: {error}; exiting");
            process::exit(1);
        }
    };
    match run(&mut runtime, handler) {
        Ok(()) => {
            eprintln!("kiln-sdk: Kiln is retiring this container; exiting");
            process::exit(0);
        }
        Err(error) => {
            eprintln!("kiln-sdk: runtime API failed: {error}; exiting");
            process::exit(1);
        }
    }
}

/// Serves invocations from `runtime` with `handler`.
///
/// - `Ok(response)` is posted as the response; one Kiln cannot take (status outside
///   200–599, unsendable header) is reported as error type `InvalidResponse` instead.
/// - `Err(failure)` is posted to the error endpoint.
/// - A panic in the handler is reported as error type `Panic`, and serving continues.
/// - When Kiln refuses a posted outcome (e.g. `404`: the invocation already timed out), a
///   line goes to stderr and serving continues.
///
/// Returns `Ok(())` when Kiln answers `503` to `next` (the container is retiring), and the
/// error when the runtime socket fails or answers `next` unexpectedly.
pub fn run<F>(runtime: &mut Runtime, mut handler: F) -> io::Result<()>
where
    F: FnMut(&Invocation) -> Result<Response, Failure>,
{
    loop {
        let invocation = match runtime.next() {
            Ok(invocation) => invocation,
            Err(error) if ApiError::of(&error).is_some_and(|api| api.status == 503) => return Ok(()),
            Err(error) => return Err(error),
        };
        let id = invocation.id.as_str();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| handler(&invocation)))
            .unwrap_or_else(|payload| Err(Failure::new("Panic", panic_message(payload.as_ref()))));
        let posted = match outcome {
            Ok(response) => match runtime.respond(id, response) {
                Err(error) if error.kind() == io::ErrorKind::InvalidInput => {
                    eprintln!("kiln-sdk: invocation {id}: unusable response: {error}");
                    runtime.fail(id, "InvalidResponse", &error.to_string())
                }
                posted => posted,
            },
            Err(failure) => runtime.fail(id, &failure.error_type, &failure.message),
        };
        match posted {
            Ok(()) => {}
            Err(error) if ApiError::of(&error).is_some() => {
                eprintln!("kiln-sdk: invocation {id}: Kiln did not take the outcome: {error}");
            }
            Err(error) => return Err(error),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "the handler panicked".to_owned()
    }
}
