//! Runs the refinery migrations from `migrations/` under a PostgreSQL advisory lock.
//!
//! refinery takes no lock of its own; two nodes starting at once would race on
//! its history table. The lock is held on a dedicated connection for the run.

use tokio_postgres::NoTls;

use crate::StoreError;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// An arbitrary constant that names Kiln's migration lock among advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x6b69_6c6e_6d69_6772;

/// Applies every pending migration; safe to call on every start and from several nodes.
pub async fn migrate(database_url: &str) -> Result<usize, StoreError> {
    let (mut client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    let connection_task = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "migration connection ended");
        }
    });
    let applied = migrate_locked(&mut client).await;
    drop(client);
    let _ = connection_task.await;
    applied
}

/// [`migrate`] on one connection of an existing pool (held for the whole run).
pub async fn migrate_pool(pool: &deadpool_postgres::Pool) -> Result<usize, StoreError> {
    let mut connection = pool.get().await?;
    migrate_locked(&mut connection).await
}

async fn migrate_locked(client: &mut tokio_postgres::Client) -> Result<usize, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let outcome = embedded::migrations::runner().run_async(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let report = outcome.map_err(|error| StoreError::Migration(error.to_string()))?;
    Ok(report.applied_migrations().len())
}
