//! Attackers guessing secrets: what they cost and what they learn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, basic, spawn_app_with_env};

const GRANT: &str = "grant_type=client_credentials";

/// Tokens a legitimate client obtains in `window`, one request at a time.
async fn throughput(app: &TestApp, authorization: &str, window: Duration) -> u32 {
    let started = Instant::now();
    let mut issued = 0;
    while started.elapsed() < window {
        let response = app.post_token(GRANT, Some(authorization)).await;
        assert_eq!(response.status, 200, "{}", response.body);
        issued += 1;
    }
    issued
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_secrets_leaves_legitimate_clients_at_least_half_their_throughput() {
    // A distributed attacker: the per-address limit does not help, random
    // client ids dodge the per-client one. Only the argon2 bound is left.
    let app = spawn_app_with_env(&[
        ("WARRANT_WORKERS", "2"),
        ("WARRANT_LIMITS__FAILED_AUTH_PER_ADDRESS_PER_MINUTE", "0"),
        ("WARRANT_AUTH__ARGON2_CONCURRENCY", "1"),
    ])
    .await;
    let client = app.create_client().await;
    let authorization = basic(&client.id, &client.secret);
    throughput(&app, &authorization, Duration::from_millis(300)).await; // warm

    // Attackers that flood only while `flooding` is set, so that quiet and
    // flooded windows can alternate: a passing load on the machine then
    // weighs on both alike.
    let flooding = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..16)
        .map(|i| {
            let (flooding, done, address) = (flooding.clone(), done.clone(), app.address.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    if !flooding.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    let _ = http
                        .post(format!("{address}/oauth/token"))
                        .basic_auth(format!("guess-{i}-{n}"), Some("wrong"))
                        .form(&[("grant_type", "client_credentials")])
                        .send()
                        .await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let window = Duration::from_millis(1000);
    let (mut undisturbed, mut flooded) = (0, 0);
    for _ in 0..3 {
        undisturbed += throughput(&app, &authorization, window).await;
        flooding.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
        flooded += throughput(&app, &authorization, window).await;
        flooding.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, Ordering::Relaxed);
    let mut attempts = 0;
    for attacker in attackers {
        attempts += attacker.await.unwrap();
    }
    let ratio = f64::from(flooded) / f64::from(undisturbed);
    eprintln!(
        "wrong-secret flood: legitimate {undisturbed} tokens in quiet windows, {flooded} in flooded \
         ones ({attempts} wrong-secret attempts): ratio {ratio:.2}"
    );
    assert!(attempts >= 16, "the flood did not happen");
    assert!(
        ratio >= 0.5,
        "legitimate throughput fell to {ratio:.2} of undisturbed"
    );
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn unknown_disabled_and_wrong_secret_look_alike_in_time_and_body() {
    let app =
        spawn_app_with_env(&[("WARRANT_LIMITS__FAILED_AUTH_PER_CLIENT_PER_MINUTE", "0")]).await;
    let known = app.create_client().await;
    let disabled = app.create_client().await;
    app.cli_ok(&["client", "disable", &disabled.id]);
    app.refresh().await;

    let cases = [
        (
            "unknown client",
            basic("no-such-client-id-000000", &known.secret),
        ),
        ("disabled client", basic(&disabled.id, &disabled.secret)),
        (
            "wrong secret",
            basic(&known.id, "wrong-secret-of-the-same-length-as-a-real-one"),
        ),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut bodies = Vec::new();
    // Interleaved, so that whatever else the machine does hits all alike.
    for _ in 0..21 {
        for (i, (_, authorization)) in cases.iter().enumerate() {
            let started = Instant::now();
            let response = app.post_token(GRANT, Some(authorization)).await;
            samples[i].push(started.elapsed());
            assert_eq!(response.status, 401);
            bodies.push(response.body.to_string());
        }
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "bodies differ: {bodies:?}");

    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    eprintln!(
        "timing medians: {}",
        cases
            .iter()
            .zip(&medians)
            .map(|((name, _), m)| format!("{name} {m:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (fastest, slowest) = (medians.iter().min().unwrap(), medians.iter().max().unwrap());
    // Each one is an argon2 verify; what differs (a map lookup) is
    // microseconds against milliseconds. A cached or early refusal would be
    // 10 to 30 times faster; the margin is for a busy machine's noise.
    assert!(
        slowest.as_secs_f64() <= fastest.as_secs_f64() * 1.5,
        "distinguishable by time: {medians:?}"
    );
}
