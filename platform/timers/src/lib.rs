//! Timers: wakes durable instances on time. PostgreSQL's `wake_at` is the source of truth;
//! a [`Wheel`] holds the due times within a window, the [`Scheduler`] refills it from the
//! store, and a due instance is claimed by one conditional update, so it is dispatched once
//! even with several nodes.

mod clock;
mod scheduler;
mod wheel;

pub use clock::{Clock, SystemClock};
pub use scheduler::{Claimed, Scheduler, SchedulerConfig, TimerRequests, Timers};
pub use wheel::Wheel;
