//! A JWK Set fetched from the issuer, parsed once and cached.
//!
//! One [`JwksCache`] per issuer per process, cloned wherever needed (it is an
//! `Arc` inside). Its keys are an immutable snapshot swapped atomically, so
//! verification reads them without a lock. A background task refreshes the
//! snapshot when its time to live runs out; an unknown `kid` triggers at most
//! one early refetch per cooldown. No lock is ever held while fetching.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::error::{Error, ErrorKind, Result};
use crate::key::{KeySet, VerifyingKey};

/// A boxed, sendable future, as returned by [`Fetch::fetch`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error from a [`Fetch`] implementation, kept for logs.
pub type FetchError = Box<dyn StdError + Send + Sync>;

/// What a JWKS fetch returns: the body and the `Cache-Control` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedJwks {
    /// The response body (a JWK Set document).
    pub body: Vec<u8>,
    /// The `Cache-Control` header, if any: its `max-age` sets how long the
    /// keys are fresh (within [`JwksConfig::min_ttl`] and [`JwksConfig::max_ttl`]).
    pub cache_control: Option<String>,
}

/// How the cache fetches the JWKS document. Implement it to use another
/// HTTP client (a TLS setup of your own, a proxy, a service mesh); the
/// default is `ReqwestFetcher` (feature `reqwest`, on by default).
///
/// The cache holds one fetcher for its lifetime (so one HTTP client and its
/// connection pool), calls it at most once at a time, and bounds each call
/// with [`JwksConfig::fetch_timeout`].
pub trait Fetch: Send + Sync + 'static {
    /// GETs `url`. Any non-success status must be an error.
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<FetchedJwks, FetchError>>;
}

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

    fn check(&self) -> Result<()> {
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
    fn ttl(&self, cache_control: Option<&str>) -> Duration {
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

/// A cached JWK Set.
///
/// One per issuer per process, cloned wherever needed (it is an `Arc`
/// inside). Its keys are an immutable snapshot swapped atomically, so
/// verification reads them without a lock. A background task refreshes the
/// snapshot when its freshness runs out; an unknown `kid` triggers at most
/// one early refetch per [`JwksConfig::unknown_kid_cooldown`]. No lock is
/// ever held while fetching, and a failed fetch never evicts keys.
///
/// ```no_run
/// # async fn run() -> Result<(), warrant_verifier::Error> {
/// use warrant_verifier::{JwksCache, JwksConfig};
///
/// let jwks = JwksCache::new(JwksConfig::new("https://auth.example.com/.well-known/jwks.json"))?;
/// // Start-up does not wait for the issuer; readiness can:
/// let ready = jwks.wait_until_ready(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

struct Inner {
    config: JwksConfig,
    fetcher: Box<dyn Fetch>,
    runtime: Handle,
    current: ArcSwapOption<Snapshot>,
    state: Mutex<FetchState>,
    /// Counts completed fetches: a waiter subscribes, then waits for a change.
    completed: watch::Sender<u64>,
    fetches_started: AtomicU64,
    background: Mutex<Option<tokio::task::AbortHandle>>,
}

struct Snapshot {
    keys: KeySet,
    fetched_at: Instant,
    ttl: Duration,
}

impl Snapshot {
    fn usable(&self, now: Instant, max_stale: Duration) -> bool {
        now.saturating_duration_since(self.fetched_at) < self.ttl.saturating_add(max_stale)
    }
}

#[derive(Default)]
struct FetchState {
    in_flight: bool,
    last_started: Option<Instant>,
    /// When the background task should fetch next.
    next_due: Option<Instant>,
    last_succeeded: bool,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.inner.config.url)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.background).take() {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, the state
    // is still consistent (plain fields), so carry on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JwksCache {
    /// A cache fetching `config.url` with `ReqwestFetcher`.
    ///
    /// Returns at once: the first fetch runs in the background, so start-up
    /// succeeds while the issuer is down (see [`JwksCache::is_ready`]).
    /// Must be called within a Tokio runtime, which then runs the refreshes.
    #[cfg(feature = "reqwest")]
    pub fn new(config: JwksConfig) -> Result<Self> {
        let fetcher = ReqwestFetcher::new(config.fetch_timeout, config.max_body_bytes)?;
        Self::with_fetcher(config, fetcher)
    }

    /// A cache fetching with your own [`Fetch`] implementation.
    ///
    /// Returns at once: the first fetch runs in the background, so start-up
    /// succeeds while the issuer is down (see [`JwksCache::is_ready`]).
    /// Must be called within a Tokio runtime, which then runs the refreshes.
    pub fn with_fetcher(config: JwksConfig, fetcher: impl Fetch) -> Result<Self> {
        config.check()?;
        let runtime = Handle::try_current().map_err(|_| {
            ErrorKind::InvalidConfiguration("a JwksCache must be created within a Tokio runtime")
        })?;
        let inner = Arc::new(Inner {
            config,
            fetcher: Box::new(fetcher),
            runtime,
            current: ArcSwapOption::empty(),
            state: Mutex::new(FetchState::default()),
            completed: watch::Sender::new(0),
            fetches_started: AtomicU64::new(0),
            background: Mutex::new(None),
        });
        let task = inner.runtime.spawn(background(Arc::downgrade(&inner)));
        *lock(&inner.background) = Some(task.abort_handle());
        Ok(Self { inner })
    }

    /// The settings in use.
    pub fn config(&self) -> &JwksConfig {
        &self.inner.config
    }

    /// Whether keys are available: a fetch has succeeded, and not longer
    /// ago than the freshness plus [`JwksConfig::max_stale`]. Use it for a
    /// readiness probe.
    pub fn is_ready(&self) -> bool {
        self.inner
            .current
            .load()
            .as_ref()
            .is_some_and(|s| s.usable(Instant::now(), self.inner.config.max_stale))
    }

    /// Waits until [`JwksCache::is_ready`] or `timeout`, whichever is first;
    /// returns readiness. Starts a fetch (or joins the one in flight), then
    /// follows the background retries.
    pub async fn wait_until_ready(&self, timeout: Duration) -> bool {
        let mut completed = self.inner.start_fetch(false);
        // `timeout` saturates: `Duration::MAX` means "wait for it".
        let _ = tokio::time::timeout(timeout, async {
            while !self.is_ready() {
                if completed.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        self.is_ready()
    }

    /// Fetches now (or joins the fetch in flight) and waits for it, within
    /// [`JwksConfig::fetch_timeout`]. On failure the keys held are kept.
    pub async fn refresh(&self) -> Result<()> {
        let mut completed = self.inner.start_fetch(false);
        match tokio::time::timeout(self.inner.config.fetch_timeout, completed.changed()).await {
            Ok(Ok(())) if lock(&self.inner.state).last_succeeded => Ok(()),
            _ => Err(ErrorKind::Fetch.into()),
        }
    }

    /// The keys currently held, if any fetch has succeeded.
    pub fn keys(&self) -> Option<KeySet> {
        self.inner.current.load().as_ref().map(|s| s.keys.clone())
    }

    /// How many fetches this cache has started (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.inner.fetches_started.load(Ordering::Relaxed)
    }

    /// Runs `f` with the key named `kid`. Without I/O when the key is held;
    /// otherwise waits (bounded) for the first fetch or one refetch.
    pub(crate) async fn with_key<R>(
        &self,
        kid: &str,
        f: impl FnOnce(&VerifyingKey) -> R,
    ) -> Result<R> {
        let max_stale = self.inner.config.max_stale;
        {
            let current = self.inner.current.load();
            if let Some(snapshot) = current.as_ref()
                && snapshot.usable(Instant::now(), max_stale)
                && let Some(key) = snapshot.keys.get(kid)
            {
                return Ok(f(key));
            }
        }
        let held_keys = self.is_ready();
        // Unknown kid, or no usable keys: one bounded wait for a fetch,
        // unless one started within the cooldown.
        let mut completed = self.inner.start_fetch(true);
        if completed.has_changed().is_ok() {
            let _ =
                tokio::time::timeout(self.inner.config.fetch_timeout, completed.changed()).await;
        }
        let current = self.inner.current.load();
        match current.as_ref() {
            Some(snapshot) if snapshot.usable(Instant::now(), max_stale) => {
                match snapshot.keys.get(kid) {
                    Some(key) => Ok(f(key)),
                    None => Err(ErrorKind::UnknownKeyId.into()),
                }
            }
            _ if held_keys => Err(ErrorKind::UnknownKeyId.into()),
            _ => Err(ErrorKind::KeysUnavailable.into()),
        }
    }
}

impl Inner {
    /// Starts a fetch unless one is in flight (then joins it) or, with
    /// `cooldown`, unless one started within the cooldown (then the
    /// returned receiver is closed: there is nothing to wait for).
    fn start_fetch(self: &Arc<Self>, cooldown: bool) -> watch::Receiver<u64> {
        let completed = self.completed.subscribe();
        let now = Instant::now();
        {
            let mut state = lock(&self.state);
            if state.in_flight {
                return completed;
            }
            if cooldown
                && state.last_started.is_some_and(|t| {
                    now.saturating_duration_since(t) < self.config.unknown_kid_cooldown
                })
            {
                return closed_receiver();
            }
            state.in_flight = true;
            state.last_started = Some(now);
        }
        self.fetches_started.fetch_add(1, Ordering::Relaxed);
        // A task of its own, so that a cancelled request cannot abandon a
        // fetch half-way and leave `in_flight` set.
        self.runtime.spawn(fetch(Arc::clone(self)));
        completed
    }
}

fn closed_receiver() -> watch::Receiver<u64> {
    watch::channel(0).1
}

/// Clears `in_flight` and wakes the waiters however a fetch ends: finished,
/// panicked (a user `Fetch`) or dropped with its runtime. Without it, one
/// such end would leave every later fetch joining a fetch that never ends.
struct InFlight {
    inner: Arc<Inner>,
    succeeded: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.inner.state);
            state.in_flight = false;
            state.last_succeeded = self.succeeded;
        }
        self.inner.completed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One fetch: swap in the new keys on success, keep the old ones on failure.
async fn fetch(inner: Arc<Inner>) {
    let mut guard = InFlight {
        inner: Arc::clone(&inner),
        succeeded: false,
    };
    let config = &inner.config;
    let outcome =
        match tokio::time::timeout(config.fetch_timeout, inner.fetcher.fetch(&config.url)).await {
            Err(_) => Err(Error::with_source(ErrorKind::Fetch, "timed out")),
            Ok(Err(e)) => Err(Error::with_source(ErrorKind::Fetch, e)),
            // A set with no usable key (empty, or all of unknown types) is
            // a failed refresh: it must not evict the keys we hold.
            Ok(Ok(response)) => KeySet::from_jwks(&response.body).and_then(|keys| {
                if keys.is_empty() {
                    Err(Error::with_source(
                        ErrorKind::Fetch,
                        "no usable key in the JWK Set",
                    ))
                } else {
                    Ok((keys, config.ttl(response.cache_control.as_deref())))
                }
            }),
        };
    let now = Instant::now();
    guard.succeeded = match outcome {
        Ok((keys, ttl)) => {
            if keys.skipped() > 0 {
                tracing::debug!(url = %config.url, skipped = keys.skipped(), "JWKS keys skipped as unusable");
            }
            tracing::debug!(url = %config.url, keys = keys.len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
            inner.current.store(Some(Arc::new(Snapshot {
                keys,
                fetched_at: now,
                ttl,
            })));
            lock(&inner.state).next_due = Some(now + ttl);
            true
        }
        Err(error) => {
            tracing::warn!(url = %config.url, error = ?error, "JWKS fetch failed; keeping the keys held");
            lock(&inner.state).next_due = Some(now + config.retry_interval);
            false
        }
    };
}

/// Fetches at start, then whenever the keys' freshness runs out (or the
/// retry interval after a failure). Ends when the cache is dropped.
async fn background(cache: Weak<Inner>) {
    loop {
        let wait = {
            let Some(inner) = cache.upgrade() else { return };
            let due = lock(&inner.state).next_due;
            due.map(|due| due.saturating_duration_since(Instant::now()))
        };
        if let Some(wait) = wait
            && !wait.is_zero()
        {
            tokio::time::sleep(wait).await;
            // An on-demand fetch may have moved the due time meanwhile.
            continue;
        }
        let Some(inner) = cache.upgrade() else { return };
        let mut completed = inner.start_fetch(false);
        let timeout = inner
            .config
            .fetch_timeout
            .saturating_add(Duration::from_secs(1));
        drop(inner);
        let _ = tokio::time::timeout(timeout, completed.changed()).await;
    }
}

/// The default [`Fetch`]: a `reqwest` client built once per cache.
///
/// HTTP/1.1; `https` through rustls with the aws-lc-rs provider and the
/// platform's certificate verifier. Redirects are not followed (a JWKS URL
/// that redirects is a configuration error to fix, not to paper over).
#[cfg(feature = "reqwest")]
#[derive(Debug, Clone)]
pub struct ReqwestFetcher {
    client: reqwest::Client,
    max_body_bytes: usize,
}

#[cfg(feature = "reqwest")]
impl ReqwestFetcher {
    /// A client with this overall request timeout and body size limit.
    pub fn new(timeout: Duration, max_body_bytes: usize) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("warrant-verifier/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::InvalidConfiguration("cannot build the HTTP client"),
                    e,
                )
            })?;
        Ok(Self::with_client(client, max_body_bytes))
    }

    /// Uses `client` (your proxy, TLS roots, timeouts).
    pub fn with_client(client: reqwest::Client, max_body_bytes: usize) -> Self {
        Self {
            client,
            max_body_bytes,
        }
    }
}

#[cfg(feature = "reqwest")]
impl Fetch for ReqwestFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<FetchedJwks, FetchError>> {
        Box::pin(async move {
            let mut response = self
                .client
                .get(url)
                .header(
                    reqwest::header::ACCEPT,
                    "application/jwk-set+json, application/json",
                )
                .send()
                .await?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("JWKS endpoint answered {status}").into());
            }
            let cache_control = response
                .headers()
                .get(reqwest::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > self.max_body_bytes {
                    return Err(format!("JWKS larger than {} bytes", self.max_body_bytes).into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(FetchedJwks {
                body,
                cache_control,
            })
        })
    }
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
    fn creating_a_cache_outside_a_runtime_is_an_error_not_a_panic() {
        struct Never;
        impl Fetch for Never {
            fn fetch<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<FetchedJwks, FetchError>> {
                Box::pin(std::future::pending())
            }
        }
        let error = JwksCache::with_fetcher(JwksConfig::new("https://x"), Never).unwrap_err();
        assert!(matches!(error.kind(), ErrorKind::InvalidConfiguration(_)));
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
