//! The dispatches this node runs right now, by instance and epoch: the only claims whose
//! leases it renews (a stale dispatch of the same instance never renews a newer one).

use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub(crate) struct Running {
    dispatches: Arc<Mutex<HashSet<(String, i64)>>>,
}

impl Running {
    pub fn insert(&self, id: &str, epoch: i64) {
        self.lock().insert((id.to_owned(), epoch));
    }

    pub fn remove(&self, id: &str, epoch: i64) {
        self.lock().remove(&(id.to_owned(), epoch));
    }

    /// The ids and epochs, as two lists of equal length.
    pub fn snapshot(&self) -> (Vec<String>, Vec<i64>) {
        self.lock().iter().cloned().unzip()
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashSet<(String, i64)>> {
        self.dispatches.lock()
    }
}
