//! `GET /metrics`: the counters plus gauges read from the registry.

use std::fmt::Write as _;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

use crate::metrics::escape;
use crate::startup::AppState;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let registry = &state.registry;
    let now = crate::clock::unix_now();
    let mut gauges = String::with_capacity(2048);
    let mut gauge = |name: &str, help: &str, kind: &str, value: String| {
        let _ = write!(
            gauges,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    gauge(
        "warrant_ready",
        "1 when /readyz answers 200.",
        "gauge",
        u8::from(registry.is_ready()).to_string(),
    );
    gauge(
        "warrant_database_reachable",
        "1 when the last poll reached the database.",
        "gauge",
        u8::from(registry.database_reachable()).to_string(),
    );
    gauge(
        "warrant_database_seconds_since_reached",
        "Seconds since a poll last reached the database.",
        "gauge",
        registry.seconds_since_database(now).to_string(),
    );
    gauge(
        "warrant_database_errors_total",
        "Polls that failed to reach the database.",
        "counter",
        registry.database_errors().to_string(),
    );
    gauge(
        "warrant_key_maintenance_failures_total",
        "Polls whose due key transitions failed (e.g. disk full, database locked).",
        "counter",
        registry.maintenance_failures().to_string(),
    );
    gauge(
        "warrant_argon2_verifications_total",
        "argon2 secret verifications run.",
        "counter",
        state.authenticator.verifications().to_string(),
    );
    gauges.push_str("# HELP warrant_key_age_seconds Seconds since each published or signing key was published.\n");
    gauges.push_str("# TYPE warrant_key_age_seconds gauge\n");
    for key in registry.snapshot().key_records() {
        let _ = writeln!(
            gauges,
            "warrant_key_age_seconds{{kid=\"{}\",key_set=\"{}\",state=\"{}\"}} {}",
            escape(key.kid.as_str()),
            escape(&key.set.to_string()),
            key.state.as_str(),
            now.saturating_sub(key.published_at)
        );
    }
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(state.metrics.render(&gauges))
}
