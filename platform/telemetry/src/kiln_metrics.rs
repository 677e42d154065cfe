//! The figures Kiln keeps, by name, and the gauges sampled at each scrape.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use lookup_cache::LookupCounts;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::family::Labels;
use crate::{CounterFamily, HistogramFamily};

/// Request and invocation latencies: 0.5 ms to 60 s.
const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Kiln's own share of an invocation: 50 µs to 100 ms.
const OVERHEAD_BOUNDS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];
/// Cold-start phases: 1 ms to 10 s.
const START_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.5, 1.0, 10.0];
/// How late a wake-up was claimed: 1 ms to 60 s.
const LATENESS_BOUNDS: &[f64] = &[0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0, 60.0];

/// Every figure of one Kiln; cheap to clone, all clones count into the same families.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Families>,
}

struct Families {
    invocations: CounterFamily,
    invocation_seconds: HistogramFamily,
    overhead_seconds: HistogramFamily,
    api_requests: CounterFamily,
    api_seconds: HistogramFamily,
    cold_starts: CounterFamily,
    cold_start_seconds: HistogramFamily,
    checkpoints: CounterFamily,
    sleeps: CounterFamily,
    wakes: CounterFamily,
    wake_lateness: HistogramFamily,
    instances_finished: CounterFamily,
    egress_sent: CounterFamily,
    egress_received: CounterFamily,
    egress_refused: CounterFamily,
    connection_refusals: CounterFamily,
    auth_failures: CounterFamily,
    streamed_responses: CounterFamily,
}

