//! One dispatch of one instance as the runtime API sees it: the function's checkpoint,
//! sleep and wait calls become fenced writes in the store.

use std::fmt;
use std::time::SystemTime;

use pool::{DurableCall, DurableError, DurableFuture, DurableReply, DurableSession};
use serde_json::Value;
use store::{Fenced, InstanceOutcome, Store, StoreError, Suspension};
use telemetry::Metrics;
use timers::Timers;

pub(crate) struct InstanceSession {
    pub store: Store,
    pub timers: Timers,
    pub metrics: Metrics,
    pub id: String,
    pub epoch: i64,
    pub attempt: i32,
    pub value_limit: usize,
}

impl fmt::Debug for InstanceSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceSession")
            .field("id", &self.id)
            .field("epoch", &self.epoch)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl DurableSession for InstanceSession {
    fn instance_id(&self) -> &str {
        &self.id
    }

    fn attempt(&self) -> i32 {
        self.attempt
    }

    fn value_limit(&self) -> usize {
        self.value_limit
    }

    fn call(&self, call: DurableCall) -> DurableFuture<'_> {
        Box::pin(async move {
            match call {
                DurableCall::Checkpoint { key, value } => {
                    if json_len(&value) > self.value_limit {
                        return self.fail_too_large().await;
                    }
                    match self
                        .store
                        .put_checkpoint(&self.id, self.epoch, &key, &value)
                        .await
                    {
                        Ok(Ok(stored)) => {
                            let replayed = stored != value;
                            self.metrics
                                .checkpoint(if replayed { "existing" } else { "stored" });
                            Ok(DurableReply::Value(stored))
                        }
                        Ok(Err(Fenced)) => {
                            self.metrics.checkpoint("fenced");
                            Err(DurableError::Fenced)
                        }
                        Err(error) => Err(unavailable(error)),
                    }
                }
                DurableCall::Sleep { key, wake_at } => {
                    let slept = self
                        .store
                        .sleep_instance(&self.id, self.epoch, &key, wake_at)
                        .await;
                    self.suspension(slept, "sleep")
                }
                DurableCall::Wait { key, event, timeout } => {
                    let deadline = SystemTime::now() + timeout;
                    let waited = self
                        .store
                        .wait_for_event(&self.id, self.epoch, &key, &event, deadline)
                        .await;
                    self.suspension(waited, "wait")
                }
                DurableCall::Oversized => self.fail_too_large().await,
            }
        })
    }
}

impl InstanceSession {
    /// A sleep or wait that suspends the instance puts its wake-up on this node's wheel.
    fn suspension(
        &self,
        result: Result<Result<Suspension, Fenced>, StoreError>,
        kind: &str,
    ) -> Result<DurableReply, DurableError> {
        match result {
            Ok(Ok(Suspension::Continue(value))) => Ok(DurableReply::Value(value)),
            Ok(Ok(Suspension::Sleeping(wake_at))) => {
                self.metrics.sleep(kind);
                self.timers.schedule(self.id.clone(), wake_at);
                Ok(DurableReply::Suspended { wake_at })
            }
            Ok(Err(Fenced)) => Err(DurableError::Fenced),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn fail_too_large(&self) -> Result<DurableReply, DurableError> {
        let outcome = InstanceOutcome::Failed {
            code: "value_too_large".to_owned(),
            message: format!(
                "a checkpoint value was larger than {} bytes of JSON",
                self.value_limit
            ),
        };
        match self.store.finish_instance(&self.id, self.epoch, &outcome).await {
            Ok(Ok(())) => Err(DurableError::TooLarge {
                limit: self.value_limit,
            }),
            Ok(Err(Fenced)) => Err(DurableError::Fenced),
            Err(error) => Err(unavailable(error)),
        }
    }
}

/// A store failure as the function sees it: retry when the database is unreachable; do not
/// when it refused the value.
fn unavailable(error: StoreError) -> DurableError {
    if error.is_unavailable() {
        tracing::warn!(%error, "a durable call could not reach the store");
        DurableError::Unavailable("the database is unreachable; retry the call".to_owned())
    } else {
        tracing::info!(%error, "the store refused a durable call");
        DurableError::Rejected(format!("the value could not be stored: {error}"))
    }
}

/// The JSON size of a value, as the limits count it.
pub(crate) fn json_len(value: &Value) -> usize {
    value.to_string().len()
}
