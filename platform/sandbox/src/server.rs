//! The sandbox process: a single-threaded loop that creates and deletes containers on request.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::ContainerSpec;
use crate::oci::config_json;
use crate::protocol::{Command, Message, Reply, Request};
use crate::reaper::{ChildExits, outlive_termination_signals, reap_exited};

/// Runs the sandbox until its control socket closes, then deletes every container it holds.
///
/// `state_root` holds youki's state (`<state_root>/<id>`) and the bundles
/// (`<state_root>/bundles/<id>`). Leftovers of an earlier sandbox that was killed are
/// deleted first.
pub fn serve(control: UnixStream, state_root: &Path) -> std::io::Result<()> {
    fs::create_dir_all(state_root.join("bundles"))?;
    let mut sandbox = SandboxProcess {
        state_root: state_root.to_path_buf(),
        running: HashMap::new(),
    };
    sandbox.delete_leftovers();
    let exits = ChildExits::install().map_err(std::io::Error::from)?;
    outlive_termination_signals().map_err(std::io::Error::from)?;
    let outcome = serve_requests(&mut sandbox, &exits, control);
    // However the control socket ended (EOF, or an error because kilnd died mid-reply),
    // nothing may outlive it.
    sandbox.delete_all();
    outcome
}

fn serve_requests(
    sandbox: &mut SandboxProcess,
    exits: &ChildExits,
    control: UnixStream,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(control.try_clone()?);
    let mut writer = control;
    let mut line = String::new();
    loop {
        // Lines already buffered do not make the socket readable again: handle them first.
        let buffered = !reader.buffer().is_empty();
        let (control_ready, child_ready) = {
            let mut fds = [
                PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN),
                PollFd::new(exits.fd(), PollFlags::POLLIN),
            ];
            let timeout = if buffered {
                PollTimeout::ZERO
            } else {
                PollTimeout::NONE
            };
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(error) => return Err(error.into()),
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|events| !events.is_empty());
            (buffered || ready(&fds[0]), ready(&fds[1]))
        };
        if child_ready {
            exits.drain();
            for message in sandbox.collect_exits() {
                send(&mut writer, &message)?;
            }
        }
        if control_ready {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let reply = match serde_json::from_str::<Request>(&line) {
                Ok(request) => Reply {
                    id: request.id,
                    outcome: sandbox.handle(request.command),
                },
                Err(error) => Reply {
                    id: 0,
                    outcome: Err(format!("unreadable request: {error}")),
                },
            };
            send(&mut writer, &Message::Reply(reply))?;
        }
    }
}

/// The containers this process created and still runs, by id, with their init pid.
struct SandboxProcess {
    state_root: PathBuf,
    running: HashMap<String, Pid>,
}

impl SandboxProcess {
    fn handle(&mut self, command: Command) -> Result<i32, String> {
        match command {
            Command::Create(spec) => {
                let id = spec.id.clone();
                self.create(&spec).inspect_err(|_| self.delete(&id))
            }
            Command::Delete { container } => {
                self.delete(&container);
                Ok(0)
            }
        }
    }

    fn create(&mut self, spec: &ContainerSpec) -> Result<i32, String> {
        let bundle = self.bundle_dir(&spec.id);
        fs::create_dir_all(&bundle)
            .map_err(|error| format!("create bundle {}: {error}", bundle.display()))?;
        let config = serde_json::to_vec(&config_json(spec)).map_err(|error| error.to_string())?;
        fs::write(bundle.join("config.json"), config)
            .map_err(|error| format!("write config.json: {error}"))?;
        let output = |path: &std::path::Path| {
            open_output(path).map_err(|error| format!("open output {}: {error}", path.display()))
        };
        let stdout = output(&spec.stdout_path)?;
        let stderr = output(&spec.stderr_path)?;
        let stdin = File::open("/dev/null").map_err(|error| error.to_string())?;
        let mut container = ContainerBuilder::new(spec.id.clone(), SyscallType::default())
            .with_root_path(&self.state_root)
            .map_err(|error| error.to_string())?
            .with_stdin(stdin)
            .with_stdout(stdout)
            .with_stderr(stderr)
            .validate_id()
            .map_err(|error| error.to_string())?
            .as_init(&bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|error| format!("create container: {error}"))?;
        let pid = container.pid().ok_or("container has no init pid")?;
        self.running.insert(spec.id.clone(), pid);
        container
            .start()
            .map_err(|error| format!("start container: {error}"))?;
        Ok(pid.as_raw())
    }

    /// Kills and reaps the container's init if it runs, then deletes its state, cgroup and bundle.
    fn delete(&mut self, id: &str) {
        if let Some(pid) = self.running.remove(id) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        self.delete_state(id);
    }

    fn delete_state(&self, id: &str) {
        let state = self.state_root.join(id);
        if state.exists() {
            match Container::load(state) {
                Ok(mut container) => {
                    if let Err(error) = container.delete(true) {
                        tracing::warn!(container = id, %error, "deleting container state failed");
                    }
                }
                Err(error) => tracing::warn!(container = id, %error, "loading container state failed"),
            }
        }
        let _ = fs::remove_dir_all(self.bundle_dir(id));
    }

    /// Containers whose init exited on its own: deleted here, reported to kilnd.
    fn collect_exits(&mut self) -> Vec<Message> {
        let mut messages = Vec::new();
        for (pid, status) in reap_exited() {
            let Some(id) = self
                .running
                .iter()
                .find(|(_, running)| **running == pid)
                .map(|(id, _)| id.clone())
            else {
                continue;
            };
            self.running.remove(&id);
            self.delete_state(&id);
            messages.push(Message::Exited {
                container: id,
                status,
            });
        }
        messages
    }

    fn delete_all(&mut self) {
        let ids: Vec<String> = self.running.keys().cloned().collect();
        for id in ids {
            self.delete(&id);
        }
    }

    /// Deletes state left by an earlier sandbox process that died without cleaning up.
    fn delete_leftovers(&mut self) {
        let Ok(entries) = fs::read_dir(&self.state_root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "bundles" && entry.path().join("state.json").exists() {
                tracing::info!(container = %name, "deleting container left by an earlier run");
                self.delete_state(&name);
            }
        }
        let _ = fs::remove_dir_all(self.state_root.join("bundles"));
        let _ = fs::create_dir_all(self.state_root.join("bundles"));
    }

    fn bundle_dir(&self, id: &str) -> PathBuf {
        self.state_root.join("bundles").join(id)
    }
}

fn send(writer: &mut UnixStream, message: &Message) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line)
}

/// Opens where a container's output goes: a FIFO kilnd reads (or a file that exists). Never
/// blocks and never creates: with no reader left (kilnd died meanwhile) the open fails at
/// once instead of hanging the sandbox, and a FIFO already removed is not replaced by a
/// file nobody would ever rotate or delete.
fn open_output(path: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // The function itself writes blocking, as it would to any pipe.
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(blocking))?;
    Ok(file)
}

#[cfg(test)]
mod tests;
