//! A tenant's verification keys, parsed once, each with its pinned algorithm.

use jsonwebtoken::{Algorithm, DecodingKey};
use store::{KeyRecord, TenantAuth};
use thiserror::Error;

/// Shortest HS256 secret accepted: 256 bits, the size of the MAC.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("unsupported algorithm `{0}`: use HS256, RS256, ES256 or EdDSA")]
    UnsupportedAlgorithm(String),
    #[error("HS256 secret must be at least {MIN_HS256_SECRET_BYTES} bytes")]
    SecretTooShort,
    #[error("key `{kid}` is not a valid {algorithm} public key in PEM: {reason}")]
    BadPublicKey {
        kid: String,
        algorithm: String,
        reason: String,
    },
    #[error("kid must be 1-64 characters of letters, digits, `-`, `_` or `.`")]
    BadKid,
}

/// The verification material of one tenant.
pub struct TenantVerifier {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) keys: Vec<VerificationKey>,
}

pub(crate) struct VerificationKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The algorithms Kiln accepts, by their JOSE names.
fn parse_algorithm(name: &str) -> Result<Algorithm, KeyError> {
    match name {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => Err(KeyError::UnsupportedAlgorithm(other.to_owned())),
    }
}

impl TenantVerifier {
    pub fn from_record(record: &TenantAuth) -> Result<TenantVerifier, KeyError> {
        let keys = record.keys.iter().map(parse_key).collect::<Result<_, _>>()?;
        Ok(TenantVerifier {
            issuer: record.issuer.clone(),
            audience: record.audience.clone(),
            keys,
        })
    }
}

/// Parses a stored key into its verification form.
pub(crate) fn parse_key(record: &KeyRecord) -> Result<VerificationKey, KeyError> {
    let valid_kid = !record.kid.is_empty()
        && record.kid.len() <= 64
        && record
            .kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid_kid {
        return Err(KeyError::BadKid);
    }
    let algorithm = parse_algorithm(&record.algorithm)?;
    let pem = record.material.as_bytes();
    let key = match algorithm {
        Algorithm::HS256 if pem.len() < MIN_HS256_SECRET_BYTES => return Err(KeyError::SecretTooShort),
        Algorithm::HS256 => Ok(DecodingKey::from_secret(pem)),
        Algorithm::RS256 => DecodingKey::from_rsa_pem(pem),
        Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
        _ => DecodingKey::from_ed_pem(pem),
    }
    .map_err(|error| KeyError::BadPublicKey {
        kid: record.kid.clone(),
        algorithm: record.algorithm.clone(),
        reason: error.to_string(),
    })?;
    Ok(VerificationKey {
        kid: record.kid.clone(),
        algorithm,
        key,
    })
}

/// Checks a key before it is stored, so a bad key is refused when added rather than at first use.
pub fn validate_key(record: &KeyRecord) -> Result<(), KeyError> {
    parse_key(record).map(|_| ())
}
