//! What a Kiln is started with. Every setting has the default `kilnd` documents, so a host
//! names only what it changes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use frontdoor::TrustedProxies;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use kiln_types::NetworkMode;
use network::EgressConfig;
use registry::PullSettings;

use crate::running::Running;

/// Where Kiln's PostgreSQL is.
pub enum Database {
    /// A URL; Kiln opens its own pool of `pool_size` connections, each wait bounded by `timeout`.
    Url {
        url: String,
        pool_size: usize,
        timeout: Duration,
    },
    /// A pool the host already has (give it wait/create/recycle timeouts).
    Pool(deadpool_postgres::Pool),
}

/// Sizes and waits of the HTTP API and the pools of containers.
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_bytes: usize,
    pub upload_bytes: usize,
    /// Largest container image archive an upload may be.
    pub image_archive_bytes: u64,
    /// Largest a container image may be once unpacked (the sum of its file sizes).
    pub image_rootfs_bytes: u64,
    /// Largest response body a function sends with `Content-Length`.
    pub response_bytes: usize,
    /// A streamed (chunked) response is cut after this long without a chunk...
    pub stream_idle_timeout: Duration,
    /// ...or this long in all.
    pub stream_max_duration: Duration,
    /// Callers that may wait per function version once it is at max concurrency.
    pub queue_limit: usize,
    pub queue_timeout: Duration,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
    /// On shutdown, time for in-flight requests and then for instance dispatches.
    pub shutdown_grace: Duration,
    /// A function's log file is rotated past this size (one older file is kept).
    pub log_file_bytes: u64,
    /// Client connections open at once; one more is answered `503 too_many_connections`.
    pub max_connections: usize,
    /// While PostgreSQL is unreachable, tenant keys, function versions and webhook settings
    /// read before keep serving invocations until they are this old (zero: not at all).
    pub stale_serve_max: Duration,
    /// Failed authentications one client address may cause per minute before its requests
    /// are refused unchecked (`429 too_many_auth_failures`); 0: no limit.
    pub auth_failures_per_minute: u32,
    /// Live-event streams (SSE and WebSocket) one tenant may hold open per node.
    pub live_streams_per_tenant: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 6 << 20,
            upload_bytes: 64 << 20,
            image_archive_bytes: 1 << 30,
            image_rootfs_bytes: 4 << 30,
            response_bytes: 6 << 20,
            stream_idle_timeout: Duration::from_secs(30),
            stream_max_duration: Duration::from_secs(15 * 60),
            queue_limit: 100,
            queue_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(30),
            log_file_bytes: 1 << 20,
            max_connections: 10_000,
            stale_serve_max: Duration::from_secs(3600),
            auth_failures_per_minute: 60,
            live_streams_per_tenant: 100,
        }
    }
}

/// How functions reach the network.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// The network of functions uploaded without `network=`.
    pub default_mode: NetworkMode,
    /// Whether functions may share the host's network (`network=host`).
    pub allow_host: bool,
    /// Addresses of this node's egress containers; every node on a host needs its own.
    pub egress_subnet: Ipv4Net,
    /// IPv6 addresses of this node's egress containers (unique local, NAT66 out).
    pub egress_subnet6: Ipv6Net,
    /// Whether egress offers IPv6: `None` decides at start (when the host has an IPv6
    /// default route).
    pub egress_ipv6: Option<bool>,
    /// Non-global ranges egress functions may reach (the host's own addresses never).
    pub egress_allow: Vec<IpNet>,
    /// The resolver egress containers' DNS goes to; the host's first nameserver by default.
    pub egress_dns: Option<SocketAddr>,
    /// Egress namespaces kept ready for cold starts.
    pub egress_prepared: usize,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            default_mode: NetworkMode::None,
            allow_host: false,
            egress_subnet: EgressConfig::DEFAULT_SUBNET.parse().expect("default subnet"),
            egress_subnet6: EgressConfig::DEFAULT_SUBNET6.parse().expect("default subnet"),
            egress_ipv6: None,
            egress_allow: Vec::new(),
            egress_dns: None,
            egress_prepared: 4,
        }
    }
}

