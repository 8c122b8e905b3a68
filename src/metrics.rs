//! Counters for `GET /metrics`, and the one writer of the Prometheus text
//! format (0.0.4). Updating a counter is an atomic add; the per-client
//! counter takes a read lock except the first time a client is seen.
//!
//! Every label set is an enum declared with [`crate::labels::labels!`], which
//! derives the list of its values from the same lines as their names: a new
//! variant is counted and exported without anyone having to remember it.

use std::collections::HashMap;
use std::fmt::{Display, Write as _};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::crypto::Algorithm;
use crate::domain::ClientId;
use crate::labels::{Label, labels};
use crate::limits::Limit;

/// One counter per value of a label.
pub struct Counters<L: Label> {
    counts: Box<[AtomicU64]>,
    label: PhantomData<L>,
}

impl<L: Label> Default for Counters<L> {
    fn default() -> Self {
        Self {
            counts: L::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            label: PhantomData,
        }
    }
}

impl<L: Label> Counters<L> {
    pub fn add(&self, label: L) {
        if let Some(count) = L::ALL
            .iter()
            .position(|l| *l == label)
            .and_then(|i| self.counts.get(i))
        {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, label: L) -> u64 {
        L::ALL
            .iter()
            .position(|l| *l == label)
            .and_then(|i| self.counts.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn write(&self, out: &mut Exposition, name: &str, key: &str) {
        for label in L::ALL {
            out.sample(name, &[(key, label.as_str())], self.get(*label));
        }
    }
}

/// How a token request ended: issued, or the OAuth error it got (429s apart
/// from other `temporarily_unavailable` answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Issued,
    InvalidRequest,
    InvalidClient,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    TemporarilyUnavailable,
    RateLimited,
    ServerError,
}

labels!(Outcome {
    Issued => "issued",
    InvalidRequest => "invalid_request",
    InvalidClient => "invalid_client",
    UnauthorizedClient => "unauthorized_client",
    UnsupportedGrantType => "unsupported_grant_type",
    InvalidScope => "invalid_scope",
    InvalidTarget => "invalid_target",
    TemporarilyUnavailable => "temporarily_unavailable",
    RateLimited => "rate_limited",
    ServerError => "server_error",
});

/// Upper bounds of the signing-latency buckets, in microseconds.
const SIGNING_BUCKETS_US: [u64; 10] = [10, 25, 50, 100, 200, 300, 500, 1000, 2500, 10_000];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; SIGNING_BUCKETS_US.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(b) = SIGNING_BUCKETS_US.iter().position(|&le| us <= le) {
            self.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// What the token endpoint counts.
pub struct Metrics {
    pub outcomes: Counters<Outcome>,
    pub auth_failures: Counters<crate::credentials::FailureReason>,
    pub rate_limited: Counters<Limit>,
    /// One per [`Algorithm::ALL`].
    signing: Box<[Histogram]>,
    /// Per client, one count per [`Algorithm::ALL`].
    issued: RwLock<HashMap<ClientId, Arc<[AtomicU64]>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            outcomes: Counters::default(),
            auth_failures: Counters::default(),
            rate_limited: Counters::default(),
            signing: Algorithm::ALL
                .iter()
                .map(|_| Histogram::default())
                .collect(),
            issued: RwLock::default(),
        }
    }
}

impl Metrics {
    pub fn issued(&self, client: &ClientId, alg: Algorithm, signing: Duration) {
        let Some(alg) = Algorithm::ALL.iter().position(|a| *a == alg) else {
            return;
        };
        if let Some(histogram) = self.signing.get(alg) {
            histogram.observe(signing);
        }
        // Looked up by reference: no copy of the id per request.
        let counters = self
            .issued
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client)
            .cloned();
        let counters = counters.unwrap_or_else(|| {
            let mut issued = self.issued.write().unwrap_or_else(PoisonError::into_inner);
            let new = || Algorithm::ALL.iter().map(|_| AtomicU64::new(0)).collect();
            Arc::clone(issued.entry(client.clone()).or_insert_with(new))
        });
        if let Some(counter) = counters.get(alg) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes every counter.
    pub fn write(&self, out: &mut Exposition) {
        out.family(
            "warrant_token_requests_total",
            "Token requests by outcome (issued or the OAuth error).",
            Kind::Counter,
        );
        self.outcomes
            .write(out, "warrant_token_requests_total", "outcome");

        out.family(
            "warrant_tokens_issued_total",
            "Tokens issued by client and algorithm.",
            Kind::Counter,
        );
        let issued = self.issued.read().unwrap_or_else(PoisonError::into_inner);
        let mut rows: Vec<_> = issued.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for (client, counters) in rows {
            for (alg, c) in Algorithm::ALL.iter().zip(counters.iter()) {
                let count = c.load(Ordering::Relaxed);
                if count > 0 {
                    out.sample(
                        "warrant_tokens_issued_total",
                        &[("client_id", client.as_str()), ("alg", alg.as_str())],
                        count,
                    );
                }
            }
        }
        drop(issued);

        out.family(
            "warrant_auth_failures_total",
            "Failed client authentications by reason.",
            Kind::Counter,
        );
        self.auth_failures
            .write(out, "warrant_auth_failures_total", "reason");
        out.family(
            "warrant_rate_limited_total",
            "Requests refused by a rate limit or quota.",
            Kind::Counter,
        );
        self.rate_limited
            .write(out, "warrant_rate_limited_total", "limit");

        out.family(
            "warrant_signing_seconds",
            "Time to serialize and sign one token.",
            Kind::Histogram,
        );
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (alg, h) in Algorithm::ALL.iter().zip(self.signing.iter()) {
            let alg = alg.as_str();
            let mut cumulative = 0;
            for (le, b) in SIGNING_BUCKETS_US.iter().zip(&h.buckets) {
                cumulative += load(b);
                let le = (*le as f64 / 1e6).to_string();
                out.sample(
                    "warrant_signing_seconds_bucket",
                    &[("alg", alg), ("le", &le)],
                    cumulative,
                );
            }
            let count = load(&h.count);
            out.sample(
                "warrant_signing_seconds_bucket",
                &[("alg", alg), ("le", "+Inf")],
                count,
            );
            out.sample(
                "warrant_signing_seconds_sum",
                &[("alg", alg)],
                load(&h.sum_ns) as f64 / 1e9,
            );
            out.sample("warrant_signing_seconds_count", &[("alg", alg)], count);
        }
    }
}

/// A metric family's type.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The Prometheus text format, written once for every metric we export.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// The `# HELP` and `# TYPE` lines that open a family.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One sample; label values are escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"");
                escape_into(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: impl Display) {
        self.family(name, help, kind);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::FailureReason;

    #[test]
    fn counters_render_in_prometheus_text_format() {
        let metrics = Metrics::default();
        metrics.outcomes.add(Outcome::Issued);
        metrics.outcomes.add(Outcome::InvalidClient);
        metrics.auth_failures.add(FailureReason::WrongSecret);
        metrics.rate_limited.add(Limit::Quota);
        let id = ClientId::parse("c\"1").unwrap();
        metrics.issued(&id, Algorithm::RS256, Duration::from_micros(220));
        let mut out = Exposition::default();
        metrics.write(&mut out);
        let text = out.finish();
        for line in [
            "warrant_token_requests_total{outcome=\"issued\"} 1",
            "warrant_token_requests_total{outcome=\"invalid_client\"} 1",
            "warrant_auth_failures_total{reason=\"wrong_secret\"} 1",
            "warrant_rate_limited_total{limit=\"quota\"} 1",
            "warrant_tokens_issued_total{client_id=\"c\\\"1\",alg=\"RS256\"} 1",
            "warrant_signing_seconds_bucket{alg=\"RS256\",le=\"0.0002\"} 0",
            "warrant_signing_seconds_bucket{alg=\"RS256\",le=\"0.0003\"} 1",
            "warrant_signing_seconds_count{alg=\"RS256\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn every_label_value_is_exported_once() {
        fn check<L: Label>() {
            let counters = Counters::<L>::default();
            for label in L::ALL {
                counters.add(*label);
            }
            let mut out = Exposition::default();
            counters.write(&mut out, "m", "k");
            let text = out.finish();
            assert_eq!(text.lines().count(), L::ALL.len());
            for label in L::ALL {
                assert_eq!(counters.get(*label), 1);
                let line = format!("m{{k=\"{}\"}} 1", label.as_str());
                assert_eq!(text.lines().filter(|l| *l == line).count(), 1);
            }
        }
        check::<Outcome>();
        check::<FailureReason>();
        check::<Limit>();
        check::<Algorithm>();
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::default();
        out.sample("m", &[("k", "a\\b\"c\nd")], 1);
        assert_eq!(out.finish(), "m{k=\"a\\\\b\\\"c\\nd\"} 1\n");
    }
}
