//! Ways a function can go wrong that Kiln must survive without its neighbours noticing.

use std::os::unix::io::RawFd;

/// Dies of a real SIGSEGV (a fault, not a sent signal, which the container's init would
/// ignore), as a function with a memory bug does: reads a page mapped with no access.
pub fn segfault() -> ! {
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED, "mmap of one page failed");
    // SAFETY: the page is mapped; reading it faults, which ends the process with SIGSEGV.
    let byte = unsafe { std::ptr::read_volatile(page.cast::<u8>()) };
    unreachable!("reading a PROT_NONE page returned {byte}")
}

/// Allocates and touches memory until the container's memory limit kills the process.
pub fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
    }
}

/// Shuts down every socket the process has (its runtime socket among them), as a function
/// that closes the wrong descriptor does, then waits for Kiln to notice.
pub fn hang_up() -> ! {
    let sockets: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    std::fs::read_link(entry.path())
                        .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
                })
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for socket in sockets {
        // SAFETY: shutdown only changes the state of a descriptor this process owns.
        unsafe { libc::shutdown(socket, libc::SHUT_RDWR) };
    }
    std::thread::sleep(std::time::Duration::from_secs(60));
    std::process::exit(4)
}
