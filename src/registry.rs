//! The in-memory copy of clients and keys that the token endpoint reads.
//!
//! Issuing a token never touches the database: handlers read an immutable
//! [`Snapshot`] through an atomic pointer. A background task polls the
//! database's change marker (one single-row read) and swaps in a new snapshot
//! when clients or keys changed, whoever changed them: this process, the CLI
//! or another replica.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use actix_web::web::Bytes;
use arc_swap::{ArcSwap, Guard};

use crate::crypto::{Algorithm, CryptoError, MasterKey, SigningKey};
use crate::domain::{Audience, Client, ClientId, KeyId, KeyRecord, KeySetName, KeyState, jwk_set};
use crate::keys::{KeyError, KeyManager, KeyPolicy};
use crate::storage::{Storage, StorageError};

/// What the hot path sees; never mutated, only replaced.
pub struct Snapshot {
    marker: i64,
    clients: HashMap<ClientId, Arc<Client>>,
    /// Parsed private keys by kid, kept so a reload re-parses only new keys.
    keys: HashMap<KeyId, Arc<SigningKey>>,
    /// The stored key rows (private halves still sealed), for maintenance.
    records: Vec<KeyRecord>,
    /// The current key of each asymmetric set.
    signers: HashMap<Algorithm, Arc<SigningKey>>,
    /// The current key of each HS256 audience.
    audience_signers: HashMap<Audience, Arc<SigningKey>>,
    jwks: Bytes,
}

impl Snapshot {
    pub fn client(&self, id: &ClientId) -> Option<&Arc<Client>> {
        self.clients.get(id)
    }

    /// The key that signs a token for `audience`: the audience's own HS256
    /// key if it has one, else the current key of the client's algorithm.
    pub fn signer_for(&self, alg: Algorithm, audience: &Audience) -> Option<&Arc<SigningKey>> {
        self.audience_signers
            .get(audience)
            .or_else(|| self.signers.get(&alg))
    }

    /// The current RS256 key, the default for clients.
    pub fn default_signer(&self) -> Option<&Arc<SigningKey>> {
        self.signers.get(&Algorithm::RS256)
    }

    /// The stored keys that are not retired.
    pub fn key_records(&self) -> &[KeyRecord] {
        &self.records
    }

