//! The settings of a [`JwksCache`](super::JwksCache), and what they read:
//! the JWKS URL and the `Cache-Control` of its responses.

use std::time::Duration;

use url::{Host, Url};

use crate::error::{Error, ErrorKind, Result};

/// Settings of a [`JwksCache`](super::JwksCache). Every field documents its default.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksConfig {
    /// The JWK Set URL, e.g. `https://auth.example.com/.well-known/jwks.json`.
    /// Required: there is no default. It must be `https://`, or plain
    /// `http://` to `localhost` or a loopback address (`127.0.0.0/8`,
    /// `[::1]`), with no username or password; it is read as the HTTP
    /// client reads it (the WHATWG URL Standard, the `url` crate).
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

    /// Checks the settings; returns the URL to fetch, parsed.
    pub(super) fn check(&self) -> Result<Url> {
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
        parse_url(&self.url)
    }

    /// The freshness a response with this `Cache-Control` earns.
    pub(super) fn ttl(&self, cache_control: Option<&str>) -> Duration {
        cache_control
            .and_then(max_age)
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }
}

const NOT_A_URL: &str = "JwksConfig::url is not a valid URL";
const CREDENTIALS: &str = "JwksConfig::url must not contain a username or password";
const NOT_SECURE: &str = "JwksConfig::url must be https (plain http only to a loopback address)";

/// The JWKS URL exactly as the HTTP client parses it (WHATWG, the `url`
/// crate reqwest uses), refused unless keys fetched from it cannot be
/// replaced on the way: `https`, or plain `http` to this machine only
/// (development, tests). Deciding on our own reading of the string let the
/// two disagree: `http://evil.example\@127.0.0.1/` is `evil.example` to a
/// WHATWG parser. The cache then fetches this parsed URL, never the string.
fn parse_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw).map_err(|e| {
        // The parser's reason only: the string may hold a password.
        Error::with_source(
            ErrorKind::InvalidConfiguration(NOT_A_URL),
            format!("the JWKS URL cannot be parsed: {e}"),
        )
    })?;
    let refuse = |what, why: String| {
        Error::with_source(
            ErrorKind::InvalidConfiguration(what),
            format!("refused JWKS URL {}: {why}", shown(&url)),
        )
    };
    // Credentials in a URL end up in logs and error messages; a fetcher
    // that needs them has its own way to send them.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(CREDENTIALS, "it has a username or password".into()));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(url.host()) => Ok(url),
        "http" => Err(refuse(
            NOT_SECURE,
            format!(
                "plain http to {}, which is not a loopback address",
                url.host_str().unwrap_or_default()
            ),
        )),
        other => Err(refuse(
            NOT_SECURE,
            format!("the scheme is {other}, not https"),
        )),
    }
}

