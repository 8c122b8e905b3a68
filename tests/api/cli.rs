//! `warrant client …` against the same database as a running server.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use serde_json::Value;
use warrant::domain::ClientId;

use crate::helpers::{TestApp, TestEnv, spawn_app, spawn_app_with_env};

const GRANT: &str = "grant_type=client_credentials";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn client_create_stores_only_an_argon2id_hash_of_a_256_bit_secret() {
    let app = spawn_app().await;
    let created = json(&app.cli_ok(&[
        "client",
        "create",
        "--name",
        "orders",
        "--scope",
        "orders:read",
        "--audience",
        "https://orders.example",
        "--json",
    ]));
    let secret = created["client_secret"].as_str().unwrap();
    assert!(
        secret.len() >= 43,
        "secret shorter than 256 bits of base64url"
    );
    assert_eq!(created["name"], "orders");
    assert_eq!(created["scope"], "orders:read");
    assert_eq!(
        created["audiences"],
        serde_json::json!(["https://orders.example"])
    );
    assert_eq!(created["enabled"], true);

    let store = warrant::storage::connect(&app.database_url())
        .await
        .unwrap();
    let id = ClientId::parse(created["client_id"].as_str().unwrap()).unwrap();
    let stored = store.get_client(&id).await.unwrap().unwrap();
    let hash = stored.secret_hash.expose_secret();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(secret));
}

#[tokio::test]
async fn client_create_in_text_prints_the_id_and_secret_once() {
    let app = spawn_app().await;
    let out = app.cli_ok(&[
        "client",
        "create",
        "--name",
        "n",
        "--scope",
        "s",
        "--audience",
        "urn:a",
    ]);
    assert!(out.contains("client_id:"), "{out}");
    assert!(out.contains("client_secret:"), "{out}");
    let listed = app.cli_ok(&["client", "list"]);
    let secret_line = out.lines().find(|l| l.contains("client_secret:")).unwrap();
    let secret = secret_line.split_whitespace().last().unwrap();
    assert!(!listed.contains(secret), "list shows the secret");
}

#[tokio::test]
async fn client_create_refuses_bad_input_with_a_message_naming_the_flag() {
    let app = spawn_app().await;
    let cases: &[(&[&str], &str)] = &[
        (&["--scope", "bad\"scope", "--audience", "urn:a"], "--scope"),
        (&["--scope", "s", "--audience", "relative"], "--audience"),
        (
            &["--scope", "s", "--audience", "urn:a", "--ttl", "999999999"],
            "--ttl",
        ),
        (
            &[
                "--scope",
                "s",
                "--audience",
                "urn:a",
                "--grant-types",
                "password",
            ],
            "--grant-types",
        ),
    ];
    for (extra, flag) in cases {
        let mut args = vec!["client", "create", "--name", "n"];
        args.extend_from_slice(extra);
        let output = app.cli(&args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    assert_eq!(
        json(&app.cli_ok(&["client", "list", "--json"])),
        serde_json::json!([])
    );
}

#[tokio::test]
async fn client_list_and_show_describe_clients_without_secrets() {
    let app = spawn_app().await;
    let a = app.create_client().await;
    let b = app
        .create_client_with(&["--scope", "x y", "--ttl", "120"])
        .await;

    let list = json(&app.cli_ok(&["client", "list", "--json"]));
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a.id.as_str()) && ids.contains(&b.id.as_str()));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("client_secret").is_none())
    );

    let table = app.cli_ok(&["client", "list"]);
    assert!(table.contains(&a.id) && table.contains(&b.id), "{table}");

    let shown = json(&app.cli_ok(&["client", "show", &b.id, "--json"]));
    assert_eq!(shown["scope"], "x y");
    assert_eq!(shown["token_ttl_secs"], 120);
    let text = app.cli_ok(&["client", "show", &b.id]);
    assert!(text.contains("x y"), "{text}");
}

#[tokio::test]
async fn commands_on_an_unknown_client_fail_with_a_clear_message() {
    let app = spawn_app().await;
    for args in [
        vec!["client", "show", "nope"],
        vec!["client", "disable", "nope"],
        vec!["client", "enable", "nope"],
        vec!["client", "delete", "nope", "--confirm-delete"],
    ] {
        let output = app.cli(&args);
        assert!(!output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("no client with id nope"));
    }
}

