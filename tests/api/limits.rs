//! Rate limits, quotas, metrics and request ids.

use std::time::Duration;

use crate::helpers::{basic, spawn_app_with_env};

const GRANT: &str = "grant_type=client_credentials";

#[tokio::test]
async fn guessing_a_clients_secret_is_rate_limited_but_its_owner_keeps_getting_tokens() {
    let app = spawn_app_with_env(&[
        ("WARRANT_LIMITS__FAILED_AUTH_PER_CLIENT_PER_MINUTE", "3"),
        ("WARRANT_LIMITS__FAILED_AUTH_PER_ADDRESS_PER_MINUTE", "0"),
    ])
    .await;
    let client = app.create_client().await;
    // The owner's secret is verified (and remembered) before the attack.
    assert_eq!(app.token_with_basic(&client, GRANT).await.status, 200);

    let wrong = basic(&client.id, "guess");
    let statuses: Vec<u16> = futures_util::future::join_all(
        (0..3).map(|_| async { app.post_token(GRANT, Some(&wrong)).await.status.as_u16() }),
    )
    .await;
    assert_eq!(statuses, vec![401, 401, 401]);
    let limited = app.post_token(GRANT, Some(&wrong)).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.error(), "temporarily_unavailable");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");

    // The owner is not locked out by the attacker's failures.
    for _ in 0..5 {
        assert_eq!(app.token_with_basic(&client, GRANT).await.status, 200);
    }
    // Another client is not affected either.
    let other = app.create_client().await;
    assert_eq!(app.token_with_basic(&other, GRANT).await.status, 200);
}

#[tokio::test]
async fn guessing_from_one_address_is_rate_limited_across_client_ids() {
    let app = spawn_app_with_env(&[
        ("WARRANT_LIMITS__FAILED_AUTH_PER_CLIENT_PER_MINUTE", "0"),
        ("WARRANT_LIMITS__FAILED_AUTH_PER_ADDRESS_PER_MINUTE", "4"),
    ])
    .await;
    for i in 0..4 {
        let response = app
            .post_token(GRANT, Some(&basic(&format!("random-{i}"), "x")))
            .await;
        assert_eq!(response.status, 401);
    }
    let limited = app.post_token(GRANT, Some(&basic("random-99", "x"))).await;
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
}

/// A wrong-secret request to the token endpoint with an X-Forwarded-For.
async fn guess_via(app: &crate::helpers::TestApp, i: usize, forwarded_for: &str) -> u16 {
    token_via(app, &format!("random-{i}"), "x", forwarded_for).await
}

/// A token request with Basic credentials and an X-Forwarded-For.
async fn token_via(
    app: &crate::helpers::TestApp,
    id: &str,
    secret: &str,
    forwarded_for: &str,
) -> u16 {
    let request = app
        .token_request(reqwest::Method::POST)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", basic(id, secret))
        .header("X-Forwarded-For", forwarded_for)
        .body(GRANT);
    let response = app
        .send(reqwest::Method::POST, "/oauth/token", request)
        .await;
    response.status.as_u16()
}

