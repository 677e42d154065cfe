//! Function logs. Each container's stdout and stderr arrive on two FIFOs that kilnd reads;
//! every line is attributed to the invocation the container was last handed, appended to
//! its function's log file, and passed to live followers.
//!
//! **Invariant:** a function's logs take at most twice `file_limit` on disk (the current
//! file and one rotated predecessor), however much the function writes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::net::unix::pipe;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

/// A longer line is cut into pieces of this size.
const LINE_LIMIT: u64 = 16 * 1024;
/// Lines a slow follower may fall behind by before it skips ahead.
const FOLLOW_BACKLOG: usize = 1024;

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
    /// A function's log file is rotated once it grows past this many bytes.
    file_limit: u64,
    /// Open log files by tenant and function, with their current size.
    files: Mutex<HashMap<(String, String), (File, u64)>>,
    followers: broadcast::Sender<Arc<LogLine>>,
}

/// The reading side of one container's output; dropping it stops the readers.
pub(crate) struct Capture {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    readers: [AbortHandle; 2],
}

impl Drop for Capture {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
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
    /// Logs under `dir` (`<tenant>/<function>.log` and `.log.1`, and the containers' FIFOs).
    pub fn new(dir: PathBuf, file_limit: u64) -> FunctionLogs {
        let (followers, _) = broadcast::channel(FOLLOW_BACKLOG);
        FunctionLogs {
            inner: Arc::new(Inner {
                dir,
                file_limit: file_limit.max(1024),
                files: Mutex::new(HashMap::new()),
                followers,
            }),
        }
    }

    /// Every line from now on, of every function; followers filter.
    pub fn follow(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.inner.followers.subscribe()
    }

