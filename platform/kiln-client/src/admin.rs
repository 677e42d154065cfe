//! The operator's API under `/v1/admin` (the client's token is the admin token): tenants and
//! their keys.

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::segment;
use crate::{Client, Error};

/// A tenant to create; issuer and audience default to `kiln` and `kiln:{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct NewTenant {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub keys: Vec<NewKey>,
}

/// A verification key: `secret` for HS256, `public_key` (PEM) for RS256, ES256 or EdDSA.
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    pub kid: String,
    pub algorithm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// A tenant as Kiln shows it (never with key material).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub kids: Vec<String>,
    /// Absent in the answer to a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to adding a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedKey {
    pub tenant: String,
    pub kid: String,
    pub algorithm: String,
}

#[derive(Deserialize)]
struct TenantList {
    tenants: Vec<Tenant>,
}

impl Client {
    /// `POST /v1/admin/tenants`.
    pub async fn create_tenant(&self, tenant: &NewTenant) -> Result<Tenant, Error> {
        self.json(Method::POST, "/v1/admin/tenants", Some(tenant)).await
    }

    /// `GET /v1/admin/tenants`.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>, Error> {
        let list: TenantList = self.json(Method::GET, "/v1/admin/tenants", None::<&()>).await?;
        Ok(list.tenants)
    }

    /// `POST /v1/admin/tenants/{tenant}/keys`.
    pub async fn add_key(&self, tenant: &str, key: &NewKey) -> Result<AddedKey, Error> {
        let path = format!("/v1/admin/tenants/{}/keys", segment(tenant));
        self.json(Method::POST, &path, Some(key)).await
    }

    /// `DELETE /v1/admin/tenants/{tenant}/keys/{kid}`.
    pub async fn remove_key(&self, tenant: &str, kid: &str) -> Result<(), Error> {
        let path = format!("/v1/admin/tenants/{}/keys/{}", segment(tenant), segment(kid));
        self.empty(Method::DELETE, &path).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn new_tenants_leave_out_what_is_not_set() {
        let tenant = NewTenant {
            name: "acme".into(),
            issuer: None,
            audience: Some("api".into()),
            keys: vec![NewKey {
                kid: "k1".into(),
                algorithm: "HS256".into(),
                secret: Some("s".into()),
                public_key: None,
            }],
        };
        assert_eq!(
            serde_json::to_value(&tenant).unwrap(),
            json!({"name": "acme", "audience": "api",
                   "keys": [{"kid": "k1", "algorithm": "HS256", "secret": "s"}]})
        );
    }
}
