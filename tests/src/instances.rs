//! Durable instance calls for tests: start, read, wait for a status, signal.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use crate::{Kiln, Reply};

impl Kiln {
    /// `POST /v1/functions/{function}/instances` with `input`, and an idempotency key if given.
    pub async fn start_instance(
        &self,
        token: &str,
        function: &str,
        input: &Value,
        key: Option<&str>,
    ) -> Reply {
        let bearer = format!("Bearer {token}");
        let mut headers = vec![("authorization", bearer.as_str())];
        if let Some(key) = key {
            headers.push(("idempotency-key", key));
        }
        let path = format!("/v1/functions/{function}/instances");
        self.request_with(Method::POST, &path, &headers, input.to_string())
            .await
    }

    /// Starts an instance and returns its id; panics unless Kiln accepted it.
    pub async fn started_instance(&self, token: &str, function: &str, input: Value) -> String {
        let reply = self.start_instance(token, function, &input, None).await;
        assert_eq!(reply.status, 202, "start instance: {}", reply.text());
        reply.json()["id"].as_str().expect("instance id").to_owned()
    }

    pub async fn instance(&self, token: &str, id: &str) -> Reply {
        self.request(
            Method::GET,
            &format!("/v1/instances/{id}"),
            Some(token),
            Bytes::new(),
        )
        .await
    }

    /// Polls the instance until `accept` holds for it; panics with the instance and its
    /// history after `within`.
    pub async fn wait_instance(
        &self,
        token: &str,
        id: &str,
        within: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let instance = self.instance(token, id).await.json();
            if accept(&instance) {
                return instance;
            }
            if Instant::now() > deadline {
                let events = self.instance_events(token, id).await;
                panic!("instance did not get there in {within:?}: {instance}\nevents: {events:#?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the instance has status `status`.
    pub async fn wait_status(&self, token: &str, id: &str, status: &str, within: Duration) -> Value {
        self.wait_instance(token, id, within, |instance| instance["status"] == status)
            .await
    }

    /// The stored checkpoints as one object, key → value.
    pub async fn checkpoints(&self, token: &str, id: &str) -> Value {
        let reply = self
            .request(
                Method::GET,
                &format!("/v1/instances/{id}/checkpoints"),
                Some(token),
                Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, 200, "checkpoints: {}", reply.text());
        let mut map = serde_json::Map::new();
        for checkpoint in reply.json()["checkpoints"].as_array().expect("checkpoints") {
            let key = checkpoint["key"].as_str().expect("key").to_owned();
            map.insert(key, checkpoint["value"].clone());
        }
        Value::Object(map)
    }

    /// The instance's lifecycle history, oldest first.
    pub async fn instance_events(&self, token: &str, id: &str) -> Vec<Value> {
        let reply = self
            .request(
                Method::GET,
                &format!("/v1/instances/{id}/events"),
                Some(token),
                Bytes::new(),
            )
            .await;
        reply.json()["events"].as_array().cloned().unwrap_or_default()
    }

    /// How many history entries of `kind` the instance has.
    pub async fn count_events(&self, token: &str, id: &str, kind: &str) -> usize {
        self.instance_events(token, id)
            .await
            .iter()
            .filter(|event| event["kind"] == kind)
            .count()
    }

    pub async fn signal(&self, token: &str, id: &str, name: &str, payload: Value) -> Reply {
        let body = serde_json::json!({"name": name, "payload": payload});
        self.request(
            Method::POST,
            &format!("/v1/instances/{id}/signals"),
            Some(token),
            body.to_string(),
        )
        .await
    }
}
