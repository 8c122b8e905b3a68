//! The HTTP surface. Each module owns one endpoint and its error type; the
//! state they share is built in `state`.

mod discovery;
mod health;
mod metrics;
mod state;
mod token;

use actix_web::http::header;
use actix_web::{FromRequest, Handler, HttpResponse, Responder, web};

pub use discovery::metadata_document;
pub use state::AppState;
pub use token::{TokenError, fuzz_parse_request};

/// Every route we serve, as `(method, path)`; `openapi.yaml` must describe
/// each one (a test checks both this list and the live server against it).
/// Each GET also answers HEAD (RFC 9110 §9.3.2).
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
    .service(read_only("/.well-known/jwks.json", discovery::jwks))
    .service(read_only(
        "/.well-known/oauth-authorization-server",
        discovery::metadata,
    ))
    .service(read_only("/healthz", health::healthz))
    .service(read_only("/readyz", health::readyz))
    .service(read_only("/metrics", metrics::metrics));
}

/// A resource that answers GET and HEAD (the same answer without its body:
/// actix sends the headers, Content-Length included, and no body) and other
/// methods with 405 and `Allow: GET, HEAD`.
fn read_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|| async {
            HttpResponse::MethodNotAllowed()
                .insert_header((header::ALLOW, "GET, HEAD"))
                .finish()
        }))
}
