//! Client authentication: one entry point, [`ClientAuthenticator::authenticate`],
//! for every way a client can prove who it is. A new method is one more
//! [`Credentials`] variant and one more arm here; the token endpoint never
//! branches on the method.
//!
//! Secrets: one argon2id verify costs ~13 ms of CPU, which would cap a core
//! at ~77 tokens/s, so a verified secret is remembered (see [`remembered`]).
//! Requests that would need argon2 first pass the failure limits (see
//! [`crate::limits`]), then wait for a slot among `auth.argon2_concurrency`.
//! Concurrent first requests of one client wait for the first verify instead
//! of each running argon2: a cold cache costs one verify per client, not one
//! per request.

mod remembered;
mod secret;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Semaphore;
use tokio::time::timeout_at;

pub use secret::{generate_secret, hash_secret};

use crate::crypto::CryptoError;
use crate::domain::{Client, ClientId};
use crate::limits::{AuthFailureLimits, Limit};
use crate::registry::Snapshot;
use remembered::RememberedSecrets;
use secret::{dummy_hash, verify_secret};

/// Our secrets are 43 characters; anything much longer cannot match and is
/// refused before argon2 sees it.
const MAX_SECRET_LEN: usize = 256;

/// How a client authenticates (RFC 6749 §2.3.1), for logs and metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// What a client presented to prove who it is.
pub enum Credentials {
    /// `client_secret_basic` or `client_secret_post`.
    Secret {
        method: AuthMethod,
        client_id: ClientId,
        secret: SecretString,
    },
}

impl Credentials {
    /// The client these credentials claim to be.
    pub fn client_id(&self) -> &ClientId {
        match self {
            Self::Secret { client_id, .. } => client_id,
        }
    }

    pub fn method(&self) -> AuthMethod {
        match self {
            Self::Secret { method, .. } => *method,
        }
    }
}

/// Why authentication failed. The client is told only `invalid_client`
/// (or to retry, for [`Busy`](Self::Busy) and
/// [`RateLimited`](Self::RateLimited)); the log and metrics get the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials at all.
    NoCredentials,
    /// An `Authorization` scheme other than Basic.
    UnsupportedScheme,
    /// A client_id that cannot be one, or a secret too long to be one of ours.
    Malformed,
    UnknownClient,
    WrongSecret,
    Disabled,
    /// Too many argon2 verifications waiting; try again shortly.
    Busy,
    /// This client_id or source address used up its failures.
    RateLimited {
        limit: Limit,
        retry_after: Duration,
    },
}

/// Why a failed authentication failed, as a metrics label (being rate
/// limited is counted with the limits instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    NoCredentials,
    UnsupportedScheme,
    Malformed,
    UnknownClient,
    WrongSecret,
    Disabled,
    Busy,
}

crate::labels::labels!(FailureReason {
    NoCredentials => "no_credentials",
    UnsupportedScheme => "unsupported_scheme",
    Malformed => "malformed",
    UnknownClient => "unknown_client",
    WrongSecret => "wrong_secret",
    Disabled => "disabled",
    Busy => "busy",
});

impl AuthFailure {
    pub fn reason(self) -> Option<FailureReason> {
        Some(match self {
            Self::NoCredentials => FailureReason::NoCredentials,
            Self::UnsupportedScheme => FailureReason::UnsupportedScheme,
            Self::Malformed => FailureReason::Malformed,
            Self::UnknownClient => FailureReason::UnknownClient,
            Self::WrongSecret => FailureReason::WrongSecret,
            Self::Disabled => FailureReason::Disabled,
            Self::Busy => FailureReason::Busy,
            Self::RateLimited { .. } => return None,
        })
    }

    /// The reason, for the log.
    pub fn as_str(self) -> &'static str {
        self.reason().map_or("rate_limited", FailureReason::as_str)
    }

    /// Failures that spend the failure budgets: a guess that argon2
    /// refused. Being busy or limited is not a guess.
    fn is_guess(self) -> bool {
        matches!(
            self,
            Self::UnknownClient | Self::WrongSecret | Self::Disabled
        )
    }
}

/// What the authenticator has done, for `/metrics`.
#[derive(Default)]
pub struct AuthCounters {
    /// Secret checks answered from the verified-credential cache.
    pub cache_hits: AtomicU64,
    /// Secret checks that needed argon2 (or were refused before it).
    pub cache_misses: AtomicU64,
    /// argon2 verifications run.
    pub verifications: AtomicU64,
}

/// The settings of a [`ClientAuthenticator`].
#[derive(Debug, Clone, Copy)]
pub struct AuthConfig {
    pub argon2_concurrency: usize,
    pub argon2_queue_timeout: Duration,
    /// An unused verified secret is forgotten after this long.
    pub remember_idle: Duration,
    /// A verified secret is forgotten this long after its verify, used or not.
    pub remember_at_most: Duration,
}

