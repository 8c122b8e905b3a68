use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};

use super::AppState;

/// The process is up and answering.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "status": "ok" }))
}

/// Ready to issue: the database answered the last poll and a key can sign.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let registry = &state.registry;
    if registry.is_ready() {
        return HttpResponse::Ok()
            .insert_header((CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "status": "ready" }));
    }
    let mut reasons = Vec::new();
    if !registry.database_reachable() {
        reasons.push("database unreachable");
    }
    if registry.snapshot().default_signer().is_none() {
        reasons.push("no signing key");
    }
    HttpResponse::ServiceUnavailable()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "status": "not_ready", "reasons": reasons }))
}
