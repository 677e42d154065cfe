//! One running container as the dispatcher sees it: where to send work, and whether it died.

use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use network::EgressAttachment;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::logs::Capture;
use crate::runtime_api::Assignment;
use crate::{FunctionTarget, StartPhases};

pub(crate) struct Container {
    pub id: String,
    /// The version it runs.
    pub target: Arc<FunctionTarget>,
    /// Host folder mounted at `/run/kiln`; removed when the container is retired.
    pub runtime_dir: PathBuf,
    /// Hands one assignment at a time to the container's runtime API.
    pub assign: mpsc::Sender<Assignment>,
    /// The runtime API server task for this container's socket.
    pub server: AbortHandle,
    /// Cancelled when the container's init exits on its own.
    pub died: CancellationToken,
    pub exit_status: Mutex<Option<String>>,
    /// Set once when the container leaves its pool, so it is retired exactly once.
    pub retired: AtomicBool,
    /// When it last finished an invocation; drives the idle timeout.
    pub last_used: Mutex<Instant>,
    /// How its start went, for the metrics of the invocation that waited for it.
    pub start_phases: Mutex<StartPhases>,
    /// The readers of its stdout and stderr; taken away when it is retired.
    pub capture: Mutex<Option<Capture>>,
    /// Its egress namespace (`network=egress` only); removed after the container.
    pub egress: Mutex<Option<Arc<EgressAttachment>>>,
    /// Cleared when its function is deleted: its traffic must not bring back the series
    /// the delete dropped.
    pub counts_traffic: AtomicBool,
}

impl Container {
    pub(crate) fn mark_died(&self, status: String) {
        *self.exit_status.lock() = Some(status);
        self.died.cancel();
    }

    pub(crate) fn exit_status(&self) -> String {
        self.exit_status.lock().clone().unwrap_or_else(|| "exited".into())
    }

    /// True the first time only: the caller then owns the retirement.
    pub(crate) fn begin_retirement(&self) -> bool {
        !self.retired.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn idle_since(&self) -> Instant {
        *self.last_used.lock()
    }

    /// Stops reading its output and removes its FIFOs.
    pub(crate) fn stop_capture(&self) {
        self.capture.lock().take();
    }

    pub(crate) fn touch(&self) {
        *self.last_used.lock() = Instant::now();
    }
}
