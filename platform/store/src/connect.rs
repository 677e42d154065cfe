//! The connection pool, with every deadpool timeout set so a dead database fails fast.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Config, ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use crate::StoreError;

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: String,
    pub pool_size: usize,
    /// Bounds waiting for a free connection, opening one, and checking one on reuse.
    pub timeout: Duration,
}

/// Bounds a lookup on a pool the host made (its timeouts are the host's).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared handle to PostgreSQL; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// How long [`Store::bounded`] lets one operation take, waits for a connection included.
    timeout: Duration,
    /// Set when the last [`Store::bounded`] lookup could not reach PostgreSQL, cleared by
    /// the next that did: caches then answer from what they know instead of waiting.
    unreachable: Arc<AtomicBool>,
}

/// A snapshot of the pool for health reports.
#[derive(Debug, Clone, Copy)]
pub struct PoolFigures {
    pub max_size: usize,
    pub open: usize,
    pub idle: usize,
    pub waiting: usize,
}

impl Store {
    /// Builds the pool; connections are opened lazily, so this does not touch the network.
    pub fn new(config: &StoreConfig) -> Result<Store, StoreError> {
        let mut pool_config = Config::new();
        pool_config.url = Some(config.url.clone());
        pool_config.manager = Some(ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        });
        let mut limits = PoolConfig::new(config.pool_size);
        limits.timeouts = Timeouts {
            wait: Some(config.timeout),
            create: Some(config.timeout),
            recycle: Some(config.timeout),
        };
        pool_config.pool = Some(limits);
        let pool = pool_config
            .create_pool(Some(Runtime::Tokio1), NoTls)
            .map_err(|error| StoreError::Migration(format!("bad database settings: {error}")))?;
        Ok(Store {
            pool,
            timeout: config.timeout,
            unreachable: Arc::default(),
        })
    }

    /// Uses a pool the caller made (Kiln embedded in a program that has one already).
    pub fn from_pool(pool: Pool) -> Store {
        Store {
            pool,
            timeout: DEFAULT_TIMEOUT,
            unreachable: Arc::default(),
        }
    }

    /// Runs a lookup for at most the store's timeout, and notes whether PostgreSQL answered
    /// ([`Store::unreachable`]). The pool's own timeouts end a wait for a connection, not a
    /// query sent on a connection whose server stopped answering (frozen, or cut off without
    /// a reset); this ends that too.
    pub async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = tokio::time::timeout(self.timeout, operation)
            .await
            .unwrap_or(Err(StoreError::TimedOut(self.timeout)));
        let unreachable = matches!(&result, Err(error) if error.is_unavailable());
        self.unreachable.store(unreachable, Ordering::Relaxed);
        result
    }

    /// Whether the last bounded lookup could not reach PostgreSQL, as a check to keep (what
    /// lookup caches take).
    pub fn unreachable_check(&self) -> Arc<dyn Fn() -> bool + Send + Sync> {
        let unreachable = self.unreachable.clone();
        Arc::new(move || unreachable.load(Ordering::Relaxed))
    }

    /// Runs a trivial query: proves a connection can be had and PostgreSQL answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    pub fn figures(&self) -> PoolFigures {
        let status = self.pool.status();
        PoolFigures {
            max_size: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        }
    }
}