pub struct ClientAuthenticator {
    /// Verifies against this when the client is unknown, so that unknown and
    /// known ids take the same time.
    dummy_hash: SecretString,
    remembered: RememberedSecrets,
    limits: AuthFailureLimits,
    /// One gate per client with an argon2 verify in progress: its other
    /// requests wait for that verify, then find the secret remembered.
    in_progress: Mutex<HashMap<ClientId, Arc<tokio::sync::Mutex<()>>>>,
    permits: Semaphore,
    queue_timeout: Duration,
    counters: AuthCounters,
}

impl ClientAuthenticator {
    pub fn new(config: AuthConfig, limits: AuthFailureLimits) -> Result<Self, CryptoError> {
        Ok(Self {
            dummy_hash: dummy_hash()?,
            remembered: RememberedSecrets::new(config.remember_idle, config.remember_at_most)?,
            limits,
            in_progress: Mutex::new(HashMap::new()),
            permits: Semaphore::new(config.argon2_concurrency.max(1)),
            queue_timeout: config.argon2_queue_timeout,
            counters: AuthCounters::default(),
        })
    }

    pub fn counters(&self) -> &AuthCounters {
        &self.counters
    }

    /// How many argon2 verifications this authenticator has run.
    pub fn verifications(&self) -> u64 {
        self.counters.verifications.load(Ordering::Relaxed)
    }

    /// The client that `credentials` prove to be, looked up in `clients`;
    /// `source` is the address the failure limits count.
    pub async fn authenticate(
        &self,
        clients: &Snapshot,
        credentials: &Credentials,
        source: Option<IpAddr>,
    ) -> Result<Arc<Client>, AuthFailure> {
        match credentials {
            Credentials::Secret {
                client_id, secret, ..
            } => {
                self.with_secret(client_id, clients.client(client_id), secret, source)
                    .await
            }
        }
    }

    async fn with_secret(
        &self,
        id: &ClientId,
        known: Option<&Arc<Client>>,
        secret: &SecretString,
        source: Option<IpAddr>,
    ) -> Result<Arc<Client>, AuthFailure> {
        // A remembered secret costs no argon2, and failures others cause
        // with this id must not hold its owner back: no limit applies.
        // Remembered means verified for this very version of the client,
        // which only enabled clients are.
        if secret.expose_secret().len() > MAX_SECRET_LEN {
            return Err(AuthFailure::Malformed);
        }
        if let Some(client) = known
            && self.remembered.contains(client, secret)
        {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(client));
        }
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        self.limits
            .check(id, source)
            .map_err(|(limit, retry_after)| AuthFailure::RateLimited { limit, retry_after })?;
        let result = self.verify(known, secret).await;
        if let Err(failure) = result
            && failure.is_guess()
        {
            self.limits.record_failure(id, source);
        }
        result
    }

    /// The argon2 path: one verify per client at a time, within the
    /// concurrency limit.
    async fn verify(
        &self,
        client: Option<&Arc<Client>>,
        secret: &SecretString,
    ) -> Result<Arc<Client>, AuthFailure> {
        let deadline = tokio::time::Instant::now() + self.queue_timeout;
        // Known clients take turns: the first request verifies, the others
        // wait and then find its result remembered (when their secret is the
        // same). Unknown ids have no gate (nothing to remember for them).
        let gate = client.map(|c| Gate::enter(&self.in_progress, &c.id));
        let _turn = match &gate {
            Some(gate) => Some(
                timeout_at(deadline, gate.gate.lock())
                    .await
                    .map_err(|_| AuthFailure::Busy)?,
            ),
            None => None,
        };
        if let Some(client) = client
            && self.remembered.contains(client, secret)
        {
            return Ok(Arc::clone(client));
        }

        let permit = timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| AuthFailure::Busy)?
            .map_err(|_| AuthFailure::Busy)?;
        let hash = client.map_or_else(|| self.dummy_hash.clone(), |c| c.secret_hash.clone());
        let presented = secret.clone();
        self.counters.verifications.fetch_add(1, Ordering::Relaxed);
        let span = tracing::Span::current();
        let verified =
            tokio::task::spawn_blocking(move || span.in_scope(|| verify_secret(&presented, &hash)))
                .await
                .unwrap_or(false);
        drop(permit);

        let Some(client) = client else {
            return Err(AuthFailure::UnknownClient);
        };
        if !verified {
            return Err(AuthFailure::WrongSecret);
        }
        // A disabled client is refused after a full verify, every time: a
        // fast refusal would tell a secret's holder that it is right.
        if !client.enabled {
            return Err(AuthFailure::Disabled);
        }
        self.remembered.insert(client, secret);
        Ok(Arc::clone(client))
    }
}

