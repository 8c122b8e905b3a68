//! Secrets hygiene: no secret, token or key material in logs, error bodies
//! or `Debug` output.

use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::helpers::{basic, captured_logs, spawn_app_with_env};

const GRANT: &str = "grant_type=client_credentials";

#[tokio::test]
async fn logs_and_errors_never_contain_secrets_tokens_or_key_material() {
    let app = spawn_app_with_env(&[
        ("WARRANT_LOG_LEVEL", "trace"),
        ("WARRANT_JWKS_MAX_AGE_SECS", "0"),
        ("WARRANT_KEYS__PUBLICATION_MARGIN_SECS", "0"),
    ])
    .await;
    let mut secrets: Vec<String> = Vec::new();
    let mut cli_output = String::new();
    let mut cli = |args: &[&str]| {
        let output = app.cli(args);
        cli_output.push_str(&String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).unwrap()
    };

    let created: Value = serde_json::from_str(&cli(&[
        "client",
        "create",
        "--name",
        "n",
        "--scope",
        "read",
        "--audience",
        "urn:a",
        "--audience",
        "urn:hs",
        "--json",
    ]))
    .unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    secrets.push(secret.clone());
    cli(&["keys", "generate", "--alg", "HS256", "--audience", "urn:hs"]);
    let exported: Value = serde_json::from_str(&cli(&[
        "keys",
        "export-secret",
        "--audience",
        "urn:hs",
        "--json",
    ]))
    .unwrap();
    secrets.push(exported["keys"][0]["secret"].as_str().unwrap().to_owned());
    // Times are stored in whole seconds, so the secret is safe to sign with
    // only a second after its export: force it, as the test needs no
    // verifier to have it.
    cli(&[
        "keys",
        "rotate",
        "--audience",
        "urn:hs",
        "--force-unsafe-promotion",
    ]);
    cli(&["keys", "rotate", "--force-unsafe-promotion"]);
    app.refresh().await;

    // Successes with both methods, for both kinds of key, and failures of
    // every kind, some of them carrying near-secrets.
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    secrets.push(wrong.clone());
    let mut bodies = Vec::new();
    for (body, authorization) in [
        (GRANT.to_owned(), Some(basic(&id, &secret))),
        (
            format!("{GRANT}&client_id={id}&client_secret={secret}"),
            None,
        ),
        (
            format!("{GRANT}&resource=urn%3Ahs"),
            Some(basic(&id, &secret)),
        ),
        (GRANT.to_owned(), Some(basic(&id, &wrong))),
        (
            format!("{GRANT}&client_id={id}&client_secret={wrong}"),
            None,
        ),
        (
            format!("{GRANT}&client_secret={secret}"),
            Some(basic(&id, &secret)),
        ),
        (GRANT.to_owned(), Some(basic("unknown", &secret))),
        ("grant_type=password".to_owned(), Some(basic(&id, &secret))),
        (format!("{GRANT}&scope=admin"), Some(basic(&id, &secret))),
    ] {
        let response = app.post_token(&body, authorization.as_deref()).await;
        match response.body["access_token"].as_str() {
            Some(token) => {
                secrets.push(token.to_owned());
                // Any one part of a token is as telling as the whole.
                secrets.extend(token.split('.').skip(1).map(str::to_owned));
            }
            None => bodies.push(response.body.to_string()),
        }
    }
    assert!(secrets.len() > 8, "the scenario issued no tokens");
    assert_eq!(bodies.len(), 6, "every failure was refused");

    let store = warrant::storage::connect(&app.database_url())
        .await
        .unwrap();
    let client = store
        .get_client(&warrant::domain::ClientId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    secrets.push(client.secret_hash.expose_secret().to_owned());
    let master_key = std::fs::read_to_string(app.master_key_path()).unwrap();
    secrets.push(master_key.trim().to_owned());

    let logs = captured_logs();
    // The capture works: it holds this test's token requests.
    assert!(
        logs.lines().any(|l| l.contains("\"token request\"")
            && l.contains(&id)
            && l.contains("\"issued\"")),
        "no token request log line for {id}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the server log"
        );
        assert!(
            !cli_output.contains(secret.as_str()),
            "a secret reached the CLI's log"
        );
        for body in &bodies {
            assert!(
                !body.contains(secret.as_str()),
                "a secret reached an error body: {body}"
            );
        }
    }

    // Debug output of the types that hold secrets.
    let debug = format!("{client:?}");
    assert!(
        !debug.contains(client.secret_hash.expose_secret()),
        "{debug}"
    );
    let (master, _) = warrant::crypto::MasterKey::load(&app.master_key_path(), false).unwrap();
    assert!(!format!("{master:?}").contains(master_key.trim()));
}

#[tokio::test]
async fn each_token_request_is_one_structured_line_with_its_outcome_and_latency() {
    let app = spawn_app_with_env(&[]).await;
    let client = app.create_client().await;
    app.token_with_basic(&client, GRANT).await;
    app.post_token(GRANT, Some(&basic(&client.id, "wrong")))
        .await;

    let lines: Vec<Value> = captured_logs()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["message"] == "token request" && l["client_id"] == client.id.as_str())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["outcome"], "issued");
    assert_eq!(lines[1]["outcome"], "invalid_client");
    for line in &lines {
        assert!(line["latency_us"].is_u64(), "{line}");
    }
}
