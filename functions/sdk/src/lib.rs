//! Kiln's function SDK: the function side of `docs/function-contract.md`, std only.
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

mod client;
mod failure;
mod http;
mod invocation;
mod response;
mod runtime;
mod serve;

pub use failure::Failure;
pub use invocation::Invocation;
pub use response::Response;
pub use runtime::{ApiError, DEFAULT_SOCKET, Runtime};
pub use serve::{run, serve};
