use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use warrant::configuration::Settings;
use warrant::registry::Registry;
use warrant::startup::Application;

use crate::openapi::OpenApi;

/// A server of this test binary, and the settings it was started with.
pub struct TestApp {
    pub address: String,
    pub issuer: String,
    pub registry: Arc<Registry>,
    /// What the server was started with; the CLI runs with it too.
    pub env: TestEnv,
    http: reqwest::Client,
    /// Every secret and token this test met, and where the log capture stood
    /// when the server started: when the app is dropped, the logs written
    /// since then must hold none of them. So every test in the suite checks
    /// its own secrets against the logs of its own run.
    seen: Mutex<Seen>,
    logs_from: usize,
}

/// How many of a test's tokens are looked for in the logs.
const TOKENS_CHECKED: usize = 16;

#[derive(Default)]
struct Seen {
    secrets: Vec<String>,
    tokens: usize,
    /// What the CLI wrote to stderr (stdout shows a new secret on purpose).
    cli_stderr: String,
}

impl TestApp {
    fn saw_secret(&self, secret: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.secrets.push(secret.to_owned());
    }

    fn saw_token(&self, token: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // Load tests issue thousands, all logged alike: the first few
        // stand for the rest, and keep the check at drop quick.
        if seen.tokens == TOKENS_CHECKED {
            return;
        }
        seen.tokens += 1;
        seen.secrets.push(token.to_owned());
        // A signature is as telling as the whole token.
        if let Some(signature) = token.rsplit('.').next() {
            seen.secrets.push(signature.to_owned());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // the test failed already; do not abort it
        }
        let seen = self.seen.get_mut().unwrap_or_else(PoisonError::into_inner);
        // A copy, so that the other tests' servers can go on logging (they
        // would wait for the lock) while this one is searched.
        let logs = {
            let logs = LOGS.lock().unwrap_or_else(PoisonError::into_inner);
            logs[self.logs_from.min(logs.len())..].to_vec()
        };
        let logs = String::from_utf8_lossy(&logs);
        for secret in &seen.secrets {
            assert!(
                !logs.contains(secret.as_str()),
                "a secret or token of this test reached the server log"
            );
            assert!(
                !seen.cli_stderr.contains(secret.as_str()),
                "a secret or token of this test reached the CLI's log"
            );
        }
    }
}

/// A client made through the CLI, with the secret it printed.
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

/// A response already checked against `openapi.yaml`.
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    pub fn access_token(&self) -> &str {
        self.body["access_token"]
            .as_str()
            .expect("no access_token in response")
    }
}

fn openapi() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(OpenApi::load)
}

/// Set to a PostgreSQL URL (e.g. postgres://postgres:postgres@127.0.0.1/postgres)
/// to run the suite on PostgreSQL: each test then gets a database of its own.
pub const POSTGRES_URL_VAR: &str = "WARRANT_TEST_POSTGRES_URL";

pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|v| !v.is_empty())
}

/// The settings of one test, as the `WARRANT_*` variables an operator would
/// set: the server's `Settings` are loaded from them and the CLI runs with
/// exactly them, so the two can never disagree. Clones (replicas, a CLI with
/// one setting changed) share the folder that holds the master key and the
/// SQLite database.
#[derive(Clone)]
pub struct TestEnv {
    dir: Arc<TempDir>,
    vars: Vec<(String, String)>,
}

impl TestEnv {
    /// Port 0, a database and master key of its own, quick polling, then
    /// `extra` (which may name another database, e.g. on a small disk).
    pub async fn new(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = Self {
            vars: Vec::new(),
            dir: Arc::new(dir),
        };
        if !extra
            .iter()
            .any(|(name, _)| *name == "WARRANT_DATABASE_URL")
        {
            let url = fresh_database(env.dir()).await;
            env.set("WARRANT_DATABASE_URL", &url);
        }
        let master_key = env.dir().join("keys/master.key");
        env.set("WARRANT_MASTER_KEY_FILE", &master_key.display().to_string());
        for (name, value) in [
            ("WARRANT_LISTEN", "127.0.0.1:0"),
            ("WARRANT_WORKERS", "1"),
            ("WARRANT_REFRESH_INTERVAL_MS", "100"),
            ("WARRANT_LOG_LEVEL", "warn"),
        ]
        .iter()
        .chain(extra)
        {
            env.set(name, value);
        }
        env
    }

