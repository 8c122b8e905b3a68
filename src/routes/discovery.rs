//! Public documents verifiers fetch: the JWK Set and RFC 8414 metadata.
//! Both are serialized once and served from memory.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

use super::AppState;

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/jwk-set+json"))
        .insert_header((CACHE_CONTROL, state.public_cache_control.clone()))
        .body(state.registry.snapshot().jwks())
}

pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header((CACHE_CONTROL, state.public_cache_control.clone()))
        .body(state.metadata.clone())
}

/// RFC 8414 §2. No authorization endpoint exists (the client-credentials
/// grant does not use one), so `response_types_supported` is empty.
pub fn metadata_document(issuer: &str) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
    })
}
