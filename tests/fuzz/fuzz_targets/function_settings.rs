//! libFuzzer entry for [`kiln_fuzz::function_settings`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzz::function_settings::check(data);
});