/// Durable instances.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    pub value_limit: usize,
    pub default_timeout: Duration,
    pub retention: Duration,
    pub lease: Duration,
    pub concurrency: usize,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            value_limit: 256 << 10,
            default_timeout: Duration::from_secs(30 * 24 * 3600),
            retention: Duration::from_secs(7 * 24 * 3600),
            lease: Duration::from_secs(15),
            concurrency: 64,
        }
    }
}

/// Collects the settings; [`KilnBuilder::start`] runs Kiln with them.
pub struct KilnBuilder {
    pub(crate) database: Option<Database>,
    pub(crate) data_dir: PathBuf,
    pub(crate) bind: SocketAddr,
    pub(crate) admin_token: Option<String>,
    pub(crate) network: NetworkSettings,
    pub(crate) trusted_proxies: TrustedProxies,
    pub(crate) node_id: Option<String>,
    pub(crate) limits: Limits,
    pub(crate) instances: InstanceSettings,
    pub(crate) image_pulls: PullSettings,
    /// The program started as the sandbox process; the current executable by default.
    pub(crate) sandbox_program: Option<PathBuf>,
}

impl Default for KilnBuilder {
    fn default() -> Self {
        KilnBuilder {
            database: None,
            data_dir: PathBuf::from("/var/lib/kiln"),
            bind: SocketAddr::from(([127, 0, 0, 1], 3001)),
            admin_token: None,
            network: NetworkSettings::default(),
            trusted_proxies: TrustedProxies::default(),
            node_id: None,
            limits: Limits::default(),
            instances: InstanceSettings::default(),
            image_pulls: PullSettings::default(),
            sandbox_program: None,
        }
    }
}

impl KilnBuilder {
    /// PostgreSQL by URL, with Kiln's own pool.
    pub fn database_url(mut self, url: impl Into<String>, pool_size: usize, timeout: Duration) -> Self {
        self.database = Some(Database::Url {
            url: url.into(),
            pool_size,
            timeout,
        });
        self
    }

    /// PostgreSQL through a pool the host already has.
    pub fn database_pool(mut self, pool: deadpool_postgres::Pool) -> Self {
        self.database = Some(Database::Pool(pool));
        self
    }

    /// Executables, root file systems, container state and logs (absolute, at most 60
    /// bytes: container sockets live below it).
    pub fn data_dir(mut self, folder: impl AsRef<Path>) -> Self {
        self.data_dir = folder.as_ref().to_path_buf();
        self
    }

    pub fn bind(mut self, address: SocketAddr) -> Self {
        self.bind = address;
        self
    }

    /// Enables `/v1/admin` with this token.
    pub fn admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token;
        self
    }

    /// Registries `?image=` uploads may pull from, those reached over plain HTTP, and
    /// credentials; none by default (pulls are refused).
    pub fn image_pulls(mut self, pulls: PullSettings) -> Self {
        self.image_pulls = pulls;
        self
    }

    /// Functions' networks: the default mode, whether `network=host` is allowed, and egress.
    pub fn network(mut self, network: NetworkSettings) -> Self {
        self.network = network;
        self
    }

    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// This node's name on the instances it runs; by default kept in the data folder.
    pub fn node_id(mut self, node: Option<String>) -> Self {
        self.node_id = node;
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn instances(mut self, settings: InstanceSettings) -> Self {
        self.instances = settings;
        self
    }

    /// The program to start as `PROGRAM sandbox --state DIR` (it must call
    /// [`crate::run_sandbox_if_requested`]); the current executable by default.
    pub fn sandbox_program(mut self, program: impl AsRef<Path>) -> Self {
        self.sandbox_program = Some(program.as_ref().to_path_buf());
        self
    }

    /// Runs migrations, starts the sandbox, the pools, the instance engine and the front
    /// door, and returns once it listens.
    pub async fn start(self) -> anyhow::Result<Running> {
        crate::start::start(self).await
    }
}
