//! Token buckets against guessing and against greedy clients.
//!
//! Failed client authentications are counted per client_id *and source
//! network* (an IPv4 address, an IPv6 /64), per source network, and per
//! client_id from everywhere with a far larger budget. When a bucket is
//! empty, further requests that would need an argon2 verify are refused with
//! 429 before any hashing. So guessing is slow from anywhere, one attacker
//! address cannot hold back a client that authenticates from its own network,
//! and a client whose secret is remembered (see `credentials`) is never held
//! back at all. Issuance quotas cap tokens per client per minute. Buckets live
//! in memory: each replica counts for itself.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::ClientId;

/// Above this many tracked keys, full (idle) buckets are forgotten.
const SWEEP_ABOVE: usize = 50_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// Refills at `per_minute` tokens a minute, up to `per_minute`.
    fn refill(&mut self, per_minute: u32, now: Instant) {
        let capacity = f64::from(per_minute);
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * capacity / 60.0).min(capacity);
        self.updated = now;
    }

    fn wait(&self, per_minute: u32) -> Option<Duration> {
        (self.tokens < 1.0)
            .then(|| Duration::from_secs_f64((1.0 - self.tokens) * 60.0 / f64::from(per_minute)))
    }
}

/// Token buckets by key, each refilled continuously at the rate its caller
/// gives (a bucket holds at most one minute's worth).
pub struct Buckets<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Default for Buckets<K> {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    /// `None` when `key` has a token left, else how long until it has one.
    /// `per_minute == 0` never limits.
    pub fn wait_time(&self, key: &K, per_minute: u32) -> Option<Duration> {
        if per_minute == 0 {
            return None;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.get_mut(key)?;
        bucket.refill(per_minute, Instant::now());
        bucket.wait(per_minute)
    }

    /// Takes a token; returns the wait time when there was none to take.
    pub fn take(&self, key: &K, per_minute: u32) -> Option<Duration> {
        if per_minute == 0 {
            return None;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > SWEEP_ABOVE {
            // Forget buckets idle for a minute: they are full again.
            buckets
                .retain(|_, b| now.saturating_duration_since(b.updated) < Duration::from_secs(60));
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: f64::from(per_minute),
            updated: now,
        });
        bucket.refill(per_minute, now);
        let wait = bucket.wait(per_minute);
        if wait.is_none() {
            bucket.tokens -= 1.0;
        }
        wait
    }
}

/// Which limit refused a request, for the answer and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Failures for one client_id from one source network.
    FailuresPerClient,
    /// Failures for one client_id from all sources together.
    FailuresPerClientEverywhere,
    FailuresPerAddress,
    Quota,
}

crate::labels::labels!(Limit {
    FailuresPerClient => "failures_per_client",
    FailuresPerClientEverywhere => "failures_per_client_everywhere",
    FailuresPerAddress => "failures_per_address",
    Quota => "quota",
});

/// The failure budgets, each a number of failures a minute; 0 disables one.
pub struct AuthFailureLimits {
    per_client_per_minute: u32,
    per_client_everywhere_per_minute: u32,
    per_address_per_minute: u32,
    per_client: Buckets<(ClientId, Option<IpAddr>)>,
    per_client_everywhere: Buckets<ClientId>,
    per_address: Buckets<IpAddr>,
}

impl AuthFailureLimits {
    pub fn new(
        per_client_per_minute: u32,
        per_client_everywhere_per_minute: u32,
        per_address_per_minute: u32,
    ) -> Self {
        Self {
            per_client_per_minute,
            per_client_everywhere_per_minute,
            per_address_per_minute,
            per_client: Buckets::default(),
            per_client_everywhere: Buckets::default(),
            per_address: Buckets::default(),
        }
    }

    /// Refuses (with the wait) when `id` from `address`, `address`, or `id`
    /// from everywhere has used up its failures.
    pub fn check(&self, id: &ClientId, address: Option<IpAddr>) -> Result<(), (Limit, Duration)> {
        let network = address.map(address_bucket);
        let pair = (id.clone(), network);
        if let Some(wait) = self.per_client.wait_time(&pair, self.per_client_per_minute) {
            return Err((Limit::FailuresPerClient, wait));
        }
        let per_address = self.per_address_per_minute;
        if let Some(wait) = network.and_then(|a| self.per_address.wait_time(&a, per_address)) {
            return Err((Limit::FailuresPerAddress, wait));
        }
        let everywhere = self.per_client_everywhere_per_minute;
        if let Some(wait) = self.per_client_everywhere.wait_time(id, everywhere) {
            return Err((Limit::FailuresPerClientEverywhere, wait));
        }
        Ok(())
    }

