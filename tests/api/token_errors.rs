//! Every refusal of the token endpoint: RFC 6749 §5.2 code, status, headers.

use reqwest::Method;

use crate::helpers::{TestResponse, basic, spawn_app};

const GRANT: &str = "grant_type=client_credentials";

fn assert_oauth_error(response: &TestResponse, status: u16, error: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.error(), error, "{}", response.body);
    assert!(
        !response.body["error_description"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn missing_grant_type_is_invalid_request() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let response = app.token_with_basic(&client, "scope=read").await;
    assert_oauth_error(&response, 400, "invalid_request");
}

#[tokio::test]
async fn other_grant_types_are_unsupported_grant_type() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    for grant in [
        "password",
        "authorization_code",
        "refresh_token",
        "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
    ] {
        let response = app
            .token_with_basic(&client, &format!("grant_type={grant}"))
            .await;
        assert_oauth_error(&response, 400, "unsupported_grant_type");
    }
}

#[tokio::test]
async fn repeated_parameters_are_invalid_request() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    for body in [
        format!("{GRANT}&{GRANT}"),
        format!("{GRANT}&scope=read&scope=write"),
    ] {
        let response = app.token_with_basic(&client, &body).await;
        assert_oauth_error(&response, 400, "invalid_request");
    }
}

#[tokio::test]
async fn basic_and_client_secret_together_are_invalid_request() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let body = format!(
        "{GRANT}&client_id={}&client_secret={}",
        client.id, client.secret
    );
    let response = app.token_with_basic(&client, &body).await;
    assert_oauth_error(&response, 400, "invalid_request");
}

#[tokio::test]
async fn basic_and_a_different_body_client_id_are_invalid_request() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let response = app
        .token_with_basic(&client, &format!("{GRANT}&client_id=someone-else"))
        .await;
    assert_oauth_error(&response, 400, "invalid_request");
}

#[tokio::test]
async fn malformed_basic_credentials_are_invalid_request() {
    let app = spawn_app().await;
    for authorization in ["Basic", "Basic not-base64!", "Basic bm9jb2xvbg=="] {
        let response = app.post_token(GRANT, Some(authorization)).await;
        assert_oauth_error(&response, 400, "invalid_request");
    }
}

#[tokio::test]
async fn no_client_credentials_is_invalid_client_with_a_basic_challenge() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    for body in [GRANT.to_owned(), format!("{GRANT}&client_id={}", client.id)] {
        let response = app.post_token(&body, None).await;
        assert_oauth_error(&response, 401, "invalid_client");
        assert!(
            response
                .header("www-authenticate")
                .unwrap()
                .starts_with("Basic realm=")
        );
    }
}

#[tokio::test]
async fn unknown_client_is_invalid_client() {
    let app = spawn_app().await;
    let response = app
        .post_token(GRANT, Some(&basic("nobody", "secret")))
        .await;
    assert_oauth_error(&response, 401, "invalid_client");
    assert!(
        response
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
}

#[tokio::test]
async fn wrong_secret_with_basic_is_invalid_client_with_a_challenge() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let response = app
        .post_token(GRANT, Some(&basic(&client.id, "wrong")))
        .await;
    assert_oauth_error(&response, 401, "invalid_client");
    assert!(
        response
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
}

#[tokio::test]
async fn wrong_secret_with_client_secret_post_is_invalid_client_with_a_challenge() {
    // RFC 9110 §15.5.2: every 401 carries WWW-Authenticate, whichever
    // method the client used.
    let app = spawn_app().await;
    let client = app.create_client().await;
    let body = format!("{GRANT}&client_id={}&client_secret=wrong", client.id);
    let response = app.post_token(&body, None).await;
    assert_oauth_error(&response, 401, "invalid_client");
    assert!(
        response
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
}

#[tokio::test]
async fn unknown_client_and_wrong_secret_look_the_same() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let unknown = app
        .post_token(GRANT, Some(&basic("nobody", &client.secret)))
        .await;
    let wrong = app
        .post_token(GRANT, Some(&basic(&client.id, "wrong")))
        .await;
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(unknown.status, wrong.status);
}

#[tokio::test]
async fn other_authorization_schemes_are_invalid_client() {
    let app = spawn_app().await;
    let response = app.post_token(GRANT, Some("Bearer abc.def.ghi")).await;
    assert_oauth_error(&response, 401, "invalid_client");
}

#[tokio::test]
async fn a_disabled_client_is_invalid_client() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    app.cli_ok(&["client", "disable", &client.id]);
    app.refresh().await;
    let response = app.token_with_basic(&client, GRANT).await;
    assert_oauth_error(&response, 401, "invalid_client");
}

#[tokio::test]
async fn a_client_without_the_grant_is_unauthorized_client() {
    let app = spawn_app().await;
    let client = app.create_client_with(&["--grant-types", ""]).await;
    let response = app.token_with_basic(&client, GRANT).await;
    assert_oauth_error(&response, 400, "unauthorized_client");
}

