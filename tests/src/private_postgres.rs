//! A PostgreSQL cluster of one test's own, on loopback, that the test may stop, freeze and
//! start again (the machine's shared cluster serves every other test and must stay up).
//!
//! Needs the PostgreSQL server programs (`KILN_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`) and a `postgres` user to run them as, as `scripts/test.sh`
//! installs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub struct PrivatePostgres {
    bin: PathBuf,
    data_dir: PathBuf,
    port: u16,
    /// The `kiln` database of this cluster (trust authentication, loopback only).
    pub url: String,
}

impl PrivatePostgres {
    /// Creates a cluster in a fresh folder, starts it and creates the `kiln` database.
    pub fn start() -> PrivatePostgres {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let data_dir = PathBuf::from(format!(
            "/tmp/kiln-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&data_dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let postgres = PrivatePostgres {
            bin: server_programs(),
            url: format!("postgres://postgres@127.0.0.1:{port}/kiln"),
            data_dir,
            port,
        };
        let folder = postgres.data_dir.display().to_string();
        postgres.run(
            "initdb",
            &["-D", &folder, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        postgres.start_again();
        let createdb = Command::new(postgres.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "kiln",
            ])
            .status()
            .expect("createdb runs");
        assert!(createdb.success(), "createdb kiln failed");
        postgres
    }

    /// Stops the server the way an operator would (`pg_ctl stop -m fast`): sessions are
    /// ended, new connections refused.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    /// Starts the server again and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c log_statement=all",
            self.port,
            self.data_dir.display()
        );
        self.pg_ctl(&["start", "-w", "-l", &self.log_path(), "-o", &options]);
    }

    /// Stops every process of the server with SIGSTOP: connections stay open but nothing
    /// answers, like a database host that hangs or a network that drops packets.
    pub fn freeze(&self) {
        self.signal_all(Signal::SIGSTOP);
    }

    pub fn thaw(&self) {
        self.signal_all(Signal::SIGCONT);
    }

    /// How many statements the server ran with `value` as their one parameter (every
    /// statement is logged, with its parameters).
    pub fn statements_with_parameter(&self, value: &str) -> usize {
        let wanted = format!("parameters: $1 = '{value}'");
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|line| line.trim_end().ends_with(&wanted))
            .count()
    }

    fn signal_all(&self, signal: Signal) {
        let postmaster = self
            .postmaster_pid()
            .expect("the server is running (postmaster.pid)");
        for child in std::iter::once(postmaster).chain(children_of(postmaster)) {
            let _ = kill(Pid::from_raw(child), signal);
        }
    }

    fn postmaster_pid(&self) -> Option<i32> {
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    fn log_path(&self) -> String {
        format!("{}.log", self.data_dir.display())
    }

    fn pg_ctl(&self, args: &[&str]) {
        let folder = self.data_dir.display().to_string();
        let mut all = vec!["-D", &folder];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    /// Runs one of the server programs as the `postgres` user (they refuse to run as root).
    fn run(&self, program: &str, args: &[&str]) {
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .status()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        assert!(status.success(), "{program} {args:?} failed; server log:\n{log}");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // A frozen server cannot be stopped: wake it first.
        if self.postmaster_pid().is_some() {
            self.thaw();
        }
        let folder = self.data_dir.display().to_string();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &folder, "stop", "-m", "immediate"])
            .output();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let _ = std::fs::remove_file(self.log_path());
    }
}

/// `KILN_PG_BIN`, else the newest installed major version's programs.
fn server_programs() -> PathBuf {
    if let Some(bin) = std::env::var_os("KILN_PG_BIN") {
        return PathBuf::from(bin);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server programs in /usr/lib/postgresql (scripts/test.sh installs them)")
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort_by_key(|bin| major_version(bin));
    versions.pop().expect("an installed PostgreSQL with initdb")
}

fn major_version(bin: &Path) -> u32 {
    bin.parent()
        .and_then(|version| version.file_name())
        .and_then(|name| name.to_str())
        .and_then(|name| name.parse().ok())
        .unwrap_or(0)
}

/// Processes whose parent is `parent` (a postmaster's backends and workers).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // The command name is in parentheses and may hold spaces: fields follow the last `)`.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}
