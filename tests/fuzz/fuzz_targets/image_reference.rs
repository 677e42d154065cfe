//! libFuzzer entry for [`kiln_fuzz::image_reference`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzz::image_reference::check(data);
});
