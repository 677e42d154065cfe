//! Fuzz targets for the parsers of untrusted input: each `check` takes arbitrary bytes,
//! must never panic, and asserts what the parser promises of what it accepts.
//!
//! libFuzzer drives them through `fuzz_targets/` (`scripts/fuzz.sh`); `cargo test` replays
//! the corpus in `corpus/<target>/` through them, found crashes included.

pub mod executable;
pub mod function_settings;
pub mod image_archive;
pub mod image_layer;
pub mod image_reference;
mod input;
pub mod jwt;
mod mac;
mod oci_archive;
pub mod runtime_message;
mod scratch_store;
pub mod webhook_signature;

/// What a target's parser made of an input: the replay test asserts that the corpus of
/// every target holds inputs of both kinds, so each reaches past its parser's first refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Accepted,
    Refused,
}

impl Verdict {
    fn of(accepted: bool) -> Verdict {
        if accepted {
            Verdict::Accepted
        } else {
            Verdict::Refused
        }
    }
}

/// A target: arbitrary bytes in, what its parser made of them out.
pub type Check = fn(&[u8]) -> Verdict;

/// Every target by the name of its `fuzz_targets/` binary and corpus folder.
pub const TARGETS: [(&str, Check); 8] = [
    ("executable", executable::check),
    ("function_settings", function_settings::check),
    ("image_archive", image_archive::check),
    ("image_layer", image_layer::check),
    ("image_reference", image_reference::check),
    ("jwt", jwt::check),
    ("runtime_message", runtime_message::check),
    ("webhook_signature", webhook_signature::check),
];
