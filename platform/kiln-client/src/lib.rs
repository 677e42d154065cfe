//! A client for Kiln's HTTP API: functions (upload, list, show, delete, roll back),
//! invocations, durable instances, function logs, the audit log and the operator's tenant
//! API, over HTTP/1.1 or HTTP/2, plain or TLS (rustls), with typed answers and typed errors.
//! Also local token minting (HS256) and reading a token's tenant.

mod admin;
mod audit;
mod body;
mod client;
mod error;
mod functions;
mod instances;
mod invoke;
mod logs;
mod tls;
mod token;

pub use admin::{AddedKey, NewKey, NewTenant, Tenant};
pub use audit::{AuditEntry, AuditPage, AuditQuery};
pub use body::Progress;
pub use client::{Client, ClientConfig};
pub use error::Error;
pub use functions::{Function, FunctionDetail, Uploaded, Version};
pub use instances::{
    Checkpoint, Instance, InstanceError, InstanceEvent, InstanceFilter, InstancePage, Signal, SignalSent,
    Started, is_instance_id,
};
pub use invoke::{Invocation, InvokeResponse};
pub use logs::{LogLine, LogQuery, LogStream};
pub use token::{Mint, mint_hs256, token_tenant};
