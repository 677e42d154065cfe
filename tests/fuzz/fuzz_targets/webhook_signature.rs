//! libFuzzer entry for [`kiln_fuzz::webhook_signature`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzz::webhook_signature::check(data);
});
