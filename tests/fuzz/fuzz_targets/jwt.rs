//! libFuzzer entry for [`kiln_fuzz::jwt`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzz::jwt::check(data);
});
