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

/// Stores clients named `names` (ids `{prefix}{index:05}`) straight into
/// the database: many, in one statement, without an argon2 hash each.
async fn insert_clients(app: &TestApp, prefix: &str, names: &[&str]) -> Vec<String> {
    let ids: Vec<String> = (0..names.len())
        .map(|i| format!("{prefix}{i:05}"))
        .collect();
    let rows: Vec<String> = ids
        .iter()
        .zip(names)
        .map(|(id, name)| {
            assert!(!name.contains('\''), "{name}");
            format!(
                "('{id}', '{name}', '$argon2id$unused', 'read', 'https://api.example.com', \
                 'client_credentials', 'RS256', 300, TRUE, 1, 1)"
            )
        })
        .collect();
    app.execute_sql(&format!(
        "INSERT INTO clients (client_id, name, secret_hash, scopes, audiences, grant_types, \
         signing_alg, token_ttl_secs, enabled, created_at, updated_at) VALUES {}",
        rows.join(", ")
    ))
    .await;
    ids
}

fn listed_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The `--after=ID` that `client list --limit` printed on stderr, if any.
fn next_page(stderr: &[u8]) -> Option<String> {
    let stderr = String::from_utf8_lossy(stderr);
    stderr
        .lines()
        .find_map(|line| line.strip_prefix("next page: --after="))
        .map(str::to_owned)
}

#[tokio::test]
async fn client_list_pages_cover_every_client_exactly_once() {
    let app = spawn_app().await;
    // More than one page of the streamed listing, which reads 1000 at a time.
    let mut expected = insert_clients(&app, "p", &["n"; 2345]).await;
    expected.sort();

    let mut all = listed_ids(&json(&app.cli_ok(&["client", "list", "--json"])));
    all.sort();
    assert_eq!(all, expected);
    let table = app.cli_ok(&["client", "list"]);
    assert_eq!(table.lines().count(), 1 + 2345);

    // 469 divides 2345: the last page is full, yet says nothing follows.
    for limit in [1000, 1500, 469, 2345, 10_000] {
        let limit_arg = limit.to_string();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut args = vec!["client", "list", "--json", "--limit", &limit_arg];
            let after_arg = after.as_ref().map(|id| format!("--after={id}"));
            if let Some(arg) = &after_arg {
                args.push(arg);
            }
            let output = app.cli(&args);
            assert!(output.status.success(), "{args:?}");
            let page = listed_ids(&json(&String::from_utf8(output.stdout).unwrap()));
            assert!(page.len() <= limit, "limit {limit}: {} listed", page.len());
            pages += 1;
            after = next_page(&output.stderr);
            if let Some(next) = &after {
                assert_eq!(next, page.last().unwrap(), "limit {limit}");
            }
            seen.extend(page);
            if after.is_none() {
                break;
            }
            assert!(pages < 100, "limit {limit}: pages never end");
        }
        assert_eq!(pages, 2345_usize.div_ceil(limit), "limit {limit}");
        let count = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), count, "limit {limit}: a client listed twice");
        assert_eq!(seen, expected, "limit {limit}");
    }
}

#[tokio::test]
async fn client_list_after_the_last_id_lists_nothing() {
    let app = spawn_app().await;
    let a = app.create_client().await;
    let b = app.create_client().await;
    let last = std::cmp::max(a.id.as_str(), b.id.as_str());
    // The database's order, not necessarily Rust's: ask it for the last id.
    let ids = listed_ids(&json(&app.cli_ok(&["client", "list", "--json"])));
    let last = ids.last().map_or(last, String::as_str);

    let after = format!("--after={last}");
    let output = app.cli(&["client", "list", "--json", &after]);
    assert!(output.status.success());
    assert_eq!(
        json(&String::from_utf8(output.stdout).unwrap()),
        serde_json::json!([])
    );
    assert_eq!(next_page(&output.stderr), None);
    let table = app.cli_ok(&["client", "list", "--limit", "1", &after]);
    assert_eq!(table.lines().count(), 1, "{table}");

    let first = app.cli(&["client", "list", "--limit", "1"]);
    assert_eq!(next_page(&first.stderr).as_deref(), Some(ids[0].as_str()));
    let listed = String::from_utf8(first.stdout).unwrap();
    assert!(
        listed.contains(&ids[0]) && !listed.contains(&ids[1]),
        "{listed}"
    );
}

