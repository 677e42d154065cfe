//! libFuzzer entry for [`kiln_fuzz::image_layer`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzz::image_layer::check(data);
});
