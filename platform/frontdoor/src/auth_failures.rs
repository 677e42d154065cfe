//! A limit on failed authentications (Kiln's own 401s, never a function's) per client
//! address: past it, the address's requests that need a credential get
//! `429 too_many_auth_failures` before any token is read, any signature computed or any
//! database lookup made. Successes cost the address nothing.
//!
//! Each address has a generic cell rate (GCRA) bucket: `per_minute` failures at once, then
//! one more each `60 s / per_minute`. Buckets live in a bounded cache, so a flood from many
//! addresses costs bounded memory (an address pushed out starts afresh). IPv6 clients are
//! counted by their /64, which one host usually holds whole; loopback is never limited, as
//! it is most often a local proxy speaking for many clients (list it in
//! `KILN_TRUSTED_PROXIES` so the real client is counted instead).
//!
//! governor (the field's rate-limit crate) is not used: it has no way to ask whether a key
//! is over its quota without spending a cell, which every request would then do.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use parking_lot::Mutex;

/// Addresses whose failures are remembered at once.
const TRACKED_ADDRESSES: u64 = 100_000;

pub(crate) struct AuthFailureLimit {
    /// `None` when the limit is off.
    buckets: Option<Cache<IpAddr, Arc<Mutex<Instant>>>>,
    /// Time one failure adds to a bucket.
    interval: Duration,
    /// How far ahead of now a bucket may run before the address is refused.
    tolerance: Duration,
}

impl AuthFailureLimit {
    /// `per_minute` failures per address; 0 turns the limit off.
    pub(crate) fn new(per_minute: u32) -> AuthFailureLimit {
        let interval = Duration::from_secs(60) / per_minute.max(1);
        let tolerance = interval * per_minute.saturating_sub(1);
        let buckets = (per_minute > 0).then(|| {
            Cache::builder()
                .max_capacity(TRACKED_ADDRESSES)
                // A bucket this old has drained: forgetting it changes nothing.
                .time_to_idle(interval + tolerance)
                .build()
        });
        AuthFailureLimit {
            buckets,
            interval,
            tolerance,
        }
    }

    /// How long `client` must wait before its next attempt, if it is over its limit.
    pub(crate) fn retry_after(&self, client: IpAddr) -> Option<Duration> {
        let buckets = self.buckets.as_ref()?;
        let bucket = buckets.get(&counted_as(client)?)?;
        let ahead = bucket.lock().checked_duration_since(Instant::now())?;
        ahead.checked_sub(self.tolerance).filter(|wait| !wait.is_zero())
    }

    /// Counts one failed authentication of `client`.
    pub(crate) fn record(&self, client: IpAddr) {
        let (Some(buckets), Some(key)) = (&self.buckets, counted_as(client)) else {
            return;
        };
        let now = Instant::now();
        let bucket = buckets.get_with(key, || Arc::new(Mutex::new(now)));
        let mut arrival = bucket.lock();
        *arrival = (*arrival).max(now) + self.interval;
    }
}

/// The address failures are counted under: IPv4 as it is, IPv6 by its /64, none for loopback.
fn counted_as(client: IpAddr) -> Option<IpAddr> {
    let client = client.to_canonical();
    if client.is_loopback() {
        return None;
    }
    Some(match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(address) => IpAddr::V6(Ipv6Addr::from_bits(address.to_bits() & !u128::from(u64::MAX))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn refuses_past_the_burst_and_only_that_address() {
        let limit = AuthFailureLimit::new(5);
        let client = address("203.0.113.7");
        for _ in 0..5 {
            assert_eq!(limit.retry_after(client), None);
            limit.record(client);
        }
        let wait = limit
            .retry_after(client)
            .expect("over the limit after 5 failures");
        assert!(wait <= Duration::from_secs(12), "{wait:?}");
        assert_eq!(limit.retry_after(address("203.0.113.8")), None);
    }

    #[test]
    fn one_failure_drains_each_interval() {
        let limit = AuthFailureLimit::new(600);
        let client = address("198.51.100.1");
        for _ in 0..600 {
            limit.record(client);
        }
        assert!(limit.retry_after(client).is_some());
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(limit.retry_after(client), None, "a 100 ms interval has passed");
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_loopback_never() {
        let limit = AuthFailureLimit::new(1);
        limit.record(address("2001:db8:1:2::1"));
        assert!(limit.retry_after(address("2001:db8:1:2:ffff::9")).is_some());
        assert_eq!(limit.retry_after(address("2001:db8:1:3::1")), None);
        for loopback in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            limit.record(address(loopback));
            limit.record(address(loopback));
            assert_eq!(limit.retry_after(address(loopback)), None, "{loopback}");
        }
        limit.record(address("::ffff:192.0.2.1"));
        assert!(
            limit.retry_after(address("192.0.2.1")).is_some(),
            "mapped IPv4 is IPv4"
        );
    }

    #[test]
    fn zero_turns_it_off() {
        let limit = AuthFailureLimit::new(0);
        let client = address("203.0.113.9");
        for _ in 0..100 {
            limit.record(client);
        }
        assert_eq!(limit.retry_after(client), None);
    }
}
