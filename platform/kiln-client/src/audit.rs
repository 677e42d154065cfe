//! The audit log: `GET /v1/audit?limit=&cursor=`, who changed what, newest first.

use http::Method;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::client::query;
use crate::{Client, Error};

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// A number or a string on the wire; kept as text.
    #[serde(deserialize_with = "text_or_number")]
    pub id: String,
    pub time: String,
    pub tenant: Option<String>,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    #[serde(default)]
    pub details: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One page of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

impl Client {
    pub async fn audit(&self, limit: Option<u32>, cursor: Option<&str>) -> Result<AuditPage, Error> {
        let path = format!(
            "/v1/audit{}",
            query([
                ("limit", limit.map(|limit| limit.to_string())),
                ("cursor", cursor.map(str::to_owned)),
            ])
        );
        self.json(Method::GET, &path, None::<&()>).await
    }
}

fn text_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn entries_take_numeric_or_text_ids() {
        let page: AuditPage = serde_json::from_value(json!({
            "entries": [
                {"id": 7, "time": "2026-01-01T00:00:00.000Z", "tenant": "acme", "actor": "acme-cli",
                 "action": "function.upload", "target": "hello", "details": {"version": 2}},
                {"id": "a1", "time": "2026-01-01T00:00:00.000Z", "tenant": null, "actor": "admin",
                 "action": "tenant.create", "target": "acme"}
            ],
            "next_cursor": null
        }))
        .unwrap();
        assert_eq!(page.entries[0].id, "7");
        assert_eq!(page.entries[0].details["version"], 2);
        assert_eq!(page.entries[1].id, "a1");
        assert_eq!(page.entries[1].tenant, None);
        assert_eq!(page.entries[1].details, Value::Null);
    }
}
