//! Webhook signatures: a function opened to third-party senders (GitHub, Stripe, or any
//! sender that signs the raw body with HMAC-SHA256) is called without a JWT when the
//! request carries a valid signature made with the function's secret.
//!
//! Every comparison of a signature is constant-time, and a request costs one HMAC over its
//! body however many signatures it carries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// GitHub's header: `sha256=<hex HMAC of the body>`.
pub const GITHUB_HEADER: &str = "X-Hub-Signature-256";
/// Stripe's header: `t=<unix seconds>,v1=<hex HMAC of "<t>.<body>">[,v1=...]`.
pub const STRIPE_HEADER: &str = "Stripe-Signature";
/// The generic scheme's header unless the function names another.
pub const DEFAULT_HMAC_HEADER: &str = "X-Kiln-Signature";
/// Most `v1=` signatures a Stripe header may carry: each costs a comparison, and senders
/// send one (two while they roll a secret).
const MAX_STRIPE_CANDIDATES: usize = 8;
/// A hex HMAC-SHA256.
const SIGNATURE_HEX_LEN: usize = 64;
/// How far a Stripe timestamp may be from now unless the function says otherwise.
pub const DEFAULT_STRIPE_TOLERANCE: Duration = Duration::from_secs(300);

/// How a function's webhook senders sign their requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookScheme {
    GitHub,
    Stripe {
        tolerance: Duration,
    },
    /// Hex HMAC-SHA256 of the raw body in `header`, optionally prefixed `sha256=`.
    HmacSha256 {
        header: String,
    },
}

impl WebhookScheme {
    pub fn name(&self) -> &'static str {
        match self {
            WebhookScheme::GitHub => "github",
            WebhookScheme::Stripe { .. } => "stripe",
            WebhookScheme::HmacSha256 { .. } => "hmac-sha256",
        }
    }

    /// The request header that carries the signature.
    pub fn header(&self) -> &str {
        match self {
            WebhookScheme::GitHub => GITHUB_HEADER,
            WebhookScheme::Stripe { .. } => STRIPE_HEADER,
            WebhookScheme::HmacSha256 { header } => header,
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WebhookError {
    #[error("the request has no `{0}` header and no bearer token")]
    MissingSignature(String),
    #[error("the `{0}` signature does not match the body")]
    InvalidSignature(String),
    #[error("the Stripe-Signature timestamp is more than {0:?} away from now")]
    Expired(Duration),
}

impl WebhookError {
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::MissingSignature(_) => "missing_signature",
            WebhookError::InvalidSignature(_) => "invalid_webhook_signature",
            WebhookError::Expired(_) => "signature_expired",
        }
    }
}

