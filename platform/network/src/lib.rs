//! Function networks: how an `egress` container reaches the internet and nothing else.
//!
//! Each egress container joins a network namespace prepared ahead of time: a veth pair
//! whose host end is an isolated port of this node's bridge (so containers never see each
//! other), an address from the egress subnet (and one from the IPv6 subnet where the host
//! has IPv6), and a default route through the bridge's address, which also answers DNS. An nftables table of this node's own NATs the
//! containers' traffic out and refuses the host (every local address, on any interface),
//! loopback, link-local and, unless the operator opens them, every non-global range.
//!
//! **Invariant:** everything this crate creates on the host (namespaces, links, the
//! firewall table) carries this node's tag, and [`EgressNetwork::start`] removes whatever an
//! earlier run with the same tag left behind before it creates anything.

mod command;
mod config;
mod dns;
mod egress;
mod firewall;
mod names;
mod ranges;
mod slot;

pub use config::{EgressConfig, EgressConfigError, host_has_ipv6_route};
pub use egress::{EgressAttachment, EgressNetwork, EgressTraffic, NetworkError};
pub use names::node_tag;
