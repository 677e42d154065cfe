//! libFuzzer entry for [`kiln_fuzz::executable`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzz::executable::check(data);
});
