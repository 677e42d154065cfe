//! The runtime socket's stream, which waits for data with poll(2) before each read.
//!
//! A thread blocked in `read` on a Unix socket is woken whenever the peer reads what this
//! side wrote (the kernel signals "room to write" on the same wait queue), only to find
//! nothing and sleep again. A function waiting for Kiln's answer would be woken for nothing
//! once per request, and each such wake-up costs Kiln's side a cross-CPU wake as well.
//! poll(2) asked for input only is woken by input only.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

#[derive(Debug)]
pub(crate) struct RuntimeSocket(UnixStream);

impl RuntimeSocket {
    pub fn connect(path: &Path) -> io::Result<RuntimeSocket> {
        UnixStream::connect(path).map(RuntimeSocket)
    }

    /// Blocks until the socket has input, an end of stream or an error to report.
    fn wait_for_input(&self) -> io::Result<()> {
        let mut entry = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: `entry` is one valid pollfd for the duration of the call.
            if unsafe { libc::poll(&mut entry, 1, -1) } >= 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }
}

impl Read for RuntimeSocket {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.wait_for_input()?;
        self.0.read(buffer)
    }
}

impl Write for RuntimeSocket {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Times the calling thread gave up the CPU to wait.
    fn waits_so_far() -> i64 {
        // SAFETY: getrusage fills the zeroed struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) }, 0);
        usage.ru_nvcsw
    }

    #[test]
    fn a_reader_waiting_for_its_answer_wakes_only_for_the_answer() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let peer = std::thread::spawn(move || {
            // By now our side sleeps waiting for the answer; reading the request signals
            // "room to write" to it, which must not wake it.
            std::thread::sleep(Duration::from_millis(100));
            let mut request = [0u8; 7];
            theirs.read_exact(&mut request).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            theirs.write_all(b"answer").unwrap();
        });
        let mut socket = RuntimeSocket(ours);
        socket.write_all(b"request").unwrap();
        let before = waits_so_far();
        let mut answer = [0u8; 6];
        socket.read_exact(&mut answer).unwrap();
        let waits = waits_so_far() - before;
        peer.join().unwrap();
        assert_eq!(&answer, b"answer");
        assert_eq!(waits, 1, "woken {waits} times for one answer");
    }
}
