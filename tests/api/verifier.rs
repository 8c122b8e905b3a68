//! Round trips through `warrant-verifier`: tokens minted by a running server,
//! keys from its JWKS endpoint, and the actix middleware in front of a route.

use actix_web::test::{TestRequest, call_service, init_service};
use actix_web::{App, HttpResponse, web};
use warrant_verifier::actix::BearerAuth;
use warrant_verifier::{Claims, ErrorKind, JwksCache, JwksConfig, Validation, Verifier};

use crate::helpers::{TestApp, spawn_app, verify_independently};

const AUDIENCE: &str = "https://api.example.com";

fn verifier_for(app: &TestApp) -> (JwksCache, Verifier) {
    let jwks = JwksCache::new(JwksConfig::new(format!(
        "{}/.well-known/jwks.json",
        app.address
    )))
    .unwrap();
    let verifier = Verifier::builder(Validation::new(app.issuer.clone(), [AUDIENCE]))
        .jwks(jwks.clone())
        .build()
        .unwrap();
    (jwks, verifier)
}

#[tokio::test]
async fn tokens_from_the_server_verify_with_the_verifier_library() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let response = app
        .token_with_basic(&client, "grant_type=client_credentials")
        .await;
    let token = response.access_token();
    let (jwks, verifier) = verifier_for(&app);

    let claims = verifier.verify(token).await.unwrap();
    assert_eq!(claims.issuer(), app.issuer);
    assert_eq!(claims.client_id(), client.id);
    assert_eq!(claims.subject(), client.id);
    assert_eq!(claims.audiences(), [AUDIENCE]);
    assert_eq!(claims.scopes(), ["read", "write"]);
    claims.require_all_scopes(&["read", "write"]).unwrap();
    // The same claims as an independent implementation reads.
    let independent = verify_independently(&app, token, AUDIENCE).await;
    assert_eq!(independent["jti"], claims.jti());
    assert_eq!(independent["exp"], claims.expires_at());

    // Keys came from one fetch, and a second token needs none.
    assert!(jwks.is_ready());
    let again = app
        .token_with_basic(&client, "grant_type=client_credentials&scope=read")
        .await;
    let claims = verifier.verify(again.access_token()).await.unwrap();
    assert_eq!(claims.scopes(), ["read"]);
    assert_eq!(jwks.fetch_count(), 1);
}

#[tokio::test]
async fn the_verifier_refuses_server_tokens_for_another_audience_or_issuer() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let token = app
        .token_with_basic(&client, "grant_type=client_credentials")
        .await
        .access_token()
        .to_owned();
    let (jwks, _) = verifier_for(&app);
    for (issuer, audience, kind) in [
        (
            app.issuer.clone(),
            "https://other.example.com",
            ErrorKind::InvalidAudience,
        ),
        (
            format!("{}/", app.issuer),
            AUDIENCE,
            ErrorKind::InvalidIssuer,
        ),
    ] {
        let verifier = Verifier::builder(Validation::new(issuer, [audience]))
            .jwks(jwks.clone())
            .build()
            .unwrap();
        assert_eq!(*verifier.verify(&token).await.unwrap_err().kind(), kind);
    }
}

#[tokio::test]
async fn the_actix_middleware_lets_a_server_token_through_and_refuses_others() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let token = app
        .token_with_basic(&client, "grant_type=client_credentials&scope=read")
        .await
        .access_token()
        .to_owned();
    let (_, verifier) = verifier_for(&app);
    let service = init_service(
        App::new()
            .service(
                web::resource("/read")
                    .wrap(BearerAuth::new(verifier.clone()).require_all_scopes(&["read"]))
                    .route(web::get().to(|claims: Claims| async move {
                        HttpResponse::Ok().body(claims.client_id().to_owned())
                    })),
            )
            .service(
                web::resource("/write")
                    .wrap(BearerAuth::new(verifier).require_all_scopes(&["write"]))
                    .route(web::get().to(HttpResponse::Ok)),
            ),
    )
    .await;
    let get = |path: &str, authorization: Option<String>| {
        let mut request = TestRequest::get().uri(path);
        if let Some(value) = authorization {
            request = request.insert_header(("Authorization", value));
        }
        request.to_request()
    };

    let response = call_service(&service, get("/read", Some(format!("Bearer {token}")))).await;
    assert_eq!(response.status(), 200);
    let body = actix_web::test::read_body(response).await;
    assert_eq!(body, client.id.as_bytes());

    let response = call_service(&service, get("/write", Some(format!("Bearer {token}")))).await;
    assert_eq!(response.status(), 403);
    let challenge = response
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );

    let response = call_service(&service, get("/read", None)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        r#"Bearer realm="api""#
    );

    let tampered = format!("{}x", &token[..token.len() - 1]);
    let response = call_service(&service, get("/read", Some(format!("Bearer {tampered}")))).await;
    assert_eq!(response.status(), 401);
}