#[tokio::test]
async fn client_list_name_matches_case_insensitively_with_star_wildcards() {
    let app = spawn_app().await;
    let names = [
        "Orders-API",
        "orders worker",
        "billing",
        "100% done",
        "100 percent",
        "a_b",
        "axb",
        r"back\slash",
        "backxslash",
        "École",
        "*starred",
    ];
    insert_clients(&app, "n", &names).await;
    let matching = |pattern: &str| -> Vec<String> {
        let arg = format!("--name={pattern}");
        let list = json(&app.cli_ok(&["client", "list", "--json", &arg]));
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let cases: &[(&str, &[&str])] = &[
        ("orders", &["Orders-API", "orders worker"]),
        ("ORDERS", &["Orders-API", "orders worker"]),
        ("orders*", &["Orders-API", "orders worker"]),
        ("*api", &["Orders-API"]),
        ("o*r", &["orders worker"]),
        ("api", &["Orders-API"]),
        ("billing", &["billing"]),
        ("bill", &["billing"]),
        ("bill*", &["billing"]),
        ("*bill", &[]),
        ("100%", &["100% done"]),
        ("%", &["100% done"]),
        ("a_b", &["a_b"]),
        ("_", &["a_b"]),
        (r"k\s", &[r"back\slash"]),
        (r"\", &[r"back\slash"]),
        // Only ASCII case is folded, on both backends.
        ("École", &["École"]),
        ("école", &[]),
        ("nothing like it", &[]),
    ];
    for (pattern, expected) in cases {
        assert_eq!(matching(pattern), *expected, "--name {pattern:?}");
    }
    assert_eq!(matching("*").len(), names.len());
    assert_eq!(matching("**").len(), names.len());

    let table = app.cli_ok(&["client", "list", "--name", "billing"]);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.contains("billing"), "{table}");

    // Pages of a filtered listing hold only matches, and end.
    let first = app.cli(&[
        "client", "list", "--json", "--name", "orders", "--limit", "1",
    ]);
    let after = next_page(&first.stderr).unwrap();
    let arg = format!("--after={after}");
    let second = app.cli(&[
        "client", "list", "--json", "--name", "orders", "--limit", "1", &arg,
    ]);
    assert_eq!(next_page(&second.stderr), None);
    let mut both: Vec<String> = [first.stdout, second.stdout]
        .iter()
        .flat_map(|out| {
            json(&String::from_utf8_lossy(out))
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    both.sort();
    assert_eq!(both, ["Orders-API", "orders worker"]);
}

#[tokio::test]
async fn client_list_refuses_a_bad_limit_after_or_name_with_a_message_naming_the_flag() {
    let app = spawn_app().await;
    let cases: &[(&[&str], &str)] = &[
        (&["--limit", "0"], "--limit"),
        (&["--limit", "10001"], "--limit"),
        (&["--limit=-1"], "--limit"),
        (&["--limit", "many"], "--limit"),
        (&["--after", "a b"], "not a client id"),
        (&["--name", ""], "--name"),
        (&["--name", "a\nb"], "--name"),
    ];
    for (extra, flag) in cases {
        let mut args = vec!["client", "list"];
        args.extend_from_slice(extra);
        let output = app.cli(&args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
    let output = app.cli(&["client", "list", "--limit", "0"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("1..=10000"));
    app.cli_ok(&["client", "list", "--limit", "10000"]);
    app.cli_ok(&["client", "list", "--limit", "1"]);
}
