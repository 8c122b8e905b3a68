//! The database failing under a running server: a full disk, a read-only file
//! system, a lock held by another writer. Writes fail with a message naming
//! the fault, nothing is half-written, tokens keep flowing from memory
//! (DESIGN.md §5: the hot path touches no database), and all recovers once the
//! fault is gone.
//!
//! A full and a read-only disk are real ones: a small tmpfs, mounted for the
//! test. Mounting needs root, so those tests are ignored by default and run by
//! `.ci/run` (with `--include-ignored`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::helpers::{TestApp, TestEnv, assert_database_whole};

/// A tmpfs of a few MiB, unmounted when dropped.
struct SmallDisk {
    mount: TempDir,
}

impl SmallDisk {
    fn mount() -> Self {
        let mount = tempfile::tempdir().unwrap();
        run(
            &["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"],
            mount.path(),
        );
        Self { mount }
    }

    fn path(&self) -> &Path {
        self.mount.path()
    }

    fn database_url(&self) -> String {
        format!("sqlite:{}", self.path().join("warrant.db").display())
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Writes until the file system has no byte left.
    fn fill(&self) {
        use std::io::Write as _;
        let mut file = std::fs::File::create(self.filler()).unwrap();
        let block = [0u8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }

    fn remount(&self, mode: &str) {
        run(&["mount", "-o", &format!("remount,{mode}")], self.path());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a server of this test may still hold the files open.
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn run(args: &[&str], target: &Path) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .arg(target)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed (this test needs root): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A server whose database is at `url` (e.g. on a [`SmallDisk`]).
async fn spawn_on(url: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("WARRANT_DATABASE_URL", url)];
    vars.extend_from_slice(extra);
    TestEnv::new(&vars).await.spawn().await
}

/// A failed command's stderr, checked to be one clear error, not a panic.
fn failure(output: &Output, names: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "succeeded: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        names.iter().any(|name| stderr.contains(name)),
        "the error does not name the fault ({names:?}): {stderr}"
    );
    stderr
}

async fn issues_a_token(app: &TestApp, client: &crate::helpers::TestClient) {
    let response = app
        .token_with_basic(client, "grant_type=client_credentials")
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
}

async fn metric(app: &TestApp, name: &str) -> u64 {
    let body = app.get("/metrics").await.body;
    body.as_str()
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn current_kid(app: &TestApp) -> String {
    let snapshot = app.registry.snapshot();
    snapshot.default_signer().unwrap().kid().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mounts a tmpfs, so needs root; .ci/run runs it"]
async fn a_full_disk_refuses_writes_clearly_while_tokens_keep_flowing() {
    let disk = SmallDisk::mount();
    // Automatic rotation every 2 s: the server itself must write while the
    // disk is full.
    let app = spawn_on(
        &disk.database_url(),
        &[
            ("WARRANT_JWKS_MAX_AGE_SECS", "0"),
            ("WARRANT_KEYS__PUBLICATION_MARGIN_SECS", "0"),
            ("WARRANT_KEYS__ROTATION_PERIOD_SECS", "2"),
        ],
    )
    .await;
    let client = app.create_client().await;
    issues_a_token(&app, &client).await;

    disk.fill();
    // The WAL may still have room for a write or two: keep writing until
    // the disk refuses. What failed must leave no trace.
    let mut refused = None;
    for i in 0..20 {
        let name = format!("written-on-a-full-disk-{i}");
        let output = app.cli(&[
            "client",
            "create",
            "--name",
            &name,
            "--scope",
            "s",
            "--audience",
            "urn:a",
        ]);
        if !output.status.success() {
            refused = Some((name, output));
            break;
        }
    }
    let (refused_name, output) = refused.expect("every write succeeded on a full disk");
    failure(&output, &["disk is full, so nothing was changed"]);

    // Tokens keep coming from memory through 3 s of polls, with rotations due
    // and failing; the server stays ready (it can still read).
    let kid_while_full = current_kid(&app);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        issues_a_token(&app, &client).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.get("/readyz").await.status, 200);
    let failures = metric(&app, "warrant_key_maintenance_failures_total").await;
    assert!(
        failures > 0,
        "no key transition was attempted on the full disk"
    );
    assert_eq!(current_kid(&app), kid_while_full, "rotated on a full disk");

    // Space again: the refused write can be made, rotation resumes, the
    // database is whole.
    disk.free();
    let later = app.create_client().await;
    issues_a_token(&app, &later).await;
    let until = Instant::now() + Duration::from_secs(10);
    // (A connection whose transaction failed on the full disk must not be
    // reused: sqlx would refuse every later transaction on it.)
    while current_kid(&app) == kid_while_full {
        assert!(
            Instant::now() < until,
            "rotation did not resume: {:?}",
            app.registry.maintain_keys().await.err()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    issues_a_token(&app, &client).await;
    let list = app.cli_ok(&["client", "list"]);
    assert!(!list.contains(&refused_name), "a refused write was kept");
    assert_database_whole(&disk.database_url(), "after the fault").await;
}

#[tokio::test]
#[ignore = "mounts a tmpfs, so needs root; .ci/run runs it"]
async fn a_read_only_database_is_a_clear_error_at_start() {
    let disk = SmallDisk::mount();
    let env = TestEnv::new(&[("WARRANT_DATABASE_URL", &disk.database_url())]).await;
    let client = env.create_client_with(&[]);
    let read_only = ["read-only, so nothing was changed"];
    let cannot_open = ["not writable"];

    // A finished command closes the database: one file, no -wal or -shm.
    // SQLite cannot open a WAL database on a read-only disk without them.
    assert_eq!(files(disk.path()), ["warrant.db"]);
    disk.remount("ro");
    failure(&env.cli(&["client", "list"]), &cannot_open);
    failure(&env.cli(&["client", "disable", &client.id]), &cannot_open);
    refuses_to_serve(&env, &cannot_open);
    disk.remount("rw");

    // A server killed with -9 leaves its -wal and -shm files behind; with
    // them SQLite can read a read-only database. Reads then work, writes
    // fail whole, and the server still refuses to start on a database it
    // could never rotate a key in.
    let (mut server, _) = env.start_server();
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    assert_eq!(
        files(disk.path()),
        ["warrant.db", "warrant.db-shm", "warrant.db-wal"]
    );
    disk.remount("ro");
    let list = env.cli(&["client", "list"]);
    assert!(list.status.success(), "{list:?}");
    assert!(String::from_utf8_lossy(&list.stdout).contains(&client.id));
    failure(&env.cli(&["client", "disable", &client.id]), &read_only);
    refuses_to_serve(&env, &read_only);

    // Writable again: everything is as it was.
    disk.remount("rw");
    let app = env.spawn().await;
    assert!(app.cli_ok(&["client", "list"]).contains(&client.id));
    issues_a_token(&app, &client).await;
    assert_database_whole(&disk.database_url(), "after the fault").await;
}

/// PostgreSQL read-only (a hot standby, or `default_transaction_read_only`
/// as here): the same clear refusals as a read-only SQLite file.
#[tokio::test]
#[ignore = "needs PostgreSQL: set WARRANT_TEST_POSTGRES_URL, run with --include-ignored"]
async fn a_read_only_postgresql_is_a_clear_error_at_start() {
    assert!(crate::helpers::postgres_url().is_some(), "needs PostgreSQL");
    let app = crate::helpers::spawn_app().await;
    let client = app.create_client().await;
    let read_only_url = format!(
        "{}?options=-c%20default_transaction_read_only%3Don",
        app.database_url()
    );
    let mut env = app.env.clone();
    env.set("WARRANT_DATABASE_URL", &read_only_url);
    let read_only = ["read-only, so nothing was changed"];
    // Migrating (on by default) is the first write to fail.
    let list = env.cli(&["client", "list"]);
    assert!(failure(&list, &read_only).contains("cannot migrate"));
    refuses_to_serve(&env, &read_only);
    // Without it, reads work; writes and the server are refused.
    env.set("WARRANT_AUTO_MIGRATE", "false");
    let list = env.cli(&["client", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&client.id));
    failure(&env.cli(&["client", "disable", &client.id]), &read_only);
    refuses_to_serve(&env, &read_only);
    // The server that started before keeps issuing: the refused disable
    // changed nothing.
    issues_a_token(&app, &client).await;
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `warrant serve` exits promptly with one clear error naming the fault,
/// rather than run on what it cannot keep.
fn refuses_to_serve(env: &TestEnv, names: &[&str]) {
    let mut serve = env
        .command(&["serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while serve.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            serve.kill().unwrap();
            panic!("serve kept running on a read-only database");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    failure(&serve.wait_with_output().unwrap(), names);
}

/// Holds the write lock of `url`'s database in an open transaction, as a
/// stuck process or a backup tool might.
enum LockHolder {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl LockHolder {
    async fn take(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut *conn)
                .await
                .unwrap();
            Self::Sqlite(conn)
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            // EXCLUSIVE lets readers through and blocks every writer.
            for sql in ["BEGIN", "LOCK TABLE clients IN EXCLUSIVE MODE"] {
                sqlx::query(sql).execute(&mut *conn).await.unwrap();
            }
            Self::Postgres(conn)
        }
    }

    async fn release(self) {
        match self {
            Self::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
            }
            Self::Postgres(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
            }
        };
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_refuses_writes_clearly_while_tokens_keep_flowing() {
    let app = crate::helpers::spawn_app().await;
    let client = app.create_client().await;
    let lock = LockHolder::take(&app.database_url()).await;

    // The command waits for the lock (5 s), then gives up, naming it.
    let env = app.env.clone();
    let id = client.id.clone();
    let disable = tokio::task::spawn_blocking(move || env.cli(&["client", "disable", &id]));
    let mut issued = 0;
    while !disable.is_finished() {
        issues_a_token(&app, &client).await;
        issued += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    failure(&disable.await.unwrap(), &["locked by another writer"]);
    assert!(issued > 10, "{issued} tokens while the command waited");
    assert_eq!(app.get("/readyz").await.status, 200);

    // Released: the same command works, and the server applies it.
    lock.release().await;
    app.cli_ok(&["client", "disable", &client.id]);
    app.refresh().await;
    let refused = app
        .token_with_basic(&client, "grant_type=client_credentials")
        .await;
    assert_eq!(refused.status, 401);
}
