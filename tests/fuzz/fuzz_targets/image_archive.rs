//! libFuzzer entry for [`kiln_fuzz::image_archive`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzz::image_archive::check(data);
});
