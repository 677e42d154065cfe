//! One kilnd process under test, with its own database and data folder, cleaned up after.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::client::{Reply, Streaming, new_client, open_stream, send, try_send};

pub const ADMIN_TOKEN: &str = "e2e-admin-token";
static NEXT_INSTANCE: AtomicUsize = AtomicUsize::new(0);

pub struct Kiln {
    pub url: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
    /// The database this kilnd uses; dropped at the end only if this harness created it.
    pub database_url: String,
    owned_database: Option<TestDatabase>,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The variables it was started with; a restart uses them again.
    env: Vec<(String, String)>,
}

/// The testbed function's static executable.
pub fn testbed_path() -> PathBuf {
    std::env::var_os("KILN_TESTBED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/x86_64-unknown-linux-gnu/release/testbed"))
}

/// Another example function's static executable, built beside the testbed.
pub fn function_path(name: &str) -> PathBuf {
    testbed_path().with_file_name(name)
}

/// An example image archive built by `scripts/build-image.sh` (`format`: `oci` or `docker`):
/// under `KILN_IMAGES`, else this workspace's `target/images`.
pub fn image_path(example: &str, format: &str) -> PathBuf {
    std::env::var_os("KILN_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/images"))
        .join(format!("{example}.{format}.tar"))
}

/// The kilnd executable under test.
pub fn kilnd_path() -> PathBuf {
    std::env::var_os("KILND_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/kilnd"))
}

