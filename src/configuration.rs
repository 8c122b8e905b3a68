//! Settings, layered: built-in defaults, then an optional TOML file, then
//! `WARRANT_*` environment variables (`__` separates nested keys, e.g.
//! `WARRANT_TOKEN__DEFAULT_TTL_SECS`). The master key is deliberately not a
//! setting: it is read from its own file or `WARRANT_MASTER_KEY` only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::forwarded::TrustedProxies;

const ENV_PREFIX: &str = "WARRANT_";
/// Variables with the prefix that are not settings.
const NOT_SETTINGS: &[&str] = &[crate::crypto::MASTER_KEY_ENV];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// host:port the HTTP server binds.
    pub listen: String,
    /// The `iss` of every token; empty means `http://<listen>`.
    pub issuer: String,
    /// `sqlite:PATH` (created on first start) or `postgres://…`.
    pub database_url: DatabaseUrl,
    /// Where the master key lives; created (mode 0600) on first start.
    pub master_key_file: PathBuf,
    /// error, warn, info, debug or trace.
    pub log_level: String,
    /// `text` for people, `json` for log pipelines.
    pub log_format: LogFormat,
    /// HTTP worker threads; 0 means one per CPU.
    pub workers: usize,
    /// How long SIGTERM/SIGINT wait for in-flight requests.
    pub shutdown_timeout_secs: u64,
    /// A client must send its request headers within this time (slowloris).
    pub request_header_timeout_ms: u64,
    /// Idle keep-alive connections are closed after this long.
    pub keep_alive_secs: u64,
    /// Concurrent connections per worker; more wait in the accept queue.
    pub max_connections: usize,
    /// How often the server polls the database for changes made elsewhere.
    pub refresh_interval_ms: u64,
    /// How long the change log keeps entries: a server away for longer
    /// reloads every client when it comes back, instead of the changed ones.
    pub change_log_retention_secs: u64,
    /// Entries of the change log kept whatever their age.
    pub change_log_min_entries: u64,
    /// How long a server keeps issuing tokens from memory after it last
    /// reached the database (it cannot see disabled clients meanwhile).
    pub outage_grace_secs: u64,
    /// Apply pending migrations when `serve` or the CLI opens the database;
    /// false leaves it to `warrant migrate`.
    pub auto_migrate: bool,
    /// `Cache-Control: max-age` of the JWKS and metadata documents.
    pub jwks_max_age_secs: u64,
    pub token: TokenSettings,
    pub auth: AuthSettings,
    pub keys: KeySettings,
    pub limits: LimitSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Lifetime of tokens for clients created without `--ttl`.
    pub default_ttl_secs: u32,
    /// No client may be given a longer lifetime.
    pub max_ttl_secs: u32,
    /// Largest accepted token request body.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// argon2 verifications run at once; 0 means half the CPUs (at least 1).
    pub argon2_concurrency: usize,
    /// How long a request may wait for an argon2 slot before a 503.
    pub argon2_queue_timeout_ms: u64,
    /// How long an unused verified secret is remembered (its client
    /// unchanged); each use renews it.
    pub credential_cache_secs: u64,
    /// How long a verified secret is remembered at most, used or not.
    pub credential_cache_max_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Failed authentications a minute for one client_id from one source
    /// address (IPv6: per /64) before its requests needing an argon2 verify
    /// get 429; 0 disables.
    pub failed_auth_per_client_per_minute: u32,
    /// The same for one client_id from all addresses together: far larger,
    /// so that guessing from elsewhere does not hold back a client on its
    /// own network; 0 disables.
    pub failed_auth_per_client_everywhere_per_minute: u32,
    /// The same per source address (IPv6: per /64), whatever the client_id;
    /// 0 disables.
    pub failed_auth_per_address_per_minute: u32,
    /// Proxies whose `X-Forwarded-For` names the source address, as a comma-
    /// separated list of addresses and networks (e.g. "10.0.0.0/8"). Empty:
    /// the TCP peer is the source and the header is ignored.
    pub trusted_proxies: String,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            failed_auth_per_client_per_minute: 20,
            failed_auth_per_client_everywhere_per_minute: 600,
            failed_auth_per_address_per_minute: 100,
            trusted_proxies: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    /// Added to `jwks_max_age_secs`: how long a new key is published before
    /// it may sign (covers clock skew, proxies, replicas' polling).
    pub publication_margin_secs: u64,
    /// Added to `token.max_ttl_secs`: how long a retired-from-signing key
    /// stays published.
    pub retire_leeway_secs: u64,
    /// Rotate each key set this long after its key started signing; 0 turns
    /// automatic rotation off.
    pub rotation_period_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A database URL. A PostgreSQL one carries a password, so `Debug` and
