//! The connection pool, with every deadpool timeout set so a dead database fails fast.

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

/// The shared handle to PostgreSQL; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
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
        Ok(Store { pool })
    }

    /// Uses a pool the caller made (Kiln embedded in a program that has one already).
    pub fn from_pool(pool: Pool) -> Store {
        Store { pool }
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
