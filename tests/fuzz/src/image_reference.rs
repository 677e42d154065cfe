//! Image references as tenants write them in `?image=` pulls.

use image_pull::ImageReference;

use crate::Verdict;

pub fn check(data: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(data) else {
        return Verdict::Refused;
    };
    let Ok(reference) = ImageReference::parse(text) else {
        return Verdict::Refused;
    };
    assert!(
        reference.tag.is_some() || reference.digest.is_some(),
        "`{text}` names no tag or digest"
    );
    for part in reference.repository.split('/') {
        let alphanumeric = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
        let bytes = part.as_bytes();
        assert!(
            !bytes.is_empty() && alphanumeric(bytes[0]) && alphanumeric(bytes[bytes.len() - 1]),
            "`{text}` has repository part `{part}`"
        );
    }
    // Written out in full, the reference reads back the same.
    let full = reference.to_string();
    assert_eq!(
        ImageReference::parse(&full).ok(),
        Some(reference),
        "`{text}` written as `{full}`"
    );
    Verdict::Accepted
}
