//! Verifies one token against one tenant's keys.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode, decode_header};
use serde::Deserialize;

use crate::{AuthError, TenantVerifier};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 5;

/// The claims Kiln reads from a verified token.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The tenant the token was issued for.
    pub tenant: String,
    pub sub: Option<String>,
    /// Expiry, seconds since the Unix epoch; validation requires it, so a verified token has it
    /// (the default only lets validation, not deserialisation, report a missing `exp`).
    #[serde(default)]
    pub exp: u64,
}

#[derive(Deserialize)]
struct TenantClaim {
    tenant: Option<String>,
}

/// The tenant a token claims to be for, read before verification only to pick whose keys to
/// check it against; the claim counts only once the signature verifies with that tenant's key.
pub fn claimed_tenant(token: &str) -> Result<String, AuthError> {
    let claim: TenantClaim = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .map_err(|error| AuthError::Malformed(error.to_string()))?;
    claim
        .tenant
        .ok_or_else(|| AuthError::MissingClaim("tenant".into()))
}

impl TenantVerifier {
    /// Verifies signature (with the algorithm pinned to the key named by `kid`), `exp`,
    /// `nbf`, issuer and audience, and that the token is for `tenant`.
    pub fn verify(&self, token: &str, tenant: &str) -> Result<Claims, AuthError> {
        let header = decode_header(token).map_err(|error| AuthError::Malformed(error.to_string()))?;
        let key = match (&header.kid, self.keys.as_slice()) {
            (Some(kid), keys) => keys
                .iter()
                .find(|key| &key.kid == kid)
                .ok_or(AuthError::UnknownKey)?,
            (None, [only]) => only,
            (None, _) => return Err(AuthError::UnknownKey),
        };
        if header.alg != key.algorithm {
            return Err(AuthError::AlgorithmMismatch(key.kid.clone()));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Claims>(token, &key.key, &validation)
            .map_err(classify)?
            .claims;
        if claims.tenant != tenant {
            return Err(AuthError::WrongTenant {
                token: claims.tenant,
                route: tenant.to_owned(),
            });
        }
        Ok(claims)
    }
}

fn classify(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm => AuthError::AlgorithmMismatch(String::new()),
        _ => AuthError::Malformed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
    use serde_json::{Value, json};
    use store::{KeyRecord, TenantAuth};

    use super::*;

    const SECRET: &str = "a-test-secret-that-is-32-bytes-long!";

    fn verifier() -> TenantVerifier {
        TenantVerifier::from_record(&TenantAuth {
            issuer: "kiln".into(),
            audience: "kiln:acme".into(),
            keys: vec![KeyRecord {
                kid: "k1".into(),
                algorithm: "HS256".into(),
                material: SECRET.into(),
            }],
        })
        .unwrap()
    }

    fn claims() -> Value {
        let now = get_current_timestamp();
        json!({"tenant": "acme", "iss": "kiln", "aud": "kiln:acme", "exp": now + 60, "nbf": now - 1})
    }

    fn sign(header: Header, claims: &Value, secret: &str) -> String {
        encode(&header, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn hs256(kid: &str) -> Header {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.into());
        header
    }

    #[test]
    fn accepts_a_good_token() {
        let token = sign(hs256("k1"), &claims(), SECRET);
        assert_eq!(verifier().verify(&token, "acme").unwrap().tenant, "acme");
    }

    #[test]
    fn refuses_wrong_secret_expired_future_issuer_audience() {
        let now = get_current_timestamp();
        let cases: Vec<(Value, &str, AuthError)> = vec![
            (
                claims(),
                "another-secret-that-is-32-bytes-long",
                AuthError::BadSignature,
            ),
            (
                json!({"tenant":"acme","iss":"kiln","aud":"kiln:acme","exp": now - 60}),
                SECRET,
                AuthError::Expired,
            ),
            (
                json!({"tenant":"acme","iss":"kiln","aud":"kiln:acme","exp": now + 600, "nbf": now + 300}),
                SECRET,
                AuthError::NotYetValid,
            ),
            (
                json!({"tenant":"acme","iss":"evil","aud":"kiln:acme","exp": now + 60}),
                SECRET,
                AuthError::WrongIssuer,
            ),
            (
                json!({"tenant":"acme","iss":"kiln","aud":"kiln:other","exp": now + 60}),
                SECRET,
                AuthError::WrongAudience,
            ),
            (
                json!({"tenant":"acme","iss":"kiln","aud":"kiln:acme"}),
                SECRET,
                AuthError::MissingClaim("exp".into()),
            ),
        ];
        for (claims, secret, expected) in cases {
            let token = sign(hs256("k1"), &claims, secret);
            assert_eq!(
                verifier().verify(&token, "acme").unwrap_err(),
                expected,
                "claims {claims}"
            );
        }
    }

    #[test]
    fn leeway_is_small() {
        let now = get_current_timestamp();
        let barely = json!({"tenant":"acme","iss":"kiln","aud":"kiln:acme","exp": now - 2});
        assert!(
            verifier()
                .verify(&sign(hs256("k1"), &barely, SECRET), "acme")
                .is_ok()
        );
        let stale = json!({"tenant":"acme","iss":"kiln","aud":"kiln:acme","exp": now - 30});
        assert_eq!(
            verifier()
                .verify(&sign(hs256("k1"), &stale, SECRET), "acme")
                .unwrap_err(),
            AuthError::Expired
        );
    }

    #[test]
    fn algorithm_comes_from_the_key_not_the_token() {
        let token = sign(
            Header {
                kid: Some("k1".into()),
                ..Header::new(Algorithm::HS384)
            },
            &claims(),
            SECRET,
        );
        assert_eq!(
            verifier().verify(&token, "acme").unwrap_err(),
            AuthError::AlgorithmMismatch("k1".into())
        );
    }

    #[test]
    fn refuses_alg_none_and_garbage() {
        let payload = "eyJ0ZW5hbnQiOiJhY21lIn0";
        let none = format!("eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.{payload}.");
        assert!(matches!(
            verifier().verify(&none, "acme"),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            verifier().verify("not-a-jwt", "acme"),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_unknown_kid_and_other_tenants_token() {
        let token = sign(hs256("k2"), &claims(), SECRET);
        assert_eq!(
            verifier().verify(&token, "acme").unwrap_err(),
            AuthError::UnknownKey
        );
        let mut other = claims();
        other["tenant"] = json!("globex");
        let token = sign(hs256("k1"), &other, SECRET);
        assert!(matches!(
            verifier().verify(&token, "acme"),
            Err(AuthError::WrongTenant { .. })
        ));
    }

    #[test]
    fn reads_the_claimed_tenant_before_verification() {
        let token = sign(hs256("k1"), &claims(), SECRET);
        assert_eq!(claimed_tenant(&token).unwrap(), "acme");
        let mut no_tenant = claims();
        no_tenant.as_object_mut().unwrap().remove("tenant");
        let token = sign(hs256("k1"), &no_tenant, SECRET);
        assert_eq!(
            claimed_tenant(&token).unwrap_err(),
            AuthError::MissingClaim("tenant".into())
        );
    }
}
