//! Function logs. Each container's stdout and stderr arrive on two FIFOs that kilnd reads;
//! every line is attributed to the invocation the container was last handed, appended to
//! its function's log file, and passed to live followers.
//!
//! **Invariant:** a function's logs take at most twice `file_limit` on disk (the current
//! file and one rotated predecessor, give or take one line), however much it writes; the
//! log files are touched by one thread only, never by the async workers.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::net::unix::pipe;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

/// A longer line is cut into pieces of this size.
const LINE_LIMIT: u64 = 16 * 1024;
/// Lines a slow follower may fall behind by before it skips ahead.
const FOLLOW_BACKLOG: usize = 1024;
/// Lines waiting for the writer thread before new ones are dropped.
const WRITE_BACKLOG: usize = 16 * 1024;
/// Log files kept open at once; past it they are all closed and reopened as needed.
const MAX_OPEN_FILES: usize = 256;
/// How long the lines of a deleted function are still dropped (its containers retire).
const TOMBSTONE: Duration = Duration::from_secs(60);
/// When a container is retired, its pipes are read until they stay quiet this long.
const DRAIN_WAIT: Duration = Duration::from_millis(50);

/// Which invocation a container works on, as its log lines record it.
#[derive(Debug, Clone, Default)]
pub struct Attribution {
    pub invocation: Option<String>,
    pub instance: Option<String>,
}

pub(crate) type SharedAttribution = Arc<Mutex<Attribution>>;

/// One line a function wrote.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub tenant: String,
    pub function: String,
    pub time: SystemTime,
    pub container: String,
    pub attribution: Attribution,
    pub stream: &'static str,
    pub line: String,
}

impl LogLine {
    /// The line as the logs API shows it (tenant and function are implied by the route).
    pub fn to_json(&self) -> Value {
        json!({
            "time": humantime::format_rfc3339_millis(self.time).to_string(),
            "container": self.container,
            "invocation": self.attribution.invocation,
            "instance": self.attribution.instance,
            "stream": self.stream,
            "line": self.line,
        })
    }
}

/// Cheap to clone; all clones write the same files.
#[derive(Clone)]
pub struct FunctionLogs {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    file_limit: u64,
    /// Lines and removals, in order, to the one thread that touches log files: disk I/O
    /// never runs on the async workers, and a slow disk costs dropped lines, not stalls.
    writer: mpsc::SyncSender<Command>,
    /// Lines dropped because the writer fell behind.
    dropped: AtomicU64,
    followers: broadcast::Sender<Arc<LogLine>>,
}

enum Command {
    Append(Arc<LogLine>),
    /// Delete a function's logs; answered once done.
    Remove(String, String, oneshot::Sender<()>),
}

/// The reading side of one container's output. Dropping it tells the readers to take what
/// is left in the pipes (the last words of a crashing function) and stop; the FIFOs go.
pub(crate) struct Capture {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    stop: CancellationToken,
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
    }
}

impl std::fmt::Debug for FunctionLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionLogs")
            .field("dir", &self.inner.dir)
            .field("file_limit", &self.inner.file_limit)
            .finish_non_exhaustive()
    }
}