/// Whether a connection to `host` stays on this machine. IP addresses are
/// connected to as parsed. By name, only `localhost` exactly (the parser
/// has lower-cased it): the system resolver answers it from the hosts
/// file, whereas glibc sends `localhost.` (a trailing dot) and
/// `*.localhost` to DNS, whose answer is not ours to trust.
fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Domain(name)) => name == "localhost",
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `url` for messages and logs: without user-info, query and fragment,
/// which may carry secrets.
pub(super) fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    // These fail only for a URL without a host, which has no user-info.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.into()
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
            assert!(parse_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://auth.example.com/jwks",
            "http://127.0.0.1.evil.com/",
            "http://user@10.0.0.1/",
            "ftp://x",
            "",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
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

    /// The static reason, and the message for logs, of a refused URL.
    fn refusal(url: &str) -> (&'static str, String) {
        let error = parse_url(url).expect_err(url);
        match error.kind() {
            ErrorKind::InvalidConfiguration(what) => (what, format!("{error:?}")),
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn a_backslash_cannot_hide_a_remote_host_behind_a_loopback_one() {
        // A WHATWG parser (reqwest's) ends the host at `\`: these fetch
        // from evil.example, whatever follows the `@`.
        for url in [
            "http://evil.example\\@127.0.0.1/jwks.json",
            "http://evil.example\\@localhost/jwks.json",
            "http://evil.example\\:80@[::1]/jwks.json",
        ] {
            assert_eq!(
                Url::parse(url).unwrap().host_str(),
                Some("evil.example"),
                "{url}"
            );
            let (what, log) = refusal(url);
            assert_eq!(what, NOT_SECURE, "{url}");
            assert!(
                log.contains("plain http to evil.example, which is not a loopback address"),
                "{log}"
            );
        }
        let (_, log) = refusal("http://evil.example\\@127.0.0.1/jwks.json");
        assert!(
            log.contains("refused JWKS URL http://evil.example/@127.0.0.1/jwks.json"),
            "{log}"
        );
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_printed() {
        for url in [
            "https://jwks-user:hunter2@auth.example.com/jwks",
            "https://jwks-user@auth.example.com/jwks",
            "http://:hunter2@127.0.0.1/jwks",
            "http://jwks-user:hunter2@localhost/jwks",
            // Percent-encoded `/` or `@` stay in the user-info; the host is
            // what follows the last real `@`.
            "http://evil.example%2F@127.0.0.1/jwks",
            "http://evil.example%40127.0.0.1@127.0.0.1/jwks",
            "http://127.0.0.1%2F@evil.example/jwks",
        ] {
            let (what, log) = refusal(url);
            assert_eq!(what, CREDENTIALS, "{url}");
            for secret in ["hunter2", "jwks-user", "%2F", "%40"] {
                assert!(!log.contains(secret), "{url}: {log}");
            }
        }
        // Unparseable: the message has the parser's reason, not the string.
        let (what, log) = refusal("http://jwks-user:hunter2@[::1/jwks");
        assert_eq!(what, NOT_A_URL);
        assert!(
            !log.contains("hunter2") && !log.contains("jwks-user"),
            "{log}"
        );
    }

    #[test]
    fn a_percent_encoded_slash_or_at_sign_in_the_host_is_not_a_url() {
        for url in [
            "http://127.0.0.1%2Fevil.example/jwks",
            "http://127.0.0.1%40evil.example/jwks",
            "http://localhost%2F.evil.example/jwks",
        ] {
            assert_eq!(refusal(url).0, NOT_A_URL, "{url}");
        }
        // Decoded by the parser, and so by the client: it is localhost.
        assert_eq!(
            parse_url("http://%6C%6Fcalhost/jwks").unwrap().host_str(),
            Some("localhost")
        );
    }

    #[test]
    fn loopback_means_127_0_0_0_8_and_1_by_address_and_localhost_by_name() {
        for ok in [
            "http://127.0.0.2/jwks",
            "http://127.255.255.254:8080/jwks",
            "http://[::1]/jwks",
            "http://[0:0:0:0:0:0:0:1]:8080/jwks",
            // The parser's IPv4 forms: the client connects to 127.0.0.1.
            "http://2130706433/jwks",
            "http://0x7f.1/jwks",
            "http://127.0.0.1./jwks",
        ] {
            let url = parse_url(ok).unwrap();
            assert!(is_loopback(url.host()), "{ok}");
        }
        for bad in [
            "http://0.0.0.0/jwks",
            "http://0/jwks",
            "http://[::]/jwks",
            "http://10.0.0.1/jwks",
            "http://127.0.0.1.evil.example/jwks",
            "http://localhost.evil.example/jwks",
            "http://evil.localhost/jwks",
            // Absolute names go to DNS, not to the hosts file (glibc).
            "http://localhost./jwks",
            "http://LOCALHOST./jwks",
            "http://localhost%2E/jwks",
        ] {
            assert_eq!(refusal(bad).0, NOT_SECURE, "{bad}");
        }
    }

    #[test]
    fn scheme_and_host_are_case_insensitive() {
        for (raw, fetched) in [
            ("HTTP://LOCALHOST/jwks", "http://localhost/jwks"),
            ("Http://LocalHost:8080/jwks", "http://localhost:8080/jwks"),
            (
                "HTTPS://AUTH.EXAMPLE.COM/.well-known/jwks.json",
                "https://auth.example.com/.well-known/jwks.json",
            ),
        ] {
            assert_eq!(parse_url(raw).unwrap().as_str(), fetched);
        }
        assert_eq!(refusal("HTTP://AUTH.EXAMPLE.COM/jwks").0, NOT_SECURE);
        assert_eq!(refusal("FTP://localhost/jwks").0, NOT_SECURE);
    }

    #[test]
    fn the_url_fetched_reads_back_as_the_url_checked() {
        // The cache hands `as_str()` to the fetcher, which parses it again.
        for raw in [
            "HTTP://LOCALHOST/jwks",
            "http://2130706433/jwks",
            "http://127.0.0.1./a/../jwks?x=1#f",
            "https://auth.example.com./jwks",
            "http://%6C%6Fcalhost/jwks",
        ] {
            let url = parse_url(raw).unwrap();
            let again = Url::parse(url.as_str()).unwrap();
            assert_eq!(again, url, "{raw}");
            assert_eq!(again.host(), url.host(), "{raw}");
        }
    }

    #[test]
    fn messages_and_logs_drop_the_query_and_fragment() {
        let url = Url::parse("https://u:p@auth.example.com/jwks?token=s3cret#frag").unwrap();
        assert_eq!(shown(&url), "https://auth.example.com/jwks");
        let (_, log) = refusal("http://auth.example.com/jwks?token=s3cret");
        assert!(!log.contains("s3cret"), "{log}");
    }
}
