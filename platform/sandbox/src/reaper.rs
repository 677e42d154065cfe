//! Learns of exited children without blocking: SIGCHLD writes a byte to a pipe that the
//! sandbox's poll loop watches, then [`reap_exited`] collects every exited child.
//!
//! A self-pipe rather than a blocked signal plus signalfd: a blocked SIGCHLD would be
//! inherited by every container's init through libcontainer's fork.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Write end of the self-pipe, read by the signal handler (which may only touch atomics).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// The read end of the self-pipe; readable whenever a child may have exited.
pub struct ChildExits {
    read: OwnedFd,
    _write: OwnedFd,
}

impl ChildExits {
    pub fn install() -> nix::Result<ChildExits> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        WAKE_FD.store(std::os::fd::AsRawFd::as_raw_fd(&write), Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(on_sigchld),
            SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
            SigSet::empty(),
        );
        // SAFETY: the handler only loads an atomic and calls write(2), both async-signal-safe.
        unsafe { sigaction(Signal::SIGCHLD, &action) }?;
        Ok(ChildExits { read, _write: write })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Empties the pipe so the next poll sleeps until a new SIGCHLD.
    pub fn drain(&self) {
        let mut buffer = [0u8; 64];
        while matches!(nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&self.read), &mut buffer), Ok(n) if n > 0)
        {
        }
    }
}

/// Makes SIGTERM, SIGINT and SIGHUP harmless to the sandbox: it ends when kilnd closes its
/// control socket, after deleting every container, and a supervisor's signal to the whole
/// group must not cut that short. A handler, not `SIG_IGN`: handlers reset on exec, so
/// functions still get the default dispositions.
pub fn outlive_termination_signals() -> nix::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(ignore_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler does nothing at all, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(())
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Every child that has exited since the last call, with a readable exit status.
pub fn reap_exited() -> Vec<(Pid, String)> {
    let mut exited = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => exited.push((pid, format!("exited with code {code}"))),
            Ok(WaitStatus::Signaled(pid, signal, _)) => exited.push((pid, format!("killed by {signal}"))),
            Ok(WaitStatus::StillAlive) | Err(_) => return exited,
            Ok(_) => continue,
        }
    }
}

extern "C" fn on_sigchld(_: libc::c_int) {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) on a non-blocking pipe is async-signal-safe; a full pipe already wakes the loop.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}
