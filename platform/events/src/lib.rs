//! The live-events hub: a tenant's invocations (as this node serves them) and instance
//! lifecycle events (from PostgreSQL, so from every node), numbered, fanned out to each
//! tenant's subscribers and kept a while for subscribers that reconnect. The front door's
//! SSE and WebSocket routes are its subscribers; it knows nothing of HTTP.

mod filter;
mod hub;
mod instance_poller;

pub use filter::{EventFilter, EventId, FilterError, GAP_REASON};
pub use hub::{LiveEvent, LiveEvents, SubscribeError, Subscription};
