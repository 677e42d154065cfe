//! Durable instances: a function run that checkpoints its progress to PostgreSQL, sleeps
//! without holding a container, waits for signals, and survives crashes by replaying from
//! its checkpoints.
//!
//! **Invariants:** every state change is one conditional update in the store; every
//! dispatch carries an epoch and its writes are refused once the epoch moved on; an
//! instance always runs the function version it was started with.

mod dispatch;
mod engine;
mod error;
mod running;
mod session;
mod upkeep;

pub use engine::{Instances, InstancesConfig, is_instance_id};
pub use error::InstanceError;
pub use store::{
    CheckpointRecord, InstanceEvent, InstanceFilter, InstanceRecord, InstanceStatus, SignalOutcome,
    SignalRecord, StartedInstance,
};
