//! Uploaded image archives as they arrive: any bytes, read as an OCI layout or a
//! docker-archive. Nothing is used before its digest checks, and a refused archive leaves
//! nothing behind.

use crate::Verdict;
use crate::scratch_store::SCRATCH;

pub fn check(data: &[u8]) -> Verdict {
    let scratch = SCRATCH.lock();
    let archive = scratch.place_archive(data);
    match scratch.store.ingest(&archive, None) {
        Ok(image) => {
            assert!(scratch.store.contains(&image.digest), "a stored image is missing");
            scratch.store.remove(&image.digest).expect("removing the image");
            scratch.assert_empty("storing and removing the image");
            Verdict::Accepted
        }
        Err(error) => {
            scratch.assert_empty(&format!("a refused archive ({error})"));
            Verdict::Refused
        }
    }
}
