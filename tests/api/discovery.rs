//! JWKS and RFC 8414 metadata.

use crate::helpers::spawn_app;

#[tokio::test]
async fn jwks_publishes_the_current_and_next_keys_with_a_real_max_age() {
    let app = spawn_app().await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("cache-control"),
        Some("public, max-age=300")
    );
    let keys = response.body["keys"].as_array().unwrap();
    // First start: the key that signs, and the next one, published ahead.
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        assert!(
            key.get("d").is_none() && key.get("p").is_none(),
            "private parts published"
        );
    }
    let signing = app
        .registry
        .snapshot()
        .default_signer()
        .unwrap()
        .kid()
        .to_owned();
    assert!(keys.iter().any(|k| k["kid"] == signing.as_str()));
}

#[tokio::test]
async fn metadata_names_the_issuer_and_endpoints_that_exist() {
    let app = spawn_app().await;
    let response = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(response.status, 200);
    let metadata = response.body;
    assert_eq!(metadata["issuer"], app.issuer);
    assert_eq!(
        metadata["token_endpoint"],
        format!("{}/oauth/token", app.issuer)
    );
    assert_eq!(
        metadata["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.issuer)
    );
    assert_eq!(
        metadata["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    // The advertised JWKS is the one served.
    let jwks_path = metadata["jwks_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches(&app.issuer);
    assert_eq!(app.get(jwks_path).await.status, 200);
}

#[tokio::test]
async fn a_configured_issuer_is_used_in_metadata_and_tokens() {
    let app =
        crate::helpers::spawn_app_with_env(&[("WARRANT_ISSUER", "https://auth.example.com")]).await;
    assert_eq!(app.issuer, "https://auth.example.com");
    let metadata = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .body;
    assert_eq!(metadata["issuer"], "https://auth.example.com");
    let client = app.create_client().await;
    let token = app
        .token_with_basic(&client, "grant_type=client_credentials")
        .await;
    let claims =
        crate::helpers::verify_independently(&app, token.access_token(), "https://api.example.com")
            .await;
    assert_eq!(claims["iss"], "https://auth.example.com");
}
