//! Kiln's function SDK: the function side of `docs/function-contract.md`.
//!
//! A Kiln function is a static executable that pulls invocations from Kiln over HTTP/1.1
//! on a Unix socket. [`serve`] runs that loop around a handler:
//!
//! ```no_run
//! use kiln_sdk::{Invocation, Response, serve};
//!
//! fn main() {
//!     serve(|invocation: &Invocation| {
//!         let name = invocation.query_param("name").unwrap_or_else(|| "world".to_owned());
//!         Ok(Response::text(200, format!("hello, {name}")))
//!     })
//! }
//! ```
//!
//! [`Runtime`] gives the individual calls (`next`, `respond`, `fail`) for functions that
//! want to drive the loop themselves.
//!
//! # Durable instances
//!
//! A function started as a durable instance (`POST /v1/functions/{name}/instances`) may be
//! stopped at any point and is then **replayed from the start** with its input and the
//! results it stored so far. [`serve_durable`] runs such a handler; each step of an
//! [`Instance`] returns its stored result on replay instead of running again:
//!
//! - [`Instance::checkpoint`] runs a step once and stores its result under a key;
//! - [`Instance::sleep`] and [`Instance::sleep_until`] suspend the instance (its container
//!   is free meanwhile) and Kiln replays it after the wake time;
//! - [`Instance::wait_for_event`] suspends it until a signal with that name is sent, or a
//!   timeout passes.
//!
//! Every step returns an [`Interrupt`] when the dispatch cannot go on (the instance went to
//! sleep, the dispatch is stale, a step failed): pass it on with `?`, and the loop ends the
//! dispatch the way the contract asks. Keys must come in the same order on every replay,
//! and work between checkpoints runs *at least once*, so make it idempotent.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use kiln_sdk::{Failure, Instance, Interrupt, serve_durable};
//! use serde_json::{Value, json};
//!
//! fn main() {
//!     serve_durable(remind)
//! }
//!
//! fn remind(instance: &mut Instance) -> Result<Value, Interrupt> {
//!     let user = instance.input()["user"].as_str().ok_or(Failure::new("BadInput", "no user"))?.to_owned();
//!     // Runs once; every replay gets the stored id back.
//!     let ticket: String = instance.checkpoint("open-ticket", || Ok(format!("t-{user}")))?;
//!     instance.sleep("a-day", Duration::from_secs(24 * 3600))?;
//!     let answer = instance.wait_for_event("answered", Duration::from_secs(3600))?;
//!     Ok(json!({"ticket": ticket, "answered": answer.is_some()}))
//! }
//! ```
//!
//! [`serve_all`] serves plain invocations and durable instances from one executable.

mod body_writer;
mod client;
mod durable;
mod failure;
mod http;
mod instance;
mod invocation;
mod response;
mod runtime;
mod runtime_socket;
mod serve;

pub use body_writer::BodyWriter;
pub use durable::{DurableReply, Interrupt, Wake};
pub use failure::Failure;
pub use instance::Instance;
pub use invocation::Invocation;
pub use response::{BodyProducer, Response};
pub use runtime::{ApiError, DEFAULT_SOCKET, Runtime};
pub use serve::{run, run_all, run_durable, serve, serve_all, serve_durable};