/// `Display` print it redacted; [`expose_secret`](Self::expose_secret) is
/// for opening the database only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::storage::redact_url(&self.0))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            issuer: String::new(),
            database_url: DatabaseUrl::from("sqlite:warrant.db"),
            master_key_file: PathBuf::from("keys/master.key"),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            workers: 0,
            shutdown_timeout_secs: 30,
            request_header_timeout_ms: 5000,
            keep_alive_secs: 15,
            max_connections: 10_000,
            refresh_interval_ms: 1000,
            change_log_retention_secs: 86_400,
            change_log_min_entries: 10_000,
            outage_grace_secs: 900,
            auto_migrate: true,
            jwks_max_age_secs: 300,
            token: TokenSettings::default(),
            auth: AuthSettings::default(),
            keys: KeySettings::default(),
            limits: LimitSettings::default(),
        }
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            default_ttl_secs: 900,
            max_ttl_secs: 86_400,
            max_body_bytes: 4096,
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            publication_margin_secs: 60,
            retire_leeway_secs: 60,
            rotation_period_secs: 90 * 24 * 3600,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            argon2_concurrency: 0,
            argon2_queue_timeout_ms: 2000,
            credential_cache_secs: 600,
            credential_cache_max_secs: 3600,
        }
    }
}

/// A setting that cannot be used, named the way the operator wrote it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

fn config_error(setting: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.into(),
        message: message.into(),
    }
}

/// Settings and the warnings found while reading them (printed once logging
/// is set up, which itself needs the settings).
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub warnings: Vec<String>,
}

impl Settings {
    pub fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let defaults = toml::Table::try_from(Settings::default())
            .map_err(|e| config_error("defaults", e.to_string()))?;
        let mut merged = defaults.clone();
        let mut warnings = Vec::new();

        if let Some(path) = file {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| config_error(format!("--config {origin}"), e.to_string()))?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                config_error(origin.clone(), e.message().to_owned())
            })?;
            merge(&mut merged, table);
        }

        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !NOT_SETTINGS.contains(&k.as_str()))
            .collect();
        vars.sort();
        for (name, value) in vars {
            let path: Vec<String> = name[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_lowercase)
                .collect();
            match lookup(&defaults, &path) {
                Some(default) => {
                    let value = typed_like(default, &value).ok_or_else(|| {
                        config_error(&name, format!("expected {}", default.type_str()))
                    })?;
                    set(&mut merged, &path, value);
                }
                None => warnings.push(format!("ignoring unknown environment variable {name}")),
            }
        }

        let settings: Settings = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| config_error("configuration", e.message().to_owned()))?;
        settings.validate()?;
        Ok(Loaded { settings, warnings })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if !self.issuer.is_empty() {
            let ok = (self.issuer.starts_with("https://") || self.issuer.starts_with("http://"))
                && !self.issuer.contains(['?', '#', ' '])
                && self.issuer.len() <= 512;
            if !ok {
                return Err(config_error(
                    "issuer (WARRANT_ISSUER)",
                    "must be an http(s) URL without query or fragment",
                ));
            }
        }
        if crate::storage::Backend::of(self.database_url.expose_secret()).is_none() {
            return Err(config_error(
                "database_url (WARRANT_DATABASE_URL)",
                "must be sqlite:PATH or postgres://USER:PASSWORD@HOST/DATABASE",
            ));
        }
        if !["error", "warn", "info", "debug", "trace"].contains(&self.log_level.as_str()) {
            return Err(config_error(
                "log_level (WARRANT_LOG_LEVEL)",
                "must be one of error, warn, info, debug, trace",
            ));
        }
        let token = &self.token;
        if token.max_ttl_secs == 0 || token.default_ttl_secs == 0 {
            return Err(config_error("token.*_ttl_secs", "must be positive"));
        }
        if token.default_ttl_secs > token.max_ttl_secs {
            return Err(config_error(
                "token.default_ttl_secs (WARRANT_TOKEN__DEFAULT_TTL_SECS)",
                "must not exceed token.max_ttl_secs",
            ));
        }
        if !(256..=1024 * 1024).contains(&token.max_body_bytes) {
            return Err(config_error(
                "token.max_body_bytes (WARRANT_TOKEN__MAX_BODY_BYTES)",
                "must be between 256 and 1048576",
            ));
        }
        if let Err(e) = TrustedProxies::parse(&self.limits.trusted_proxies) {
            return Err(config_error(
                "limits.trusted_proxies (WARRANT_LIMITS__TRUSTED_PROXIES)",
                format!("{e}; expected addresses or networks like 10.0.0.0/8, comma-separated"),
            ));
        }
        if !(50..=60_000).contains(&self.refresh_interval_ms) {
            return Err(config_error(
                "refresh_interval_ms (WARRANT_REFRESH_INTERVAL_MS)",
                "must be between 50 and 60000",
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            config_error(
                "listen (WARRANT_LISTEN)",
                format!("{:?} is not host:port", self.listen),
            )
        })
    }

    /// The issuer, defaulted from the address actually bound (which differs
    /// from `listen` when it asks for port 0).
    pub fn issuer_for(&self, bound: SocketAddr) -> String {
        if self.issuer.is_empty() {
            format!("http://{bound}")
        } else {
            self.issuer.trim_end_matches('/').to_owned()
        }
    }

    pub fn workers(&self) -> usize {
        or_cpus(self.workers)
    }

    pub fn change_log_retention(&self) -> crate::registry::ChangeLogRetention {
        crate::registry::ChangeLogRetention {
            secs: i64::try_from(self.change_log_retention_secs).unwrap_or(i64::MAX),
            min_entries: i64::try_from(self.change_log_min_entries).unwrap_or(i64::MAX),
        }
    }

    pub fn refresh_interval(&self) -> Duration {
        Duration::from_millis(self.refresh_interval_ms)
    }
}