#[tokio::test]
async fn disable_and_enable_flip_the_enabled_flag() {
    let app = spawn_app().await;
    let client = app.create_client().await;
    app.cli_ok(&["client", "disable", &client.id]);
    assert_eq!(
        json(&app.cli_ok(&["client", "show", &client.id, "--json"]))["enabled"],
        false
    );
    app.cli_ok(&["client", "enable", &client.id]);
    assert_eq!(
        json(&app.cli_ok(&["client", "show", &client.id, "--json"]))["enabled"],
        true
    );
}

#[tokio::test]
async fn delete_needs_the_confirmation_flag() {
    let app = spawn_app().await;
    let client = app.create_client().await;

    let refused = app.cli(&["client", "delete", &client.id]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--confirm-delete"));
    app.cli_ok(&["client", "show", &client.id]);

    app.cli_ok(&["client", "delete", &client.id, "--confirm-delete"]);
    assert!(!app.cli(&["client", "show", &client.id]).status.success());
}

/// Polls the token endpoint until it answers `status`, for at most `limit`.
async fn time_until(app: &TestApp, authorization: &str, status: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if app.post_token(GRANT, Some(authorization)).await.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "still not {status} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_running_server_sees_cli_changes_within_two_seconds() {
    // The default polling interval, not the tests' quick one.
    let app = spawn_app_with_env(&[("WARRANT_REFRESH_INTERVAL_MS", "1000")]).await;
    let limit = Duration::from_secs(2);

    let client = app.create_client_unannounced(&[]);
    let authorization = crate::helpers::basic(&client.id, &client.secret);
    let id = client.id.as_str();
    let created = time_until(&app, &authorization, 200, limit).await;

    app.cli_ok(&["client", "disable", id]);
    let disabled = time_until(&app, &authorization, 401, limit).await;

    app.cli_ok(&["client", "enable", id]);
    let enabled = time_until(&app, &authorization, 200, limit).await;

    app.cli_ok(&["client", "delete", id, "--confirm-delete"]);
    let deleted = time_until(&app, &authorization, 401, limit).await;
    eprintln!(
        "CLI change to server, polling every 1 s: create {created:?}, disable {disabled:?}, \
         enable {enabled:?}, delete {deleted:?}"
    );
}

#[test]
fn help_describes_every_command() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_warrant"))
        .args(["client", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["create", "list", "show", "disable", "enable", "delete"] {
        assert!(
            help.contains(command),
            "{command} missing from --help:\n{help}"
        );
    }
}

#[tokio::test]
async fn migrate_brings_a_database_up_to_date_for_servers_that_do_not_migrate() {
    let env = TestEnv::new(&[("WARRANT_AUTO_MIGRATE", "false")]).await;
    let settings = env.settings();
    assert!(!settings.auto_migrate);
    // Without migrations, a server that may not apply them cannot start.
    assert!(
        warrant::startup::Application::build(settings)
            .await
            .is_err()
    );

    let output = env.cli(&["migrate"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("up to date"));

    let app = env.spawn().await;
    assert_eq!(app.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn verify_explains_whether_a_token_is_valid_and_why_not() {
    let app =
        crate::helpers::spawn_app_with_env(&[("WARRANT_ISSUER", "https://warrant.test")]).await;
    let client = app.create_client().await;
    let token = app
        .token_with_basic(&client, "grant_type=client_credentials")
        .await
        .access_token()
        .to_owned();

    let valid = app.cli(&["verify", &token]);
    let out = String::from_utf8_lossy(&valid.stdout);
    assert!(valid.status.success(), "{out}");
    assert!(out.contains("valid: issuer https://warrant.test"), "{out}");
    assert!(
        out.contains(&format!("\"client_id\":\"{}\"", client.id)),
        "{out}"
    );

    let wrong_audience = app.cli(&["verify", &token, "--audience", "urn:other"]);
    assert!(!wrong_audience.status.success());
    assert!(String::from_utf8_lossy(&wrong_audience.stdout).contains("invalid: invalid audience"));

    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let forged = app.cli(&["verify", &tampered]);
    assert!(!forged.status.success());
    assert!(String::from_utf8_lossy(&forged.stdout).contains("invalid:"));

    let garbage = app.cli(&["verify", "not-a-token"]);
    assert!(!garbage.status.success());
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("not a JWT"));
}
