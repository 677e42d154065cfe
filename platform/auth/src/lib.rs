//! Who may call: per-tenant JWT verification and the operator's admin token.
//!
//! Every tenant has its own keys, each with a `kid` and a pinned algorithm, and its own
//! issuer and audience. The algorithm always comes from the key, never from the token.
//!
//! **Invariant:** a token is checked only against the keys of the tenant it is for; auth
//! knows nothing of HTTP (the front door maps [`AuthError::code`] to status codes).

mod admin;
mod cache;
mod error;
mod keys;
mod mint;
mod verify;
mod webhook;

pub use admin::AdminToken;
pub use cache::Authenticator;
pub use error::AuthError;
pub use keys::{KeyError, TenantVerifier, validate_key};
pub use mint::mint_hs256;
pub use verify::{Claims, LEEWAY_SECONDS, claimed_tenant};
pub use webhook::{
    DEFAULT_HMAC_HEADER, DEFAULT_STRIPE_TOLERANCE, WebhookError, WebhookScheme, sign_hex, verify_webhook,
};
