//! The instances this node is dispatching right now: the only ones whose leases it renews.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub(crate) struct Running {
    ids: Arc<Mutex<HashSet<String>>>,
}

impl Running {
    pub fn insert(&self, id: &str) {
        self.ids.lock().expect("running lock").insert(id.to_owned());
    }

    pub fn remove(&self, id: &str) {
        self.ids.lock().expect("running lock").remove(id);
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.ids.lock().expect("running lock").iter().cloned().collect()
    }
}
