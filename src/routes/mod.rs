//! The HTTP surface. Each module owns one endpoint and its error type.

mod discovery;
mod health;
mod metrics;
mod token;

use actix_web::web;

pub use discovery::metadata_document;
pub use token::TokenError;

/// Every route we serve, as `(method, path)`; `openapi.yaml` must describe
/// each one (a test checks both this list and the live server against it).
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/oauth/token"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/token")
            .route(web::post().to(token::issue))
            .default_service(web::to(token::method_not_allowed)),
    )
    .route("/.well-known/jwks.json", web::get().to(discovery::jwks))
    .route(
        "/.well-known/oauth-authorization-server",
        web::get().to(discovery::metadata),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(metrics::metrics));
}
