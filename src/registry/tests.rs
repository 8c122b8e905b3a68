//! A snapshot brought up to date change by change must be the snapshot a
//! full reload builds, on SQLite and (with WARRANT_TEST_POSTGRES_URL set)
//! on PostgreSQL.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use secrecy::{ExposeSecret as _, SecretString};

use super::*;
use crate::crypto::Algorithm;
use crate::domain::{Audience, Client};
use crate::keys::RotateMode;
use crate::storage::connect;

const IDS: usize = 5;
const AUDIENCES: [&str; 2] = ["urn:a", "urn:b"];

/// A database of its own: a SQLite file in a temporary folder, or a fresh
/// PostgreSQL database when WARRANT_TEST_POSTGRES_URL is set.
struct TestDb {
    store: Arc<dyn Storage>,
    _dir: tempfile::TempDir,
}

async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("warrant.db").display());
    let store = connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    TestDb { store, _dir: dir }
}

fn postgres_admin_url() -> Option<String> {
    std::env::var("WARRANT_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

async fn postgres_db(admin_url: &str) -> TestDb {
    let bytes: [u8; 8] = crate::crypto::random_bytes().unwrap();
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("warrant_test_{name}");
    let admin = sqlx::PgPool::connect(admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    let store = connect(&format!("{base}/{name}")).await.unwrap();
    store.migrate().await.unwrap();
    TestDb {
        store,
        _dir: tempfile::tempdir().unwrap(),
    }
}

fn master_key() -> MasterKey {
    MasterKey::from_bytes(&[7; 32]).unwrap()
}

fn policy() -> KeyPolicy {
    KeyPolicy {
        publication_delay: 0,
        retire_delay: 3600,
        rotation_period: None,
    }
}

async fn registry(store: &Arc<dyn Storage>) -> Registry {
    Registry::load(
        Arc::clone(store),
        master_key(),
        PathBuf::from("/nonexistent/master.key"),
        policy(),
    )
    .await
    .unwrap()
}

fn client_id(i: usize) -> ClientId {
    ClientId::parse(&format!("client-{i}")).unwrap()
}

fn new_client(i: usize, generation: u32) -> Client {
    Client {
        id: client_id(i),
        name: format!("client {i}, generation {generation}"),
        // Not a real hash: the registry never checks it, and a distinct
        // one per generation tells generations apart.
        secret_hash: SecretString::from(format!("hash-{i}-{generation}")),
        audiences: vec![Audience::parse("urn:a").unwrap()],
        created_at: i64::from(generation),
        updated_at: i64::from(generation),
        ..Client::example()
    }
}

/// Everything the hot path reads, in a form two snapshots compare by.
fn view(snapshot: &Snapshot) -> (BTreeMap<String, String>, Vec<String>, Vec<u8>) {
    let clients = snapshot
        .clients
        .iter()
        .map(|c| {
            (
                c.id.to_string(),
                format!(
                    "{c:?} {} {:?} {:?} {} {:?} {} {}",
                    c.secret_hash.expose_secret(),
                    c.grant_types,
                    c.signing_alg,
                    c.token_ttl_secs,
                    c.quota_per_minute,
                    c.created_at,
                    c.updated_at
                ),
            )
        })
        .collect();
    let mut keys: Vec<String> = snapshot
        .key_records()
        .iter()
        .map(|k| format!("{k:?} {:?} {:?}", k.activated_at, k.retire_after))
        .collect();
    for audience in AUDIENCES {
        let audience = Audience::parse(audience).unwrap();
        let signer = snapshot.signer_for(Algorithm::RS256, &audience);
        keys.push(format!("{audience}: {:?}", signer.map(|k| k.kid())));
    }
    keys.push(format!(
        "default: {:?}",
        snapshot.default_signer().map(|k| k.kid())
    ));
    (clients, keys, snapshot.jwks().to_vec())
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Disable(usize),
    Enable(usize),
    Delete(usize),
    GenerateKey(usize),
    RotateKey(usize),
    RetireKey(usize, KeyState),
    Refresh,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..IDS).prop_map(Op::Create),
        2 => (0..IDS).prop_map(Op::Disable),
        1 => (0..IDS).prop_map(Op::Enable),
        2 => (0..IDS).prop_map(Op::Delete),
        1 => (0..AUDIENCES.len()).prop_map(Op::GenerateKey),
        1 => (0..AUDIENCES.len()).prop_map(Op::RotateKey),
        1 => (0..AUDIENCES.len(), prop_oneof![Just(KeyState::Next), Just(KeyState::Previous)])
            .prop_map(|(a, state)| Op::RetireKey(a, state)),
        3 => Just(Op::Refresh),
    ]
}

fn key_set(audience: usize) -> KeySetName {
    KeySetName::Hs256(Audience::parse(AUDIENCES[audience]).unwrap())
}

/// Applies `op` through the storage API as the CLI would; refusals (a
/// rotation without a next key, a duplicate id) are part of the game.
async fn run(store: &Arc<dyn Storage>, op: &Op, generation: u32, now: i64) {
    let keys = || KeyManager::new(store.as_ref(), &MASTER_KEY, policy());
    match *op {
        Op::Create(i) => match store.insert_client(&new_client(i, generation)).await {
            Ok(()) | Err(StorageError::Conflict) => {}
            Err(e) => panic!("{e}"),
        },
        Op::Disable(i) => {
            store
                .set_client_enabled(&client_id(i), false, now)
                .await
                .unwrap();
        }
        Op::Enable(i) => {
            store
                .set_client_enabled(&client_id(i), true, now)
                .await
                .unwrap();
        }
        Op::Delete(i) => {
            store.delete_client(&client_id(i)).await.unwrap();
        }
        Op::GenerateKey(a) => {
            let _ = keys().generate(&key_set(a), now).await;
        }
        Op::RotateKey(a) => {
            let _ = keys().rotate(&key_set(a), RotateMode::Force, now).await;
        }
        Op::RetireKey(a, state) => {
            let set = key_set(a);
            let records = store.list_keys(false).await.unwrap();
            if let Some(key) = records.iter().find(|k| k.set == set && k.state == state) {
                keys().retire(&key.kid, true, now).await.unwrap();
            }
        }
        Op::Refresh => {}
    }
}

static MASTER_KEY: std::sync::LazyLock<MasterKey> = std::sync::LazyLock::new(master_key);

async fn incremental_matches_full_reload(db: TestDb, ops: Vec<Op>) {
    let store = &db.store;
    let incremental = registry(store).await;
    // Versions each client id had, with the secret they went with: a
    // version seen again must belong to the same generation.
    let mut versions: HashMap<(String, i64), String> = HashMap::new();
    for (step, op) in ops.iter().enumerate() {
        let generation = u32::try_from(step).unwrap();
        run(store, op, generation, 1_000 + i64::from(generation)).await;
        if matches!(op, Op::Refresh) {
            incremental.refresh().await.unwrap();
            let full = registry(store).await;
            assert_eq!(
                view(&incremental.snapshot()),
                view(&full.snapshot()),
                "after {:?}",
                &ops[..=step]
            );
            for client in incremental.snapshot().clients.iter() {
                let secret = client.secret_hash.expose_secret().to_owned();
                let seen = versions
                    .entry((client.id.to_string(), client.version))
                    .or_insert_with(|| secret.clone());
                assert_eq!(*seen, secret, "a version reused by another client");
            }
        }
    }
    incremental.refresh().await.unwrap();
    let full = registry(store).await;
    assert_eq!(view(&incremental.snapshot()), view(&full.snapshot()));
    db.store.close().await;
}

static POSTGRES_CASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn changes_applied_one_by_one_give_the_snapshot_of_a_full_reload(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        runtime().block_on(async {
            incremental_matches_full_reload(sqlite_db().await, ops.clone()).await;
            // A PostgreSQL database per case takes a second to create:
            // the first few cases run there too.
            if let Some(url) = postgres_admin_url()
                && POSTGRES_CASES.fetch_add(1, Ordering::Relaxed) < 6
            {
                incremental_matches_full_reload(postgres_db(&url).await, ops).await;
            }
        });
    }
}

