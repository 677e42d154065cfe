//! RS256, ES256 and EdDSA tenant keys: tokens signed with the private key verify, and the
//! classic algorithm-confusion attack (an HS256 token keyed with the public key) does not.

use auth::{AuthError, TenantVerifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::json;
use store::{KeyRecord, TenantAuth};

struct Pair {
    kid: &'static str,
    algorithm: Algorithm,
    name: &'static str,
    private: &'static str,
    public: &'static str,
}

const PAIRS: [Pair; 3] = [
    Pair {
        kid: "rsa",
        algorithm: Algorithm::RS256,
        name: "RS256",
        private: include_str!("keys/rsa2048.key"),
        public: include_str!("keys/rsa2048.pub"),
    },
    Pair {
        kid: "ec",
        algorithm: Algorithm::ES256,
        name: "ES256",
        private: include_str!("keys/p256.key"),
        public: include_str!("keys/p256.pub"),
    },
    Pair {
        kid: "ed",
        algorithm: Algorithm::EdDSA,
        name: "EdDSA",
        private: include_str!("keys/ed25519.key"),
        public: include_str!("keys/ed25519.pub"),
    },
];

fn verifier() -> TenantVerifier {
    let keys = PAIRS
        .iter()
        .map(|pair| KeyRecord {
            kid: pair.kid.into(),
            algorithm: pair.name.into(),
            material: pair.public.into(),
        })
        .collect();
    TenantVerifier::from_record(&TenantAuth {
        issuer: "kiln".into(),
        audience: "kiln:acme".into(),
        keys,
    })
    .unwrap()
}

fn claims() -> serde_json::Value {
    json!({"tenant": "acme", "iss": "kiln", "aud": "kiln:acme", "exp": get_current_timestamp() + 60})
}

fn encoding_key(pair: &Pair) -> EncodingKey {
    match pair.algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pair.private.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(pair.private.as_bytes()),
        _ => EncodingKey::from_ed_pem(pair.private.as_bytes()),
    }
    .unwrap()
}

#[test]
fn tokens_signed_with_each_private_key_verify() {
    let verifier = verifier();
    for pair in &PAIRS {
        let header = Header {
            kid: Some(pair.kid.into()),
            ..Header::new(pair.algorithm)
        };
        let token = encode(&header, &claims(), &encoding_key(pair)).unwrap();
        assert_eq!(
            verifier.verify(&token, "acme").unwrap().tenant,
            "acme",
            "{}",
            pair.name
        );
    }
}

#[test]
fn a_token_signed_with_another_keys_private_half_is_refused() {
    let verifier = verifier();
    // Signed with the P-256 key but naming the RSA key's kid: algorithm differs, refused.
    let header = Header {
        kid: Some("rsa".into()),
        ..Header::new(Algorithm::ES256)
    };
    let token = encode(&header, &claims(), &encoding_key(&PAIRS[1])).unwrap();
    assert_eq!(
        verifier.verify(&token, "acme").unwrap_err(),
        AuthError::AlgorithmMismatch("rsa".into())
    );
}

#[test]
fn hs256_keyed_with_the_public_key_is_refused() {
    let verifier = verifier();
    for pair in &PAIRS {
        let header = Header {
            kid: Some(pair.kid.into()),
            ..Header::new(Algorithm::HS256)
        };
        let forged = encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(pair.public.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            verifier.verify(&forged, "acme").unwrap_err(),
            AuthError::AlgorithmMismatch(pair.kid.into()),
            "{}",
            pair.name
        );
    }
}

#[test]
fn a_public_key_that_is_not_pem_is_refused_when_added() {
    let record = KeyRecord {
        kid: "bad".into(),
        algorithm: "RS256".into(),
        material: "not a key".into(),
    };
    assert!(
        auth::validate_key(&record)
            .unwrap_err()
            .to_string()
            .contains("not a valid RS256 public key")
    );
}