/// A client's place in [`ClientAuthenticator::in_progress`]; the last one
/// out removes the entry, so the map holds only clients being verified.
struct Gate<'a> {
    map: &'a Mutex<HashMap<ClientId, Arc<tokio::sync::Mutex<()>>>>,
    id: &'a ClientId,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Gate<'a> {
    fn enter(
        map: &'a Mutex<HashMap<ClientId, Arc<tokio::sync::Mutex<()>>>>,
        id: &'a ClientId,
    ) -> Self {
        let gate = Arc::clone(
            map.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id.clone())
                .or_default(),
        );
        Self { map, id, gate }
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        // Ours and the map's: nobody else is waiting.
        if Arc::strong_count(&self.gate) <= 2
            && map.get(self.id).is_some_and(|g| Arc::ptr_eq(g, &self.gate))
        {
            map.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(secret: &SecretString, version: i64, enabled: bool) -> Arc<Client> {
        Arc::new(Client {
            secret_hash: hash_secret(secret).unwrap(),
            enabled,
            version,
            ..Client::example()
        })
    }

    fn config(concurrency: usize, queue_timeout_secs: u64) -> AuthConfig {
        AuthConfig {
            argon2_concurrency: concurrency,
            argon2_queue_timeout: Duration::from_secs(queue_timeout_secs),
            remember_idle: Duration::from_secs(60),
            remember_at_most: Duration::from_secs(600),
        }
    }

    fn authenticator() -> ClientAuthenticator {
        ClientAuthenticator::new(config(1, 5), AuthFailureLimits::new(0, 0, 0)).unwrap()
    }

    #[tokio::test]
    async fn a_verified_secret_is_remembered_until_the_client_changes() {
        let auth = authenticator();
        let secret = generate_secret().unwrap();
        let v1 = client(&secret, 1, true);
        let id = v1.id.clone();
        assert!(!auth.remembered.contains(&v1, &secret));
        auth.with_secret(&id, Some(&v1), &secret, None)
            .await
            .unwrap();
        assert!(auth.remembered.contains(&v1, &secret));
        assert!(!auth.remembered.contains(&v1, &SecretString::from("other")));

        let mut v2 = (*v1).clone();
        v2.version = 2;
        assert!(!auth.remembered.contains(&v2, &secret));
    }

    #[tokio::test]
    async fn failures_are_reported_and_not_remembered() {
        let auth = authenticator();
        let secret = generate_secret().unwrap();
        let c = client(&secret, 1, true);
        let wrong = SecretString::from("wrong");
        assert_eq!(
            auth.with_secret(&c.id, Some(&c), &wrong, None)
                .await
                .unwrap_err(),
            AuthFailure::WrongSecret
        );
        assert!(!auth.remembered.contains(&c, &wrong));
        assert_eq!(
            auth.with_secret(&c.id, None, &secret, None)
                .await
                .unwrap_err(),
            AuthFailure::UnknownClient
        );
        let disabled = client(&secret, 1, false);
        assert_eq!(
            auth.with_secret(&c.id, Some(&disabled), &secret, None)
                .await
                .unwrap_err(),
            AuthFailure::Disabled
        );
        let long = SecretString::from("x".repeat(MAX_SECRET_LEN + 1));
        assert_eq!(
            auth.with_secret(&c.id, Some(&c), &long, None)
                .await
                .unwrap_err(),
            AuthFailure::Malformed
        );
        assert_eq!(auth.verifications(), 3, "no argon2 for an oversized secret");
    }

    #[tokio::test]
    async fn spent_failure_budgets_refuse_before_argon2_but_not_a_remembered_secret() {
        let auth = ClientAuthenticator::new(config(1, 5), AuthFailureLimits::new(2, 0, 0)).unwrap();
        let secret = generate_secret().unwrap();
        let c = client(&secret, 1, true);
        auth.with_secret(&c.id, Some(&c), &secret, None)
            .await
            .unwrap();
        let wrong = SecretString::from("wrong");
        for _ in 0..2 {
            let failure = auth.with_secret(&c.id, Some(&c), &wrong, None).await;
            assert_eq!(failure.unwrap_err(), AuthFailure::WrongSecret);
        }
        let before = auth.verifications();
        let limited = auth.with_secret(&c.id, Some(&c), &wrong, None).await;
        assert!(matches!(
            limited,
            Err(AuthFailure::RateLimited {
                limit: Limit::FailuresPerClient,
                ..
            })
        ));
        assert_eq!(auth.verifications(), before);
        assert!(
            auth.with_secret(&c.id, Some(&c), &secret, None)
                .await
                .is_ok()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_requests_of_a_client_cost_one_verify() {
        let auth = Arc::new(
            ClientAuthenticator::new(config(2, 30), AuthFailureLimits::new(0, 0, 0)).unwrap(),
        );
        let secret = generate_secret().unwrap();
        let c = client(&secret, 1, true);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (auth, c, secret) = (Arc::clone(&auth), Arc::clone(&c), secret.clone());
                tokio::spawn(async move { auth.with_secret(&c.id, Some(&c), &secret, None).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_ok());
        }
        assert_eq!(auth.verifications(), 1);
        assert!(auth.in_progress.lock().unwrap().is_empty());

        // Wrong secrets are still verified (and refused) every time.
        let wrong = SecretString::from("wrong");
        for _ in 0..2 {
            assert_eq!(
                auth.with_secret(&c.id, Some(&c), &wrong, None)
                    .await
                    .unwrap_err(),
                AuthFailure::WrongSecret
            );
        }
        assert_eq!(auth.verifications(), 3);
    }
}
