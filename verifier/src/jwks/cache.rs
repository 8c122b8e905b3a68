//! The cache: one immutable snapshot of keys, swapped atomically, and the
//! fetches that refresh it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::runtime::Handle;
use tokio::sync::watch;
use url::Url;

#[cfg(feature = "reqwest")]
use super::ReqwestFetcher;
use super::config::shown;
use super::{Fetch, JwksConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::key::{KeySet, VerifyingKey};

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
    /// `config.url` as checked: what is fetched, so that the check and the
    /// HTTP client cannot read the URL differently.
    url: Url,
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
            .field("url", &shown(&self.inner.url))
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
        let url = config.check()?;
        let runtime = Handle::try_current().map_err(|_| {
            ErrorKind::InvalidConfiguration("a JwksCache must be created within a Tokio runtime")
        })?;
        let inner = Arc::new(Inner {
            config,
            url,
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
    let url = shown(&inner.url);
    let outcome = match tokio::time::timeout(
        config.fetch_timeout,
        inner.fetcher.fetch(inner.url.as_str()),
    )
    .await
    {
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
                tracing::debug!(url = %url, skipped = keys.skipped(), "JWKS keys skipped as unusable");
            }
            tracing::debug!(url = %url, keys = keys.len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
            inner.current.store(Some(Arc::new(Snapshot {
                keys,
                fetched_at: now,
                ttl,
            })));
            lock(&inner.state).next_due = Some(now + ttl);
            true
        }
        Err(error) => {
            tracing::warn!(url = %url, error = ?error, "JWKS fetch failed; keeping the keys held");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::{BoxFuture, FetchError, FetchedJwks};

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

    /// Records the URLs it is asked for; answers with no usable key.
    #[derive(Clone, Default)]
    struct Recording(Arc<Mutex<Vec<String>>>);

    impl Fetch for Recording {
        fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<FetchedJwks, FetchError>> {
            lock(&self.0).push(url.to_owned());
            Box::pin(async { Err("nothing here".into()) })
        }
    }

    #[tokio::test]
    async fn a_jwks_url_that_would_fetch_from_a_remote_host_in_clear_is_refused() {
        let fetcher = Recording::default();
        for url in [
            "http://evil.example\\@127.0.0.1/jwks.json",
            "http://0.0.0.0/jwks.json",
            "http://localhost./jwks.json",
            "http://jwks-user:hunter2@127.0.0.1/jwks.json",
        ] {
            let error = JwksCache::with_fetcher(JwksConfig::new(url), fetcher.clone()).unwrap_err();
            assert!(error.is_unavailable(), "{url}");
            assert!(
                matches!(error.kind(), ErrorKind::InvalidConfiguration(_)),
                "{url}"
            );
        }
        tokio::task::yield_now().await;
        assert!(lock(&fetcher.0).is_empty());
    }

    #[tokio::test]
    async fn the_fetcher_is_given_the_url_as_checked() {
        let fetcher = Recording::default();
        let cache =
            JwksCache::with_fetcher(JwksConfig::new("HTTP://LOCALHOST:1/jwks"), fetcher.clone())
                .unwrap();
        assert!(cache.refresh().await.is_err());
        assert_eq!(
            lock(&fetcher.0).first().map(String::as_str),
            Some("http://localhost:1/jwks")
        );
        assert_eq!(
            format!("{cache:?}"),
            "JwksCache { url: \"http://localhost:1/jwks\", ready: false, .. }"
        );
    }
}