async fn every_store() -> Vec<TestDb> {
    let mut dbs = vec![sqlite_db().await];
    if let Some(url) = postgres_admin_url() {
        dbs.push(postgres_db(&url).await);
    }
    dbs
}

#[tokio::test]
async fn a_client_created_again_under_its_id_is_a_different_client() {
    for db in every_store().await {
        let store = &db.store;
        let registry = registry(store).await;
        store.insert_client(&new_client(0, 0)).await.unwrap();
        for now in 1..4 {
            store
                .set_client_enabled(&client_id(0), now % 2 == 0, now)
                .await
                .unwrap();
        }
        registry.refresh().await.unwrap();
        let old = Arc::clone(registry.snapshot().client(&client_id(0)).unwrap());

        store.delete_client(&client_id(0)).await.unwrap();
        store.insert_client(&new_client(0, 1)).await.unwrap();
        registry.refresh().await.unwrap();
        let new = Arc::clone(registry.snapshot().client(&client_id(0)).unwrap());
        assert_eq!(new.secret_hash.expose_secret(), "hash-0-1");
        // Remembered credential checks are keyed on the version.
        assert!(
            new.version > old.version,
            "{} then {}",
            old.version,
            new.version
        );
        db.store.close().await;
    }
}

/// Writers change other clients all the while; every disable made before
/// a refresh is in the snapshot that refresh leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_is_never_lost_between_two_polls() {
    for db in every_store().await {
        let store = Arc::clone(&db.store);
        for i in 0..IDS {
            store.insert_client(&new_client(i, 0)).await.unwrap();
        }
        let registry = Arc::new(registry(&store).await);
        let stop = Arc::new(AtomicBool::new(false));
        let noise = {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut now = 0;
                while !stop.load(Ordering::Relaxed) {
                    now += 1;
                    let id = client_id(1 + usize::try_from(now).unwrap() % (IDS - 1));
                    // A busy SQLite may refuse a write now and then.
                    let _ = store.set_client_enabled(&id, now % 2 == 0, now).await;
                }
            })
        };
        let poller = {
            let (registry, stop) = (Arc::clone(&registry), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = registry.refresh().await;
                }
            })
        };
        for round in 0..40 {
            let enabled = round % 2 == 1;
            assert!(
                store
                    .set_client_enabled(&client_id(0), enabled, round)
                    .await
                    .unwrap()
            );
            registry.refresh().await.unwrap();
            let client = Arc::clone(registry.snapshot().client(&client_id(0)).unwrap());
            assert_eq!(client.enabled, enabled, "round {round}");
        }
        stop.store(true, Ordering::Relaxed);
        noise.await.unwrap();
        poller.await.unwrap();
        db.store.close().await;
    }
}

