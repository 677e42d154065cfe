//! The authenticator: reads a bearer token, loads the claimed tenant's keys (cached briefly,
//! and kept while the database is unreachable) and verifies the token against them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lookup_cache::{LookupCache, LookupCounts, Policy};
use moka::sync::Cache;

use store::Store;

use crate::verify::claimed_tenant;
use crate::{AuthError, Claims, TenantVerifier};

/// How long a tenant's keys are trusted before they are read again (bounds how long a
/// removed key keeps working on other nodes).
const KEY_CACHE_TTL: Duration = Duration::from_secs(2);
/// Bound on tokens remembered as verified.
const VERIFIED_MAX: u64 = 10_000;

#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    /// Parsed keys by tenant; unknown tenants are remembered apart, so tokens naming made-up
    /// tenants cost one query per name and cannot push known tenants out.
    keys: LookupCache<String, Arc<TenantVerifier>>,
    /// Spares repeat callers the signature check (an RSA verify costs tens of microseconds):
    /// claims by token, with the instant they stop counting (no later than the key cache's
    /// entries, nor past the token's `exp`).
    verified: Cache<String, (Instant, Claims)>,
}

impl Authenticator {
    /// `stale_for`: how long known keys keep verifying tokens while PostgreSQL is unreachable.
    pub fn new(store: Store, stale_for: Duration) -> Authenticator {
        let policy = Policy::new(KEY_CACHE_TTL, stale_for);
        Authenticator {
            keys: LookupCache::new("tenant_keys", policy, store.unreachable_check()),
            store,
            verified: Cache::builder()
                .max_capacity(VERIFIED_MAX)
                .time_to_live(KEY_CACHE_TTL)
                .support_invalidation_closures()
                .build(),
        }
    }

    /// How tenant key lookups were answered, for `/metrics`.
    pub fn key_lookups(&self) -> LookupCounts {
        self.keys.counts()
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
    pub async fn invalidate(&self, tenant: &str) {
        self.keys.invalidate(&tenant.to_owned()).await;
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
        let store = self.store.clone();
        let tenant = tenant.to_owned();
        let load = || {
            let tenant = tenant.clone();
            async move {
                let record = store.bounded(store.tenant_auth(&tenant)).await?;
                Ok::<_, store::StoreError>(record.and_then(|record| parse_verifier(&tenant, &record)))
            }
        };
        self.keys
            .get(&tenant, load)
            .await
            .map_err(|error| AuthError::Unavailable(error.to_string()))
    }
}

/// A tenant's stored keys in verification form; a key that does not parse (it was checked
/// when added) is logged and the tenant treated as unknown.
fn parse_verifier(tenant: &str, record: &store::TenantAuth) -> Option<Arc<TenantVerifier>> {
    match TenantVerifier::from_record(record) {
        Ok(verifier) => Some(Arc::new(verifier)),
        Err(error) => {
            tracing::error!(tenant, %error, "stored tenant key does not parse");
            None
        }
    }
}