/// Checks `signature` (the value of [`WebhookScheme::header`], if the request had it)
/// against `body` signed with `secret`, at time `now`.
pub fn verify_webhook(
    scheme: &WebhookScheme,
    secret: &[u8],
    signature: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Result<(), WebhookError> {
    let header = scheme.header();
    let signature = signature.ok_or_else(|| WebhookError::MissingSignature(header.to_owned()))?;
    let invalid = || WebhookError::InvalidSignature(header.to_owned());
    match scheme {
        WebhookScheme::GitHub => {
            let hex = signature.strip_prefix("sha256=").ok_or_else(invalid)?;
            let given = decode(hex).ok_or_else(invalid)?;
            matches(secret, &[body], &[given])
                .then_some(())
                .ok_or_else(invalid)
        }
        WebhookScheme::HmacSha256 { .. } => {
            let hex = signature.strip_prefix("sha256=").unwrap_or(signature);
            let given = decode(hex).ok_or_else(invalid)?;
            matches(secret, &[body], &[given])
                .then_some(())
                .ok_or_else(invalid)
        }
        WebhookScheme::Stripe { tolerance } => {
            let (timestamp, candidates) = parse_stripe(signature).ok_or_else(invalid)?;
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            if now.abs_diff(timestamp) > tolerance.as_secs() {
                return Err(WebhookError::Expired(*tolerance));
            }
            let prefix = format!("{timestamp}.");
            matches(secret, &[prefix.as_bytes(), body], &candidates)
                .then_some(())
                .ok_or_else(invalid)
        }
    }
}

/// Hex HMAC-SHA256 of the concatenated `parts`, as a sender computes it (for tests and tools).
pub fn sign_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(mac(secret, parts).finalize().into_bytes())
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// True when one of `candidates` is the HMAC of `parts`: the HMAC is computed once, over
/// the body once, and each comparison is constant-time.
fn matches(secret: &[u8], parts: &[&[u8]], candidates: &[[u8; 32]]) -> bool {
    let expected = mac(secret, parts).finalize().into_bytes();
    candidates.iter().fold(false, |found, candidate| {
        found | bool::from(expected[..].ct_eq(candidate))
    })
}

/// A signature as bytes: exactly 64 hex digits, or nothing.
fn decode(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != SIGNATURE_HEX_LEN {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex, &mut bytes).ok()?;
    Some(bytes)
}

/// `t=...` and the `v1=...` signatures of a Stripe-Signature header (other schemes are
/// ignored); refused when it has no timestamp, no usable signature, or too many.
fn parse_stripe(header: &str) -> Option<(u64, Vec<[u8; 32]>)> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse().ok(),
            Some(("v1", value)) => {
                if candidates.len() == MAX_STRIPE_CANDIDATES {
                    return None;
                }
                candidates.push(decode(value)?);
            }
            _ => {}
        }
    }
    Some((timestamp?, candidates)).filter(|(_, candidates)| !candidates.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            sign_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn github_documented_example_verifies() {
        // GitHub's documentation: this secret and payload give this signature.
        let secret = b"It's a Secret to Everybody";
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let verified = verify_webhook(
            &WebhookScheme::GitHub,
            secret,
            Some(signature),
            b"Hello, World!",
            at(NOW),
        );
        assert_eq!(verified, Ok(()));
        let tampered = verify_webhook(
            &WebhookScheme::GitHub,
            secret,
            Some(signature),
            b"Hello, World?",
            at(NOW),
        );
        assert_eq!(tampered.unwrap_err().code(), "invalid_webhook_signature");
        let unprefixed = &signature["sha256=".len()..];
        let missing_prefix = verify_webhook(
            &WebhookScheme::GitHub,
            secret,
            Some(unprefixed),
            b"Hello, World!",
            at(NOW),
        );
        assert_eq!(missing_prefix.unwrap_err().code(), "invalid_webhook_signature");
    }

    #[test]
    fn stripe_checks_timestamp_and_any_v1() {
        let scheme = WebhookScheme::Stripe {
            tolerance: DEFAULT_STRIPE_TOLERANCE,
        };
        let secret = b"whsec_test_secret";
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let good = sign_hex(secret, &[format!("{NOW}.").as_bytes(), body]);
        let header = format!("t={NOW},v1={},v1={good},v0=ignored", "00".repeat(32));
        assert_eq!(
            verify_webhook(&scheme, secret, Some(&header), body, at(NOW + 10)),
            Ok(())
        );
        let tampered = verify_webhook(&scheme, secret, Some(&header), br#"{"id":"evt_2"}"#, at(NOW));
        assert_eq!(tampered.unwrap_err().code(), "invalid_webhook_signature");
        let stale = verify_webhook(&scheme, secret, Some(&header), body, at(NOW + 301));
        assert_eq!(stale.unwrap_err().code(), "signature_expired");
        let early = verify_webhook(&scheme, secret, Some(&header), body, at(NOW - 301));
        assert_eq!(early.unwrap_err().code(), "signature_expired");
        // A signature over another timestamp does not verify under this one.
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        let replayed = verify_webhook(&scheme, secret, Some(&moved), body, at(NOW));
        assert_eq!(replayed.unwrap_err().code(), "invalid_webhook_signature");
        let crowded = format!(
            "t={NOW}{}",
            format!(",v1={good}").repeat(MAX_STRIPE_CANDIDATES + 1)
        );
        for malformed in [
            "",
            "t=abc,v1=00",
            "v1=00",
            &format!("t={NOW}"),
            &format!("t={NOW},v1=00"),
            &crowded,
        ] {
            let refused = verify_webhook(&scheme, secret, Some(malformed), body, at(NOW));
            assert_eq!(
                refused.unwrap_err().code(),
                "invalid_webhook_signature",
                "{malformed}"
            );
        }
    }

    #[test]
    fn generic_hmac_takes_bare_or_prefixed_hex() {
        let scheme = WebhookScheme::HmacSha256 {
            header: DEFAULT_HMAC_HEADER.to_owned(),
        };
        let secret = b"0123456789abcdef";
        let body = b"payload";
        let hex = sign_hex(secret, &[body]);
        assert_eq!(verify_webhook(&scheme, secret, Some(&hex), body, at(NOW)), Ok(()));
        let prefixed = format!("sha256={}", hex.to_uppercase());
        assert_eq!(
            verify_webhook(&scheme, secret, Some(&prefixed), body, at(NOW)),
            Ok(())
        );
        let wrong_key = verify_webhook(&scheme, b"another-secret!!", Some(&hex), body, at(NOW));
        assert_eq!(wrong_key.unwrap_err().code(), "invalid_webhook_signature");
        let missing = verify_webhook(&scheme, secret, None, body, at(NOW));
        assert_eq!(missing.unwrap_err().code(), "missing_signature");
        let not_hex = verify_webhook(&scheme, secret, Some("zz"), body, at(NOW));
        assert_eq!(not_hex.unwrap_err().code(), "invalid_webhook_signature");
    }
}
