//! The JWKS cache against a real HTTP server on 127.0.0.1, with short
//! durations. Assertions are on behaviour (fetch counts, outcomes), with
//! generous time bounds, never on speed.

// Helpers outside #[test] functions unwrap too; a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use jsonwebtoken::Algorithm;
use serde_json::json;
use warrant_verifier::{ErrorKind, JwksCache, JwksConfig, Verifier};

const LONG: Duration = Duration::from_secs(10);

fn config(url: &str) -> JwksConfig {
    let mut config = JwksConfig::new(url);
    config.min_ttl = Duration::from_millis(100);
    config.max_ttl = Duration::from_secs(600);
    config.default_ttl = Duration::from_secs(600);
    config.retry_interval = Duration::from_millis(50);
    config.unknown_kid_cooldown = Duration::from_secs(600);
    config.fetch_timeout = Duration::from_secs(3);
    config
}

fn verifier(cache: &JwksCache) -> Verifier {
    Verifier::builder(validation())
        .jwks(cache.clone())
        .build()
        .unwrap()
}

fn serve(jwks: String) -> Mode {
    Mode::Serve(jwks, Some("public, max-age=600".into()))
}

/// An RS256-looking token with this `kid` (its signature is never checked:
/// no key has that kid).
fn token_with_kid(kid: &str) -> String {
    let header = json!({ "alg": "RS256", "typ": "at+jwt", "kid": kid }).to_string();
    format!(
        "{}.{}.{}",
        b64(header),
        b64(claims().to_string()),
        b64([1u8; 256])
    )
}

#[tokio::test]
async fn the_first_request_waits_for_the_first_fetch_then_nothing_is_fetched_per_request() {
    let server = JwksServer::start(serve(all_public_jwks())).await;
    server.set_delay(Duration::from_millis(200));
    let cache = JwksCache::new(config(&server.url)).unwrap();
    let verifier = verifier(&cache);
    let mut tasks = tokio::task::JoinSet::new();
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        for _ in 0..10 {
            let (verifier, token) = (verifier.clone(), sign(alg, &claims()));
            tasks.spawn(async move { verifier.verify(&token).await });
        }
    }
    while let Some(outcome) = tasks.join_next().await {
        outcome.unwrap().unwrap();
    }
    assert_eq!(
        server.hits(),
        1,
        "one fetch in flight, shared by every waiter"
    );
    assert_eq!(cache.fetch_count(), 1);
}

