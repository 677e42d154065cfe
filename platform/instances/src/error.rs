//! Why an instance request failed.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum InstanceError {
    #[error("no function named {0}")]
    FunctionNotFound(String),
    #[error("{what} is larger than the limit of {limit} bytes of JSON")]
    TooLarge { what: &'static str, limit: usize },
    #[error(
        "idempotency key {0:?} already started an instance with a different function or input; use a new key"
    )]
    IdempotencyConflict(String),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}