#[tokio::test]
async fn a_server_behind_a_pruned_log_reloads_everything_and_catches_up() {
    for db in every_store().await {
        let store = &db.store;
        let behind = registry(store).await;
        for i in 0..IDS {
            store.insert_client(&new_client(i, 0)).await.unwrap();
        }
        store.delete_client(&client_id(0)).await.unwrap();
        store
            .set_client_enabled(&client_id(1), false, 5)
            .await
            .unwrap();
        // Everything logged so far is at least zero seconds old.
        assert!(store.prune_changes(0, 0).await.unwrap() > 0);
        let current = behind.snapshot().seq;
        let marker = store.change_marker().await.unwrap();
        assert!(matches!(
            behind.plan(&behind.snapshot(), marker).await.unwrap(),
            Refresh::Full(_)
        ));
        assert!(behind.refresh().await.unwrap());
        assert!(behind.snapshot().seq > current);
        let full = registry(store).await;
        assert_eq!(view(&behind.snapshot()), view(&full.snapshot()));
        assert!(behind.snapshot().client(&client_id(0)).is_none());
        assert!(!behind.snapshot().client(&client_id(1)).unwrap().enabled);
        db.store.close().await;
    }
}

#[tokio::test]
async fn pruning_keeps_the_last_entries_and_the_recent_ones() {
    for db in every_store().await {
        let store = &db.store;
        for i in 0..IDS {
            store.insert_client(&new_client(i, 0)).await.unwrap();
        }
        let marker = store.change_marker().await.unwrap();
        // Nothing is a day old.
        assert_eq!(store.prune_changes(0, 86_400).await.unwrap(), 0);
        store.prune_changes(2, 0).await.unwrap();
        let left = store.changes_between(0, marker).await.unwrap();
        assert_eq!(
            left.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![marker - 1, marker]
        );
        assert!(left.iter().all(|c| c.kind == ChangeKind::Client));
        db.store.close().await;
    }
}

#[test]
fn a_change_copies_only_the_shards_it_touches() {
    let clients = Clients::from_clients((0..5000).map(|i| new_client(i, 0)));
    let mut changed = new_client(7, 1);
    changed.enabled = false;
    let next = clients.with_changes(&[client_id(7), client_id(8)], vec![changed]);
    assert_eq!(next.len(), 4999);
    assert!(!next.get(&client_id(7)).unwrap().enabled);
    assert!(next.get(&client_id(8)).is_none());
    assert!(
        clients.get(&client_id(8)).is_some(),
        "the old snapshot is untouched"
    );
    let shared = clients
        .shards
        .iter()
        .zip(&next.shards)
        .filter(|(a, b)| Arc::ptr_eq(a, b))
        .count();
    assert!(shared >= snapshot::SHARDS - 2, "{shared} shards shared");
}

#[test]
fn clients_registered_alike_share_their_scope_and_audience_strings_after_a_load() {
    // Parsed apart, as rows are: equal strings, separate copies.
    let clients = Clients::from_clients((0..3).map(|i| new_client(i, 0)));
    let (a, b) = (
        clients.get(&client_id(0)).unwrap(),
        clients.get(&client_id(2)).unwrap(),
    );
    assert!(a.scopes.shares_with(&b.scopes));
    assert!(a.audiences[0].shares_with(&b.audiences[0]));
    let separate = new_client(0, 0);
    assert!(!separate.scopes.shares_with(&a.scopes));
    assert_eq!(separate.scopes, a.scopes);
}