#[tokio::test]
async fn unregistered_or_malformed_scopes_are_invalid_scope() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    for scope in [
        "admin",
        "read+admin",
        "read++write",
        "%22quoted%22",
        "+read",
    ] {
        let response = app
            .token_with_basic(&client, &format!("{GRANT}&scope={scope}"))
            .await;
        assert_oauth_error(&response, 400, "invalid_scope");
    }
}

#[tokio::test]
async fn unregistered_malformed_or_several_resources_are_invalid_target() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    for resource in [
        "resource=https%3A%2F%2Fother.example.com",
        "resource=not-a-uri",
        "resource=https%3A%2F%2Fapi.example.com%23frag",
        "resource=https%3A%2F%2Fapi.example.com&resource=urn%3Ax",
    ] {
        let response = app
            .token_with_basic(&client, &format!("{GRANT}&{resource}"))
            .await;
        assert_oauth_error(&response, 400, "invalid_target");
    }
}

#[tokio::test]
async fn methods_other_than_post_are_405_with_an_oauth_body() {
    let app = spawn_app().await;
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let request = app.token_request(method.clone());
        let response = app.send(method, "/oauth/token", request).await;
        assert_eq!(response.status, 405);
        assert_eq!(response.header("allow"), Some("POST"));
        assert_eq!(response.error(), "invalid_request");
    }
}

#[tokio::test]
async fn a_body_that_is_not_form_encoded_is_invalid_request() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    for content_type in [Some("application/json"), Some("text/plain"), None] {
        let mut request = app
            .token_request(Method::POST)
            .header("Authorization", basic(&client.id, &client.secret))
            .body(r#"{"grant_type":"client_credentials"}"#);
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = app.send(Method::POST, "/oauth/token", request).await;
        assert_oauth_error(&response, 400, "invalid_request");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let body = format!("{GRANT}&padding={}", "x".repeat(5000));
    let response = app.token_with_basic(&client, &body).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.error(), "invalid_request");

    // Chunked, with no Content-Length to refuse it early.
    let stream = futures_stream(body.into_bytes());
    let request = app
        .token_request(Method::POST)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", basic(&client.id, &client.secret))
        .body(reqwest::Body::wrap_stream(stream));
    let response = app.send(Method::POST, "/oauth/token", request).await;
    assert_eq!(response.status, 413);
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(1024).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}

#[tokio::test]
async fn garbage_bodies_and_headers_never_produce_a_500() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let authorization = basic(&client.id, &client.secret);
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, 0x01],
        b"%%%%&&&===".to_vec(),
        b"grant_type=%ZZ".to_vec(),
        b"grant_type=client_credentials&scope=%ff%fe".to_vec(),
        b"grant_type=client_credentials&resource=%00".to_vec(),
        b"=&=&=".to_vec(),
        (0..100)
            .flat_map(|i| format!("k{i}=v&").into_bytes())
            .collect(),
    ];
    for body in bodies {
        let request = app
            .token_request(Method::POST)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Authorization", authorization.clone())
            .body(body.clone());
        let response = app.send(Method::POST, "/oauth/token", request).await;
        assert!(
            response.status.is_client_error(),
            "{:?} -> {} {}",
            String::from_utf8_lossy(&body),
            response.status,
            response.body
        );
    }
    for authorization in [
        "Basic \u{0}",
        "Basic =====",
        "Basic Og==",
        "basic",
        "Digest x",
    ] {
        let Ok(value) = reqwest::header::HeaderValue::from_str(authorization) else {
            continue;
        };
        let request = app
            .token_request(Method::POST)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Authorization", value)
            .body(GRANT);
        let response = app.send(Method::POST, "/oauth/token", request).await;
        assert!(
            response.status.is_client_error(),
            "{authorization:?} -> {}",
            response.status
        );
    }
}

#[tokio::test]
async fn too_many_secret_checks_at_once_are_503_with_retry_after() {
    let app = crate::helpers::spawn_app_with_env(&[
        ("WARRANT_AUTH__ARGON2_CONCURRENCY", "1"),
        ("WARRANT_AUTH__ARGON2_QUEUE_TIMEOUT_MS", "0"),
    ])
    .await;

    let attempts = (0..16).map(|i| {
        let authorization = basic(&format!("nobody-{i}"), "wrong");
        let app = &app;
        async move { app.post_token(GRANT, Some(&authorization)).await }
    });
    let responses = futures_util::future::join_all(attempts).await;

    let busy: Vec<&TestResponse> = responses.iter().filter(|r| r.status == 503).collect();
    assert!(!busy.is_empty(), "no request was refused as busy");
    for response in &busy {
        assert_eq!(response.error(), "temporarily_unavailable");
        assert_eq!(response.header("retry-after"), Some("1"));
    }
    assert!(responses.iter().all(|r| r.status == 503 || r.status == 401));
}
