//! A resource server protected by Warrant tokens.
//!
//! ```sh
//! WARRANT_ISSUER=http://127.0.0.1:8080 \
//! WARRANT_JWKS_URL=http://127.0.0.1:8080/.well-known/jwks.json \
//! WARRANT_AUDIENCE=https://orders.example.com \
//!   cargo run -p warrant-verifier --example resource_server --features actix
//! ```
//!
//! Routes: `GET /healthz` (open), `GET /readyz` (503 until the JWKS has been
//! fetched), `GET /whoami` (any valid token), `GET /orders` (a valid token
//! with the `orders:read` scope). Listens on `RESOURCE_LISTEN`, default
//! `127.0.0.1:8081`.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use warrant_verifier::actix::BearerAuth;
use warrant_verifier::{Claims, JwksCache, JwksConfig, Validation, Verifier};

fn required(name: &str) -> std::io::Result<String> {
    std::env::var(name)
        .map_err(|_| std::io::Error::other(format!("set {name} (see the example's documentation)")))
}

async fn whoami(claims: Claims) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "client_id": claims.client_id(),
        "scopes": claims.scopes(),
        "expires_at": claims.expires_at(),
    }))
}

async fn orders(claims: Claims) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "orders": [],
        "for": claims.client_id(),
    }))
}

async fn readyz(verifier: web::Data<Verifier>) -> HttpResponse {
    if verifier.is_ready() {
        HttpResponse::Ok().body("ready")
    } else {
        HttpResponse::ServiceUnavailable().body("no verification keys yet")
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let issuer = required("WARRANT_ISSUER")?;
    let jwks_url = std::env::var("WARRANT_JWKS_URL")
        .unwrap_or_else(|_| format!("{issuer}/.well-known/jwks.json"));
    let audience = required("WARRANT_AUDIENCE")?;
    let listen = std::env::var("RESOURCE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8081".into());

    // Built once, shared by every worker. Start-up does not need the issuer
    // to be up: /readyz reports when keys are there.
    let jwks = JwksCache::new(JwksConfig::new(jwks_url)).map_err(std::io::Error::other)?;
    let verifier = Verifier::builder(Validation::new(issuer, [audience]))
        .jwks(jwks.clone())
        .build()
        .map_err(std::io::Error::other)?;
    if !jwks.wait_until_ready(Duration::from_secs(2)).await {
        println!("JWKS not reachable yet; serving, and retrying in the background");
    }

    println!("listening on http://{listen}");
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(verifier.clone()))
            .route("/healthz", web::get().to(HttpResponse::Ok))
            .route("/readyz", web::get().to(readyz))
            .service(
                web::resource("/whoami")
                    .wrap(BearerAuth::new(verifier.clone()))
                    .route(web::get().to(whoami)),
            )
            .service(
                web::resource("/orders")
                    .wrap(BearerAuth::new(verifier.clone()).require_all_scopes(&["orders:read"]))
                    .route(web::get().to(orders)),
            )
    })
    .bind(listen)?
    .run()
    .await
}
