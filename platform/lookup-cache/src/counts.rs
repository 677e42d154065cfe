//! What a cache answered from, counted for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lookups since start, by how they were answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupCounts {
    /// The cache's name.
    pub cache: &'static str,
    /// From a fresh entry (found or absent), without reading the source.
    pub hits: u64,
    /// Loads from the source that gave an answer (found or absent); waiters on a load
    /// another caller ran are not counted again.
    pub loads: u64,
    /// The last value read, served because the source could not be read.
    pub stale: u64,
    /// Lookups that failed: the source could not be read and nothing was known.
    pub failures: u64,
}

#[derive(Default)]
pub(crate) struct Counts {
    hits: AtomicU64,
    loads: AtomicU64,
    stale: AtomicU64,
    failures: AtomicU64,
}

impl Counts {
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stale(&self) {
        self.stale.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self, cache: &'static str) -> LookupCounts {
        LookupCounts {
            cache,
            hits: self.hits.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}
