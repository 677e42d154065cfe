//! Image layers as a tenant's archive may carry them: `user\0layer`, wrapped by the target
//! into a well-formed oci-archive, stored, merged into a root and removed again.
//!
//! Whatever the layer holds (`..`, absolute names, links out of the layer, whiteouts,
//! devices, a user unknown to its `/etc/passwd`), the store either refuses it leaving
//! nothing behind, or stores it without writing outside its folder.

use crate::Verdict;
use crate::input::split;
use crate::oci_archive::oci_archive;
use crate::scratch_store::SCRATCH;

pub fn check(data: &[u8]) -> Verdict {
    let (user, layer) = split(data, 0);
    let user = String::from_utf8_lossy(user);
    let scratch = SCRATCH.lock();
    let archive = scratch.place_archive(&oci_archive(&user, layer));
    match scratch.store.ingest(&archive, None) {
        Ok(image) => {
            assert!(scratch.store.contains(&image.digest), "a stored image is missing");
            assert!(image.layers.len() == 1, "one layer became {}", image.layers.len());
            scratch.store.remove(&image.digest).expect("removing the image");
            scratch.assert_empty("storing and removing the image");
            Verdict::Accepted
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            scratch.assert_empty(&format!("a refused layer ({error})"));
            Verdict::Refused
        }
    }
}
