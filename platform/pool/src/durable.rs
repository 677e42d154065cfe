//! The seam between the runtime API and durable instances: a dispatch of an instance
//! carries a [`DurableSession`], and the runtime API hands the function's checkpoint,
//! sleep and wait calls to it. The pool knows nothing of how instances are stored.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// A call a function makes on behalf of its durable instance.
#[derive(Debug, Clone, PartialEq)]
pub enum DurableCall {
    Checkpoint {
        key: String,
        value: Value,
    },
    Sleep {
        key: String,
        wake_at: SystemTime,
    },
    Wait {
        key: String,
        event: String,
        timeout: Duration,
    },
    /// The call's body was over the size limit; the session fails the instance.
    Oversized,
}

/// A successful durable call.
#[derive(Debug, Clone, PartialEq)]
pub enum DurableReply {
    /// Carry on with this stored value.
    Value(Value),
    /// The instance sleeps until this time; the dispatch is over.
    Suspended { wake_at: SystemTime },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurableError {
    /// The dispatch is stale (the instance was cancelled, paused, timed out or re-dispatched).
    Fenced,
    /// A value was over the limit; the instance has been failed.
    TooLarge { limit: usize },
    /// The store could not be reached; the function may retry the call.
    Unavailable(String),
    /// The store refused the value (for example a JSON string holding `\u0000`); retrying
    /// the same call cannot succeed.
    Rejected(String),
}

pub type DurableFuture<'a> = Pin<Box<dyn Future<Output = Result<DurableReply, DurableError>> + Send + 'a>>;

/// One dispatch of one durable instance, as the runtime API sees it.
pub trait DurableSession: Send + Sync + fmt::Debug {
    fn instance_id(&self) -> &str;
    /// How many times the instance has been dispatched, this time included.
    fn attempt(&self) -> i32;
    /// Largest checkpoint value, in bytes of JSON.
    fn value_limit(&self) -> usize;
    fn call(&self, call: DurableCall) -> DurableFuture<'_>;
}
