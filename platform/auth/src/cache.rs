//! The authenticator: reads a bearer token, loads the claimed tenant's keys (cached briefly)
//! and verifies the token against them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use store::Store;

use crate::verify::claimed_tenant;
use crate::{AuthError, Claims, TenantVerifier};

/// How long a tenant's keys are trusted before they are read again (bounds how long a
/// removed key keeps working on other nodes).
const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Bound on cached tenants, so tokens naming random tenants cannot grow memory.
const KEY_CACHE_MAX: u64 = 10_000;

#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    /// Parsed keys by tenant, `None` for "no such tenant".
    cache: Cache<String, Option<Arc<TenantVerifier>>>,
    /// Spares repeat callers the signature check (an RSA verify costs tens of microseconds):
    /// claims by token, with the instant they stop counting (no later than the key cache's
    /// entries, nor past the token's `exp`).
    verified: Cache<String, (Instant, Claims)>,
}

impl Authenticator {
    pub fn new(store: Store) -> Authenticator {
        Authenticator {
            store,
            cache: bounded(),
            verified: bounded(),
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
        self.cache.invalidate(tenant);
        let tenant = tenant.to_owned();
        // Closures are enabled on this cache, so registering one cannot fail.
        let _ = self
            .verified
            .invalidate_entries_if(move |_, (_, claims)| claims.tenant == tenant);
    }

    fn recently_verified(&self, token: &str) -> Option<Claims> {
        let (valid_until, claims) = self.verified.get(token)?;
        (Instant::now() < valid_until).then_some(claims)
    }

    fn remember(&self, token: &str, claims: &Claims) {
        let seconds_left = claims.exp.saturating_sub(jsonwebtoken::get_current_timestamp());
        let valid_for = KEY_CACHE_TTL.min(Duration::from_secs(seconds_left));
        self.verified
            .insert(token.to_owned(), (Instant::now() + valid_for, claims.clone()));
    }

    async fn verifier(&self, tenant: &str) -> Result<Option<Arc<TenantVerifier>>, AuthError> {
        if let Some(verifier) = self.cache.get(tenant) {
            return Ok(verifier);
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
        self.cache.insert(tenant.to_owned(), verifier.clone());
        Ok(verifier)
    }
}

/// At most [`KEY_CACHE_MAX`] entries (the least used go first), each for [`KEY_CACHE_TTL`].
fn bounded<V: Clone + Send + Sync + 'static>() -> Cache<String, V> {
    Cache::builder()
        .max_capacity(KEY_CACHE_MAX)
        .time_to_live(KEY_CACHE_TTL)
        .support_invalidation_closures()
        .build()
}
