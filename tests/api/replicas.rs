//! Several replicas on one PostgreSQL database. These need a server: set
//! WARRANT_TEST_POSTGRES_URL and run with `--include-ignored` (`.ci/run` does).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use warrant::crypto::{Algorithm, MasterKey};
use warrant::domain::{KeySetName, KeyState};
use warrant::keys::{KeyManager, KeyPolicy};

use crate::helpers::{
    TestApp, TestEnv, basic, postgres_url, spawn_app_with_env, spawn_replica, verify_independently,
};

const GRANT: &str = "grant_type=client_credentials";
const NEEDS_POSTGRES: &str =
    "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored";

fn require_postgres() {
    assert!(postgres_url().is_some(), "{NEEDS_POSTGRES}");
}

async fn status_of(app: &TestApp, authorization: &str) -> u16 {
    app.post_token(GRANT, Some(authorization))
        .await
        .status
        .as_u16()
}

/// Waits until `app` answers `status` to the token request, at most `limit`.
async fn until_status(app: &TestApp, authorization: &str, status: u16, limit: Duration) {
    let started = Instant::now();
    while status_of(app, authorization).await != status {
        assert!(started.elapsed() < limit, "not {status} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored"]
async fn replicas_cross_verify_and_see_cli_changes_within_two_seconds() {
    require_postgres();
    let a = spawn_app_with_env(&[
        ("WARRANT_REFRESH_INTERVAL_MS", "1000"),
        ("WARRANT_ISSUER", "https://warrant.test"),
    ])
    .await;
    let b = spawn_replica(&a).await;
    let client = a.create_client_unannounced(&["--audience", "urn:a"]);
    let id = client.id.as_str();
    let authorization = basic(id, &client.secret);
    let limit = Duration::from_secs(2);
    until_status(&a, &authorization, 200, limit).await;
    until_status(&b, &authorization, 200, limit).await;

    let from_a = a.post_token(GRANT, Some(&authorization)).await;
    let claims = verify_independently(&b, from_a.access_token(), "urn:a").await;
    assert_eq!(claims["client_id"], id);
    let from_b = b.post_token(GRANT, Some(&authorization)).await;
    verify_independently(&a, from_b.access_token(), "urn:a").await;

    a.cli_ok(&["client", "disable", id]);
    until_status(&a, &authorization, 401, limit).await;
    until_status(&b, &authorization, 401, limit).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored"]
async fn tokens_of_one_replica_verify_with_the_others_jwks_through_rotations() {
    require_postgres();
    let env = [
        ("WARRANT_ISSUER", "https://warrant.test"),
        ("WARRANT_JWKS_MAX_AGE_SECS", "1"),
        ("WARRANT_KEYS__PUBLICATION_MARGIN_SECS", "1"),
        ("WARRANT_KEYS__ROTATION_PERIOD_SECS", "2"),
    ];
    let a = spawn_app_with_env(&env).await;
    let b = spawn_replica(&a).await;
    let client = a.create_client().await;
    b.refresh().await;
    let authorization = basic(&client.id, &client.secret);

    let started = Instant::now();
    let (mut verified, mut kids) = (0, HashSet::new());
    while started.elapsed() < Duration::from_secs(8) {
        for (signer, other) in [(&a, &b), (&b, &a)] {
            let response = signer.post_token(GRANT, Some(&authorization)).await;
            assert_eq!(response.status, 200, "{}", response.body);
            kids.insert(
                jsonwebtoken::decode_header(response.access_token())
                    .unwrap()
                    .kid
                    .unwrap(),
            );
            verify_independently(other, response.access_token(), "https://api.example.com").await;
            verified += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(kids.len() >= 3, "only {} signing keys", kids.len());
    eprintln!(
        "cross-replica: {verified} tokens verified by the other replica, {} keys",
        kids.len()
    );

    // Both replicas maintain keys, yet each rotation happened once: current
    // keys were activated a whole rotation period apart.
    let store = warrant::storage::connect(&a.database_url()).await.unwrap();
    let mut activations: Vec<i64> = store
        .list_keys(true)
        .await
        .unwrap()
        .iter()
        .filter(|k| k.set == KeySetName::Asymmetric(Algorithm::RS256))
        .filter_map(|k| k.activated_at)
        .collect();
    activations.sort_unstable();
    for pair in activations.windows(2).skip(1) {
        assert!(
            pair[1] - pair[0] >= 2,
            "two rotations {}s apart: {activations:?}",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored"]
async fn a_rotation_race_between_replicas_has_exactly_one_winner() {
    require_postgres();
    let app = spawn_app_with_env(&[]).await;
    let (master_key, _) = MasterKey::load(&app.master_key_path(), false).unwrap();
    let policy = KeyPolicy {
        publication_delay: 0,
        retire_delay: 3600,
        rotation_period: Some(0),
    };
    let (store_a, store_b) = (
        warrant::storage::connect(&app.database_url())
            .await
            .unwrap(),
        warrant::storage::connect(&app.database_url())
            .await
            .unwrap(),
    );
    for round in 0..5 {
        // Both replicas saw the same keys and decide at the same moment.
        let keys = store_a.list_keys(false).await.unwrap();
        // A key published this very second is not safe to sign with yet
        // (times are whole seconds): decide at the first moment it is.
        let now = keys
            .iter()
            .filter(|k| k.state == KeyState::Next)
            .map(|k| k.published_at + 1)
            .fold(warrant::clock::unix_now(), i64::max);
        let (a, b) = (
            KeyManager::new(store_a.as_ref(), &master_key, policy),
            KeyManager::new(store_b.as_ref(), &master_key, policy),
        );
        let (done_a, done_b) = tokio::join!(a.maintain(&keys, now), b.maintain(&keys, now));
        let promotions = done_a
            .unwrap()
            .iter()
            .chain(done_b.unwrap().iter())
            .filter(|action| action.starts_with("promoted"))
            .count();
        assert_eq!(promotions, 1, "round {round}");
        let after = store_a.list_keys(false).await.unwrap();
        let count = |state| {
            after
                .iter()
                .filter(|k| k.set == KeySetName::Asymmetric(Algorithm::RS256) && k.state == state)
                .count()
        };
        assert_eq!(count(KeyState::Current), 1, "round {round}");
        assert_eq!(count(KeyState::Next), 1, "round {round}");
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored"]
async fn replicas_started_together_on_an_empty_database_agree_on_one_key() {
    require_postgres();
    let env = TestEnv::new(&[]).await;
    let settings = env.settings();
    // Replicas share the master key (a file or WARRANT_MASTER_KEY).
    MasterKey::load(&env.master_key_path(), true).unwrap();

    let (a, b) = tokio::join!(
        warrant::startup::Application::build(settings.clone()),
        warrant::startup::Application::build(settings.clone()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    a.registry().refresh().await.unwrap();
    b.registry().refresh().await.unwrap();
    let signer = |app: &warrant::startup::Application| {
        app.registry()
            .snapshot()
            .default_signer()
            .map(|k| k.kid().to_owned())
    };
    assert!(signer(&a).is_some());
    assert_eq!(signer(&a), signer(&b));
    let keys = warrant::storage::connect(&env.database_url())
        .await
        .unwrap()
        .list_keys(true)
        .await
        .unwrap();
    let count = |state| keys.iter().filter(|k| k.state == state).count();
    assert_eq!(
        (count(KeyState::Current), count(KeyState::Next)),
        (1, 1),
        "{} keys",
        keys.len()
    );
    assert!(keys.iter().all(|k| k.alg == Algorithm::RS256));
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore: to
/// the replica behind it, the database is gone (connections reset, new ones
/// refused) and then back.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees a reset
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Self {
            port,
            up,
            connections,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A replica whose database connections go through a [`Proxy`], and the
/// directly connected server that created the database (kept alive: it owns
/// the master key's folder).
async fn replica_behind_proxy(extra: &[(&str, &str)]) -> (TestApp, Proxy, TestApp) {
    let direct = crate::helpers::spawn_app_with_env(&[]).await;
    let url = direct.database_url();
    let (_, after_at) = url.rsplit_once('@').unwrap();
    let (host_port, db) = after_at.split_once('/').unwrap();
    let target: SocketAddr = tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let proxied = url.replace(host_port, &format!("127.0.0.1:{}", proxy.port));
    assert!(proxied.ends_with(db));
    let mut env = direct.env.clone();
    env.set("WARRANT_DATABASE_URL", &proxied);
    for (name, value) in extra {
        env.set(name, value);
    }
    (env.spawn().await, proxy, direct)
}

async fn until_ready(app: &TestApp, ready: bool, limit: Duration) {
    let started = Instant::now();
    loop {
        let status = app.get("/readyz").await.status;
        if (status == 200) == ready {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "/readyz still {status} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// Multi-threaded: the proxy must keep running while the test blocks on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored"]
async fn a_replica_keeps_issuing_through_a_database_outage_and_recovers() {
    require_postgres();
    let (app, proxy, _direct) = replica_behind_proxy(&[]).await;
    let client = app.create_client().await;
    let authorization = basic(&client.id, &client.secret);
    assert_eq!(status_of(&app, &authorization).await, 200);

    proxy.cut();
    let started = Instant::now();
    let mut issued = 0;
    while started.elapsed() < Duration::from_secs(4) {
        assert_eq!(
            status_of(&app, &authorization).await,
            200,
            "issuance stopped during the outage"
        );
        issued += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_ready(&app, false, Duration::from_secs(10)).await;
    let readyz = app.get("/readyz").await;
    assert_eq!(
        readyz.body["reasons"],
        serde_json::json!(["database unreachable"])
    );
    assert_eq!(status_of(&app, &authorization).await, 200);
    eprintln!("outage: {issued} tokens issued from memory in 4 s");

    // Changes that need the database fail clearly meanwhile.
    let output = app.cli(&["client", "list"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open the database"));

    proxy.restore();
    until_ready(&app, true, Duration::from_secs(15)).await;
    let created = app.create_client().await;
    assert_eq!(
        status_of(&app, &basic(&created.id, &created.secret)).await,
        200
    );
}

// Multi-threaded: the proxy must keep running while the test blocks on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored"]
async fn issuing_from_memory_stops_after_the_outage_grace() {
    require_postgres();
    let (app, proxy, _direct) = replica_behind_proxy(&[("WARRANT_OUTAGE_GRACE_SECS", "1")]).await;
    let client = app.create_client().await;
    let authorization = basic(&client.id, &client.secret);
    assert_eq!(status_of(&app, &authorization).await, 200);

    proxy.cut();
    until_status(&app, &authorization, 503, Duration::from_secs(10)).await;
    let refused = app.post_token(GRANT, Some(&authorization)).await;
    assert_eq!(refused.error(), "temporarily_unavailable");

    proxy.restore();
    until_status(&app, &authorization, 200, Duration::from_secs(15)).await;
}

/// What a replica holds for some clients (enabled, version), its keys and
/// its JWKS.
type ReplicaState = (Vec<Option<(bool, i64)>>, Vec<String>, Vec<u8>);

fn replica_state(app: &TestApp, ids: &[String]) -> ReplicaState {
    let snapshot = app.registry.snapshot();
    let clients = ids
        .iter()
        .map(|id| {
            let id = warrant::domain::ClientId::parse(id).unwrap();
            snapshot.client(&id).map(|c| (c.enabled, c.version))
        })
        .collect();
    let keys = snapshot
        .key_records()
        .iter()
        .map(|k| format!("{} {:?}", k.kid, k.state))
        .collect();
    (clients, keys, snapshot.jwks().to_vec())
}

/// Waits until both replicas hold what a server starting now would load.
async fn until_converged(a: &TestApp, b: &TestApp, ids: &[String], limit: Duration) {
    let started = Instant::now();
    loop {
        let fresh = spawn_replica(a).await;
        let expected = replica_state(&fresh, ids);
        if replica_state(a, ids) == expected && replica_state(b, ids) == expected {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "not converged within {limit:?}: {:?} / {:?} / {expected:?}",
            replica_state(a, ids),
            replica_state(b, ids)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored"]
async fn two_replicas_converge_after_interleaved_changes_through_both_and_the_cli() {
    require_postgres();
    let a = spawn_app_with_env(&[("WARRANT_KEYS__PUBLICATION_MARGIN_SECS", "0")]).await;
    let b = spawn_replica(&a).await;
    let mut ids: Vec<String> = Vec::new();
    for round in 0..4 {
        // Each replica's CLI, and each replica's own key maintenance.
        for app in [&a, &b] {
            let id = app.create_client_unannounced(&[]).id;
            app.cli_ok(&["client", "disable", &id]);
            if round % 2 == 1 {
                app.cli_ok(&["client", "enable", &id]);
                let earlier = &ids[ids.len() - 2];
                app.cli_ok(&["client", "delete", earlier, "--confirm-delete"]);
            }
            ids.push(id);
            app.registry.maintain_keys().await.unwrap();
        }
        a.cli_ok(&["keys", "rotate", "--force-unsafe-promotion"]);
        b.refresh().await;
    }
    until_converged(&a, &b, &ids, Duration::from_secs(5)).await;
}

// Multi-threaded: the proxy must keep running while the test blocks on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored"]
async fn a_replica_cut_off_longer_than_the_change_log_keeps_reloads_everything_and_converges() {
    require_postgres();
    let (app, proxy, direct) = replica_behind_proxy(&[]).await;
    let kept = app.create_client().await;
    let disabled = app.create_client().await;
    let deleted = app.create_client().await;
    let kept_auth = basic(&kept.id, &kept.secret);
    assert_eq!(status_of(&app, &kept_auth).await, 200);

    proxy.cut();
    direct.cli_ok(&["client", "disable", &disabled.id]);
    direct.cli_ok(&["client", "delete", &deleted.id, "--confirm-delete"]);
    let created = direct.create_client_unannounced(&[]);
    direct.cli_ok(&["keys", "rotate", "--force-unsafe-promotion"]);
    // What a server keeping the log for 0 s does at its next poll.
    let store = warrant::storage::connect(&direct.database_url())
        .await
        .unwrap();
    assert!(store.prune_changes(0, 0).await.unwrap() > 0);

    proxy.restore();
    let limit = Duration::from_secs(15);
    until_status(&app, &basic(&created.id, &created.secret), 200, limit).await;
    until_status(&app, &basic(&disabled.id, &disabled.secret), 401, limit).await;
    until_status(&app, &basic(&deleted.id, &deleted.secret), 401, limit).await;
    assert_eq!(status_of(&app, &kept_auth).await, 200);
    let ids = [kept.id, disabled.id, deleted.id, created.id];
    until_converged(&app, &direct, &ids, limit).await;
    assert!(
        crate::helpers::captured_logs()
            .contains("the change log no longer holds every change since the last read"),
        "the full reload was not logged with its reason"
    );
}