#[tokio::test]
async fn a_flood_of_random_kids_costs_one_refetch_per_cooldown() {
    let server = JwksServer::start(serve(all_public_jwks())).await;
    server.set_delay(Duration::from_millis(50));
    let mut config = config(&server.url);
    config.unknown_kid_cooldown = Duration::from_secs(1);
    let cache = JwksCache::new(config).unwrap();
    assert!(cache.wait_until_ready(LONG).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(server.hits(), 1);

    let verifier = verifier(&cache);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let verifier = verifier.clone();
        tasks.spawn(async move {
            verifier
                .verify(&token_with_kid(&format!("random-{i}")))
                .await
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        assert_eq!(
            *outcome.unwrap().unwrap_err().kind(),
            ErrorKind::UnknownKeyId
        );
    }
    // Every token joined the one refetch in flight, or was refused at once
    // within the cooldown that followed.
    assert_eq!(server.hits(), 2, "200 random kids, one refetch");
    assert_eq!(cache.fetch_count(), 2);
    // Good tokens are unaffected.
    verifier
        .verify(&sign(Algorithm::RS256, &claims()))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_then_the_cooldown_refuses_at_once() {
    let server = JwksServer::start(serve(jwks(&[&keys().rsa_jwk]))).await;
    let mut config = config(&server.url);
    config.unknown_kid_cooldown = Duration::from_millis(300);
    let cache = JwksCache::new(config).unwrap();
    assert!(cache.wait_until_ready(LONG).await);
    let verifier = verifier(&cache);
    tokio::time::sleep(Duration::from_millis(400)).await;

    // The issuer published a new key: the unknown kid triggers one refetch.
    server.set(serve(all_public_jwks()));
    verifier
        .verify(&sign(Algorithm::ES256, &claims()))
        .await
        .unwrap();
    assert_eq!(server.hits(), 2);

    // Within the cooldown: refused without a fetch, however many tries.
    for i in 0..50 {
        let error = verifier
            .verify(&token_with_kid(&format!("k{i}")))
            .await
            .unwrap_err();
        assert_eq!(*error.kind(), ErrorKind::UnknownKeyId);
    }
    assert_eq!(server.hits(), 2);
    assert_eq!(cache.fetch_count(), 2);

    // After the cooldown, one more.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let error = verifier.verify(&token_with_kid("late")).await.unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::UnknownKeyId);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn stale_keys_are_served_while_the_endpoint_is_down_for_a_bounded_time() {
    let server = JwksServer::start(Mode::Serve(all_public_jwks(), Some("max-age=0".into()))).await;
    let mut config = config(&server.url);
    config.max_stale = Duration::from_millis(1500);
    let cache = JwksCache::new(config).unwrap();
    let verifier = verifier(&cache);
    assert!(cache.wait_until_ready(LONG).await);

    server.set(Mode::Unavailable);
    // Past the 100 ms freshness (clamped from max-age=0), refreshes failing:
    assert!(eventually(LONG, || server.hits() >= 3).await);
    verifier
        .verify(&sign(Algorithm::RS256, &claims()))
        .await
        .unwrap();
    assert!(cache.is_ready());

    // Past freshness + max_stale: no usable key, a 503 not a 401.
    assert!(eventually(LONG, || !cache.is_ready()).await);
    let error = verifier
        .verify(&sign(Algorithm::RS256, &claims()))
        .await
        .unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::KeysUnavailable);
    assert!(error.is_unavailable());

    // The endpoint is back: the background retries pick it up.
    server.set(serve(all_public_jwks()));
    assert!(eventually(LONG, || cache.is_ready()).await);
    verifier
        .verify(&sign(Algorithm::RS256, &claims()))
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_key_types_and_algorithms_are_skipped_not_fatal() {
    let document = json!({ "keys": [
        { "kty": "oct", "kid": "hs", "k": b64(HS_SECRET) },
        { "kty": "EC", "kid": "p384", "crv": "P-384", "x": "AAAA", "y": "AAAA" },
        { "kty": "RSA", "kid": "rs384", "alg": "RS384", "n": keys().rsa_jwk["n"], "e": "AQAB" },
        { "kty": "RSA", "kid": "enc", "use": "enc", "n": keys().rsa_jwk["n"], "e": "AQAB" },
        { "kty": "PQC", "kid": "future", "pub": "AAAA" },
        keys().rsa_jwk,
    ]});
    let server = JwksServer::start(serve(document.to_string())).await;
    let cache = JwksCache::new(config(&server.url)).unwrap();
    assert!(cache.wait_until_ready(LONG).await);
    let held = cache.keys().unwrap();
    assert_eq!(held.kids().collect::<Vec<_>>(), ["rsa-1"]);
    assert_eq!(held.skipped(), 5);
    verifier(&cache)
        .verify(&sign(Algorithm::RS256, &claims()))
        .await
        .unwrap();
}

#[tokio::test]
async fn removed_keys_disappear_after_a_successful_refresh() {
    let server = JwksServer::start(serve(all_public_jwks())).await;
    let cache = JwksCache::new(config(&server.url)).unwrap();
    let verifier = verifier(&cache);
    verifier
        .verify(&sign(Algorithm::ES256, &claims()))
        .await
        .unwrap();

    server.set(serve(jwks(&[&keys().rsa_jwk])));
    cache.refresh().await.unwrap();
    let error = verifier
        .verify(&sign(Algorithm::ES256, &claims()))
        .await
        .unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::UnknownKeyId);
    verifier
        .verify(&sign(Algorithm::RS256, &claims()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failed_refresh_never_evicts_good_keys() {
    let server = JwksServer::start(serve(all_public_jwks())).await;
    let cache = JwksCache::new(config(&server.url)).unwrap();
    assert!(cache.wait_until_ready(LONG).await);
    for broken in [
        Mode::Serve("<html>maintenance</html>".into(), None),
        Mode::Serve(r#"{"nokeys":[]}"#.into(), None),
        // No usable key at all: a broken issuer, not a rotation.
        Mode::Serve(r#"{"keys":[]}"#.into(), None),
        Mode::Unavailable,
        Mode::Drop,
    ] {
        server.set(broken);
        assert_eq!(*cache.refresh().await.unwrap_err().kind(), ErrorKind::Fetch);
        assert_eq!(cache.keys().unwrap().len(), 3);
        verifier(&cache)
            .verify(&sign(Algorithm::EdDSA, &claims()))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn cache_control_max_age_sets_the_refresh_time() {
    let server = JwksServer::start(Mode::Serve(
        all_public_jwks(),
        Some("public, max-age=1".into()),
    ))
    .await;
    let cache = JwksCache::new(config(&server.url)).unwrap();
    assert!(cache.wait_until_ready(LONG).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.hits(), 1, "fresh for one second: no refetch yet");
    assert!(
        eventually(LONG, || server.hits() >= 2).await,
        "refetched after max-age"
    );

    // A max-age above max_ttl is clamped to it.
    let server =
        JwksServer::start(Mode::Serve(all_public_jwks(), Some("max-age=86400".into()))).await;
    let mut config = config(&server.url);
    config.max_ttl = Duration::from_millis(200);
    let cache = JwksCache::new(config).unwrap();
    assert!(cache.wait_until_ready(LONG).await);
    assert!(eventually(LONG, || server.hits() >= 3).await);
}

#[tokio::test]
async fn start_up_succeeds_with_the_endpoint_down_and_recovers() {
    let server = JwksServer::start(Mode::Drop).await;
    let cache = JwksCache::new(config(&server.url)).unwrap();
    let verifier = verifier(&cache);
    assert!(!cache.wait_until_ready(Duration::from_millis(300)).await);
    assert!(!verifier.is_ready());
    let error = verifier
        .verify(&sign(Algorithm::RS256, &claims()))
        .await
        .unwrap_err();
    assert_eq!(*error.kind(), ErrorKind::KeysUnavailable);

    server.set(serve(all_public_jwks()));
    assert!(cache.wait_until_ready(LONG).await);
    assert!(verifier.is_ready());
    verifier
        .verify(&sign(Algorithm::RS256, &claims()))
        .await
        .unwrap();
}

#[tokio::test]
async fn dropping_the_cache_stops_the_background_refresh() {
    let server = JwksServer::start(Mode::Serve(all_public_jwks(), Some("max-age=0".into()))).await;
    let cache = JwksCache::new(config(&server.url)).unwrap();
    assert!(cache.wait_until_ready(LONG).await);
    assert!(eventually(LONG, || server.hits() >= 2).await);
    drop(cache);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_drop = server.hits();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.hits(), after_drop);
}

#[tokio::test]
async fn a_fetcher_that_panics_does_not_wedge_the_cache() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use warrant_verifier::{BoxFuture, Fetch, FetchError, FetchedJwks};

    struct PanicsOnce(AtomicU32);
    impl Fetch for PanicsOnce {
        fn fetch<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<FetchedJwks, FetchError>> {
            let call = self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                assert!(call > 0, "first fetch fails the hard way");
                Ok(FetchedJwks {
                    body: all_public_jwks().into_bytes(),
                    cache_control: Some("max-age=600".into()),
                })
            })
        }
    }
    let cache = JwksCache::with_fetcher(
        config("https://issuer.example/jwks"),
        PanicsOnce(AtomicU32::new(0)),
    )
    .unwrap();
    // The first (background) fetch panics; later ones must still run.
    assert!(
        cache.wait_until_ready(LONG).await,
        "the cache never recovered from a panicking fetch"
    );
    let token = sign(Algorithm::RS256, &claims());
    verifier(&cache).verify(&token).await.unwrap();
}