/// The `kiln` command line under test: `KILN_CLI_BIN`, else this workspace's debug build.
pub fn kiln_cli_path() -> PathBuf {
    std::env::var_os("KILN_CLI_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/kiln"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

impl Kiln {
    /// Starts kilnd with a fresh database; `env` adds or overrides KILN_* variables.
    pub async fn start(env: &[(&str, &str)]) -> Kiln {
        let database = TestDatabase::create().await;
        let url = database.url.clone();
        Kiln::start_with_database(url, Some(database), env).await
    }

    /// Starts `program` (a kilnd, or a program embedding Kiln) with a fresh database.
    pub async fn start_program(program: &Path, env: &[(&str, &str)]) -> Kiln {
        let database = TestDatabase::create().await;
        let instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let data_dir = PathBuf::from(format!("/tmp/kt-{}-{instance}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        let (child, url) = spawn(program, &database.url, &data_dir, env).await;
        Kiln {
            url,
            data_dir,
            child: Some(child),
            database_url: database.url.clone(),
            owned_database: Some(database),
            client: new_client(),
            env: owned_env(env),
        }
    }

    /// Starts another kilnd on this one's database (a second node).
    pub async fn start_peer(&self, env: &[(&str, &str)]) -> Kiln {
        Kiln::start_with_database(self.database_url.clone(), None, env).await
    }

    /// Starts kilnd again on the same database, data folder and variables, after the last one exited.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or wait for the running kilnd first");
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        let (child, url) = spawn_kilnd(&self.database_url, &self.data_dir, &env).await;
        self.child = Some(child);
        self.url = url;
    }

    /// Sends SIGKILL to kilnd (its sandbox process is left to notice on its own).
    pub fn kill(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// The pid of kilnd's sandbox process.
    pub fn sandbox_pid(&self) -> i32 {
        let pid = self.pid();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .filter_map(|child| child.parse::<i32>().ok())
            .find(|child| {
                std::fs::read_to_string(format!("/proc/{child}/cmdline"))
                    .is_ok_and(|cmd| cmd.contains("sandbox"))
            })
            .expect("kilnd has a sandbox process")
    }

    /// Starts kilnd on `database_url`; `owned_database` is dropped by [`Kiln::finish`].
    pub async fn start_with_database(
        database_url: String,
        owned_database: Option<TestDatabase>,
        env: &[(&str, &str)],
    ) -> Kiln {
        let instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let data_dir = PathBuf::from(format!("/tmp/kt-{}-{instance}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).unwrap();
        let (child, url) = spawn_kilnd(&database_url, &data_dir, env).await;
        Kiln {
            url,
            data_dir,
            child: Some(child),
            database_url,
            owned_database,
            client: new_client(),
            env: owned_env(env),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Reply {
        let bearer = token.map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|value| ("authorization", value.as_str()))
            .collect();
        self.request_with(method, path, &headers, body).await
    }

    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        send(
            &self.client,
            method,
            &format!("{}{path}", self.url),
            headers,
            body.into(),
        )
        .await
    }

    /// A call with `token` that may fail to get an answer (kilnd killed mid-call).
    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: impl Into<Bytes>,
    ) -> Result<Reply, String> {
        let bearer = format!("Bearer {token}");
        try_send(
            &self.client,
            method,
            &format!("{}{path}", self.url),
            &[("authorization", &bearer)],
            body.into(),
        )
        .await
    }

    /// Opens `GET path` with `token` and returns the response as its body arrives.
    pub async fn stream(&self, path: &str, token: &str) -> Streaming {
        let bearer = format!("Bearer {token}");
        self.stream_with(path, &[("authorization", &bearer)]).await
    }

    /// Opens `GET path` with `headers` and returns the response as its body arrives.
    pub async fn stream_with(&self, path: &str, headers: &[(&str, &str)]) -> Streaming {
        open_stream(&self.client, &format!("{}{path}", self.url), headers).await
    }

    /// Creates a tenant with one HS256 key through the admin API; returns a valid token.
    pub async fn create_tenant(&self, name: &str) -> String {
        let secret = tenant_secret(name);
        let body = serde_json::json!({"name": name, "keys": [{"kid": "k1", "algorithm": "HS256", "secret": secret}]});
        let reply = self
            .request(
                Method::POST,
                "/v1/admin/tenants",
                Some(ADMIN_TOKEN),
                body.to_string(),
            )
            .await;
        assert_eq!(reply.status, 201, "create tenant: {}", reply.text());
        auth::mint_hs256(name, "k1", &secret, "kiln", &format!("kiln:{name}"), 600).unwrap()
    }

    /// Uploads the testbed executable as `name` with `settings` (a query string).
    pub async fn upload_testbed(&self, token: &str, name: &str, settings: &str) -> Reply {
        let executable =
            std::fs::read(testbed_path()).expect("testbed built (scripts/build-function.sh testbed)");
        let path = format!("/v1/functions/{name}?{settings}");
        self.request(Method::PUT, &path, Some(token), executable).await
    }

    /// The `containers` figures of `/api/health/detailed`.
    pub async fn containers(&self) -> serde_json::Value {
        let reply = self
            .request(Method::GET, "/api/health/detailed", None, Bytes::new())
            .await;
        reply.json()["containers"].clone()
    }

    /// Waits until `busy` containers are serving a call (a cold start under load can be slow).
    pub async fn wait_busy(&self, busy: u64, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let containers = self.containers().await;
            if containers["busy"] == busy {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{busy} busy containers not reached: {containers}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().and_then(Child::id).expect("kilnd running") as i32
    }

    /// Sends SIGTERM and waits for kilnd to exit; returns its exit code.
    pub async fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("kilnd did not exit within 60 s of SIGTERM")
            .ok()?;
        status.code()
    }

    /// Waits for the running kilnd to exit on its own (after a signal sent elsewhere).
    pub async fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("kilnd did not exit")
            .ok()?;
        status.code()
    }

    pub fn log(&self) -> String {
        read_log(&self.data_dir)
    }

    /// Container ids youki still holds state for under this kilnd's data folder.
    pub fn youki_containers(&self) -> Vec<String> {
        std::fs::read_dir(self.data_dir.join("sandbox"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|name| name != "bundles")
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cgroup folders of a running container, found from its init process (youki's
    /// state names its pid); empty when the container is gone.
    pub fn container_cgroups(&self, container: &str) -> Vec<PathBuf> {
        let state = std::fs::read(self.data_dir.join("sandbox").join(container).join("state.json"))
            .unwrap_or_default();
        let pid = serde_json::from_slice::<serde_json::Value>(&state)
            .ok()
            .and_then(|state| state["pid"].as_i64())
            .unwrap_or(0);
        crate::cgroup_dirs(pid as i32, container)
    }

    /// Stops kilnd and removes its database and data folder.
    pub async fn finish(mut self) {
        self.stop().await;
        if let Some(database) = self.owned_database.take() {
            database.drop().await;
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn owned_env(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

/// Starts kilnd on `database_url` and `data_dir`; returns it and its URL once it listens.
async fn spawn_kilnd(database_url: &str, data_dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    spawn(&kilnd_path(), database_url, data_dir, env).await
}

/// Starts `kilnd` (or another program that serves Kiln and prints `... listening on URL`).
async fn spawn(kilnd: &Path, database_url: &str, data_dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("kilnd.log"))
        .unwrap();
    let mut command = Command::new(kilnd);
    command
        .env("DATABASE_URL", database_url)
        .env("KILN_PORT", "0")
        .env("KILN_DATA_DIR", data_dir)
        .env("KILN_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "info,pool=debug")
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", kilnd.display()));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("kilnd did not start within 30 s; log: {}", read_log(data_dir)))
        .unwrap()
        .unwrap_or_else(|| panic!("kilnd exited at start; log: {}", read_log(data_dir)));
    let url = line
        .split_once("listening on ")
        .map(|(_, url)| url.to_owned())
        .unwrap_or_else(|| panic!("not a listening line: {line}"));
    (child, url)
}

/// A per-tenant secret, long enough for HS256.
pub fn tenant_secret(tenant: &str) -> String {
    format!("{tenant}-secret-0123456789abcdef0123456789")
}

fn read_log(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("kilnd.log")).unwrap_or_default()
}

/// A fresh, empty database made from `DATABASE_URL` (whose role may create databases).
pub struct TestDatabase {
    base_url: String,
    pub name: String,
    /// URL of the fresh database.
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);
        let base_url =
            std::env::var("DATABASE_URL").expect("DATABASE_URL must be set (scripts/test.sh sets it)");
        let name = format!(
            "kiln_e2e_{}_{}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        admin_sql(&base_url, &format!("CREATE DATABASE {name}")).await;
        let url = database_url(&base_url, &name);
        TestDatabase { base_url, name, url }
    }

    pub async fn drop(self) {
        admin_sql(
            &self.base_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

fn database_url(base: &str, database: &str) -> String {
    let (without_query, _) = base.split_once('?').unwrap_or((base, ""));
    let (server, _) = without_query
        .rsplit_once('/')
        .expect("DATABASE_URL has a database name");
    format!("{server}/{database}")
}

/// Runs `sql` on the `DATABASE_URL` database, a few times if need be: PostgreSQL refuses to
/// create a database while another test's create holds the template, and to drop one while
/// a process the test role may not end (an autovacuum worker) is connected to it.
async fn admin_sql(base_url: &str, sql: &str) {
    for attempt in 1..=5 {
        match try_admin_sql(base_url, sql).await {
            Ok(()) => return,
            Err(error) if attempt == 5 => panic!("{sql}: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
        }
    }
}

/// Runs one SQL statement on the database at `url` (a test's own, to stage states the API
/// cannot make).
pub async fn run_sql(url: &str, sql: &str) {
    admin_sql(url, sql).await;
}

/// Runs `sql` on the `DATABASE_URL` database; the error names PostgreSQL's own message.
async fn try_admin_sql(base_url: &str, sql: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(base_url, tokio_postgres::NoTls)
        .await
        .map_err(|error| format!("connect to DATABASE_URL: {error}"))?;
    let task = tokio::spawn(connection);
    let outcome = client
        .batch_execute(sql)
        .await
        .map_err(|error| match error.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => error.to_string(),
        });
    drop(client);
    let _ = task.await;
    outcome
}