    pub fn record_failure(&self, id: &ClientId, address: Option<IpAddr>) {
        let network = address.map(address_bucket);
        self.per_client
            .take(&(id.clone(), network), self.per_client_per_minute);
        self.per_client_everywhere
            .take(id, self.per_client_everywhere_per_minute);
        if let Some(network) = network {
            self.per_address.take(&network, self.per_address_per_minute);
        }
    }
}

/// One bucket per IPv4 address, and per /64 for IPv6: a single host commonly
/// holds a whole /64 and could otherwise take a new address for each guess.
fn address_bucket(address: IpAddr) -> IpAddr {
    match crate::forwarded::canonical(address) {
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_once_empty_and_says_how_long_to_wait() {
        let buckets = Buckets::default();
        for _ in 0..3 {
            assert!(buckets.take(&"k", 3).is_none());
        }
        let wait = buckets.take(&"k", 3).unwrap();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(buckets.wait_time(&"k", 3).is_some());
        assert!(buckets.wait_time(&"other", 3).is_none());
    }

    #[test]
    fn zero_per_minute_never_limits() {
        let buckets = Buckets::default();
        for _ in 0..100 {
            assert!(buckets.take(&1, 0).is_none());
        }
    }

    #[test]
    fn failures_are_limited_per_client_and_per_address() {
        let limits = AuthFailureLimits::new(2, 0, 3);
        let (a, b) = (ClientId::parse("a").unwrap(), ClientId::parse("b").unwrap());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        limits.record_failure(&a, Some(ip));
        limits.record_failure(&a, Some(ip));
        // Per client_id from that address (the address bucket holds 3).
        assert_eq!(
            limits.check(&a, Some(ip)).unwrap_err().0,
            Limit::FailuresPerClient
        );
        assert!(limits.check(&b, Some(ip)).is_ok());
        limits.record_failure(&b, Some(ip));
        assert_eq!(
            limits.check(&b, Some(ip)).unwrap_err().0,
            Limit::FailuresPerAddress
        );
        assert!(limits.check(&b, Some("192.0.2.2".parse().unwrap())).is_ok());
    }

    #[test]
    fn an_ipv6_host_cannot_escape_by_changing_its_interface_id() {
        let limits = AuthFailureLimits::new(0, 0, 2);
        let id = ClientId::parse("a").unwrap();
        limits.record_failure(&id, Some("2001:db8:1:2::1".parse().unwrap()));
        limits.record_failure(&id, Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        let same_64: IpAddr = "2001:db8:1:2:abcd::1".parse().unwrap();
        assert_eq!(
            limits.check(&id, Some(same_64)).unwrap_err().0,
            Limit::FailuresPerAddress
        );
        assert!(
            limits
                .check(&id, Some("2001:db8:1:3::1".parse().unwrap()))
                .is_ok()
        );
    }

    #[test]
    fn failures_from_elsewhere_do_not_hold_back_a_client_on_its_own_network() {
        let limits = AuthFailureLimits::new(3, 10, 0);
        let id = ClientId::parse("victim").unwrap();
        let (attacker, owner): (IpAddr, IpAddr) = (
            "198.51.100.9".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
        );
        for _ in 0..3 {
            limits.record_failure(&id, Some(attacker));
        }
        assert_eq!(
            limits.check(&id, Some(attacker)).unwrap_err().0,
            Limit::FailuresPerClient
        );
        assert!(limits.check(&id, Some(owner)).is_ok());
        // Many networks together spend the client's far larger budget.
        for i in 0..7 {
            let elsewhere = IpAddr::from([203, 0, 113, i]);
            limits.record_failure(&id, Some(elsewhere));
        }
        assert_eq!(
            limits.check(&id, Some(owner)).unwrap_err().0,
            Limit::FailuresPerClientEverywhere
        );
    }
}
