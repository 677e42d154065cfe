//! The one place errors become status codes and JSON error bodies.

use std::sync::Arc;
use std::time::Duration;

use crate::body::{ResponseBody, full_body};
use auth::AuthError;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use instances::InstanceError;
use pool::InvokeError;
use registry::{ImageError, PullError, RegistryError};
use store::StoreError;

/// Marks a response in which Kiln refused the request's credential.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CredentialRefused;

/// An error on its way to the client: status, stable code, safe message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same refusal, saying `message` about what to fix.
    pub fn with_message(mut self, message: impl Into<String>) -> ApiError {
        self.message = message.into();
        self
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// The tenant has no function `name` (on routes under `/v1/functions/{name}/...`).
    pub fn function_not_found(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "function_not_found",
            format!("function `{name}` not found"),
        )
    }

    /// The node is shutting down: the request was not started; another node (or this one,
    /// restarted) can take it.
    pub fn shutting_down() -> ApiError {
        let mut api = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "this node is shutting down; retry, another node will answer",
        );
        api.retry_after = Some(Duration::from_secs(1));
        api
    }

    /// The client's address failed to authenticate too often; nothing of the request was
    /// checked. `wait` is when its next attempt is taken (rounded up to whole seconds).
    pub fn too_many_auth_failures(wait: Duration) -> ApiError {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut api = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_auth_failures",
            format!(
                "too many failed authentications from this address; retry in {seconds} s with a valid token \
                 or signature"
            ),
        );
        api.retry_after = Some(Duration::from_secs(seconds));
        api
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A platform fault: the cause is logged here, the client gets a generic message.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    pub fn into_response(self) -> Response<ResponseBody> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = Response::new(full_body(Bytes::from(body.to_string())));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(retry_after) = self.retry_after {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
        }
        // Kiln answers 401 only when a credential did not pass (a function's own 401 is not
        // an ApiError): it counts against the client's address.
        if self.status == StatusCode::UNAUTHORIZED {
            response.extensions_mut().insert(CredentialRefused);
        }
        // Kiln's one upgrade is the live-events WebSocket: say what to upgrade to.
        if self.status == StatusCode::UPGRADE_REQUIRED {
            let headers = response.headers_mut();
            headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(
                http::header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

impl From<events::SubscribeError> for ApiError {
    fn from(error: events::SubscribeError) -> ApiError {
        match error {
            events::SubscribeError::TooMany { limit } => {
                let mut api = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_live_streams",
                    format!(
                        "this tenant already has {limit} live-event streams open on this node \
                         (KILN_LIVE_STREAMS_PER_TENANT); close one, or filter one stream instead of opening several"
                    ),
                );
                api.retry_after = Some(Duration::from_secs(5));
                api
            }
            events::SubscribeError::Store(error) => error.into(),
        }
    }
}

impl From<events::FilterError> for ApiError {
    fn from(error: events::FilterError) -> ApiError {
        ApiError::bad_request(error.code(), error.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        if let AuthError::Unavailable(cause) = &error {
            tracing::error!(error = %cause, "auth lookup failed");
            let mut api = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                error.code(),
                "cannot check tokens right now (the database is unreachable and this tenant's keys \
                 are not known on this node); retry",
            );
            api.retry_after = Some(Duration::from_secs(1));
            return api;
        }
        let status = if error.is_forbidden() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::from(&error)
    }
}

/// A lookup's failure, shared by the callers that waited for it.
impl From<Arc<StoreError>> for ApiError {
    fn from(error: Arc<StoreError>) -> ApiError {
        ApiError::from(&*error)
    }
}

impl From<&StoreError> for ApiError {
    fn from(error: &StoreError) -> ApiError {
        match error {
            StoreError::Conflict(what) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", format!("{what} already exists"))
            }
            error if error.is_unavailable() => {
                tracing::error!(error = %error, "database unavailable");
                let mut api = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "database unavailable; retry",
                );
                api.retry_after = Some(Duration::from_secs(1));
                api
            }
            error => ApiError::internal(error),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> ApiError {
        ApiError::from(&error)
    }
}

impl From<&RegistryError> for ApiError {
    fn from(error: &RegistryError) -> ApiError {
        match error {
            RegistryError::InvalidName(message) => ApiError::bad_request("invalid_name", message.clone()),
            RegistryError::NotExecutable(message) => {
                ApiError::bad_request("invalid_executable", message.clone())
            }
            RegistryError::InvalidSetting(message) => {
                ApiError::bad_request("invalid_setting", message.clone())
            }
            RegistryError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload_too_large",
                format!("executables are limited to {limit} bytes"),
            ),
            RegistryError::Image(error) => {
                let status = match error {
                    ImageError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    ImageError::Io(cause) => return ApiError::internal(cause),
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, error.code(), error.to_string())
            }
            RegistryError::Pull(error) => {
                let status = match error {
                    PullError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    PullError::Unavailable(_) | PullError::Protocol(_) => StatusCode::BAD_GATEWAY,
                    PullError::Io(cause) => return ApiError::internal(cause),
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, error.code(), error.to_string())
            }
            error @ RegistryError::ImageNotOnThisNode(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "image_unavailable",
                error.to_string(),
            ),
            RegistryError::Store(error) => error.into(),
            RegistryError::Lookup(shared) => shared.as_ref().into(),
            RegistryError::Io(error) => ApiError::internal(error),
        }
    }
}

