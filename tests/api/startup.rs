//! First start, restart, and the ways starting must fail loudly.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{TestEnv, spawn_app};
use warrant::startup::Application;

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn first_start_creates_a_private_master_key_and_database() {
    let app = spawn_app().await;
    assert_eq!(mode(&app.master_key_path()), 0o600);
    assert_eq!(mode(&app.env.dir().join("keys")), 0o700);
    if crate::helpers::postgres_url().is_none() {
        assert_eq!(mode(&app.env.dir().join("warrant.db")), 0o600);
    }
}

#[tokio::test]
async fn a_restart_signs_with_the_same_stored_key() {
    let env = TestEnv::new(&[]).await;
    let first = Application::build(env.settings()).await.unwrap();
    let kid = first
        .registry()
        .snapshot()
        .default_signer()
        .unwrap()
        .kid()
        .to_owned();
    drop(first);
    let second = Application::build(env.settings()).await.unwrap();
    assert_eq!(
        second.registry().snapshot().default_signer().unwrap().kid(),
        kid
    );
}

#[tokio::test]
async fn a_missing_master_key_is_a_startup_error_not_a_new_key() {
    let env = TestEnv::new(&[]).await;
    drop(Application::build(env.settings()).await.unwrap());
    std::fs::remove_file(env.master_key_path()).unwrap();

    let err = Application::build(env.settings()).await.err().unwrap();
    assert!(err.to_string().contains("master key"), "{err}");
    assert!(
        !env.master_key_path().exists(),
        "a new master key was created"
    );
}

#[tokio::test]
async fn a_different_master_key_is_a_startup_error() {
    let env = TestEnv::new(&[]).await;
    drop(Application::build(env.settings()).await.unwrap());
    let path = env.master_key_path();
    std::fs::remove_file(&path).unwrap();
    let other = tempfile::tempdir().unwrap();
    warrant::crypto::MasterKey::load(&other.path().join("k"), true).unwrap();
    std::fs::copy(other.path().join("k"), &path).unwrap();

    let err = Application::build(env.settings()).await.err().unwrap();
    assert!(
        err.to_string().contains("sealed under master key"),
        "{err:#}"
    );
}

fn warrant_serve(dir: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warrant"));
    command
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("WARRANT_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied());
    command
}

#[test]
fn a_bad_setting_is_one_line_naming_it_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("WARRANT_LISTEN", "not-an-address"),
        ("WARRANT_ISSUER", "ftp://x"),
        ("WARRANT_DATABASE_URL", "mysql://db"),
        ("WARRANT_TOKEN__DEFAULT_TTL_SECS", "soon"),
    ] {
        let output = warrant_serve(dir.path(), &[(name, value)])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}={value} started");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        let setting = name.trim_start_matches("WARRANT_").to_lowercase();
        assert!(
            stderr.contains(name) || stderr.contains(&setting),
            "{name}: {stderr}"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigterm_and_sigint_stop_the_server_with_exit_code_zero() {
    use std::io::{BufRead as _, BufReader};
    for signal in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = warrant_serve(dir.path(), &[("WARRANT_LOG_LEVEL", "info")])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        assert!(
            lines
                .by_ref()
                .map_while(Result::ok)
                .any(|l| l.contains("warrant is listening")),
            "server did not start"
        );
        // Keep reading so the server never blocks on a full pipe.
        let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let started = std::time::Instant::now();
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server ignored {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(exit.code(), Some(0), "{signal}");
        let rest = drain.join().unwrap();
        assert!(
            rest.iter().any(|l| l.contains("warrant stopped")),
            "{rest:?}"
        );
        // The database was closed: its WAL folded back into the one file.
        assert!(dir.path().join("warrant.db").exists());
        assert!(!dir.path().join("warrant.db-wal").exists(), "{signal}");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_issuance_and_rotation_never_corrupts_the_database() {
    // Rotate every second, so kills land in the middle of rotations too.
    let env = TestEnv::new(&[
        ("WARRANT_JWKS_MAX_AGE_SECS", "0"),
        ("WARRANT_KEYS__PUBLICATION_MARGIN_SECS", "0"),
        ("WARRANT_KEYS__ROTATION_PERIOD_SECS", "1"),
        ("WARRANT_REFRESH_INTERVAL_MS", "50"),
    ])
    .await;
    let http = reqwest::Client::new();
    let mut client: Option<crate::helpers::TestClient> = None;
    for round in 0..6u64 {
        let (mut child, port) = env.start_server();
        let client = client.get_or_insert_with(|| env.create_client_with(&[]));
        // Issue for a while (the first request may wait for the client to be
        // picked up), then kill at a moment that differs every round.
        let deadline = std::time::Instant::now() + Duration::from_millis(1200 + round * 170);
        let mut issued = 0;
        while std::time::Instant::now() < deadline {
            let response = http
                .post(format!("http://127.0.0.1:{port}/oauth/token"))
                .basic_auth(&client.id, Some(&client.secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            if response.status() == 200 {
                issued += 1;
            }
        }
        assert!(issued > 0, "round {round}: no token issued");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        crate::helpers::assert_database_whole(&env.database_url(), &format!("round {round}")).await;
    }
}

#[tokio::test]
async fn slow_clients_cannot_hold_the_server() {
    use tokio::io::AsyncWriteExt as _;
    let app =
        crate::helpers::spawn_app_with_env(&[("WARRANT_REQUEST_HEADER_TIMEOUT_MS", "1000")]).await;
    let client = app.create_client().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // Slowloris: many connections that start a request and never finish it.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    // A legitimate client is served meanwhile.
    let response = app
        .token_with_basic(&client, "grant_type=client_credentials")
        .await;
    assert_eq!(response.status, 200);

    // And the server drops the slow ones once their time is up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut closed = 0;
    for stream in &mut slow {
        let _ = stream.write_all(b"X-Slow: 1\r\n").await;
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::io::AsyncReadExt::read(stream, &mut buf),
        )
        .await;
        // Closed (0 bytes or a reset) or answered 408: either way, let go.
        if matches!(read, Ok(Ok(0)) | Ok(Err(_)))
            || matches!(read, Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 408"))
        {
            closed += 1;
        }
    }
    assert_eq!(closed, slow.len());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_before_exiting() {
    use std::io::{Read as _, Write as _};
    let env = TestEnv::new(&[]).await;
    let (mut child, port) = env.start_server();
    let client = env.create_client_with(&[]);
    tokio::time::sleep(Duration::from_millis(300)).await; // picked up by the server
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        client.id, client.secret
    );
    let (first, rest) = body.split_at(20);

    // A request whose body is still on its way when the signal arrives.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(rest.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("access_token"));

    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