    /// Sets `name` to `value`, in place of any value it had.
    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.to_owned()));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// This test's own folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn database_url(&self) -> String {
        self.get("WARRANT_DATABASE_URL").unwrap().to_owned()
    }

    pub fn master_key_path(&self) -> PathBuf {
        PathBuf::from(self.get("WARRANT_MASTER_KEY_FILE").unwrap())
    }

    /// The settings a server started with these variables has.
    pub fn settings(&self) -> Settings {
        Settings::load_from(None, self.vars.clone())
            .unwrap()
            .settings
    }

    /// `warrant ARGS` with exactly these variables and no others.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_warrant"));
        command
            .args(args)
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `warrant ARGS` to its end. For a test without a [`TestApp`]:
    /// [`TestApp::cli`] also checks what the CLI logged.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run warrant")
    }

    /// Creates a client with the CLI (see [`create_client`]); no server is
    /// told.
    pub fn create_client_with(&self, extra: &[&str]) -> TestClient {
        create_client(|args| self.cli(args), extra)
    }

    /// Starts `warrant serve` as a process and returns it with the port it
    /// bound.
    pub fn start_server(&self) -> (ServerProcess, u16) {
        use std::io::{BufRead as _, BufReader};
        use std::process::Stdio;
        let mut child = self
            .command(&["serve"])
            .env("WARRANT_LOG_LEVEL", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.contains("warrant is listening")
                    .then(|| {
                        l.split("port=")
                            .nth(1)?
                            .split_whitespace()
                            .next()?
                            .parse()
                            .ok()
                    })
                    .flatten()
            })
            .expect("server did not start");
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        (ServerProcess(child), port)
    }

    /// Starts a server in this test with these settings.
    pub async fn spawn(self) -> TestApp {
        capture_logs();
        let logs_from = LOGS.lock().unwrap_or_else(PoisonError::into_inner).len();
        let application = Application::build(self.settings())
            .await
            .expect("server starts");
        let address = format!("http://127.0.0.1:{}", application.port());
        let issuer = application.issuer().to_owned();
        let registry = application.registry();
        tokio::spawn(application.run_until_stopped());
        TestApp {
            address,
            issuer,
            registry,
            env: self,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            seen: Mutex::default(),
            logs_from,
        }
    }
}

/// A `warrant serve` process, killed when dropped: a test that fails before
/// it stops its server must not leave one behind, holding the test run's
/// output open.
pub struct ServerProcess(std::process::Child);

impl std::ops::Deref for ServerProcess {
    type Target = std::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ServerProcess {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A database for a test in `dir`: a SQLite file there, or a fresh PostgreSQL
/// database.
async fn fresh_database(dir: &Path) -> String {
    let Some(admin_url) = postgres_url() else {
        return format!("sqlite:{}", dir.join("warrant.db").display());
    };
    let name = format!("warrant_test_{}", uuid_like());
    let admin = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("PostgreSQL reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

fn uuid_like() -> String {
    let bytes: [u8; 8] = warrant::crypto::random_bytes().unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with_env(&[]).await
}

/// A server whose settings are the test defaults plus `extra` variables.
pub async fn spawn_app_with_env(extra: &[(&str, &str)]) -> TestApp {
    TestEnv::new(extra).await.spawn().await
}

/// Another server on the same database and master key as `app`: a replica.
pub async fn spawn_replica(app: &TestApp) -> TestApp {
    app.env.clone().spawn().await
}

/// Every log line the servers of this test binary write, as JSON, at trace
/// level for Warrant: tests read it to check what is (and is not) logged.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogCapture;

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let filter = Targets::new()
            .with_target("warrant", LevelFilter::TRACE)
            .with_target("actix_web", LevelFilter::DEBUG)
            .with_target("actix_server", LevelFilter::DEBUG)
            .with_target("sqlx", LevelFilter::DEBUG);
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(|| LogCapture);
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init();
    });
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
}

/// The database at `url` is whole: exactly one current RS256 key and, on
/// SQLite, `PRAGMA integrity_check` says ok. `context` names the moment.
pub async fn assert_database_whole(url: &str, context: &str) {
    let store = warrant::storage::connect(url).await.unwrap();
    let keys = store.list_keys(false).await.unwrap();
    let current = keys
        .iter()
        .filter(|k| {
            k.set == warrant::domain::KeySetName::Asymmetric(warrant::crypto::Algorithm::RS256)
                && k.state == warrant::domain::KeyState::Current
        })
        .count();
    assert_eq!(current, 1, "{context}");
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(check, "ok", "{context}");
    }
}

