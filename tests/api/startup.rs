//! First start, restart, and the ways starting must fail loudly.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{spawn_app_with, test_settings};
use warrant::startup::Application;

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn first_start_creates_a_private_master_key_and_database() {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(&dir).await;
    let app = spawn_app_with(dir, settings).await;
    assert_eq!(mode(&app.master_key_path()), 0o600);
    assert_eq!(mode(&app.dir.path().join("keys")), 0o700);
    if crate::helpers::postgres_url().is_none() {
        assert_eq!(mode(&app.dir.path().join("warrant.db")), 0o600);
    }
}

#[tokio::test]
async fn a_restart_signs_with_the_same_stored_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = Application::build(test_settings(&dir).await).await.unwrap();
    let kid = first
        .registry()
        .snapshot()
        .default_signer()
        .unwrap()
        .kid()
        .to_owned();
    drop(first);
    let second = Application::build(test_settings(&dir).await).await.unwrap();
    assert_eq!(
        second.registry().snapshot().default_signer().unwrap().kid(),
        kid
    );
}

#[tokio::test]
async fn a_missing_master_key_is_a_startup_error_not_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    drop(Application::build(test_settings(&dir).await).await.unwrap());
    std::fs::remove_file(dir.path().join("keys/master.key")).unwrap();

    let err = Application::build(test_settings(&dir).await)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("master key"), "{err}");
    assert!(
        !dir.path().join("keys/master.key").exists(),
        "a new master key was created"
    );
}

#[tokio::test]
async fn a_different_master_key_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(Application::build(test_settings(&dir).await).await.unwrap());
    let path = dir.path().join("keys/master.key");
    std::fs::remove_file(&path).unwrap();
    let other = tempfile::tempdir().unwrap();
    warrant::crypto::MasterKey::load(&other.path().join("k"), true).unwrap();
    std::fs::copy(other.path().join("k"), &path).unwrap();

    let err = Application::build(test_settings(&dir).await)
        .await
        .err()
        .unwrap();
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
    }
}
