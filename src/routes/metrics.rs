//! `GET /metrics`: the counters plus gauges read from the registry.

use std::sync::atomic::Ordering;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

use super::AppState;
use crate::metrics::{Exposition, Kind};

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let registry = &state.registry;
    let now = crate::clock::unix_now();
    let mut out = Exposition::default();
    state.metrics.write(&mut out);

    let auth = state.authenticator.counters();
    out.family(
        "warrant_credential_cache_total",
        "Secret checks answered from the verified-credential cache (hit) or needing argon2 (miss).",
        Kind::Counter,
    );
    for (result, counter) in [("hit", &auth.cache_hits), ("miss", &auth.cache_misses)] {
        out.sample(
            "warrant_credential_cache_total",
            &[("result", result)],
            counter.load(Ordering::Relaxed),
        );
    }
    out.single(
        "warrant_ready",
        "1 when /readyz answers 200.",
        Kind::Gauge,
        u8::from(registry.is_ready()),
    );
    out.single(
        "warrant_database_reachable",
        "1 when the last poll reached the database.",
        Kind::Gauge,
        u8::from(registry.database_reachable()),
    );
    out.single(
        "warrant_database_seconds_since_reached",
        "Seconds since a poll last reached the database.",
        Kind::Gauge,
        registry.seconds_since_database(now),
    );
    out.single(
        "warrant_database_errors_total",
        "Polls that failed to reach the database.",
        Kind::Counter,
        registry.database_errors(),
    );
    out.single(
        "warrant_key_maintenance_failures_total",
        "Polls whose due key transitions failed (e.g. disk full, database locked).",
        Kind::Counter,
        registry.maintenance_failures(),
    );
    out.single(
        "warrant_argon2_verifications_total",
        "argon2 secret verifications run.",
        Kind::Counter,
        auth.verifications.load(Ordering::Relaxed),
    );
    out.family(
        "warrant_key_age_seconds",
        "Seconds since each published or signing key was published.",
        Kind::Gauge,
    );
    for key in registry.snapshot().key_records() {
        let set = key.set.to_string();
        out.sample(
            "warrant_key_age_seconds",
            &[
                ("kid", key.kid.as_str()),
                ("key_set", &set),
                ("state", key.state.as_str()),
            ],
            now.saturating_sub(key.published_at),
        );
    }
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(out.finish())
}
