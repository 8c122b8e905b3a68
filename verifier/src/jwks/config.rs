//! The settings of a [`JwksCache`](super::JwksCache), and what they read:
//! the JWKS URL and the `Cache-Control` of its responses.

use std::time::Duration;

use crate::error::{ErrorKind, Result};

/// Settings of a [`JwksCache`]. Every field documents its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksConfig {
    /// The JWK Set URL, e.g. `https://auth.example.com/.well-known/jwks.json`.
    /// Required: there is no default.
    pub url: String,
    /// Freshness when the response has no usable `Cache-Control: max-age`.
    /// Default: **5 minutes**.
    pub default_ttl: Duration,
    /// Shortest freshness honoured, whatever `max-age` says (also for
    /// `no-cache`, `no-store`, `max-age=0`). Default: **30 seconds**.
    pub min_ttl: Duration,
    /// Longest freshness honoured, whatever `max-age` says. Default: **1 hour**.
    pub max_ttl: Duration,
    /// How long keys are still used after their freshness ran out while
    /// every refresh fails (the issuer is down). Past it, verification
    /// fails with [`ErrorKind::KeysUnavailable`]. Default: **1 hour**.
    pub max_stale: Duration,
    /// Delay before the background task retries a failed fetch.
    /// Default: **10 seconds**.
    pub retry_interval: Duration,
    /// After a fetch starts, a token with an unknown `kid` triggers no new
    /// fetch for this long (it is refused at once): a flood of made-up `kid`s
    /// costs at most one fetch per cooldown. Default: **10 seconds**.
    pub unknown_kid_cooldown: Duration,
    /// Bound on one fetch, and so on the only wait a verification can make
    /// (for the first fetch, or an unknown-`kid` refetch). Default: **5 seconds**.
    pub fetch_timeout: Duration,
    /// Largest JWKS document accepted by `ReqwestFetcher`. Default: **1 MiB**.
    pub max_body_bytes: usize,
}

impl JwksConfig {
    /// Settings for `url`, every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(3600),
            max_stale: Duration::from_secs(3600),
            retry_interval: Duration::from_secs(10),
            unknown_kid_cooldown: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
        }
    }

    pub(super) fn check(&self) -> Result<()> {
        let fail = |what| Err(ErrorKind::InvalidConfiguration(what).into());
        if self.url.is_empty() {
            return fail("JwksConfig::url must not be empty");
        }
        if self.min_ttl > self.max_ttl {
            return fail("JwksConfig::min_ttl must not exceed max_ttl");
        }
        if self.fetch_timeout.is_zero() || self.retry_interval.is_zero() {
            return fail("JwksConfig::fetch_timeout and retry_interval must be positive");
        }
        // Bounded, so that time arithmetic cannot overflow and a `max-age=0`
        // issuer cannot make us refetch in a tight loop.
        let day = Duration::from_secs(24 * 3600);
        if self.min_ttl.is_zero() {
            return fail("JwksConfig::min_ttl must be positive");
        }
        if [
            self.max_ttl,
            self.max_stale,
            self.retry_interval,
            self.default_ttl,
            self.fetch_timeout,
        ]
        .iter()
        .any(|d| *d > day)
        {
            return fail("JwksConfig durations must be at most one day");
        }
        if !secure_url(&self.url) {
            return fail("JwksConfig::url must be https (plain http only to a loopback address)");
        }
        Ok(())
    }

    /// The freshness a response with this `Cache-Control` earns.
    pub(super) fn ttl(&self, cache_control: Option<&str>) -> Duration {
        cache_control
            .and_then(max_age)
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }
}

/// Keys fetched over plain HTTP could be replaced by anyone on the path:
/// only `https://`, or `http://` to this machine (development, tests).
fn secure_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return true;
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `max-age` from a `Cache-Control` value; `no-store`/`no-cache` mean zero.
fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            let value = value.trim().trim_matches('"');
            // RFC 9111 §1.2.2: a delta too large to represent is "infinite".
            let secs = match value.parse::<u64>() {
                Ok(secs) => secs,
                Err(_) if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    u64::MAX
                }
                Err(_) => continue,
            };
            found = Some(Duration::from_secs(secs));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        let secs = |cc: &str| max_age(cc).map(|d| d.as_secs());
        assert_eq!(secs("public, max-age=300"), Some(300));
        assert_eq!(secs("Max-Age = \"60\" , public"), Some(60));
        assert_eq!(secs("public"), None);
        assert_eq!(secs("max-age=abc"), None);
        assert_eq!(secs("max-age=99999999999999999999999"), Some(u64::MAX));
        assert_eq!(secs("no-cache, max-age=300"), Some(0));
        assert_eq!(secs("max-age=300, no-store"), Some(0));
    }

    #[test]
    fn ttl_is_clamped_to_the_configured_bounds() {
        let config = JwksConfig::new("http://x");
        assert_eq!(config.ttl(Some("max-age=120")), Duration::from_secs(120));
        assert_eq!(config.ttl(Some("max-age=1")), config.min_ttl);
        assert_eq!(config.ttl(Some("no-store")), config.min_ttl);
        assert_eq!(config.ttl(Some("max-age=99999999")), config.max_ttl);
        assert_eq!(config.ttl(None), config.default_ttl);
    }

    #[test]
    fn plain_http_is_refused_except_to_this_machine() {
        for ok in [
            "https://auth.example.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:80/x",
        ] {
            assert!(secure_url(ok), "{ok}");
        }
        for bad in [
            "http://auth.example.com/jwks",
            "http://127.0.0.1.evil.com/",
            "http://user@10.0.0.1/",
            "ftp://x",
            "",
        ] {
            assert!(!secure_url(bad), "{bad}");
        }
    }

    #[test]
    fn unbounded_durations_are_refused() {
        let mut config = JwksConfig::new("https://x");
        config.max_ttl = Duration::MAX;
        assert!(config.check().is_err());
        let mut config = JwksConfig::new("https://x");
        config.min_ttl = Duration::ZERO;
        assert!(config.check().is_err());
    }
}
