//! Executable uploads: the check that a file is a static x86-64 ELF executable.

use registry::check_executable;

use crate::Verdict;

pub fn check(data: &[u8]) -> Verdict {
    let accepted = check_executable(data).is_ok();
    if accepted {
        assert!(
            data.len() >= 64 && data.starts_with(b"\x7fELF"),
            "a non-ELF file accepted"
        );
        assert_eq!(
            &data[4..6],
            &[2, 1],
            "a file that is not 64-bit little-endian accepted"
        );
    }
    Verdict::of(accepted)
}
