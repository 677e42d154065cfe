//! The audit log, newest first: a tenant's own entries (`GET /v1/audit`, tenant token) or
//! everyone's (`GET /v1/admin/audit`, admin token, optionally for one tenant).

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

/// Which page of the audit log to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// 1-1000; Kiln's default is 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl Client {
    /// `GET /v1/audit`: the entries of the token's tenant.
    pub async fn audit(&self, page: &AuditQuery) -> Result<AuditPage, Error> {
        let path = format!("/v1/audit{}", audit_query(page, None));
        self.json(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/admin/audit` (admin token): every tenant's entries, or only `tenant`'s.
    pub async fn admin_audit(&self, page: &AuditQuery, tenant: Option<&str>) -> Result<AuditPage, Error> {
        let path = format!("/v1/admin/audit{}", audit_query(page, tenant));
        self.json(Method::GET, &path, None::<&()>).await
    }
}

fn audit_query(page: &AuditQuery, tenant: Option<&str>) -> String {
    query([
        ("limit", page.limit.map(|limit| limit.to_string())),
        ("cursor", page.cursor.clone()),
        ("tenant", tenant.map(str::to_owned)),
    ])
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
    fn queries_name_only_what_is_asked() {
        assert_eq!(audit_query(&AuditQuery::default(), None), "");
        let page = AuditQuery {
            limit: Some(10),
            cursor: Some("42".into()),
        };
        assert_eq!(
            audit_query(&page, Some("acme")),
            "?limit=10&cursor=42&tenant=acme"
        );
    }

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
