//! Running one claimed instance: replay the function in a container with the instance's
//! input and checkpoints, then record how the dispatch ended.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use pool::{Invocation, InvokeError, Runner};
use registry::{Registry, VersionSelector};
use serde_json::{Value, json};
use store::{ClaimedInstance, InstanceOutcome, Released, Store};
use telemetry::Metrics;
use timers::{Claimed, Timers};
use tokio_util::sync::CancellationToken;

use crate::engine::MAX_FAILURES;
use crate::running::Running;
use crate::session::{InstanceSession, json_len};

/// Back-off before re-dispatching after a crash or timeout.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Wait before trying again when the function is at its concurrency limit.
const BUSY_DELAY: Duration = Duration::from_millis(500);

pub(crate) struct Dispatch<R> {
    shared: Arc<Shared<R>>,
}

/// What every dispatch of this node shares.
pub(crate) struct Shared<R> {
    pub store: Store,
    pub registry: Registry,
    pub runner: R,
    pub timers: Timers,
    pub running: Running,
    pub value_limit: usize,
    /// Cancelled at shutdown: dispatches cut short by it are not the function's fault.
    pub closing: CancellationToken,
    pub metrics: Metrics,
}

impl<R: Runner> Dispatch<R> {
    pub fn new(shared: Shared<R>) -> Dispatch<R> {
        Dispatch {
            shared: Arc::new(shared),
        }
    }

    /// Runs the claimed instance in its own task; the claim's capacity is held until it ends.
    pub fn spawn(&self, claimed: Claimed) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let Claimed { instance, permit } = claimed;
            let reason = match (instance.woke, instance.attempt) {
                (true, _) => "wake",
                (false, 1) => "start",
                (false, _) => "retry",
            };
            shared.metrics.wake(reason, instance.late);
            shared.running.insert(&instance.id, instance.epoch);
            shared.run(&instance).await;
            shared.running.remove(&instance.id, instance.epoch);
            drop(permit);
        });
    }
}

/// What to do with an instance after its dispatch.
enum Next {
    Finish(InstanceOutcome),
    Release {
        failure: Option<(&'static str, String)>,
        delay: Duration,
    },
    Nothing,
}

impl<R: Runner> Shared<R> {
    async fn run(&self, instance: &ClaimedInstance) {
        let next = match self
            .registry
            .resolve(
                &instance.tenant,
                &instance.function,
                &VersionSelector::Number(instance.version),
            )
            .await
        {
            Ok(Some(target)) => {
                let invocation = self.invocation(instance);
                let output = match self.runner.invoke(target, invocation).await {
                    Ok(outcome) => outcome.response.body.collect(self.value_limit).await,
                    Err(error) => Err(error),
                };
                self.next_after(output)
            }
            Ok(None) => Next::Finish(failed(
                "function_deleted",
                format!(
                    "version {} of function {} no longer exists",
                    instance.version, instance.function
                ),
            )),
            Err(error) => {
                tracing::warn!(%error, instance = %instance.id, "resolving an instance's function failed");
                Next::Release {
                    failure: None,
                    delay: RETRY_BACKOFF,
                }
            }
        };
        self.record(instance, next).await;
    }

    fn invocation(&self, instance: &ClaimedInstance) -> Invocation {
        let body = json!({"input": instance.input, "checkpoints": instance.checkpoints});
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Invocation {
            method: Method::POST,
            path: "/".to_owned(),
            query: None,
            headers,
            body: Bytes::from(body.to_string()),
            durable: Some(Arc::new(InstanceSession {
                store: self.store.clone(),
                timers: self.timers.clone(),
                metrics: self.metrics.clone(),
                id: instance.id.clone(),
                epoch: instance.epoch,
                attempt: instance.attempt,
                value_limit: self.value_limit,
            })),
        }
    }

