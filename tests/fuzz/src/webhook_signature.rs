//! Webhook signature headers as any sender may send them, with any body, under each scheme.
//!
//! The first byte chooses the scheme (and, with its top bit, a request without the
//! header); the rest is `header\nbody`. `SIG` in the header stands for the right signature
//! of the body at the fuzzing clock, so the fuzzer reaches acceptance too.

use std::time::{Duration, UNIX_EPOCH};

use auth::{DEFAULT_HMAC_HEADER, DEFAULT_STRIPE_TOLERANCE, WebhookError, WebhookScheme, verify_webhook};

use crate::Verdict;
use crate::input::{mode, split};
use crate::mac::hmac_sha256;

const SECRET: &[u8] = b"whsec_fuzzing_secret";
/// The fuzzing clock, in Unix seconds.
const NOW: u64 = 1_700_000_000;

pub fn check(data: &[u8]) -> Verdict {
    let Some((mode, rest)) = mode(data) else {
        return Verdict::Refused;
    };
    let scheme = match mode % 3 {
        0 => WebhookScheme::GitHub,
        1 => WebhookScheme::Stripe {
            tolerance: DEFAULT_STRIPE_TOLERANCE,
        },
        _ => WebhookScheme::HmacSha256 {
            header: DEFAULT_HMAC_HEADER.to_owned(),
        },
    };
    let (header, body) = split(rest, b'\n');
    let stripe_prefix = format!("{NOW}.");
    let signed: &[&[u8]] = match scheme {
        WebhookScheme::Stripe { .. } => &[stripe_prefix.as_bytes(), body],
        _ => &[body],
    };
    let expected = hex::encode(hmac_sha256(SECRET, signed));
    let header = String::from_utf8_lossy(header).replace("SIG", &expected);
    let presented = (mode & 0x80 == 0).then_some(header.as_str());
    let verdict = verify_webhook(
        &scheme,
        SECRET,
        presented,
        body,
        UNIX_EPOCH + Duration::from_secs(NOW),
    );
    let accepted = verdict.is_ok();
    match (presented, verdict) {
        (None, verdict) => assert!(
            matches!(verdict, Err(WebhookError::MissingSignature(_))),
            "a request without a signature got {verdict:?}"
        ),
        (Some(header), Ok(())) => assert!(
            header.to_ascii_lowercase().contains(&expected),
            "`{header}` verified without the body's signature"
        ),
        (Some(_), Err(_)) => {}
    }
    Verdict::of(accepted)
}
