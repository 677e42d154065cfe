//! The invocation loop: next → handler → respond or fail, for as long as the container lives,
//! for plain invocations and durable dispatches alike.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::process;

use serde_json::Value;

use crate::durable::Interrupt;
use crate::failure::{Failure, panic_message};
use crate::instance::Instance;
use crate::invocation::Invocation;
use crate::response::Response;
use crate::runtime::{ApiError, Runtime};

/// Connects to the runtime socket from the environment and serves invocations with
/// `handler` until the container is retired (exit code 0) or the runtime socket fails (a
/// line on stderr, exit code 1). Durable dispatches get error type `NotDurable` (see
/// [`serve_all`] for functions that serve both).
///
/// ```no_run
/// kiln_sdk::serve(|invocation| Ok(kiln_sdk::Response::text(200, format!("hi from {}", invocation.path))))
/// ```
pub fn serve<F>(handler: F) -> !
where
    F: FnMut(&Invocation) -> Result<Response, Failure>,
{
    serve_with(|runtime| run(runtime, handler))
}

/// Like [`serve`], for durable instances: each dispatch runs `handler` (see [`Instance`]).
/// Plain invocations get error type `NotDurable`.
pub fn serve_durable<D>(handler: D) -> !
where
    D: FnMut(&mut Instance<'_>) -> Result<Value, Interrupt>,
{
    serve_with(|runtime| run_durable(runtime, handler))
}

/// Like [`serve`], for a function that answers plain invocations with `plain` and runs
/// durable instances with `durable`.
pub fn serve_all<P, D>(plain: P, durable: D) -> !
where
    P: FnMut(&Invocation) -> Result<Response, Failure>,
    D: FnMut(&mut Instance<'_>) -> Result<Value, Interrupt>,
{
    serve_with(|runtime| run_all(runtime, plain, durable))
}

/// Serves invocations from `runtime` with `handler`.
///
/// - `Ok(response)` is posted as the response; one Kiln cannot take (status outside
///   200–599, unsendable header) is reported as error type `InvalidResponse` instead.
/// - `Err(failure)` is posted to the error endpoint.
/// - A panic in the handler is reported as error type `Panic`, and serving continues.
/// - A durable dispatch is reported as error type `NotDurable`.
/// - When Kiln refuses a posted outcome (e.g. `404`: the invocation already timed out), a
///   line goes to stderr and serving continues.
///
/// Returns `Ok(())` when Kiln answers `503` to `next` (the container is retiring), and the
/// error when the runtime socket fails or answers `next` unexpectedly.
pub fn run<F>(runtime: &mut Runtime, mut handler: F) -> io::Result<()>
where
    F: FnMut(&Invocation) -> Result<Response, Failure>,
{
    run_loop(runtime, Some(&mut handler), None)
}

/// Runs durable dispatches from `runtime` with `handler`, like [`run`]:
///
/// - `Ok(output)` is posted as the response, and the instance completes with that output.
/// - `Err(Interrupt::Failed(failure))` and panics (error type `Panic`) are posted to the
///   error endpoint, and the instance fails.
/// - `Err(Suspended | Fenced | Stopped)`: nothing is posted; the dispatch is over.
/// - A plain invocation is reported as error type `NotDurable`.
pub fn run_durable<D>(runtime: &mut Runtime, mut handler: D) -> io::Result<()>
where
    D: FnMut(&mut Instance<'_>) -> Result<Value, Interrupt>,
{
    run_loop(runtime, None, Some(&mut handler))
}

/// [`run`] for plain invocations and [`run_durable`] for durable dispatches, in one loop.
pub fn run_all<P, D>(runtime: &mut Runtime, mut plain: P, mut durable: D) -> io::Result<()>
where
    P: FnMut(&Invocation) -> Result<Response, Failure>,
    D: FnMut(&mut Instance<'_>) -> Result<Value, Interrupt>,
{
    run_loop(runtime, Some(&mut plain), Some(&mut durable))
}

type PlainHandler<'h> = &'h mut dyn FnMut(&Invocation) -> Result<Response, Failure>;
type DurableHandler<'h> = &'h mut dyn FnMut(&mut Instance<'_>) -> Result<Value, Interrupt>;

/// Connects from the environment, runs `serve_loop` and exits as [`serve`] describes.
fn serve_with(serve_loop: impl FnOnce(&mut Runtime) -> io::Result<()>) -> ! {
    let mut runtime = match Runtime::connect_from_env() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kiln-sdk: cannot reach the runtime API: {error}; exiting");
            process::exit(1);
        }
    };
    match serve_loop(&mut runtime) {
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

/// The loop behind every `run*`: a kind of invocation without a handler is `NotDurable`.
fn run_loop(
    runtime: &mut Runtime,
    mut plain: Option<PlainHandler<'_>>,
    mut durable: Option<DurableHandler<'_>>,
) -> io::Result<()> {
    loop {
        let invocation = match runtime.next() {
            Ok(invocation) => invocation,
            Err(error) if ApiError::of(&error).is_some_and(|api| api.status == 503) => return Ok(()),
            Err(error) => return Err(error),
        };
        let id = invocation.id.as_str();
        let posted = match (invocation.is_durable(), &mut plain, &mut durable) {
            (false, Some(handler), _) => handle_plain(runtime, &invocation, handler),
            (true, _, Some(handler)) => handle_durable(runtime, &invocation, handler),
            (false, None, _) => runtime.fail(
                id,
                "NotDurable",
                "this function serves durable instances only, not plain invocations",
            ),
            (true, _, None) => {
                runtime.fail(id, "NotDurable", "this function does not serve durable instances")
            }
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

/// Runs one plain invocation and posts its outcome.
fn handle_plain(runtime: &mut Runtime, invocation: &Invocation, handler: PlainHandler<'_>) -> io::Result<()> {
    let id = invocation.id.as_str();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| handler(invocation)))
        .unwrap_or_else(|payload| Err(Failure::new("Panic", panic_message(payload.as_ref()))));
    match outcome {
        Ok(response) => match runtime.respond(id, response) {
            Err(error) if error.kind() == io::ErrorKind::InvalidInput => {
                eprintln!("kiln-sdk: invocation {id}: unusable response: {error}");
                runtime.fail(id, "InvalidResponse", &error.to_string())
            }
            posted => posted,
        },
        Err(failure) => runtime.fail(id, &failure.error_type, &failure.message),
    }
}

/// Runs one durable dispatch and posts its outcome, if it has one to post.
fn handle_durable(
    runtime: &mut Runtime,
    invocation: &Invocation,
    handler: DurableHandler<'_>,
) -> io::Result<()> {
    let id = invocation.id.as_str();
    let outcome = match Instance::new(runtime, invocation) {
        Ok(mut instance) => panic::catch_unwind(AssertUnwindSafe(|| handler(&mut instance)))
            .unwrap_or_else(|payload| Err(Failure::new("Panic", panic_message(payload.as_ref())).into())),
        Err(failure) => Err(Interrupt::Failed(failure)),
    };
    match outcome {
        Ok(output) => runtime.respond(id, Response::json(200, output.to_string())),
        Err(Interrupt::Failed(failure)) => runtime.fail(id, &failure.error_type, &failure.message),
        Err(Interrupt::Suspended) => Ok(()),
        Err(interrupt @ (Interrupt::Fenced | Interrupt::Stopped(_))) => {
            let instance = invocation.instance_id.as_deref().unwrap_or_default();
            eprintln!("kiln-sdk: instance {instance}: dispatch {id} ended: {interrupt}");
            Ok(())
        }
    }
}
