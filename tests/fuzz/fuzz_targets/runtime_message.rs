//! libFuzzer entry for [`kiln_fuzz::runtime_message`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzz::runtime_message::check(data);
});
