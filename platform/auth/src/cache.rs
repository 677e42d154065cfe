//! The authenticator: reads a bearer token, loads the claimed tenant's keys (cached briefly)
//! and verifies the token against them.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::Store;

use crate::verify::claimed_tenant;
use crate::{AuthError, Claims, TenantVerifier};

/// How long a tenant's keys are trusted before they are read again (bounds how long a
/// removed key keeps working on other nodes).
const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Bound on cached tenants, so tokens naming random tenants cannot grow memory.
const KEY_CACHE_MAX: usize = 10_000;

/// Parsed keys by tenant, `None` for "no such tenant", with the time they were read.
type KeyCache = HashMap<String, (Instant, Option<Arc<TenantVerifier>>)>;
/// Tokens verified in full recently, with their claims and the instant they stop counting.
type TokenCache = HashMap<String, (Instant, Claims)>;

#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    cache: Arc<Mutex<KeyCache>>,
    /// Spares repeat callers the signature check (an RSA verify costs tens of microseconds);
    /// an entry lives no longer than the key cache, nor past the token's `exp`.
    verified: Arc<Mutex<TokenCache>>,
}

impl Authenticator {
    pub fn new(store: Store) -> Authenticator {
        Authenticator {
            store,
            cache: Arc::default(),
            verified: Arc::default(),
        }
    }

    /// Authenticates a bearer token (`None` when the caller sent none). With `route_tenant`,
    /// the token must be for that tenant.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        route_tenant: Option<&str>,
    ) -> Result<Claims, AuthError> {
        let token = token.ok_or(AuthError::MissingToken)?;
        if let Some(claims) = self.recently_verified(token) {
            return match route_tenant {
                Some(route) if route != claims.tenant => Err(AuthError::WrongTenant {
                    token: claims.tenant,
                    route: route.to_owned(),
                }),
                _ => Ok(claims),
            };
        }
        let tenant = claimed_tenant(token)?;
        if let Some(route) = route_tenant
            && route != tenant
        {
            return Err(AuthError::WrongTenant {
                token: tenant,
                route: route.to_owned(),
            });
        }
        let verifier = self.verifier(&tenant).await?.ok_or(AuthError::UnknownTenant)?;
        let claims = verifier.verify(token, &tenant)?;
        self.remember(token, &claims);
        Ok(claims)
    }

    /// Forgets a tenant's cached keys and verified tokens after its keys changed on this node.
    pub fn invalidate(&self, tenant: &str) {
        self.cache.lock().remove(tenant);
        self.verified
            .lock()
            .retain(|_, (_, claims)| claims.tenant != tenant);
    }

    fn recently_verified(&self, token: &str) -> Option<Claims> {
        let verified = self.verified.lock();
        let (valid_until, claims) = verified.get(token)?;
        (Instant::now() < *valid_until).then(|| claims.clone())
    }

    fn remember(&self, token: &str, claims: &Claims) {
        let seconds_left = claims.exp.saturating_sub(jsonwebtoken::get_current_timestamp());
        let valid_for = KEY_CACHE_TTL.min(Duration::from_secs(seconds_left));
        let mut verified = self.verified.lock();
        if verified.len() >= KEY_CACHE_MAX {
            verified.clear();
        }
        verified.insert(token.to_owned(), (Instant::now() + valid_for, claims.clone()));
    }

    async fn verifier(&self, tenant: &str) -> Result<Option<Arc<TenantVerifier>>, AuthError> {
        if let Some((read_at, verifier)) = self.cache.lock().get(tenant)
            && read_at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(verifier.clone());
        }
        let record = self
            .store
            .tenant_auth(tenant)
            .await
            .map_err(|error| AuthError::Unavailable(error.to_string()))?;
        let verifier = match record {
            Some(record) => match TenantVerifier::from_record(&record) {
                Ok(verifier) => Some(Arc::new(verifier)),
                Err(error) => {
                    tracing::error!(tenant, %error, "stored tenant key does not parse");
                    None
                }
            },
            None => None,
        };
        let mut cache = self.cache.lock();
        if cache.len() >= KEY_CACHE_MAX {
            cache.clear();
        }
        cache.insert(tenant.to_owned(), (Instant::now(), verifier.clone()));
        Ok(verifier)
    }
}
