//! Kiln as a library. [`Kiln::builder`] takes a database (a URL or a pool the host already
//! has), a data folder, a bind address and limits; `start()` runs the whole platform (front
//! door, registry, warm containers, durable instances) inside the calling program and
//! returns a [`Running`] handle with `shutdown()`. `kilnd` is a thin user of this builder.
//!
//! Containers are created by a single-threaded helper process: the host program re-executed
//! with `sandbox --state DIR`. Its `main` must therefore call [`run_sandbox_if_requested`]
//! first, before any thread starts (libcontainer forks with a raw clone).

mod builder;
mod node_id;
mod running;
mod sandbox_entry;
mod start;

pub use builder::{Database, InstanceSettings, KilnBuilder, Limits, NetworkSettings};
pub use frontdoor::TrustedProxies;
pub use kiln_types::NetworkMode;
pub use network::EgressConfig;
pub use node_id::is_node_id;
pub use registry::PullSettings;
pub use running::{Running, StopHandle};
pub use sandbox_entry::{run_sandbox, run_sandbox_if_requested};

/// The entry point: `Kiln::builder()`.
pub struct Kiln;

impl Kiln {
    pub fn builder() -> KilnBuilder {
        KilnBuilder::default()
    }
}
