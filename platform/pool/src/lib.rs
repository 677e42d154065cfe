//! Routes invocations to warm containers: one pool per tenant+function+version, containers
//! started through the sandbox, and the host side of the function contract (the runtime API
//! served on each container's private socket).
//!
//! **Invariant:** a container belongs to exactly one pool, so to one tenant and one version;
//! it is never handed to another. The pool knows nothing of tokens, PostgreSQL or HTTP
//! status codes for callers: it returns typed outcomes and errors.

mod container;
mod dispatcher;
mod durable;
mod egress_traffic;
mod invocation;
mod lifecycle;
mod logs;
mod pool;
mod response_stream;
mod runtime_api;
mod runtime_error;
mod runtime_messages;

pub use dispatcher::{Dispatcher, DispatcherConfig, PoolFigures};
pub use durable::{DurableCall, DurableError, DurableFuture, DurableReply, DurableSession};
pub use invocation::{
    FunctionBody, FunctionResponse, Invocation, InvokeError, InvokeOutcome, Runner, StartPhases,
};
pub use kiln_types::{FunctionLimits, FunctionTarget, ProcessSpec};
pub use logs::{Attribution, FunctionLogs, LogLine};
pub use response_stream::{ResponseStream, StreamCut, StreamLimits};
pub use runtime_messages::{
    ERROR_MESSAGE_LIMIT, ERROR_TYPE_LIMIT, ErrorReport, KEY_LIMIT, LONGEST_WAIT_MS, RESERVED_KEY_PREFIX,
    parse_durable_call, response_status,
};
