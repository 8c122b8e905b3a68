//! The actix-web middleware and extractor answer as RFC 6750 §3 says.

// Helpers outside #[test] functions unwrap too; a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{TestRequest, init_service, read_body};
use actix_web::{App, HttpResponse, web};
use common::*;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use warrant_verifier::actix::BearerAuth;
use warrant_verifier::{Claims, JwksCache, JwksConfig, Verifier};

async fn whoami(claims: Claims) -> HttpResponse {
    HttpResponse::Ok().body(claims.client_id().to_owned())
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    retry_after: Option<String>,
    body: String,
}

async fn call(verifier: Verifier, path: &str, authorization: &[&str]) -> Answer {
    let app = init_service(
        App::new()
            .app_data(verifier.clone())
            .service(
                web::resource("/orders")
                    .wrap(BearerAuth::new(verifier.clone()).require_all_scopes(&["orders:read"]))
                    .route(web::get().to(whoami)),
            )
            .service(
                web::resource("/either")
                    .wrap(
                        BearerAuth::new(verifier.clone())
                            .realm("orders")
                            .require_any_scope(&["admin", "read"]),
                    )
                    .route(web::get().to(whoami)),
            )
            .service(
                web::resource("/any")
                    .wrap(BearerAuth::new(verifier))
                    .route(web::get().to(whoami)),
            )
            // No middleware: the extractor verifies with the app-data Verifier.
            .route("/extracted", web::get().to(whoami)),
    )
    .await;
    let mut request = TestRequest::get().uri(path);
    for value in authorization {
        request = request.append_header(("Authorization", *value));
    }
    let response: ServiceResponse = app.call(request.to_request()).await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &actix_web::http::header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let (status, challenge, retry_after) = (
        response.status(),
        header("www-authenticate"),
        header("retry-after"),
    );
    let body = String::from_utf8(read_body(response).await.to_vec()).unwrap();
    Answer {
        status,
        challenge,
        retry_after,
        body,
    }
}

fn token_with_scope(scope: &str) -> String {
    let mut claims = claims();
    claims["scope"] = json!(scope);
    sign(Algorithm::RS256, &claims)
}

#[actix_web::test]
async fn a_good_token_with_the_scope_is_let_through_with_its_claims() {
    let token = token_with_scope("orders:read other");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let answer = call(fixed_verifier(), "/orders", &[&format!("{scheme} {token}")]).await;
        assert_eq!(answer.status, StatusCode::OK, "{scheme}: {}", answer.body);
        assert_eq!(answer.body, "client-1");
    }
    let answer = call(
        fixed_verifier(),
        "/extracted",
        &[&format!("Bearer {token}")],
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "client-1")
    );
    let answer = call(
        fixed_verifier(),
        "/either",
        &[&format!("Bearer {}", token_with_scope("read"))],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[actix_web::test]
async fn no_token_is_a_401_with_a_plain_challenge() {
    for (path, authorization) in [
        ("/orders", &[][..]),
        ("/any", &["Basic dXNlcjpwYXNz"][..]),
        ("/extracted", &[][..]),
    ] {
        let answer = call(fixed_verifier(), path, authorization).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            answer.challenge.as_deref(),
            Some(r#"Bearer realm="api""#),
            "{path}"
        );
    }
    let answer = call(fixed_verifier(), "/either", &[]).await;
    assert_eq!(
        answer.challenge.as_deref(),
        Some(r#"Bearer realm="orders""#)
    );
}

#[actix_web::test]
async fn a_malformed_authorization_header_is_a_400_invalid_request() {
    let token = token_with_scope("orders:read");
    for authorization in [
        &["Bearer"][..],
        &["Bearer a b"],
        &["Bearer {x}"],
        &[&format!("Bearer {token}"), &format!("Bearer {token}")],
    ] {
        let answer = call(fixed_verifier(), "/orders", authorization).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{authorization:?}");
        let challenge = answer.challenge.unwrap();
        assert!(
            challenge
                .starts_with(r#"Bearer realm="api", error="invalid_request", error_description=""#),
            "{challenge}"
        );
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
}

#[actix_web::test]
async fn an_invalid_token_is_a_401_invalid_token_with_a_description() {
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    expired["iat"] = json!(now() - 7200);
    let cases = [
        (sign(Algorithm::RS256, &expired), "the token has expired"),
        (
            "e30.e30.e30".to_owned(),
            "the header is not a valid JOSE header",
        ),
        (token_with_scope("orders:read").replace("ey", "eY"), ""),
    ];
    for (token, description) in cases {
        for path in ["/orders", "/extracted"] {
            let answer = call(fixed_verifier(), path, &[&format!("Bearer {token}")]).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path} {token}");
            let challenge = answer.challenge.unwrap();
            assert!(
                challenge.starts_with(
                    r#"Bearer realm="api", error="invalid_token", error_description=""#
                ),
                "{challenge}"
            );
            assert!(challenge.contains(description), "{challenge}");
            let body: Value = serde_json::from_str(&answer.body).unwrap();
            assert_eq!(body["error"], "invalid_token");
        }
    }
}

#[actix_web::test]
async fn a_token_without_the_scope_is_a_403_insufficient_scope() {
    let answer = call(
        fixed_verifier(),
        "/orders",
        &[&format!("Bearer {}", token_with_scope("read write"))],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.challenge.as_deref(),
        Some(
            r#"Bearer realm="api", error="insufficient_scope", error_description="insufficient scope", scope="orders:read""#
        )
    );
    let answer = call(
        fixed_verifier(),
        "/either",
        &[&format!("Bearer {}", token_with_scope("write"))],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.challenge.unwrap().ends_with(r#"scope="admin read""#));
}

#[actix_web::test]
async fn no_usable_key_is_a_503_never_a_500() {
    let server = JwksServer::start(Mode::Drop).await;
    let mut config = JwksConfig::new(&server.url);
    config.fetch_timeout = Duration::from_secs(2);
    let cache = JwksCache::new(config).unwrap();
    assert!(!cache.wait_until_ready(Duration::from_millis(200)).await);
    let verifier = Verifier::builder(validation()).jwks(cache).build().unwrap();
    for path in ["/orders", "/extracted"] {
        let answer = call(
            verifier.clone(),
            path,
            &[&format!("Bearer {}", token_with_scope("orders:read"))],
        )
        .await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(answer.retry_after.as_deref(), Some("5"));
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
}