impl AuthSettings {
    /// Half the CPUs by default: a flood of wrong secrets can take at most
    /// that share from token issuance.
    pub fn concurrency(&self) -> usize {
        if self.argon2_concurrency > 0 {
            self.argon2_concurrency
        } else {
            (or_cpus(0) / 2).max(1)
        }
    }
}

fn or_cpus(n: usize) -> usize {
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

fn lookup<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let value = table.get(first)?;
    match (value, rest.is_empty()) {
        (_, true) => Some(value),
        (toml::Value::Table(t), false) => lookup(t, rest),
        _ => None,
    }
}

fn set(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        table.insert(first.clone(), value);
    } else if let Some(toml::Value::Table(t)) = table.get_mut(first) {
        set(t, rest, value);
    }
}

/// An environment string read as the type of the setting's default.
fn typed_like(default: &toml::Value, raw: &str) -> Option<toml::Value> {
    match default {
        toml::Value::Integer(_) => raw.trim().parse().ok().map(toml::Value::Integer),
        toml::Value::Boolean(_) => raw.trim().parse().ok().map(toml::Value::Boolean),
        toml::Value::String(_) => Some(toml::Value::String(raw.to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn defaults_listen_on_loopback_8080_with_sqlite() {
        let loaded = Settings::load_from(None, env(&[])).unwrap();
        assert_eq!(loaded.settings.listen, "127.0.0.1:8080");
        assert!(
            loaded
                .settings
                .database_url
                .expose_secret()
                .starts_with("sqlite:")
        );
        assert_eq!(
            loaded
                .settings
                .issuer_for("127.0.0.1:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warrant.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nissuer = \"https://file\"\n[token]\ndefault_ttl_secs = 60\n",
        )
        .unwrap();
        let loaded = Settings::load_from(
            Some(&file),
            env(&[
                ("WARRANT_ISSUER", "https://env"),
                ("WARRANT_TOKEN__MAX_TTL_SECS", "120"),
            ]),
        )
        .unwrap();
        let s = loaded.settings;
        assert_eq!(s.listen, "127.0.0.1:9000");
        assert_eq!(s.issuer, "https://env");
        assert_eq!(s.token.default_ttl_secs, 60);
        assert_eq!(s.token.max_ttl_secs, 120);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Settings::load_from(None, env(&[("WARRANT_LISTEN", "nope")])).unwrap_err();
        assert!(err.to_string().contains("WARRANT_LISTEN"), "{err}");
        let err = Settings::load_from(None, env(&[("WARRANT_WORKERS", "many")])).unwrap_err();
        assert!(err.to_string().contains("WARRANT_WORKERS"), "{err}");
        let err =
            Settings::load_from(None, env(&[("WARRANT_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("database_url"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_errors_and_unknown_variables_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warrant.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Settings::load_from(Some(&file), env(&[])).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");

        let loaded = Settings::load_from(
            None,
            env(&[("WARRANT_LISTN", "x"), ("WARRANT_MASTER_KEY", "secret")]),
        )
        .unwrap();
        assert_eq!(
            loaded.warnings,
            vec!["ignoring unknown environment variable WARRANT_LISTN"]
        );
    }

    #[test]
    fn a_database_password_never_prints() {
        let env = [(
            "WARRANT_DATABASE_URL".to_owned(),
            "postgres://warrant:s3cret@db:5432/warrant".to_owned(),
        )];
        let settings = Settings::load_from(None, env).unwrap().settings;
        for printed in [
            format!("{settings:?}"),
            format!("{:?}", settings.database_url),
            settings.database_url.to_string(),
        ] {
            assert!(!printed.contains("s3cret"), "{printed}");
            assert!(printed.contains("warrant:***@db:5432"), "{printed}");
        }
        assert_eq!(
            settings.database_url.expose_secret(),
            "postgres://warrant:s3cret@db:5432/warrant"
        );
    }
}
