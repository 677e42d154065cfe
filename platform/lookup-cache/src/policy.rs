//! How long a cache reuses what it read, and how much it keeps.

use std::time::Duration;

/// Freshness and size of one [`crate::LookupCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A value found is reused this long before the source is read again: it bounds how long
    /// a change made elsewhere (another node) takes to show here.
    pub fresh_for: Duration,
    /// "No such thing" is reused this long: short, so something just created elsewhere
    /// shows up soon, yet long enough that repeating a made-up name costs nothing.
    pub absent_for: Duration,
    /// While the source cannot be read, the last value found keeps being served until it is
    /// this old; zero serves nothing stale.
    pub stale_for: Duration,
    /// Found values kept at most (the least used go first).
    pub known_capacity: u64,
    /// Names known not to exist kept at most, apart from the found values.
    pub absent_capacity: u64,
}

impl Policy {
    /// `fresh_for` for found and absent entries alike, 10,000 found and 100,000 absent kept.
    pub fn new(fresh_for: Duration, stale_for: Duration) -> Policy {
        Policy {
            fresh_for,
            absent_for: fresh_for,
            stale_for,
            known_capacity: 10_000,
            absent_capacity: 100_000,
        }
    }
}