impl FunctionLogs {
    /// Logs under `dir` (`<tenant>/<function>.log` and `.log.1`, and the containers'
    /// FIFOs, of which those an earlier run left are removed now).
    pub fn new(dir: PathBuf, file_limit: u64) -> FunctionLogs {
        sweep_fifos(&dir);
        let file_limit = file_limit.max(1024);
        let (writer, commands) = mpsc::sync_channel(WRITE_BACKLOG);
        let files = Files {
            dir: dir.clone(),
            file_limit,
            open: HashMap::new(),
            removed: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("kiln-logs".into())
            .spawn(move || files.run(commands))
            .expect("starting the log writer thread");
        let (followers, _) = broadcast::channel(FOLLOW_BACKLOG);
        FunctionLogs {
            inner: Arc::new(Inner {
                dir,
                file_limit,
                writer,
                dropped: AtomicU64::new(0),
                followers,
            }),
        }
    }

    /// Every line from now on, of every function; followers filter.
    pub fn follow(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.inner.followers.subscribe()
    }

    /// Lines dropped so far because the disk could not keep up.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// The stored lines of `tenant/function`, oldest first, that `keep` accepts; at most
    /// the last `limit`. Reads files: call it off the async workers.
    pub fn recent(
        &self,
        tenant: &str,
        function: &str,
        limit: usize,
        keep: impl Fn(&Value) -> bool,
    ) -> io::Result<Vec<Value>> {
        let current = file_path(&self.inner.dir, tenant, function);
        let mut lines = std::collections::VecDeque::with_capacity(limit);
        for path in [rotated(&current), current] {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            for line in BufReader::new(file).lines() {
                // A line the writer is appending right now is not whole yet: skip it.
                let Ok(value) = serde_json::from_str::<Value>(&line?) else {
                    continue;
                };
                if keep(&value) {
                    if lines.len() == limit {
                        lines.pop_front();
                    }
                    lines.push_back(value);
                }
            }
        }
        Ok(lines.into())
    }

    /// Deletes a function's logs (the function was deleted); lines its retiring containers
    /// still write are dropped for a while.
    pub async fn remove(&self, tenant: &str, function: &str) {
        let (done, removed) = oneshot::channel();
        let command = Command::Remove(tenant.to_owned(), function.to_owned(), done);
        if self.inner.writer.send(command).is_ok() {
            let _ = removed.await;
        }
    }

    /// Makes the FIFOs a new container writes its stdout and stderr to, and starts reading them.
    pub(crate) fn capture(
        &self,
        container: &str,
        tenant: &str,
        function: &str,
        attribution: SharedAttribution,
    ) -> io::Result<Capture> {
        // Built first, so that a failure half-way cleans up what was made.
        let capture = Capture {
            stdout: self.inner.dir.join(format!("{container}.out")),
            stderr: self.inner.dir.join(format!("{container}.err")),
            stop: CancellationToken::new(),
        };
        for (path, stream) in [(&capture.stdout, "stdout"), (&capture.stderr, "stderr")] {
            let _ = std::fs::remove_file(path);
            nix::unistd::mkfifo(path.as_path(), nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(io::Error::from)?;
            // Opened for reading and writing, so it never reads end-of-file while no writer
            // is attached yet; the reader stops when the capture is dropped.
            let receiver = pipe::OpenOptions::new().read_write(true).open_receiver(path)?;
            let source = Source {
                logs: self.clone(),
                tenant: tenant.to_owned(),
                function: function.to_owned(),
                container: container.to_owned(),
                stream,
                attribution: attribution.clone(),
            };
            tokio::spawn(source.read(receiver, capture.stop.clone()));
        }
        Ok(capture)
    }

    /// Hands one line to followers and to the writer thread.
    fn publish(&self, line: LogLine) {
        let line = Arc::new(line);
        if self.inner.followers.receiver_count() > 0 {
            let _ = self.inner.followers.send(line.clone());
        }
        if self.inner.writer.try_send(Command::Append(line)).is_err() {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread's state: open files and recently removed functions.
struct Files {
    dir: PathBuf,
    /// A function's log file is rotated once it grows past this many bytes.
    file_limit: u64,
    /// Open log files by tenant and function, with their current size.
    open: HashMap<(String, String), (File, u64)>,
    /// Functions whose logs were deleted, and when: their late lines are dropped.
    removed: HashMap<(String, String), Instant>,
}

impl Files {
    fn run(mut self, commands: mpsc::Receiver<Command>) {
        for command in commands {
            match command {
                Command::Append(line) => {
                    if let Err(error) = self.append(&line) {
                        tracing::warn!(%error, tenant = %line.tenant, function = %line.function, "writing a function log failed");
                    }
                }
                Command::Remove(tenant, function, done) => {
                    let current = file_path(&self.dir, &tenant, &function);
                    let key = (tenant, function);
                    self.open.remove(&key);
                    self.removed.retain(|_, at| at.elapsed() < TOMBSTONE);
                    self.removed.insert(key, Instant::now());
                    let _ = std::fs::remove_file(rotated(&current));
                    let _ = std::fs::remove_file(current);
                    let _ = done.send(());
                }
            }
        }
    }

    fn append(&mut self, line: &LogLine) -> io::Result<()> {
        let key = (line.tenant.clone(), line.function.clone());
        if self.removed.get(&key).is_some_and(|at| at.elapsed() < TOMBSTONE) {
            return Ok(());
        }
        let mut text = line.to_json().to_string();
        text.push('\n');
        let path = file_path(&self.dir, &line.tenant, &line.function);
        if !self.open.contains_key(&key) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.open.clear();
            }
            std::fs::create_dir_all(path.parent().expect("log files live in a folder"))?;
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            let size = file.seek(SeekFrom::End(0))?;
            self.open.insert(key.clone(), (file, size));
        }
        let (file, size) = self.open.get_mut(&key).expect("just opened");
        if *size + text.len() as u64 > self.file_limit && *size > 0 {
            std::fs::rename(&path, rotated(&path))?;
            *file = OpenOptions::new().create(true).append(true).open(&path)?;
            *size = 0;
        }
        file.write_all(text.as_bytes())?;
        *size += text.len() as u64;
        Ok(())
    }
}

fn file_path(dir: &Path, tenant: &str, function: &str) -> PathBuf {
    dir.join(tenant).join(format!("{function}.log"))
}

fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Removes the FIFOs of containers of an earlier run (their containers are gone).
fn sweep_fifos(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_fifo = entry.file_type().is_ok_and(|kind| kind.is_fifo());
        if is_fifo
            && path
                .extension()
                .is_some_and(|extension| extension == "out" || extension == "err")
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One of a container's two output streams.
struct Source {
    logs: FunctionLogs,
    tenant: String,
    function: String,
    container: String,
    stream: &'static str,
    attribution: SharedAttribution,
}

impl Source {
    /// Reads lines until `stop`, then whatever is still in the pipe, then ends.
    async fn read(self, receiver: pipe::Receiver, stop: CancellationToken) {
        let mut reader = tokio::io::BufReader::new(receiver);
        let mut buffer = Vec::with_capacity(256);
        let mut stopping = false;
        loop {
            // Bytes of a line read before a stop stay in `buffer`; the line goes on after it.
            let room = LINE_LIMIT.saturating_sub(buffer.len() as u64).max(1);
            let mut limited = (&mut reader).take(room);
            let reading = limited.read_until(b'\n', &mut buffer);
            let read = if stopping {
                match tokio::time::timeout(DRAIN_WAIT, reading).await {
                    Ok(read) => read,
                    Err(_) => return,
                }
            } else {
                tokio::select! {
                    read = reading => read,
                    _ = stop.cancelled() => {
                        stopping = true;
                        continue;
                    }
                }
            };
            match read {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, container = %self.container, "reading function output failed");
                    return;
                }
            }
            while buffer.last().is_some_and(|byte| *byte == b'\n' || *byte == b'\r') {
                buffer.pop();
            }
            let attribution = self.attribution.lock().clone();
            self.logs.publish(LogLine {
                tenant: self.tenant.clone(),
                function: self.function.clone(),
                time: SystemTime::now(),
                container: self.container.clone(),
                attribution,
                stream: self.stream,
                line: String::from_utf8_lossy(&buffer).into_owned(),
            });
            buffer.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine {
            tenant: "acme".into(),
            function: "hello".into(),
            time: SystemTime::now(),
            container: "c1".into(),
            attribution: Attribution::default(),
            stream: "stdout",
            line: text.into(),
        }
    }

    #[tokio::test]
    async fn files_rotate_and_stay_bounded() {
        let dir = std::env::temp_dir().join(format!("kiln-logs-test-{}", std::process::id()));
        let logs = FunctionLogs::new(dir.clone(), 4096);
        for number in 0..500 {
            logs.publish(line(&format!("line {number:04} {}", "x".repeat(40))));
        }
        flush(&logs).await;
        let current = dir.join("acme/hello.log");
        let sizes = [
            std::fs::metadata(&current).unwrap().len(),
            std::fs::metadata(rotated(&current)).unwrap().len(),
        ];
        assert!(sizes.iter().all(|size| *size <= 4096), "{sizes:?}");
        let kept = logs.recent("acme", "hello", 1000, |_| true).unwrap();
        let last = kept.last().unwrap()["line"].as_str().unwrap().to_owned();
        assert!(last.starts_with("line 0499 "), "{last}");
        assert!(kept.len() < 500 && kept.len() > 20, "{}", kept.len());
        let tail = logs.recent("acme", "hello", 3, |_| true).unwrap();
        assert_eq!(tail.len(), 3);
        assert!(tail[0]["line"].as_str().unwrap().starts_with("line 0497 "));
        logs.remove("acme", "hello").await;
        assert!(!current.exists() && !rotated(&current).exists());
        // A retiring container's late line does not bring a deleted function's logs back.
        logs.publish(line("late"));
        flush(&logs).await;
        assert!(!current.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Waits until the writer thread has handled everything sent before.
    async fn flush(logs: &FunctionLogs) {
        logs.remove("flush", "flush").await;
    }

    #[tokio::test]
    async fn fifo_lines_are_attributed_and_followed() {
        let dir = std::env::temp_dir().join(format!("kiln-fifo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let logs = FunctionLogs::new(dir.clone(), 1 << 20);
        let mut follower = logs.follow();
        let attribution = SharedAttribution::default();
        attribution.lock().invocation = Some("c1-7".into());
        let capture = logs.capture("c1", "acme", "hello", attribution).unwrap();
        let mut writer = OpenOptions::new().write(true).open(&capture.stderr).unwrap();
        writer.write_all(b"first\nsecond\r\n").unwrap();
        let first = follower.recv().await.unwrap();
        let second = follower.recv().await.unwrap();
        assert_eq!((first.line.as_str(), first.stream), ("first", "stderr"));
        assert_eq!(second.line, "second");
        assert_eq!(second.attribution.invocation.as_deref(), Some("c1-7"));
        flush(&logs).await;
        let stored = logs
            .recent("acme", "hello", 10, |value| value["stream"] == "stderr")
            .unwrap();
        assert_eq!(stored.len(), 2);
        // What a function wrote just before it was retired is still read.
        writer.write_all(b"last words\n").unwrap();
        let fifo = capture.stderr.clone();
        drop(capture);
        assert!(!fifo.exists());
        let last = tokio::time::timeout(Duration::from_secs(5), follower.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last.line, "last words");
        let _ = std::fs::remove_dir_all(dir);
    }
}