    /// The stored lines of `tenant/function`, oldest first, that `keep` accepts; at most
    /// the last `limit`.
    pub fn recent(
        &self,
        tenant: &str,
        function: &str,
        limit: usize,
        keep: impl Fn(&Value) -> bool,
    ) -> io::Result<Vec<Value>> {
        let current = self.file_path(tenant, function);
        let mut lines = std::collections::VecDeque::with_capacity(limit);
        for path in [rotated(&current), current] {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            for line in BufReader::new(file).lines() {
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

    /// Deletes a function's logs (the function was deleted).
    pub fn remove(&self, tenant: &str, function: &str) {
        let current = self.file_path(tenant, function);
        self.inner
            .files
            .lock()
            .expect("logs lock")
            .remove(&(tenant.to_owned(), function.to_owned()));
        let _ = std::fs::remove_file(rotated(&current));
        let _ = std::fs::remove_file(current);
    }

    /// Makes the FIFOs a new container writes its stdout and stderr to, and starts reading them.
    pub(crate) fn capture(
        &self,
        container: &str,
        tenant: &str,
        function: &str,
        attribution: SharedAttribution,
    ) -> io::Result<Capture> {
        let stdout = self.inner.dir.join(format!("{container}.out"));
        let stderr = self.inner.dir.join(format!("{container}.err"));
        let mut readers = Vec::with_capacity(2);
        for (path, stream) in [(&stdout, "stdout"), (&stderr, "stderr")] {
            let _ = std::fs::remove_file(path);
            nix::unistd::mkfifo(path.as_path(), nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(io::Error::from)?;
            // Opened for reading and writing, so it never reads end-of-file while no writer
            // is attached yet (or between container restarts); the reader stops when aborted.
            let receiver = pipe::OpenOptions::new().read_write(true).open_receiver(path)?;
            let source = Source {
                logs: self.clone(),
                tenant: tenant.to_owned(),
                function: function.to_owned(),
                container: container.to_owned(),
                stream,
                attribution: attribution.clone(),
            };
            readers.push(tokio::spawn(source.read(receiver)).abort_handle());
        }
        let [first, second]: [AbortHandle; 2] = readers.try_into().expect("two readers");
        Ok(Capture {
            stdout,
            stderr,
            readers: [first, second],
        })
    }

    fn file_path(&self, tenant: &str, function: &str) -> PathBuf {
        self.inner.dir.join(tenant).join(format!("{function}.log"))
    }

    /// Appends one line to its function's file (rotating it when full) and tells followers.
    fn write(&self, line: LogLine) {
        let mut text = line.to_json().to_string();
        text.push('\n');
        if let Err(error) = self.append(&line.tenant, &line.function, text.as_bytes()) {
            tracing::warn!(%error, tenant = %line.tenant, function = %line.function, "writing a function log failed");
        }
        if self.inner.followers.receiver_count() > 0 {
            let _ = self.inner.followers.send(Arc::new(line));
        }
    }

    fn append(&self, tenant: &str, function: &str, text: &[u8]) -> io::Result<()> {
        let mut files = self.inner.files.lock().expect("logs lock");
        let key = (tenant.to_owned(), function.to_owned());
        let path = self.file_path(tenant, function);
        if !files.contains_key(&key) {
            std::fs::create_dir_all(path.parent().expect("log files live in a folder"))?;
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            let size = file.seek(SeekFrom::End(0))?;
            files.insert(key.clone(), (file, size));
        }
        let (file, size) = files.get_mut(&key).expect("just inserted");
        if *size + text.len() as u64 > self.inner.file_limit && *size > 0 {
            std::fs::rename(&path, rotated(&path))?;
            *file = OpenOptions::new().create(true).append(true).open(&path)?;
            *size = 0;
        }
        file.write_all(text)?;
        *size += text.len() as u64;
        Ok(())
    }
}

fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
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
    async fn read(self, receiver: pipe::Receiver) {
        let mut reader = tokio::io::BufReader::new(receiver);
        let mut buffer = Vec::with_capacity(256);
        loop {
            buffer.clear();
            match (&mut reader)
                .take(LINE_LIMIT)
                .read_until(b'\n', &mut buffer)
                .await
            {
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
            let attribution = self.attribution.lock().expect("attribution lock").clone();
            self.logs.write(LogLine {
                tenant: self.tenant.clone(),
                function: self.function.clone(),
                time: SystemTime::now(),
                container: self.container.clone(),
                attribution,
                stream: self.stream,
                line: String::from_utf8_lossy(&buffer).into_owned(),
            });
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

    #[test]
    fn files_rotate_and_stay_bounded() {
        let dir = std::env::temp_dir().join(format!("kiln-logs-test-{}", std::process::id()));
        let logs = FunctionLogs::new(dir.clone(), 4096);
        for number in 0..500 {
            logs.write(line(&format!("line {number:04} {}", "x".repeat(40))));
        }
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
        logs.remove("acme", "hello");
        assert!(!current.exists() && !rotated(&current).exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn fifo_lines_are_attributed_and_followed() {
        let dir = std::env::temp_dir().join(format!("kiln-fifo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let logs = FunctionLogs::new(dir.clone(), 1 << 20);
        let mut follower = logs.follow();
        let attribution = SharedAttribution::default();
        attribution.lock().unwrap().invocation = Some("c1-7".into());
        let capture = logs.capture("c1", "acme", "hello", attribution).unwrap();
        let mut writer = OpenOptions::new().write(true).open(&capture.stderr).unwrap();
        writer.write_all(b"first\nsecond\r\n").unwrap();
        let first = follower.recv().await.unwrap();
        let second = follower.recv().await.unwrap();
        assert_eq!((first.line.as_str(), first.stream), ("first", "stderr"));
        assert_eq!(second.line, "second");
        assert_eq!(second.attribution.invocation.as_deref(), Some("c1-7"));
        let stored = logs
            .recent("acme", "hello", 10, |value| value["stream"] == "stderr")
            .unwrap();
        assert_eq!(stored.len(), 2);
        let fifo = capture.stdout.clone();
        drop(capture);
        assert!(!fifo.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
