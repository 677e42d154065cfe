//! Mints HS256 tokens for operators and scripts (`kilnd token mint`) and for tests.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::json;

/// A token for `tenant`, signed with its HS256 key `kid`, valid for `ttl_seconds` from now.
pub fn mint_hs256(
    tenant: &str,
    kid: &str,
    secret: &str,
    issuer: &str,
    audience: &str,
    ttl_seconds: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    let now = get_current_timestamp();
    let claims = json!({
        "tenant": tenant,
        "sub": format!("{tenant}-cli"),
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    });
    encode(&header, &claims, &EncodingKey::from_secret(secret.as_bytes()))
}
