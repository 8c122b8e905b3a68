//! Successful token requests.

use base64::Engine as _;

use crate::helpers::{basic, spawn_app, verify_independently};

const GRANT: &str = "grant_type=client_credentials";

#[tokio::test]
async fn token_request_with_basic_auth_returns_a_token_a_third_party_verifies() {
    let app = spawn_app().await;
    let client = app.create_client().await;

    let response = app.token_with_basic(&client, GRANT).await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("pragma"), Some("no-cache"));
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["expires_in"], 900);
    assert_eq!(response.body["scope"], "read write");

    let claims =
        verify_independently(&app, response.access_token(), "https://api.example.com").await;
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(claims["sub"], client.id);
    assert_eq!(claims["client_id"], client.id);
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["scope"], "read write");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 900);
    assert!(
        claims.get("nbf").is_none(),
        "nbf = iat makes slightly slow verifiers reject"
    );
    let jti = claims["jti"].as_str().unwrap();
    assert!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jti)
            .unwrap()
            .len()
            >= 16
    );
}

#[tokio::test]
async fn token_request_with_client_secret_post_returns_a_token() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let body = format!(
        "{GRANT}&client_id={}&client_secret={}",
        client.id, client.secret
    );

    let response = app.post_token(&body, None).await;

    assert_eq!(response.status, 200, "{}", response.body);
    let claims =
        verify_independently(&app, response.access_token(), "https://api.example.com").await;
    assert_eq!(claims["client_id"], client.id);
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded_before_base64() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let encode_all = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let authorization = basic(&encode_all(&client.id), &encode_all(&client.secret));

    let response = app.post_token(GRANT, Some(&authorization)).await;

    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn basic_scheme_name_is_case_insensitive() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let authorization = basic(&client.id, &client.secret).replacen("Basic", "bASIC", 1);

    let response = app.post_token(GRANT, Some(&authorization)).await;

    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn requested_scopes_narrow_the_token_and_absent_scope_means_all() {
    let app = spawn_app().await;
    let client = app.create_client_with(&["--scope", "a b c"]).await;

    let narrowed = app
        .token_with_basic(&client, &format!("{GRANT}&scope=c+a"))
        .await;
    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    assert_eq!(narrowed.body["scope"], "c a");
    let claims =
        verify_independently(&app, narrowed.access_token(), "https://api.example.com").await;
    assert_eq!(claims["scope"], "c a");

    let all = app.token_with_basic(&client, GRANT).await;
    assert_eq!(all.body["scope"], "a b c");
}

#[tokio::test]
async fn resource_picks_one_of_the_registered_audiences() {
    let app = spawn_app().await;
    let client = app
        .create_client_with(&["--audience", "https://one.example", "--audience", "urn:two"])
        .await;

    let default = app.token_with_basic(&client, GRANT).await;
    let claims = verify_independently(&app, default.access_token(), "https://one.example").await;
    assert_eq!(claims["aud"], "https://one.example");

    let second = app
        .token_with_basic(&client, &format!("{GRANT}&resource=urn%3Atwo"))
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
    let claims = verify_independently(&app, second.access_token(), "urn:two").await;
    assert_eq!(claims["aud"], "urn:two");
}

#[tokio::test]
async fn client_ttl_sets_expires_in_and_exp() {
    let app = spawn_app().await;
    let client = app.create_client_with(&["--ttl", "60"]).await;

    let response = app.token_with_basic(&client, GRANT).await;

    assert_eq!(response.body["expires_in"], 60);
    let claims =
        verify_independently(&app, response.access_token(), "https://api.example.com").await;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
}

#[tokio::test]
async fn unknown_parameters_are_ignored_and_empty_ones_count_as_absent() {
    let app = spawn_app().await;
    let client = app.create_client().await;

    let response = app
        .token_with_basic(
            &client,
            &format!("{GRANT}&scope=&resource=&foo=bar&foo=baz"),
        )
        .await;

    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.body["scope"], "read write");
}

#[tokio::test]
async fn each_token_has_a_fresh_jti() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        let response = app.token_with_basic(&client, GRANT).await;
        let claims =
            verify_independently(&app, response.access_token(), "https://api.example.com").await;
        assert!(seen.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test]
async fn a_disabled_client_loses_its_remembered_credentials_and_gets_them_back_when_enabled() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    assert_eq!(app.token_with_basic(&client, GRANT).await.status, 200);

    app.cli_ok(&["client", "disable", &client.id]);
    app.refresh().await;
    let refused = app.token_with_basic(&client, GRANT).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.error(), "invalid_client");

    app.cli_ok(&["client", "enable", &client.id]);
    app.refresh().await;
    assert_eq!(app.token_with_basic(&client, GRANT).await.status, 200);
}

#[tokio::test]
async fn a_deleted_client_gets_no_more_tokens() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    assert_eq!(app.token_with_basic(&client, GRANT).await.status, 200);

    app.cli_ok(&["client", "delete", &client.id, "--confirm-delete"]);
    app.refresh().await;

    let refused = app.token_with_basic(&client, GRANT).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.error(), "invalid_client");
}

#[tokio::test]
async fn token_header_kid_is_the_published_rfc7638_thumbprint() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let token = app
        .token_with_basic(&client, GRANT)
        .await
        .access_token()
        .to_owned();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(app.get("/.well-known/jwks.json").await.body).unwrap();
    let jwk = jwks.find(&kid).expect("the token's kid is published");
    let thumbprint = jwk
        .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .unwrap();
    assert_eq!(kid, thumbprint);
}
