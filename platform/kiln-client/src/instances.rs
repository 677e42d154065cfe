//! Durable instances: start, list, read, checkpoints, history and signals.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::body;
use crate::client::{parse, query, segment, success};
use crate::{Client, Error};

/// One durable instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub function: String,
    pub version: i32,
    /// `pending`, `running`, `sleeping`, `paused`, `completed`, `failed` or `cancelled`.
    pub status: String,
    pub input: Value,
    pub output: Value,
    pub error: Option<InstanceError>,
    pub attempt: i32,
    pub wake_at: Option<String>,
    pub waiting_for: Option<String>,
    pub idempotency_key: Option<String>,
    pub deadline_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why an instance failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceError {
    pub code: String,
    pub message: Option<String>,
}

/// The answer to a start: the instance, and whether this call created it (`false` when
/// its idempotency key had started it before).
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub instance: Instance,
    pub created: bool,
}

/// Which instances to list; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub function: Option<String>,
    pub status: Option<String>,
    /// 1-1000; Kiln's default is 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of instances, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstancePage {
    pub instances: Vec<Instance>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub key: String,
    pub value: Value,
    pub created_at: String,
}

/// One entry of an instance's lifecycle history (`created`, `dispatched`, `sleeping`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceEvent {
    pub id: i64,
    pub kind: String,
    pub detail: Value,
    pub at: String,
}

/// The answer to a signal: the stored signal and the instance as it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalSent {
    pub signal: Signal,
    pub instance: Instance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub id: i64,
    pub name: String,
    pub created_at: String,
}

#[derive(Deserialize)]
struct Checkpoints {
    checkpoints: Vec<Checkpoint>,
}

#[derive(Deserialize)]
struct Events {
    events: Vec<InstanceEvent>,
}

impl Client {
    /// `POST /v1/functions/{function}/instances` with `input` as the body and, if given,
    /// an `Idempotency-Key` header.
    pub async fn start_instance(
        &self,
        function: &str,
        input: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Started, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(key) = idempotency_key {
            let value = HeaderValue::from_str(key).map_err(|_| {
                Error::InvalidRequest("the idempotency key must be visible ascii characters".into())
            })?;
            headers.insert("idempotency-key", value);
        }
        let path = format!("/v1/functions/{}/instances", segment(function));
        let body = body::full(Bytes::from(input.to_string()));
        let answer = success(self.send(Method::POST, &path, headers, body).await?)?;
        Ok(Started {
            created: answer.status == 202,
            instance: parse(&answer.body)?,
        })
    }

    /// `GET /v1/instances?function=&status=&limit=&cursor=`.
    pub async fn list_instances(&self, filter: &InstanceFilter) -> Result<InstancePage, Error> {
        let path = format!("/v1/instances{}", instance_query(filter));
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/instances/{id}`.
    pub async fn get_instance(&self, id: &str) -> Result<Instance, Error> {
        let path = format!("/v1/instances/{}", segment(id));
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/instances/{id}/checkpoints`, in order.
    pub async fn instance_checkpoints(&self, id: &str) -> Result<Vec<Checkpoint>, Error> {
        let path = format!("/v1/instances/{}/checkpoints", segment(id));
        let list: Checkpoints = self.json(Method::GET, &path, None::<&()>).await?;
        Ok(list.checkpoints)
    }

    /// `GET /v1/instances/{id}/events`, oldest first.
    pub async fn instance_events(&self, id: &str) -> Result<Vec<InstanceEvent>, Error> {
        let path = format!("/v1/instances/{}/events", segment(id));
        let list: Events = self.json(Method::GET, &path, None::<&()>).await?;
        Ok(list.events)
    }

    /// `POST /v1/instances/{id}/signals`: `cancel`, `pause`, `resume`, or an event name.
    pub async fn signal_instance(&self, id: &str, name: &str, payload: &Value) -> Result<SignalSent, Error> {
        let path = format!("/v1/instances/{}/signals", segment(id));
        let body = json!({"name": name, "payload": payload});
        self.json(Method::POST, &path, Some(&body)).await
    }
}

fn instance_query(filter: &InstanceFilter) -> String {
    query([
        ("function", filter.function.clone()),
        ("status", filter.status.clone()),
        ("limit", filter.limit.map(|limit| limit.to_string())),
        ("cursor", filter.cursor.clone()),
    ])
}

/// True for what looks like an instance id (a UUID: 8-4-4-4-12 hex digits).
pub fn is_instance_id(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(index, character)| match index {
            8 | 13 | 18 | 23 => character == '-',
            _ => character.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_a_query() {
        assert_eq!(instance_query(&InstanceFilter::default()), "");
        let filter = InstanceFilter {
            function: Some("orders".into()),
            status: Some("sleeping".into()),
            limit: Some(10),
            cursor: None,
        };
        assert_eq!(
            instance_query(&filter),
            "?function=orders&status=sleeping&limit=10"
        );
    }

    #[test]
    fn instance_ids_are_uuids() {
        assert!(is_instance_id("6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2"));
        assert!(!is_instance_id("hello"));
        assert!(!is_instance_id("6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1cz"));
        assert!(!is_instance_id("6f1c2a3b00d4e-4f5a-8b6c-7d8e9fa0b1c2"));
    }

    #[test]
    fn instances_parse_with_and_without_an_error() {
        let mut body = json!({
            "id": "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2", "function": "orders", "version": 1,
            "status": "failed", "input": {"n": 1}, "output": null,
            "error": {"code": "TestFailure", "message": "asked to"}, "attempt": 1,
            "wake_at": null, "waiting_for": null, "idempotency_key": null,
            "deadline_at": "2026-02-01T00:00:00.000Z", "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:01.000Z", "finished_at": "2026-01-01T00:00:01.000Z"
        });
        let failed: Instance = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(failed.error.unwrap().code, "TestFailure");
        body["error"] = Value::Null;
        let fine: Instance = serde_json::from_value(body).unwrap();
        assert!(fine.error.is_none());
    }
}
