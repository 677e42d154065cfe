//! Cutting one fuzz input into the several values a target needs.

/// The bytes before the first `separator` and those after it (all and nothing without one).
pub(crate) fn split(data: &[u8], separator: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|byte| *byte == separator) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// The first byte, which chooses a target's mode, and the rest.
pub(crate) fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(mode, rest)| (*mode, rest))
}