    /// The serialized JWK Set of every published key.
    pub fn jwks(&self) -> Bytes {
        self.jwks.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "signing key {kid} is sealed under master key {sealed_under}, but the master key loaded has id {loaded}: \
         use the master key this database was created with"
    )]
    WrongMasterKey {
        kid: KeyId,
        sealed_under: String,
        loaded: String,
    },
    #[error("signing key {kid}: {reason}")]
    BadKey { kid: KeyId, reason: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

pub struct Registry {
    store: Arc<dyn Storage>,
    /// Swapped when keys turn up sealed under a master key we do not hold:
    /// after `warrant keys rewrap` the operator replaces the file in place.
    master_key: ArcSwap<MasterKey>,
    master_key_file: PathBuf,
    policy: KeyPolicy,
    snapshot: ArcSwap<Snapshot>,
    database_reachable: AtomicBool,
    /// Unix time of the last poll that reached the database.
    last_reached: AtomicI64,
    /// Polls that failed to reach the database.
    database_errors: std::sync::atomic::AtomicU64,
    maintenance_failures: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// Loads everything once. Any key that cannot be opened is fatal here:
    /// starting without it would silently sign with nothing or something else.
    pub async fn load(
        store: Arc<dyn Storage>,
        master_key: MasterKey,
        master_key_file: PathBuf,
        policy: KeyPolicy,
    ) -> Result<Self, RegistryError> {
        let empty = Snapshot {
            marker: -1,
            clients: HashMap::new(),
            keys: HashMap::new(),
            records: Vec::new(),
            signers: HashMap::new(),
            audience_signers: HashMap::new(),
            jwks: Bytes::new(),
        };
        let registry = Self {
            store,
            master_key: ArcSwap::from_pointee(master_key),
            master_key_file,
            policy,
            snapshot: ArcSwap::from_pointee(empty),
            database_reachable: AtomicBool::new(true),
            last_reached: AtomicI64::new(crate::clock::unix_now()),
            database_errors: std::sync::atomic::AtomicU64::new(0),
            maintenance_failures: std::sync::atomic::AtomicU64::new(0),
        };
        let snapshot = registry.build_snapshot(true).await?;
        registry.snapshot.store(Arc::new(snapshot));
        Ok(registry)
    }

    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Ready means: the last poll reached the database and a key can sign.
    pub fn is_ready(&self) -> bool {
        self.database_reachable.load(Ordering::Relaxed) && !self.snapshot.load().signers.is_empty()
    }

    pub fn database_reachable(&self) -> bool {
        self.database_reachable.load(Ordering::Relaxed)
    }

    pub fn database_errors(&self) -> u64 {
        self.database_errors.load(Ordering::Relaxed)
    }

    /// Key transitions that were due but failed (e.g. the disk is full).
    pub fn maintenance_failures(&self) -> u64 {
        self.maintenance_failures.load(Ordering::Relaxed)
    }

    /// Seconds since a poll last reached the database.
    pub fn seconds_since_database(&self, now: i64) -> i64 {
        now.saturating_sub(self.last_reached.load(Ordering::Relaxed))
    }

    /// Reloads when the change marker moved; returns whether it did.
    pub async fn refresh(&self) -> Result<bool, RegistryError> {
        let marker = self.store.change_marker().await?;
        if marker == self.snapshot.load().marker {
            return Ok(false);
        }
        let snapshot = self.build_snapshot(false).await?;
        self.snapshot.store(Arc::new(snapshot));
        Ok(true)
    }

    /// Makes the key transitions that are due (see [`KeyManager::maintain`])
    /// and reloads if it made any.
    pub async fn maintain_keys(&self) -> Result<(), RegistryError> {
        let snapshot = self.snapshot.load_full();
        let master_key = self.master_key.load();
        let manager = KeyManager::new(self.store.as_ref(), &master_key, self.policy);
        let done = manager
            .maintain(snapshot.key_records(), crate::clock::unix_now())
            .await?;
        for action in &done {
            tracing::info!(action = %action, "key maintenance");
        }
        if !done.is_empty() {
            self.refresh().await?;
        }
        Ok(())
    }

    /// Polls until the process ends. A failed poll keeps the old snapshot:
    /// tokens keep flowing from memory while the database is away. The outage
    /// and the recovery are logged once each, not once per poll; so are
    /// failing key transitions (a full or locked disk), retried every poll.
    pub async fn poll_forever(self: Arc<Self>, interval: Duration) {
        let mut maintenance_failing = false;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.refresh().await {
                Ok(reloaded) => {
                    self.last_reached
                        .store(crate::clock::unix_now(), Ordering::Relaxed);
                    if !self.database_reachable.swap(true, Ordering::Relaxed) {
                        tracing::info!("database reachable again");
                    }
                    if reloaded {
                        tracing::debug!("reloaded clients and keys");
                    }
                    // Apart from the refresh: a failing key transition must
                    // not make the database look unreachable.
                    match self.maintain_keys().await {
                        Ok(()) if maintenance_failing => {
                            maintenance_failing = false;
                            tracing::info!("key maintenance succeeded again");
                        }
                        Ok(()) => {}
                        Err(e) => {
                            self.maintenance_failures.fetch_add(1, Ordering::Relaxed);
                            if !maintenance_failing {
                                maintenance_failing = true;
                                tracing::error!(
                                    error = %e,
                                    "key maintenance failed; retrying every poll, still signing with the current key"
                                );
                            }
                        }
                    }
                }
                Err(RegistryError::Storage(e)) => {
                    self.database_errors.fetch_add(1, Ordering::Relaxed);
                    if self.database_reachable.swap(false, Ordering::Relaxed) {
                        tracing::error!(error = %e, "database unreachable; serving from memory");
                    }
                }
                Err(e) => tracing::error!(error = %e, "reload failed; keeping the previous state"),
            }
        }
    }

    async fn build_snapshot(&self, strict: bool) -> Result<Snapshot, RegistryError> {
        // Read the marker first: a change made while we read the rows moves it
        // again, and the next poll reloads.
        let marker = self.store.change_marker().await?;
        let mut clients = HashMap::new();
        for client in self.store.list_clients().await? {
            match client {
                Ok(client) => {
                    clients.insert(client.id.clone(), Arc::new(client));
                }
                Err(e) => tracing::error!(error = %e, "skipping a client row"),
            }
        }

        let previous = self.snapshot.load();
        let mut keys = HashMap::new();
        let mut signers = HashMap::new();
        let mut audience_signers = HashMap::new();
        let mut published = Vec::new();
        let records = self.store.list_keys(false).await?;
        for record in &records {
            let key = match previous.keys.get(&record.kid) {
                Some(key) => Arc::clone(key),
                None => match self.open_key(record) {
                    Ok(key) => Arc::new(key),
                    Err(e) if strict => return Err(e),
                    Err(e) => {
                        tracing::error!(error = %e, "skipping a signing key");
                        continue;
                    }
                },
            };
            // The JWK of the key as opened, not the stored one: what we
            // publish is what signs.
            if let Some(jwk) = key.public_jwk() {
                published.push(jwk.clone());
            }
            if record.state == KeyState::Current {
                match &record.set {
                    KeySetName::Hs256(audience) => {
                        audience_signers.insert(audience.clone(), Arc::clone(&key));
                    }
                    KeySetName::Asymmetric(alg) => {
                        signers.insert(*alg, Arc::clone(&key));
                    }
                }
            }
            keys.insert(record.kid.clone(), key);
        }
        let jwks = jwk_set(published).map_err(|_| CryptoError("cannot serialize the JWKS"))?;
        Ok(Snapshot {
            marker,
            clients,
            keys,
            records,
            signers,
            audience_signers,
            jwks: Bytes::from(jwks),
        })
    }

    fn open_key(&self, record: &KeyRecord) -> Result<SigningKey, RegistryError> {
        let bad = |reason: &str| RegistryError::BadKey {
            kid: record.kid.clone(),
            reason: reason.to_owned(),
        };
        let sealed = record
            .sealed_private_key
            .as_deref()
            .ok_or_else(|| bad("private key destroyed but key not retired"))?;
        let mut master_key = self.master_key.load_full();
        if record.master_key_id != master_key.id() {
            // Rewrapped under a new master key: the operator may have put it
            // in place of the old one. Never create one here.
            if let Ok((reloaded, _)) = MasterKey::load(&self.master_key_file, false)
                && reloaded.id() == record.master_key_id
            {
                tracing::info!(id = reloaded.id(), "loaded the new master key");
                master_key = Arc::new(reloaded);
                self.master_key.store(Arc::clone(&master_key));
            } else {
                return Err(RegistryError::WrongMasterKey {
                    kid: record.kid.clone(),
                    sealed_under: record.master_key_id.clone(),
                    loaded: master_key.id().to_owned(),
                });
            }
        }
        let secret = master_key
            .open(record.kid.as_bytes(), sealed)
            .map_err(|e| bad(e.0))?;
        let key = SigningKey::from_secret(record.alg, Some(record.kid.as_str()), &secret)
            .map_err(|e| bad(e.0))?;
        if record.kid != key.kid() {
            return Err(bad("private key does not match its kid"));
        }
        Ok(key)
    }
}
