//! Tenant tokens on the client side: minting HS256 tokens locally (no server involved), and
//! reading the `tenant` claim of a token, unverified, to build invocation URLs.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde::Deserialize;
use serde_json::json;

use crate::Error;

/// What a minted token says and how it is signed.
#[derive(Debug, Clone)]
pub struct Mint {
    pub tenant: String,
    pub kid: String,
    pub secret: String,
    pub issuer: String,
    pub audience: String,
    pub ttl_seconds: u64,
}

/// An HS256 token for `mint.tenant` with the claims Kiln requires (`tenant`, `iss`, `aud`,
/// `exp`), plus `sub`, `iat` and `nbf`, and `kid` in its header.
pub fn mint_hs256(mint: &Mint) -> Result<String, Error> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(mint.kid.clone());
    let now = get_current_timestamp();
    let claims = json!({
        "tenant": mint.tenant,
        "sub": format!("{}-cli", mint.tenant),
        "iss": mint.issuer,
        "aud": mint.audience,
        "iat": now,
        "nbf": now,
        "exp": now + mint.ttl_seconds,
    });
    Ok(encode(
        &header,
        &claims,
        &EncodingKey::from_secret(mint.secret.as_bytes()),
    )?)
}

/// The `tenant` claim of a token, read WITHOUT checking its signature: only to know which
/// `/fn/{tenant}/...` URL to call. Kiln verifies the token itself.
pub fn token_tenant(token: &str) -> Result<String, Error> {
    #[derive(Deserialize)]
    struct Claims {
        tenant: String,
    }
    let claims: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)?;
    Ok(claims.tenant)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation, decode};

    use super::*;

    fn mint(tenant: &str) -> Mint {
        Mint {
            tenant: tenant.into(),
            kid: "k1".into(),
            secret: "a-secret-of-at-least-32-bytes-0123456789".into(),
            issuer: "kiln".into(),
            audience: format!("kiln:{tenant}"),
            ttl_seconds: 60,
        }
    }

    #[test]
    fn minted_tokens_verify_with_the_secret_and_name_the_tenant() {
        let token = mint_hs256(&mint("acme")).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["kiln"]);
        validation.set_audience(&["kiln:acme"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let key = DecodingKey::from_secret(b"a-secret-of-at-least-32-bytes-0123456789");
        let decoded = decode::<serde_json::Value>(&token, &key, &validation).unwrap();
        assert_eq!(decoded.header.kid.as_deref(), Some("k1"));
        assert_eq!(decoded.claims["tenant"], "acme");
        let exp = decoded.claims["exp"].as_u64().unwrap();
        assert_eq!(exp - decoded.claims["iat"].as_u64().unwrap(), 60);
    }

    #[test]
    fn the_tenant_is_read_without_the_secret() {
        let token = mint_hs256(&mint("beta")).unwrap();
        assert_eq!(token_tenant(&token).unwrap(), "beta");
        assert!(matches!(token_tenant("not-a-jwt"), Err(Error::Token(_))));
        let no_tenant = format!("e30.{}.sig", "eyJzdWIiOiJ4In0");
        assert!(token_tenant(&no_tenant).is_err(), "a token without `tenant`");
    }
}