impl From<InstanceError> for ApiError {
    fn from(error: InstanceError) -> ApiError {
        match error {
            InstanceError::FunctionNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "function_not_found", error.to_string())
            }
            InstanceError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "value_too_large",
                error.to_string(),
            ),
            InstanceError::IdempotencyConflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "idempotency_key_reused", error.to_string())
            }
            InstanceError::Registry(error) => error.into(),
            InstanceError::Store(error) => error.into(),
        }
    }
}

impl From<InvokeError> for ApiError {
    fn from(error: InvokeError) -> ApiError {
        let (status, code) = match &error {
            InvokeError::Busy { .. } => (StatusCode::TOO_MANY_REQUESTS, "function_busy"),
            InvokeError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "function_timeout"),
            InvokeError::Crashed(_) => (StatusCode::BAD_GATEWAY, "function_crashed"),
            InvokeError::FunctionError { .. } => (StatusCode::BAD_GATEWAY, "function_error"),
            InvokeError::ResponseTooLarge { .. } => (StatusCode::BAD_GATEWAY, "response_too_large"),
            InvokeError::StartFailed(cause) => {
                tracing::error!(error = %cause, "container start failed");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "start_failed",
                    "could not start the function; retry",
                );
            }
            InvokeError::NetworkNotAllowed(_) => (StatusCode::FORBIDDEN, "network_not_allowed"),
            InvokeError::ShuttingDown => return ApiError::shutting_down(),
            InvokeError::Suspended => return ApiError::internal(&error),
        };
        let mut api = ApiError::new(status, code, error.to_string());
        if let InvokeError::Busy { retry_after } = error {
            api.retry_after = Some(retry_after);
        }
        api
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_carries_retry_after() {
        let response = ApiError::from(InvokeError::Busy {
            retry_after: Duration::from_secs(2),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
    }

    #[test]
    fn faults_are_classified_by_who_is_at_fault() {
        let cases = [
            (
                ApiError::from(AuthError::Expired),
                StatusCode::UNAUTHORIZED,
                "token_expired",
            ),
            (
                ApiError::from(AuthError::WrongTenant {
                    token: "a".into(),
                    route: "b".into(),
                }),
                StatusCode::FORBIDDEN,
                "wrong_tenant",
            ),
            (
                ApiError::from(InvokeError::Timeout(Duration::from_secs(1))),
                StatusCode::GATEWAY_TIMEOUT,
                "function_timeout",
            ),
            (
                ApiError::from(InvokeError::Crashed("exited".into())),
                StatusCode::BAD_GATEWAY,
                "function_crashed",
            ),
            (
                ApiError::from(InvokeError::ShuttingDown),
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
            ),
            (
                ApiError::from(RegistryError::TooLarge { limit: 10 }),
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload_too_large",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!((error.status, error.code), (status, code));
        }
    }
}