/// Levels read at scrape time from the parts that hold them.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub containers_warm: usize,
    pub containers_busy: usize,
    pub containers_starting: usize,
    pub queued_callers: usize,
    pub db_pool_size: usize,
    pub db_pool_open: usize,
    pub db_pool_idle: usize,
    pub db_pool_waiting: usize,
    pub instances_running: usize,
    /// Client connections open on the front door.
    pub connections_open: usize,
    /// Function log lines dropped since start because the disk fell behind.
    pub log_lines_dropped: u64,
    /// How each lookup cache answered since start, by cache name.
    pub lookups: Vec<LookupCounts>,
    pub uptime: Duration,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            inner: Arc::new(Families {
                invocations: CounterFamily::new(
                    "kiln_invocations_total",
                    "Function invocations by tenant, function and HTTP status (429 = queue full).",
                    &["tenant", "function", "status"],
                ),
                invocation_seconds: HistogramFamily::new(
                    "kiln_invocation_duration_seconds",
                    "Whole invocations as the caller saw them, by tenant and function.",
                    &["tenant", "function"],
                    LATENCY_BOUNDS,
                ),
                overhead_seconds: HistogramFamily::new(
                    "kiln_invocation_overhead_seconds",
                    "Kiln's own share of warm invocations: the whole minus reading the body, waiting for a busy function, and the function's time.",
                    &[],
                    OVERHEAD_BOUNDS,
                ),
                api_requests: CounterFamily::new(
                    "kiln_api_requests_total",
                    "Requests to the management and health API by route, method and status.",
                    &["route", "method", "status"],
                ),
                api_seconds: HistogramFamily::new(
                    "kiln_api_request_duration_seconds",
                    "Management API request durations by route.",
                    &["route"],
                    LATENCY_BOUNDS,
                ),
                cold_starts: CounterFamily::new(
                    "kiln_cold_starts_total",
                    "Invocations that had to start a container, by tenant and function.",
                    &["tenant", "function"],
                ),
                cold_start_seconds: HistogramFamily::new(
                    "kiln_cold_start_duration_seconds",
                    "Container starts by phase: socket (runtime socket bound), container (sandbox create and start), total (both and the bookkeeping around them).",
                    &["phase"],
                    START_BOUNDS,
                ),
                checkpoints: CounterFamily::new(
                    "kiln_checkpoints_total",
                    "Checkpoint writes of durable instances by outcome (stored; existing: the key held another value; fenced: a stale dispatch).",
                    &["outcome"],
                ),
                sleeps: CounterFamily::new(
                    "kiln_sleeps_total",
                    "Durable instances suspended by a sleep or a wait for an event.",
                    &["kind"],
                ),
                wakes: CounterFamily::new(
                    "kiln_wakes_total",
                    "Durable instance dispatches claimed by this node, by reason (start, wake, retry).",
                    &["reason"],
                ),
                wake_lateness: HistogramFamily::new(
                    "kiln_wake_lateness_seconds",
                    "How long after its due time a durable instance was claimed, by reason (start, wake, retry).",
                    &["reason"],
                    LATENESS_BOUNDS,
                ),
                instances_finished: CounterFamily::new(
                    "kiln_instances_finished_total",
                    "Durable instances that ended, by final status.",
                    &["status"],
                ),
                egress_sent: CounterFamily::new(
                    "kiln_egress_sent_bytes_total",
                    "Bytes egress containers sent (DNS and refused attempts included), by tenant and function; counted every few seconds and when a container ends.",
                    &["tenant", "function"],
                ),
                egress_received: CounterFamily::new(
                    "kiln_egress_received_bytes_total",
                    "Bytes egress containers received, by tenant and function.",
                    &["tenant", "function"],
                ),
                egress_refused: CounterFamily::new(
                    "kiln_egress_refused_packets_total",
                    "Packets of egress containers the firewall refused (the host, loopback, link-local, other containers, closed ranges, outside egress_allow), by tenant and function; a refused TCP connection attempt is one or two.",
                    &["tenant", "function"],
                ),
                connection_refusals: CounterFamily::new(
                    "kiln_connection_refusals_total",
                    "Client connections refused or cut, by reason: limit (past KILN_MAX_CONNECTIONS, answered 503 too_many_connections), header_timeout (a request's headers, or the next request on an idle keep-alive connection, did not arrive within KILN_HEADER_TIMEOUT_MS).",
                    &["reason"],
                ),
                auth_failures: CounterFamily::new(
                    "kiln_auth_failures_total",
                    "Requests that needed a credential and did not pass, by outcome: failed (answered 401, counted against the client address), refused (answered 429 too_many_auth_failures, unchecked, because the address was past KILN_AUTH_FAILURES_PER_MINUTE).",
                    &["outcome"],
                ),
                streamed_responses: CounterFamily::new(
                    "kiln_streamed_responses_total",
                    "Streamed (chunked) function responses by how they ended: completed, function_error (ended with a Kiln-Stream-Error trailer; the container is kept), caller_gone (the function's next write fails; its container is kept once it asks for more work), idle_timeout, too_long or function_gone (the caller's response is cut; the container is replaced).",
                    &["outcome"],
                ),
            }),
        }
    }

    /// One invocation through `/fn/...`, answered with `status` after `total`. When a warm
    /// container answered, `not_kiln` is the part of `total` that was not Kiln's work
    /// (reading the caller's body, waiting for a busy function, the function running).
    pub fn invocation(
        &self,
        tenant: &str,
        function: &str,
        status: u16,
        total: Duration,
        not_kiln: Option<Duration>,
    ) {
        let families = &self.inner;
        families
            .invocations
            .add(&[tenant, function, status_label(status)], 1);
        families.invocation_seconds.observe(&[tenant, function], total);
        if let Some(not_kiln) = not_kiln {
            families
                .overhead_seconds
                .observe(&[], total.saturating_sub(not_kiln));
        }
    }

    /// Drops the series of a deleted function, so functions that come and go do not grow
    /// the scrape forever. Counting starts again at zero if the name is used again.
    pub fn forget_function(&self, tenant: &str, function: &str) {
        let families = &self.inner;
        families.invocations.forget(&[tenant, function]);
        families.invocation_seconds.forget(&[tenant, function]);
        families.cold_starts.forget(&[tenant, function]);
        families.egress_sent.forget(&[tenant, function]);
        families.egress_received.forget(&[tenant, function]);
        families.egress_refused.forget(&[tenant, function]);
    }

    /// Traffic of a function's egress containers since it was last counted.
    pub fn egress(
        &self,
        tenant: &str,
        function: &str,
        sent_bytes: u64,
        received_bytes: u64,
        refused_packets: u64,
    ) {
        let families = &self.inner;
        let labels = [tenant, function];
        for (family, by) in [
            (&families.egress_sent, sent_bytes),
            (&families.egress_received, received_bytes),
            (&families.egress_refused, refused_packets),
        ] {
            if by > 0 {
                family.add(&labels, by);
            }
        }
    }

    /// One request to any other route; `route` is its pattern, never the raw path.
    pub fn api_request(&self, route: &str, method: &str, status: u16, total: Duration) {
        let families = &self.inner;
        families
            .api_requests
            .add(&[route, method, status_label(status)], 1);
        families.api_seconds.observe(&[route], total);
    }

    /// A container started for an invocation, with the duration of each phase.
    pub fn cold_start(&self, tenant: &str, function: &str, phases: &[(&str, Duration)]) {
        self.inner.cold_starts.add(&[tenant, function], 1);
        for (phase, duration) in phases {
            self.inner.cold_start_seconds.observe(&[phase], *duration);
        }
    }

    /// A client connection refused or cut for `reason` (`limit`, `header_timeout`).
    pub fn connection_refused(&self, reason: &str) {
        self.inner.connection_refusals.add(&[reason], 1);
    }

    /// A request whose credential did not pass (`failed`), or that was not checked because
    /// its client had failed too often (`refused`).
    pub fn auth_failure(&self, outcome: &str) {
        self.inner.auth_failures.add(&[outcome], 1);
    }

    pub fn streamed_response(&self, outcome: &str) {
        self.inner.streamed_responses.add(&[outcome], 1);
    }

    pub fn checkpoint(&self, outcome: &str) {
        self.inner.checkpoints.add(&[outcome], 1);
    }

    pub fn sleep(&self, kind: &str) {
        self.inner.sleeps.add(&[kind], 1);
    }

    /// A durable dispatch claimed `lateness` after the instance was due.
    pub fn wake(&self, reason: &str, lateness: Duration) {
        self.inner.wakes.add(&[reason], 1);
        self.inner.wake_lateness.observe(&[reason], lateness);
    }

    pub fn instance_finished(&self, status: &str) {
        self.inner.instances_finished.add(&[status], 1);
    }

    /// Invocations counted for `tenant/function` with `status`.
    pub fn invocations(&self, tenant: &str, function: &str, status: u16) -> u64 {
        self.inner
            .invocations
            .get(&[tenant, function, status_label(status)])
    }

    /// The whole exposition (OpenMetrics text): every family, then the gauges.
    pub fn render(&self, gauges: &Gauges) -> String {
        let families = &self.inner;
        let mut registry = Registry::default();
        for counters in [
            &families.invocations,
            &families.api_requests,
            &families.cold_starts,
            &families.checkpoints,
            &families.sleeps,
            &families.wakes,
            &families.instances_finished,
            &families.egress_sent,
            &families.egress_received,
            &families.egress_refused,
            &families.connection_refusals,
            &families.auth_failures,
            &families.streamed_responses,
        ] {
            counters.register(&mut registry);
        }
        for histograms in [
            &families.invocation_seconds,
            &families.overhead_seconds,
            &families.api_seconds,
            &families.cold_start_seconds,
            &families.wake_lateness,
        ] {
            histograms.register(&mut registry);
        }
        register_gauges(&mut registry, gauges);
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

/// The levels read at this scrape, as metrics of a registry made for it.
fn register_gauges(registry: &mut Registry, gauges: &Gauges) {
    let states = |pairs: &[(&str, usize)]| {
        let family = Family::<Labels, Gauge>::default();
        for (state, count) in pairs {
            family
                .get_or_create(&vec![("state", (*state).to_owned())])
                .set(*count as i64);
        }
        family
    };
    registry.register(
        "kiln_containers",
        "Containers on this node by state",
        states(&[
            ("warm", gauges.containers_warm),
            ("busy", gauges.containers_busy),
            ("starting", gauges.containers_starting),
        ]),
    );
    registry.register(
        "kiln_db_pool_connections",
        "PostgreSQL pool: size, open and idle connections, waiting callers",
        states(&[
            ("size", gauges.db_pool_size),
            ("open", gauges.db_pool_open),
            ("idle", gauges.db_pool_idle),
            ("waiting", gauges.db_pool_waiting),
        ]),
    );
    let singles = [
        (
            "kiln_queued_callers",
            "Callers waiting for a container at max concurrency",
            gauges.queued_callers,
        ),
        (
            "kiln_instances_running",
            "Durable instance dispatches this node runs now",
            gauges.instances_running,
        ),
        (
            "kiln_connections_open",
            "Client connections open on the front door",
            gauges.connections_open,
        ),
    ];
    for (name, help, value) in singles {
        let gauge = Gauge::<i64>::default();
        gauge.set(value as i64);
        registry.register(name, help, gauge);
    }
    let uptime = Gauge::<f64, AtomicU64>::default();
    uptime.set(gauges.uptime.as_secs_f64());
    registry.register("kiln_uptime_seconds", "Seconds since this kilnd started", uptime);
    let dropped = Counter::<u64>::default();
    dropped.inc_by(gauges.log_lines_dropped);
    registry.register(
        "kiln_log_lines_dropped",
        "Function log lines dropped because the log writer fell behind",
        dropped,
    );
    let lookups = Family::<Labels, Counter>::default();
    for counts in &gauges.lookups {
        let outcomes = [
            ("hit", counts.hits),
            ("load", counts.loads),
            ("stale", counts.stale),
            ("failure", counts.failures),
        ];
        for (outcome, count) in outcomes {
            let labels = vec![
                ("cache", counts.cache.to_owned()),
                ("outcome", outcome.to_owned()),
            ];
            lookups.get_or_create(&labels).inc_by(count);
        }
    }
    registry.register(
        "kiln_cache_lookups",
        "Lookups of tenant keys, functions and webhook settings by how they were answered: hit \
         (cached), load (read from PostgreSQL), stale (the last value read, PostgreSQL being \
         unreachable), failure (unreachable and nothing known)",
        lookups,
    );
}

/// Status codes as label values without an allocation for the common ones.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_feed_counters_and_the_overhead() {
        let metrics = Metrics::new();
        metrics.invocation(
            "acme",
            "hello",
            200,
            Duration::from_millis(3),
            Some(Duration::from_millis(2)),
        );
        metrics.invocation("acme", "hello", 429, Duration::from_millis(1), None);
        assert_eq!(metrics.invocations("acme", "hello", 200), 1);
        assert_eq!(metrics.invocations("acme", "hello", 429), 1);
        let text = metrics.render(&Gauges {
            containers_warm: 2,
            ..Gauges::default()
        });
        assert!(
            text.contains("kiln_invocations_total{tenant=\"acme\",function=\"hello\",status=\"429\"} 1\n")
        );
        assert!(text.contains("kiln_invocation_overhead_seconds_count 1\n"));
        assert!(text.contains("kiln_containers{state=\"warm\"} 2\n"));
        assert!(text.contains("# TYPE kiln_invocation_duration_seconds histogram\n"));
        // A family with no series yet is left out, as prometheus-client does.
        assert!(!text.contains("kiln_wake_lateness_seconds"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn unusual_statuses_fall_into_classes() {
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(207), "2xx");
        assert_eq!(status_label(599), "5xx");
    }
}
