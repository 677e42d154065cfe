//! A started Kiln: its address, and the way to stop it and wait for it.

use std::net::SocketAddr;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Kiln running inside this program. Dropping it leaves Kiln running; call
/// [`Running::shutdown`] to stop it in order.
pub struct Running {
    pub(crate) address: SocketAddr,
    pub(crate) stop: CancellationToken,
    pub(crate) task: JoinHandle<anyhow::Result<()>>,
}

/// Begins a graceful shutdown from anywhere (a signal handler task, say).
#[derive(Clone)]
pub struct StopHandle(CancellationToken);

impl StopHandle {
    pub fn stop(&self) {
        self.0.cancel();
    }
}

impl Running {
    /// The address the front door listens on (a port of 0 was replaced by a free one).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Waits until Kiln stopped: after a [`StopHandle::stop`], or on its own with an error
    /// when its sandbox process died (a supervisor should then restart the program).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task
            .await
            .map_err(|error| anyhow::anyhow!("kiln task failed: {error}"))?
    }

    /// Stops accepting, drains in-flight requests and instance dispatches within the grace
    /// period, deletes every container, and returns when all is done.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.wait().await
    }
}
