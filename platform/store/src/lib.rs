//! All of Kiln's SQL: the PostgreSQL pool, migrations, and one module per table group.
//!
//! **Invariant:** no other crate holds SQL. The store knows nothing of HTTP,
//! tokens or containers; it takes and returns plain records.

mod audit;
mod connect;
mod error;
mod functions;
mod instance_runs;
mod instance_signals;
mod instance_upkeep;
mod instances;
mod migrate;
mod tenants;
mod webhooks;

pub use audit::{AuditEntry, NewAuditEntry};
pub use connect::{PoolFigures, Store, StoreConfig};
pub use error::StoreError;
pub use functions::{FunctionRecord, NewVersion, VersionRecord, VersionSelector};
pub use instance_runs::{ClaimedInstance, Fenced, InstanceOutcome, Released, Suspension};
pub use instance_signals::{SignalOutcome, SignalRecord};
pub use instances::{
    CheckpointRecord, InstanceEvent, InstanceFilter, InstanceRecord, InstanceStatus, LiveInstanceEvent,
    NewInstance, StartedInstance,
};
pub use migrate::{migrate, migrate_pool};
pub use tenants::{KeyRecord, NewTenant, TenantAuth, TenantRecord};
pub use webhooks::WebhookRecord;