    fn next_after(&self, result: Result<Bytes, InvokeError>) -> Next {
        match result {
            Ok(body) => match serde_json::from_slice::<Value>(&body) {
                Ok(output) if json_len(&output) > self.value_limit => Next::Finish(failed(
                    "value_too_large",
                    format!("the output was larger than {} bytes of JSON", self.value_limit),
                )),
                Ok(output) => Next::Finish(InstanceOutcome::Completed(output)),
                Err(error) => Next::Finish(failed(
                    "output_not_json",
                    format!("the function's response is not JSON: {error}"),
                )),
            },
            Err(InvokeError::Suspended) => Next::Nothing,
            // Containers are deleted at shutdown: give the instance back as it is.
            Err(InvokeError::Crashed(_) | InvokeError::ShuttingDown) if self.closing.is_cancelled() => {
                Next::Release {
                    failure: None,
                    delay: Duration::ZERO,
                }
            }
            Err(InvokeError::FunctionError { error_type, message }) => {
                Next::Finish(failed("function_error", format!("{error_type}: {message}")))
            }
            Err(InvokeError::ResponseTooLarge { limit }) => Next::Finish(failed(
                "value_too_large",
                format!("the output was larger than the response limit of {limit} bytes"),
            )),
            Err(error @ InvokeError::Crashed(_)) => Next::Release {
                failure: Some(("function_crashed", error.to_string())),
                delay: RETRY_BACKOFF,
            },
            Err(error @ InvokeError::Timeout(_)) => Next::Release {
                failure: Some(("function_timeout", error.to_string())),
                delay: RETRY_BACKOFF,
            },
            Err(error @ InvokeError::StartFailed(_)) => Next::Release {
                failure: Some(("start_failed", error.to_string())),
                delay: RETRY_BACKOFF,
            },
            // The operator may allow it again; until then the usual failure count applies.
            Err(error @ InvokeError::NetworkNotAllowed(_)) => Next::Release {
                failure: Some(("network_not_allowed", error.to_string())),
                delay: RETRY_BACKOFF,
            },
            Err(InvokeError::Busy { .. }) => Next::Release {
                failure: None,
                delay: BUSY_DELAY,
            },
            Err(InvokeError::ShuttingDown) => Next::Release {
                failure: None,
                delay: Duration::ZERO,
            },
        }
    }

    async fn record(&self, instance: &ClaimedInstance, next: Next) {
        let recorded = match next {
            Next::Nothing => return,
            Next::Finish(outcome) => match self
                .store
                .finish_instance(&instance.id, instance.epoch, &outcome)
                .await
                .inspect(|finished| {
                    if finished.is_ok() {
                        self.metrics.instance_finished(match &outcome {
                            InstanceOutcome::Completed(_) => "completed",
                            InstanceOutcome::Failed { .. } => "failed",
                        });
                    }
                }) {
                // PostgreSQL refused the outcome (say a `\u0000` in a JSON string): the
                // instance fails with the reason rather than run again for ever.
                Err(error) if !error.is_unavailable() => {
                    let refused = failed(
                        "output_rejected",
                        format!("the outcome could not be stored: {error}"),
                    );
                    self.store
                        .finish_instance(&instance.id, instance.epoch, &refused)
                        .await
                        .map(|_| ())
                }
                finished => finished.map(|_| ()),
            },
            Next::Release { failure, delay } => {
                let failure = failure.as_ref().map(|(code, message)| (*code, message.as_str()));
                match self
                    .store
                    .release_instance(&instance.id, instance.epoch, failure, MAX_FAILURES, delay)
                    .await
                {
                    Ok(Some(Released::Retry(due))) => {
                        self.timers.schedule(instance.id.clone(), due);
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(error) => Err(error),
                }
            }
        };
        // The lease runs out and another dispatch (here or on another node) takes over.
        if let Err(error) = recorded {
            tracing::warn!(%error, instance = %instance.id, "recording an instance's dispatch failed");
        }
    }
}

fn failed(code: &str, message: String) -> InstanceOutcome {
    InstanceOutcome::Failed {
        code: code.to_owned(),
        message,
    }
}