/// Creates a client with `cli` (the CLI with some settings), scope "read
/// write" and audience "https://api.example.com" unless `extra` names others.
fn create_client(cli: impl FnOnce(&[&str]) -> Output, extra: &[&str]) -> TestClient {
    let mut args = vec!["client", "create", "--name", "test", "--json"];
    args.extend_from_slice(extra);
    if !extra.contains(&"--scope") {
        args.extend_from_slice(&["--scope", "read write"]);
    }
    if !extra.contains(&"--audience") {
        args.extend_from_slice(&["--audience", "https://api.example.com"]);
    }
    let output = cli(&args);
    assert!(
        output.status.success(),
        "warrant {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    TestClient {
        id: created["client_id"].as_str().unwrap().to_owned(),
        secret: created["client_secret"].as_str().unwrap().to_owned(),
    }
}

pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

impl TestApp {
    pub fn database_url(&self) -> String {
        self.env.database_url()
    }

    /// Runs one SQL statement on this app's database, whichever it is.
    pub async fn execute_sql(&self, sql: &str) {
        let url = self.database_url();
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        } else {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
    }

    pub fn master_key_path(&self) -> PathBuf {
        self.env.master_key_path()
    }

    /// Runs the `warrant` binary with this app's settings; what it logs is
    /// checked for this test's secrets when the app is dropped.
    pub fn cli(&self, args: &[&str]) -> Output {
        let output = self.env.cli(args);
        if let Ok(printed) = serde_json::from_slice::<Value>(&output.stdout)
            && let Some(secret) = printed["client_secret"].as_str()
        {
            self.saw_secret(secret);
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.cli_stderr
            .push_str(&String::from_utf8_lossy(&output.stderr));
        output
    }

    /// `cli` that must succeed; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "warrant {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Creates a client with the CLI (see [`create_client`]) and makes the
    /// server see it at once.
    pub async fn create_client_with(&self, extra: &[&str]) -> TestClient {
        let client = self.create_client_unannounced(extra);
        self.refresh().await;
        client
    }

    /// Creates a client with the CLI; the server is not told, so a test can
    /// see it notice by itself.
    pub fn create_client_unannounced(&self, extra: &[&str]) -> TestClient {
        create_client(|args| self.cli(args), extra)
    }

    pub async fn create_client(&self) -> TestClient {
        self.create_client_with(&[]).await
    }

    pub async fn refresh(&self) {
        self.registry.refresh().await.expect("registry refresh");
    }

    /// Sends a request and checks the response against `openapi.yaml`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> TestResponse {
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body read");
        let text = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"));
        let body = if bytes.is_empty() {
            Value::Null
        } else if text {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("{method} {path} -> {status}: body is not JSON: {bytes:?}")
            })
        };
        openapi().check_response(method.as_str(), path, status.as_u16(), &headers, &body);
        if let Some(token) = body["access_token"].as_str() {
            self.saw_token(token);
        }
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        let request = self.http.get(format!("{}{path}", self.address));
        self.send(Method::GET, path, request).await
    }

    /// POST /oauth/token with a form body and an optional Authorization.
    pub async fn post_token(&self, body: &str, authorization: Option<&str>) -> TestResponse {
        let mut request = self
            .http
            .post(format!("{}/oauth/token", self.address))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        self.send(Method::POST, "/oauth/token", request).await
    }

    /// A raw request to the token endpoint, for malformed ones.
    pub fn token_request(&self, method: Method) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/oauth/token", self.address))
    }

    pub async fn token_with_basic(&self, client: &TestClient, body: &str) -> TestResponse {
        self.post_token(body, Some(&basic(&client.id, &client.secret)))
            .await
    }
}

/// Verifies `token` the way a third party would: the `jsonwebtoken` crate,
/// with the key the JWKS endpoint publishes under the token's `kid`.
pub async fn verify_independently(app: &TestApp, token: &str, audience: &str) -> Value {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, decode_header};

    let header = decode_header(token).expect("JWT header");
    let kid = header.kid.clone().expect("kid in header");
    let jwks: JwkSet =
        serde_json::from_value(app.get("/.well-known/jwks.json").await.body).unwrap();
    let jwk = jwks.find(&kid).expect("kid published in the JWKS");
    decode_with(
        token,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &app.issuer,
        audience,
    )
}

/// Decodes with the header's algorithm, checking typ, iss, aud, exp, iat.
pub fn decode_with(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    issuer: &str,
    audience: &str,
) -> Value {
    use jsonwebtoken::{Validation, decode, decode_header};

    let header = decode_header(token).expect("JWT header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    validation.leeway = 0;
    decode::<Value>(token, key, &validation)
        .expect("token verifies")
        .claims
}
