//! The key lifecycle: states, the pre-publication invariant, retirement,
//! HS256 audiences, restarts, crashes and rotation under load.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;
use warrant::domain::KeySetName;

use crate::helpers::{TestApp, decode_with, spawn_app, spawn_app_with_env, verify_independently};

const GRANT: &str = "grant_type=client_credentials";

fn keys(app: &TestApp, all: bool) -> Vec<Value> {
    let mut args = vec!["keys", "list", "--json"];
    if all {
        args.push("--all");
    }
    serde_json::from_str::<Value>(&app.cli_ok(&args))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn kid_in(keys: &[Value], set: &str, state: &str) -> Option<String> {
    keys.iter()
        .find(|k| k["key_set"] == set && k["state"] == state)
        .map(|k| k["kid"].as_str().unwrap().to_owned())
}

fn count_in(keys: &[Value], set: &str, state: &str) -> usize {
    keys.iter()
        .filter(|k| k["key_set"] == set && k["state"] == state)
        .count()
}

async fn jwks_kids(app: &TestApp) -> HashSet<String> {
    let jwks = app.get("/.well-known/jwks.json").await.body;
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn token_kid(app: &TestApp, authorization: &str, body: &str) -> String {
    let response = app.post_token(body, Some(authorization)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    jsonwebtoken::decode_header(response.access_token())
        .unwrap()
        .kid
        .unwrap()
}

/// Waits (bounded) until `check` holds, refreshing nothing by hand: the
/// server's own polling and maintenance must make it true.
async fn eventually<F: Fn() -> bool>(what: &str, limit: Duration, check: F) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn first_start_has_a_current_and_a_published_next_key() {
    let app = spawn_app().await;
    let keys = keys(&app, false);
    assert_eq!(keys.len(), 2);
    let current = kid_in(&keys, "RS256", "current").unwrap();
    let next = kid_in(&keys, "RS256", "next").unwrap();
    assert_eq!(
        jwks_kids(&app).await,
        HashSet::from([current.clone(), next])
    );
    let client = app.create_client().await;
    let authorization = crate::helpers::basic(&client.id, &client.secret);
    assert_eq!(token_kid(&app, &authorization, GRANT).await, current);
}

#[tokio::test]
async fn rotate_refuses_while_the_next_key_is_too_fresh_and_says_when() {
    let app = spawn_app().await;
    let before = keys(&app, false);
    let output = app.cli(&["keys", "rotate"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("may sign only from"), "{stderr}");
    assert!(
        stderr.contains("--schedule") && stderr.contains("--force-unsafe-promotion"),
        "{stderr}"
    );
    assert_eq!(keys(&app, false), before, "a refused rotation changed keys");
}

#[tokio::test]
async fn a_safe_rotation_promotes_next_demotes_current_and_publishes_a_new_next() {
    let app = spawn_app_with_env(&[
        ("WARRANT_JWKS_MAX_AGE_SECS", "1"),
        ("WARRANT_KEYS__PUBLICATION_MARGIN_SECS", "0"),
    ])
    .await;
    let client = app.create_client().await;
    let authorization = crate::helpers::basic(&client.id, &client.secret);
    let before = keys(&app, false);
    let (old_current, old_next) = (
        kid_in(&before, "RS256", "current").unwrap(),
        kid_in(&before, "RS256", "next").unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let out = app.cli_ok(&["keys", "rotate"]);
    assert!(out.contains(&format!("{old_next} now signs")), "{out}");
    let after = keys(&app, false);
    assert_eq!(kid_in(&after, "RS256", "current").as_ref(), Some(&old_next));
    assert_eq!(
        kid_in(&after, "RS256", "previous").as_ref(),
        Some(&old_current)
    );
    let new_next = kid_in(&after, "RS256", "next").unwrap();
    assert!(new_next != old_current && new_next != old_next);
    let previous = after
        .iter()
        .find(|k| k["kid"] == old_current.as_str())
        .unwrap();
    assert!(previous["retire_after"].is_string());

    app.refresh().await;
    assert_eq!(token_kid(&app, &authorization, GRANT).await, old_next);
    assert_eq!(
        jwks_kids(&app).await,
        HashSet::from([old_current, old_next, new_next])
    );
}

#[tokio::test]
async fn a_scheduled_rotation_is_done_by_the_server_once_safe_and_not_before() {
    // Safe 6 s after publication: long enough that the CLI, however slow a
    // loaded machine makes it, asks before the key is safe.
    let app = spawn_app_with_env(&[
        ("WARRANT_JWKS_MAX_AGE_SECS", "2"),
        ("WARRANT_KEYS__PUBLICATION_MARGIN_SECS", "4"),
    ])
    .await;
    let next = kid_in(&keys(&app, false), "RS256", "next").unwrap();
    let out = app.cli_ok(&["keys", "rotate", "--schedule"]);
    assert!(out.contains("Scheduled"), "{out}");

    let registry = app.registry.clone();
    eventually("scheduled promotion", Duration::from_secs(15), || {
        registry
            .snapshot()
            .default_signer()
            .is_some_and(|k| k.kid() == next)
    })
    .await;
    let promoted = keys(&app, false)
        .into_iter()
        .find(|k| k["kid"] == next.as_str())
        .unwrap();
    let published = humantime::parse_rfc3339(promoted["published_at"].as_str().unwrap()).unwrap();
    let activated = humantime::parse_rfc3339(promoted["activated_at"].as_str().unwrap()).unwrap();
    assert!(activated.duration_since(published).unwrap() >= Duration::from_secs(6));
}

#[tokio::test]
async fn a_forced_rotation_promotes_at_once_with_a_warning() {
    let app = spawn_app().await;
    let next = kid_in(&keys(&app, false), "RS256", "next").unwrap();
    let out = app.cli_ok(&["keys", "rotate", "--force-unsafe-promotion"]);
    assert!(out.contains("warning: forced promotion"), "{out}");
    assert_eq!(kid_in(&keys(&app, false), "RS256", "current"), Some(next));
}

#[tokio::test]
async fn previous_keys_retire_on_their_own_once_their_tokens_expired() {
    let app = spawn_app_with_env(&[
        ("WARRANT_TOKEN__MAX_TTL_SECS", "3"),
        ("WARRANT_TOKEN__DEFAULT_TTL_SECS", "1"),
        ("WARRANT_KEYS__RETIRE_LEEWAY_SECS", "0"),
    ])
    .await;
    let old = kid_in(&keys(&app, false), "RS256", "current").unwrap();
    app.cli_ok(&["keys", "rotate", "--force-unsafe-promotion"]);
    app.refresh().await;
    assert!(
        jwks_kids(&app).await.contains(&old),
        "previous key unpublished at once"
    );

    let registry = app.registry.clone();
    let old_kid = old.clone();
    eventually("automatic retirement", Duration::from_secs(8), || {
        registry
            .snapshot()
            .key_records()
            .iter()
            .all(|k| k.kid != old_kid)
    })
    .await;
    assert!(!jwks_kids(&app).await.contains(&old));
    let all = keys(&app, true);
    assert_eq!(kid_in(&all, "RS256", "retired"), Some(old.clone()));
    let store = warrant::storage::connect(&app.database_url())
        .await
        .unwrap();
    let retired = store
        .list_keys(true)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.kid == old)
        .unwrap();
    assert!(
        retired.sealed_private_key.is_none(),
        "a retired key kept its private half"
    );
}

#[tokio::test]
async fn retire_refuses_the_current_key_and_live_previous_keys_unless_forced() {
    let app = spawn_app().await;
    let current = kid_in(&keys(&app, false), "RS256", "current").unwrap();
    let refused = app.cli(&["keys", "retire", &current]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("rotate first"));

    app.cli_ok(&["keys", "rotate", "--force-unsafe-promotion"]);
    let refused = app.cli(&["keys", "retire", &current]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force-while-tokens-live"));

    app.cli_ok(&["keys", "retire", &current, "--force-while-tokens-live"]);
    app.refresh().await;
    assert!(!jwks_kids(&app).await.contains(&current));

    // A next key has signed nothing: it retires without force.
    let next = kid_in(&keys(&app, false), "RS256", "next").unwrap();
    app.cli_ok(&["keys", "retire", &next]);
    assert_eq!(kid_in(&keys(&app, false), "RS256", "next"), None);
}

#[tokio::test]
async fn a_restart_keeps_every_key_in_its_state() {
    let app = spawn_app().await;
    app.cli_ok(&["keys", "rotate", "--force-unsafe-promotion"]);
    app.refresh().await;
    let before = keys(&app, false);
    let served = jwks_kids(&app).await;
    assert_eq!(served.len(), 3);

    let restarted = warrant::startup::Application::build(app.env.settings())
        .await
        .unwrap();
    let snapshot = restarted.registry().snapshot();
    let kids: HashSet<String> = snapshot
        .key_records()
        .iter()
        .map(|k| k.kid.to_string())
        .collect();
    assert_eq!(kids, served);
    assert_eq!(
        snapshot.default_signer().map(|k| k.kid().to_owned()),
        kid_in(&before, "RS256", "current")
    );
}

#[cfg(unix)]
#[tokio::test]
async fn killing_a_rotation_midway_never_leaves_zero_or_two_current_keys() {
    let app = spawn_app().await;
    for attempt in 0..12u64 {
        let mut child = app
            .env
            .command(&["keys", "rotate", "--force-unsafe-promotion"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over startup, key generation and the transaction.
        std::thread::sleep(Duration::from_millis(attempt * 23 % 260));
        let _ = child.kill();
        let _ = child.wait();
        let keys = keys(&app, false);
        assert_eq!(
            count_in(&keys, "RS256", "current"),
            1,
            "attempt {attempt}: {keys:#?}"
        );
        assert!(count_in(&keys, "RS256", "next") <= 1, "attempt {attempt}");
    }
    // And the server still starts on what is left.
    let restarted = warrant::startup::Application::build(app.env.settings())
        .await
        .unwrap();
    assert!(restarted.registry().snapshot().default_signer().is_some());
}

/// Quick key publication for tests that wait for the server to promote.
const FAST_KEYS: &[(&str, &str)] = &[
    ("WARRANT_JWKS_MAX_AGE_SECS", "1"),
    ("WARRANT_KEYS__PUBLICATION_MARGIN_SECS", "0"),
];

#[tokio::test]
async fn es256_and_eddsa_clients_get_tokens_that_a_third_party_verifies() {
    let app = spawn_app_with_env(FAST_KEYS).await;
    for alg in ["ES256", "EdDSA"] {
        let out = app.cli_ok(&["keys", "generate", "--alg", alg]);
        assert!(out.contains("Published next key"), "{out}");
    }
    // The first key of a new set signs once it has been published long enough.
    let registry = app.registry.clone();
    eventually("new key sets promoted", Duration::from_secs(5), || {
        let snapshot = registry.snapshot();
        let current = |set: &str| {
            snapshot
                .key_records()
                .iter()
                .any(|k| k.set == KeySetName::parse(set).unwrap() && k.state.as_str() == "current")
        };
        current("ES256") && current("EdDSA")
    })
    .await;

    for (alg, kty) in [("ES256", "EC"), ("EdDSA", "OKP")] {
        let client = app.create_client_with(&["--alg", alg]).await;
        let response = app.token_with_basic(&client, GRANT).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let header = jsonwebtoken::decode_header(response.access_token()).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        let claims =
            verify_independently(&app, response.access_token(), "https://api.example.com").await;
        assert_eq!(claims["client_id"], client.id);
        let jwks = app.get("/.well-known/jwks.json").await.body;
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == header.kid.clone().unwrap().as_str())
            .unwrap();
        assert_eq!(jwk["kty"], kty);
        assert_eq!(jwk["alg"], alg);
    }
}

#[tokio::test]
async fn a_client_whose_algorithm_has_no_key_yet_is_told_to_retry() {
    let app = spawn_app().await;
    let client = app.create_client_with(&["--alg", "ES256"]).await;
    let response = app.token_with_basic(&client, GRANT).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.error(), "temporarily_unavailable");
}

#[tokio::test]
async fn hs256_audience_tokens_verify_with_the_exported_secret_and_never_with_the_jwks() {
    let app = spawn_app_with_env(FAST_KEYS).await;
    let audience = "urn:hs:orders";
    let client = app
        .create_client_with(&[
            "--audience",
            "https://api.example.com",
            "--audience",
            audience,
        ])
        .await;
    app.cli_ok(&["keys", "generate", "--alg", "HS256", "--audience", audience]);

    // Not exported: no resource server can know it, so it cannot be scheduled.
    let refused = app.cli(&["keys", "rotate", "--audience", audience, "--schedule"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("export-secret"));

    let exported: Value = serde_json::from_str(&app.cli_ok(&[
        "keys",
        "export-secret",
        "--audience",
        audience,
        "--json",
    ]))
    .unwrap();
    let secrets: HashMap<String, String> = exported["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["secret"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(secrets.len(), 1);

    let registry = app.registry.clone();
    eventually(
        "HS256 key promoted after export",
        Duration::from_secs(5),
        || {
            registry.snapshot().key_records().iter().any(|k| {
                k.set == KeySetName::parse(&format!("HS256 {audience}")).unwrap()
                    && k.state.as_str() == "current"
            })
        },
    )
    .await;

    let body = format!("{GRANT}&resource={}", audience.replace(':', "%3A"));
    let response = app.token_with_basic(&client, &body).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let token = response.access_token();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    let kid = header.kid.unwrap();
    let secret = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &secrets[&kid],
    )
    .unwrap();
    let claims = decode_with(
        token,
        &DecodingKey::from_secret(&secret).unwrap(),
        &app.issuer,
        audience,
    );
    assert_eq!(claims["aud"], audience);

    // Nothing in the JWKS can verify it: no secret, no such kid.
    let jwks: JwkSet =
        serde_json::from_value(app.get("/.well-known/jwks.json").await.body).unwrap();
    assert!(jwks.find(&kid).is_none());
    // The raw text holds random base64url (moduli, kids): only a string as
    // long as the secret can be looked for in it; the rest is read parsed.
    let published = app.get("/.well-known/jwks.json").await.body;
    for key in published["keys"].as_array().unwrap() {
        assert_ne!(key["kty"], "oct", "{key}");
        assert!(key.get("k").is_none(), "{key}");
    }
    assert!(!published.to_string().contains(&secrets[&kid]));

    // Other audiences of the same client keep their asymmetric tokens.
    let other = app.token_with_basic(&client, GRANT).await;
    assert_eq!(
        jsonwebtoken::decode_header(other.access_token())
            .unwrap()
            .alg,
        jsonwebtoken::Algorithm::RS256
    );
}

#[tokio::test]
async fn rewrap_moves_keys_to_a_new_master_key_without_stopping_the_server() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    let authorization = crate::helpers::basic(&client.id, &client.secret);
    let new_key = app.env.dir().join("keys/master.key.new");
    let out = app.cli_ok(&[
        "keys",
        "rewrap",
        "--new-master-key-file",
        new_key.to_str().unwrap(),
    ]);
    assert!(out.contains("Re-sealed 2 keys"), "{out}");
    std::fs::rename(&new_key, app.master_key_path()).unwrap();

    // The running server keeps signing, and opens keys sealed under the new
    // master key once it meets them.
    app.refresh().await;
    token_kid(&app, &authorization, GRANT).await;
    app.cli_ok(&["keys", "rotate", "--force-unsafe-promotion"]);
    app.refresh().await;
    let current = kid_in(&keys(&app, false), "RS256", "current").unwrap();
    assert_eq!(token_kid(&app, &authorization, GRANT).await, current);
    app.refresh().await;
    let next = kid_in(&keys(&app, false), "RS256", "next").unwrap();
    assert!(jwks_kids(&app).await.contains(&next));

    // A restart needs the new key.
    warrant::startup::Application::build(app.env.settings())
        .await
        .unwrap();
}

/// A verifier as strict as the `Cache-Control` we send: it fetches the JWKS,
/// keeps it for exactly `max-age`, and never refetches early, not even for an
/// unknown kid.
struct StrictCachingVerifier {
    jwks: JwkSet,
    fetched: Instant,
    max_age: Duration,
}

impl StrictCachingVerifier {
    async fn fetch(app: &TestApp) -> Self {
        let response = app.get("/.well-known/jwks.json").await;
        let max_age = response
            .header("cache-control")
            .and_then(|v| v.split("max-age=").nth(1))
            .and_then(|v| v.parse().ok())
            .expect("max-age");
        Self {
            jwks: serde_json::from_value(response.body).unwrap(),
            fetched: Instant::now(),
            max_age: Duration::from_secs(max_age),
        }
    }

    async fn verify(&mut self, app: &TestApp, token: &str) -> Result<(), String> {
        if self.fetched.elapsed() >= self.max_age {
            *self = Self::fetch(app).await;
        }
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let jwk = self
            .jwks
            .find(&kid)
            .ok_or_else(|| format!("unknown kid {kid}"))?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&["https://api.example.com"]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Issues tokens for 10 s while keys rotate, verifying each with three
/// verifiers that cache the JWKS for exactly `max-age` (fetched at different
/// moments). With `cli`, `warrant keys rotate` is run whenever it may be;
/// otherwise the server rotates on its own. Keys are published 1 s (max-age)
/// + 1 s (margin) before they sign: a rotation every 2 s or so.
async fn rotation_under_load(cli: bool) {
    let period = if cli { "0" } else { "2" };
    let app = spawn_app_with_env(&[
        ("WARRANT_JWKS_MAX_AGE_SECS", "1"),
        ("WARRANT_KEYS__PUBLICATION_MARGIN_SECS", "1"),
        ("WARRANT_KEYS__ROTATION_PERIOD_SECS", period),
    ])
    .await;
    let client = app.create_client().await;
    let authorization = crate::helpers::basic(&client.id, &client.secret);
    let mut verifiers = Vec::new();
    for _ in 0..3 {
        verifiers.push(StrictCachingVerifier::fetch(&app).await);
        tokio::time::sleep(Duration::from_millis(330)).await;
    }

    let started = Instant::now();
    let (mut verified, mut failures, mut cli_rotations) = (0u32, Vec::new(), 0);
    let mut last_attempt = Instant::now();
    let mut signing_kids = HashSet::new();
    while started.elapsed() < Duration::from_secs(10) {
        if cli && last_attempt.elapsed() >= Duration::from_millis(250) {
            last_attempt = Instant::now();
            // Refused (exit 1) while the next key is too fresh.
            if app.cli(&["keys", "rotate"]).status.success() {
                cli_rotations += 1;
            }
        }
        let response = app.post_token(GRANT, Some(&authorization)).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let token = response.access_token();
        signing_kids.insert(jsonwebtoken::decode_header(token).unwrap().kid.unwrap());
        for verifier in &mut verifiers {
            match verifier.verify(&app, token).await {
                Ok(()) => verified += 1,
                Err(e) => failures.push(e),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "rotation under load ({}): {verified} verifications, {} failures, {} signing keys",
        if cli {
            format!("{cli_rotations} x warrant keys rotate")
        } else {
            "automatic".to_owned()
        },
        failures.len(),
        signing_kids.len()
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        signing_kids.len() >= 3,
        "only {} signing keys in 10 s",
        signing_kids.len()
    );
    assert!(verified > 300);
}

#[tokio::test]
async fn automatic_rotation_under_load_never_fails_a_verifier_that_caches_for_max_age() {
    rotation_under_load(false).await;
}

#[tokio::test]
async fn cli_rotation_under_load_never_fails_a_verifier_that_caches_for_max_age() {
    rotation_under_load(true).await;
}
