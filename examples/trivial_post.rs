//! The baseline bench/load.sh measures Warrant's HS256/ES256/EdDSA token
//! endpoint against: the cheapest actix-web POST handler that does what any
//! token endpoint must (read the form body, answer a small JSON document with
//! `Cache-Control: no-store`), on the same HttpServer settings as Warrant
//! (one worker per CPU, same runtime). No auth, no signing, no logging.
//!
//! `cargo run --release --example trivial_post -- 127.0.0.1:8099`

use actix_web::http::header;
use actix_web::{App, HttpResponse, HttpServer, web};

const BODY: &str =
    r#"{"access_token":"x","token_type":"Bearer","expires_in":900,"scope":"read write"}"#;

async fn token(body: web::Bytes) -> HttpResponse {
    // Touch the body the way a form parser would start to.
    let params = body.split(|&b| b == b'&').count();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header(("x-params", params))
        .content_type("application/json")
        .body(BODY)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    HttpServer::new(|| {
        App::new()
            .route("/oauth/token", web::post().to(token))
            .route("/readyz", web::get().to(HttpResponse::Ok))
    })
    .workers(workers)
    .bind(address)?
    .run()
    .await
}
