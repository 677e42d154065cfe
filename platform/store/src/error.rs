//! The store's error type: the database is unreachable, a query failed, or a row conflicts.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[from] deadpool_postgres::PoolError),
    #[error("database query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("database did not answer within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("migrations failed: {0}")]
    Migration(String),
    /// A row holds a value this release does not know, such as a status a newer node wrote
    /// during a rolling upgrade.
    #[error("{0}")]
    UnknownValue(String),
}

impl StoreError {
    /// True when the database itself could not be reached (as opposed to a query it rejected).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) | StoreError::TimedOut(_) => true,
            StoreError::Query(error) => error.is_closed() || error.as_db_error().is_none(),
            StoreError::Conflict(_) | StoreError::Migration(_) | StoreError::UnknownValue(_) => false,
        }
    }
}

/// The SQLSTATE PostgreSQL uses for a unique-constraint violation.
pub(crate) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}
