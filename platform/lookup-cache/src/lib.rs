//! A read-through cache for what Kiln looks up in PostgreSQL on every request (tenant keys,
//! function versions, webhook secrets), built to survive abuse and database outages.
//!
//! - **Single-flight:** concurrent misses for one key make one load; the others wait for it.
//! - **Absent entries apart:** "no such thing" is remembered briefly in its own bounded
//!   table, so a flood of made-up names costs one load per name and never pushes a known
//!   entry out.
//! - **Static stability:** when a load fails, the last value read is served (for at most
//!   [`Policy::stale_for`] after it was read), and while the source stays unreachable one
//!   background attempt per key per second finds out when it is back.
//!
//! **Invariant:** the cache knows nothing of what it holds or where it comes from: the caller
//! passes the load, and a load's error is handed back unchanged (shared, as several callers
//! may be waiting for it).

mod counts;
mod lookup;
mod policy;

pub use counts::LookupCounts;
pub use lookup::{LookupCache, SourceDown};
pub use policy::Policy;

#[cfg(test)]
mod tests;
