//! The HTTP surface. Each module owns one endpoint and its error type.

mod discovery;
mod health;
mod metrics;
mod token;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

pub use discovery::metadata_document;
pub use token::{TokenError, fuzz_parse_request};

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
    .service(read_only(
        "/.well-known/jwks.json",
        web::get().to(discovery::jwks),
    ))
    .service(read_only(
        "/.well-known/oauth-authorization-server",
        web::get().to(discovery::metadata),
    ))
    .service(read_only("/healthz", web::get().to(health::healthz)))
    .service(read_only("/readyz", web::get().to(health::readyz)))
    .service(read_only("/metrics", web::get().to(metrics::metrics)));
}

/// A GET resource that answers other methods with 405 and `Allow: GET`.
fn read_only(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(|| async {
            HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, "GET"))
                .finish()
        }))
}
