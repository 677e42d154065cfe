//! Bearer tokens as any caller may send them, read for their tenant claim and verified
//! against one tenant's HS256 key.
//!
//! The first byte chooses how the rest becomes a token: taken as it is; `header\nclaims`
//! JSON encoded and signed with the tenant's key (so the fuzzer reaches claim validation);
//! or `header\nclaims\nsignature` encoded as they are.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use auth::{LEEWAY_SECONDS, TenantVerifier, claimed_tenant};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use store::{KeyRecord, TenantAuth};

use crate::Verdict;
use crate::input::{mode, split};
use crate::mac::hmac_sha256;

const SECRET: &str = "a-fuzzing-secret-of-at-least-32-bytes";
const TENANT: &str = "acme";

static VERIFIER: LazyLock<TenantVerifier> = LazyLock::new(|| {
    TenantVerifier::from_record(&TenantAuth {
        issuer: "kiln".into(),
        audience: "kiln:acme".into(),
        keys: vec![KeyRecord {
            kid: "k1".into(),
            algorithm: "HS256".into(),
            material: SECRET.into(),
        }],
    })
    .expect("the fuzzing key is valid")
});

pub fn check(data: &[u8]) -> Verdict {
    let Some((mode, rest)) = mode(data) else {
        return Verdict::Refused;
    };
    let token = match mode % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => {
            let (header, claims) = split(rest, b'\n');
            let input = signing_input(header, claims);
            let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(SECRET.as_bytes(), &[input.as_bytes()]));
            format!("{input}.{signature}")
        }
        _ => {
            let (header, rest) = split(rest, b'\n');
            let (claims, signature) = split(rest, b'\n');
            format!(
                "{}.{}",
                signing_input(header, claims),
                URL_SAFE_NO_PAD.encode(signature)
            )
        }
    };
    let claimed = claimed_tenant(&token);
    let Ok(claims) = VERIFIER.verify(&token, TENANT) else {
        return Verdict::Refused;
    };
    assert_eq!(claims.tenant, TENANT, "a token for another tenant verified");
    assert_eq!(
        claimed.as_deref(),
        Ok(TENANT),
        "the claim read before verification differs"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert!(
        claims.exp.saturating_add(LEEWAY_SECONDS) >= now,
        "an expired token verified"
    );
    assert!(
        signed_with_the_key(&token),
        "a token verified without the key's signature"
    );
    Verdict::Accepted
}

fn signing_input(header: &[u8], claims: &[u8]) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

/// True when the token's last part is the HMAC of the rest under the tenant's key.
fn signed_with_the_key(token: &str) -> bool {
    let Some((input, signature)) = token.rsplit_once('.') else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(signature)
        .is_ok_and(|signature| signature == hmac_sha256(SECRET.as_bytes(), &[input.as_bytes()]))
}
