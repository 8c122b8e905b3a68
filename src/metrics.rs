//! Counters for `GET /metrics` (Prometheus text format 0.0.4). Updating one
//! is an atomic add; the per-client counter takes a read lock except the
//! first time a client is seen.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::crypto::Algorithm;
use crate::domain::ClientId;
use crate::limits::Limit;

/// Outcomes of token requests: "issued" or an OAuth error code.
const OUTCOMES: [&str; 10] = [
    "issued",
    "invalid_request",
    "invalid_client",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "temporarily_unavailable",
    "rate_limited",
    "server_error",
];

const AUTH_FAILURES: [&str; 4] = ["unknown_client", "wrong_secret", "disabled", "busy"];

const LIMITS: [Limit; 3] = [
    Limit::FailuresPerClient,
    Limit::FailuresPerAddress,
    Limit::Quota,
];

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::HS256,
];

/// Upper bounds of the signing-latency buckets, in microseconds.
const SIGNING_BUCKETS_US: [u64; 10] = [10, 25, 50, 100, 200, 300, 500, 1000, 2500, 10_000];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; SIGNING_BUCKETS_US.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    outcomes: [AtomicU64; OUTCOMES.len()],
    auth_failures: [AtomicU64; AUTH_FAILURES.len()],
    rate_limited: [AtomicU64; LIMITS.len()],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    signing: [Histogram; ALGORITHMS.len()],
    issued: RwLock<HashMap<(ClientId, Algorithm), Arc<AtomicU64>>>,
}

fn index_of<T: PartialEq>(all: &[T], item: &T) -> Option<usize> {
    all.iter().position(|x| x == item)
}

impl Metrics {
    pub fn outcome(&self, outcome: &str) {
        if let Some(i) = index_of(&OUTCOMES, &outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn auth_failure(&self, reason: &str) {
        if let Some(i) = index_of(&AUTH_FAILURES, &reason) {
            self.auth_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn rate_limited(&self, limit: Limit) {
        if let Some(i) = index_of(&LIMITS, &limit) {
            self.rate_limited[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn credential_cache(&self, hit: bool) {
        let counter = if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn issued(&self, client: &ClientId, alg: Algorithm, signing: Duration) {
        if let Some(i) = index_of(&ALGORITHMS, &alg) {
            let histogram = &self.signing[i];
            let us = u64::try_from(signing.as_micros()).unwrap_or(u64::MAX);
            if let Some(b) = SIGNING_BUCKETS_US.iter().position(|&le| us <= le) {
                histogram.buckets[b].fetch_add(1, Ordering::Relaxed);
            }
            histogram.count.fetch_add(1, Ordering::Relaxed);
            let ns = u64::try_from(signing.as_nanos()).unwrap_or(u64::MAX);
            histogram.sum_ns.fetch_add(ns, Ordering::Relaxed);
        }
        let key = (client.clone(), alg);
        let counter = self
            .issued
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let counter = counter.unwrap_or_else(|| {
            let mut issued = self.issued.write().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(issued.entry(key).or_default())
        });
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in Prometheus text format; `extra` is appended (gauges
    /// computed at scrape time by the caller).
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::with_capacity(4096);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);

        out.push_str("# HELP warrant_token_requests_total Token requests by outcome (issued or the OAuth error).\n");
        out.push_str("# TYPE warrant_token_requests_total counter\n");
        for (name, c) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(
                out,
                "warrant_token_requests_total{{outcome=\"{name}\"}} {}",
                load(c)
            );
        }
        out.push_str("# HELP warrant_tokens_issued_total Tokens issued by client and algorithm.\n");
        out.push_str("# TYPE warrant_tokens_issued_total counter\n");
        let issued = self.issued.read().unwrap_or_else(PoisonError::into_inner);
        let mut rows: Vec<_> = issued.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for ((client, alg), c) in rows {
            let _ = writeln!(
                out,
                "warrant_tokens_issued_total{{client_id=\"{}\",alg=\"{alg}\"}} {}",
                escape(client.as_str()),
                load(c)
            );
        }
        drop(issued);
        out.push_str(
            "# HELP warrant_auth_failures_total Failed client authentications by reason.\n",
        );
        out.push_str("# TYPE warrant_auth_failures_total counter\n");
        for (name, c) in AUTH_FAILURES.iter().zip(&self.auth_failures) {
            let _ = writeln!(
                out,
                "warrant_auth_failures_total{{reason=\"{name}\"}} {}",
                load(c)
            );
        }
        out.push_str(
            "# HELP warrant_rate_limited_total Requests refused by a rate limit or quota.\n",
        );
        out.push_str("# TYPE warrant_rate_limited_total counter\n");
        for (limit, c) in LIMITS.iter().zip(&self.rate_limited) {
            let _ = writeln!(
                out,
                "warrant_rate_limited_total{{limit=\"{}\"}} {}",
                limit.as_str(),
                load(c)
            );
        }
        out.push_str("# HELP warrant_credential_cache_total Secret checks answered from the verified-credential cache (hit) or needing argon2 (miss).\n");
        out.push_str("# TYPE warrant_credential_cache_total counter\n");
        let _ = writeln!(
            out,
            "warrant_credential_cache_total{{result=\"hit\"}} {}",
            load(&self.cache_hits)
        );
        let _ = writeln!(
            out,
            "warrant_credential_cache_total{{result=\"miss\"}} {}",
            load(&self.cache_misses)
        );
        out.push_str("# HELP warrant_signing_seconds Time to serialize and sign one token.\n");
        out.push_str("# TYPE warrant_signing_seconds histogram\n");
        for (alg, h) in ALGORITHMS.iter().zip(&self.signing) {
            let mut cumulative = 0;
            for (le, b) in SIGNING_BUCKETS_US.iter().zip(&h.buckets) {
                cumulative += load(b);
                let _ = writeln!(
                    out,
                    "warrant_signing_seconds_bucket{{alg=\"{alg}\",le=\"{}\"}} {cumulative}",
                    *le as f64 / 1e6
                );
            }
            let count = load(&h.count);
            let _ = writeln!(
                out,
                "warrant_signing_seconds_bucket{{alg=\"{alg}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "warrant_signing_seconds_sum{{alg=\"{alg}\"}} {}",
                load(&h.sum_ns) as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "warrant_signing_seconds_count{{alg=\"{alg}\"}} {count}"
            );
        }
        out.push_str(extra);
        out
    }
}

/// Escapes a Prometheus label value.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_text_format() {
        let metrics = Metrics::default();
        metrics.outcome("issued");
        metrics.outcome("invalid_client");
        metrics.auth_failure("wrong_secret");
        metrics.rate_limited(Limit::Quota);
        metrics.credential_cache(true);
        let id = ClientId::parse("c\"1").unwrap();
        metrics.issued(&id, Algorithm::RS256, Duration::from_micros(220));
        let text = metrics.render("");
        for line in [
            "warrant_token_requests_total{outcome=\"issued\"} 1",
            "warrant_token_requests_total{outcome=\"invalid_client\"} 1",
            "warrant_auth_failures_total{reason=\"wrong_secret\"} 1",
            "warrant_rate_limited_total{limit=\"quota\"} 1",
            "warrant_credential_cache_total{result=\"hit\"} 1",
            "warrant_tokens_issued_total{client_id=\"c\\\"1\",alg=\"RS256\"} 1",
            "warrant_signing_seconds_bucket{alg=\"RS256\",le=\"0.0002\"} 0",
            "warrant_signing_seconds_bucket{alg=\"RS256\",le=\"0.0003\"} 1",
            "warrant_signing_seconds_count{alg=\"RS256\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