#[tokio::test]
async fn a_forged_x_forwarded_for_does_not_escape_the_address_limit() {
    let app = spawn_app_with_env(&[
        ("WARRANT_LIMITS__FAILED_AUTH_PER_CLIENT_PER_MINUTE", "0"),
        ("WARRANT_LIMITS__FAILED_AUTH_PER_ADDRESS_PER_MINUTE", "4"),
    ])
    .await;
    // No trusted proxies: a new "address" per guess changes nothing.
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(guess_via(&app, i, &format!("203.0.113.{i}")).await);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_address_is_limited_apart() {
    let app = spawn_app_with_env(&[
        ("WARRANT_LIMITS__FAILED_AUTH_PER_CLIENT_PER_MINUTE", "0"),
        ("WARRANT_LIMITS__FAILED_AUTH_PER_ADDRESS_PER_MINUTE", "2"),
        ("WARRANT_LIMITS__TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
    ])
    .await;
    // The proxy (this test, on loopback) appends the address it saw; what a
    // client wrote to the left of it is ignored.
    assert_eq!(guess_via(&app, 0, "203.0.113.7").await, 401);
    assert_eq!(guess_via(&app, 1, "198.51.100.1, 203.0.113.7").await, 401);
    assert_eq!(guess_via(&app, 2, "198.51.100.2, 203.0.113.7").await, 429);
    // Other clients behind the same proxy are not held back.
    assert_eq!(guess_via(&app, 3, "203.0.113.8").await, 401);
    // The addresses named in front of the proxy's entry got no failures.
    assert_eq!(guess_via(&app, 4, "198.51.100.1").await, 401);

    let mut env = app.env.clone();
    env.set("WARRANT_LIMITS__TRUSTED_PROXIES", "lb.internal");
    let bad = env.cli(&["client", "list"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("WARRANT_LIMITS__TRUSTED_PROXIES"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_client_quota_caps_tokens_per_minute() {
    let app = spawn_app_with_env(&[]).await;
    let client = app.create_client_with(&["--quota-per-minute", "3"]).await;
    for _ in 0..3 {
        assert_eq!(app.token_with_basic(&client, GRANT).await.status, 200);
    }
    let refused = app.token_with_basic(&client, GRANT).await;
    assert_eq!(refused.status, 429);
    assert!(
        refused.body["error_description"]
            .as_str()
            .unwrap()
            .contains("quota")
    );
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry));
    // Clients without a quota are not limited.
    let free = app.create_client().await;
    for _ in 0..10 {
        assert_eq!(app.token_with_basic(&free, GRANT).await.status, 200);
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app_with_env(&[]).await;
    let client = app.create_client().await;
    let response = app.token_with_basic(&client, GRANT).await;
    assert!(
        response
            .header("x-request-id")
            .is_some_and(|v| !v.is_empty())
    );

    let request = app
        .token_request(reqwest::Method::POST)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Request-Id", "trace-42")
        .body("grant_type=password");
    let response = app
        .send(reqwest::Method::POST, "/oauth/token", request)
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(response.header("x-request-id"), Some("trace-42"));
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let app = spawn_app_with_env(&[]).await;
    let client = app.create_client().await;
    app.token_with_basic(&client, GRANT).await;
    app.token_with_basic(&client, GRANT).await;
    app.post_token(GRANT, Some(&basic(&client.id, "wrong")))
        .await;
    app.post_token(GRANT, Some(&basic("nobody", "x"))).await;
    tokio::time::sleep(Duration::from_millis(10)).await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status, 200);
    let text = response.body.as_str().unwrap();
    for line in [
        "warrant_token_requests_total{outcome=\"issued\"} 2".to_owned(),
        "warrant_token_requests_total{outcome=\"invalid_client\"} 2".to_owned(),
        format!(
            "warrant_tokens_issued_total{{client_id=\"{}\",alg=\"RS256\"}} 2",
            client.id
        ),
        "warrant_auth_failures_total{reason=\"wrong_secret\"} 1".to_owned(),
        "warrant_auth_failures_total{reason=\"unknown_client\"} 1".to_owned(),
        "warrant_credential_cache_total{result=\"hit\"} 1".to_owned(),
        "warrant_credential_cache_total{result=\"miss\"} 3".to_owned(),
        "warrant_signing_seconds_count{alg=\"RS256\"} 2".to_owned(),
        "warrant_ready 1".to_owned(),
        "warrant_database_reachable 1".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("warrant_key_age_seconds{") && l.contains("state=\"current\""))
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("warrant_argon2_verifications_total "))
    );
}

#[tokio::test]
async fn a_cold_cache_client_keeps_getting_tokens_while_others_flood_its_id_with_wrong_secrets() {
    // Nothing is remembered: every request of the owner needs argon2, as
    // after a restart, on a new replica, or when its cache entry expired.
    let app = spawn_app_with_env(&[
        ("WARRANT_AUTH__CREDENTIAL_CACHE_SECS", "0"),
        ("WARRANT_LIMITS__FAILED_AUTH_PER_CLIENT_PER_MINUTE", "3"),
        ("WARRANT_LIMITS__FAILED_AUTH_PER_ADDRESS_PER_MINUTE", "0"),
        ("WARRANT_LIMITS__TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
    ])
    .await;
    let client = app.create_client().await;
    let mut flood = Vec::new();
    for round in 0..6 {
        for i in 0..4 {
            let attacker = format!("203.0.113.{}", (round * 4 + i) % 3 + 1);
            flood.push(token_via(&app, &client.id, "guess", &attacker).await);
        }
        let owner = token_via(&app, &client.id, &client.secret, "192.0.2.10").await;
        assert_eq!(owner, 200, "round {round}: the owner was held back");
    }
    // The flood itself was limited: 3 failures per attacking address.
    assert_eq!(flood.iter().filter(|s| **s == 401).count(), 9, "{flood:?}");
    assert_eq!(flood.iter().filter(|s| **s == 429).count(), 15, "{flood:?}");
}
