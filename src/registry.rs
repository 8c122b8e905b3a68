//! The in-memory copy of clients and keys that the token endpoint reads.
//!
//! Issuing a token never touches the database: handlers read an immutable
//! [`Snapshot`] through an atomic pointer. A background task polls the
//! database's change marker (one single-row read) and swaps in a new snapshot
//! when clients or keys changed, whoever changed them: this process, the CLI
//! or another replica.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web::Bytes;
use arc_swap::{ArcSwap, Guard};

use crate::crypto::{Algorithm, CryptoError, MasterKey, SigningKey};
use crate::domain::{Client, ClientId};
use crate::storage::{KeyRecord, KeyState, Storage, StorageError};

/// What the hot path sees; never mutated, only replaced.
pub struct Snapshot {
    marker: i64,
    clients: HashMap<ClientId, Arc<Client>>,
    /// Parsed private keys by kid, kept so a reload re-parses only new keys.
    keys: HashMap<String, Arc<SigningKey>>,
    signer: Option<Arc<SigningKey>>,
    jwks: Bytes,
}

impl Snapshot {
    pub fn client(&self, id: &ClientId) -> Option<&Arc<Client>> {
        self.clients.get(id)
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> Option<&Arc<SigningKey>> {
        self.signer.as_ref()
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
        kid: String,
        sealed_under: String,
        loaded: String,
    },
    #[error("signing key {kid}: {reason}")]
    BadKey { kid: String, reason: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

pub struct Registry {
    store: Arc<dyn Storage>,
    master_key: MasterKey,
    snapshot: ArcSwap<Snapshot>,
    database_reachable: AtomicBool,
}

impl Registry {
    /// Loads everything once. Any key that cannot be opened is fatal here:
    /// starting without it would silently sign with nothing or something else.
    pub async fn load(
        store: Arc<dyn Storage>,
        master_key: MasterKey,
    ) -> Result<Self, RegistryError> {
        let empty = Snapshot {
            marker: -1,
            clients: HashMap::new(),
            keys: HashMap::new(),
            signer: None,
            jwks: Bytes::new(),
        };
        let registry = Self {
            store,
            master_key,
            snapshot: ArcSwap::from_pointee(empty),
            database_reachable: AtomicBool::new(true),
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
        self.database_reachable.load(Ordering::Relaxed) && self.snapshot.load().signer.is_some()
    }

    pub fn database_reachable(&self) -> bool {
        self.database_reachable.load(Ordering::Relaxed)
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

    /// Polls until the process ends. A failed poll keeps the old snapshot:
    /// tokens keep flowing from memory while the database is away. The outage
    /// and the recovery are logged once each, not once per poll.
    pub async fn poll_forever(self: Arc<Self>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.refresh().await {
                Ok(reloaded) => {
                    if !self.database_reachable.swap(true, Ordering::Relaxed) {
                        tracing::info!("database reachable again");
                    }
                    if reloaded {
                        tracing::debug!("reloaded clients and keys");
                    }
                }
                Err(RegistryError::Storage(e)) => {
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
        let mut signer = None;
        let mut published = Vec::new();
        for record in self.store.list_active_keys().await? {
            let key = match previous.keys.get(&record.kid) {
                Some(key) => Arc::clone(key),
                None => match self.open_key(&record) {
                    Ok(key) => Arc::new(key),
                    Err(e) if strict => return Err(e),
                    Err(e) => {
                        tracing::error!(error = %e, "skipping a signing key");
                        continue;
                    }
                },
            };
            if matches!(
                record.state,
                KeyState::Next | KeyState::Current | KeyState::Previous
            ) {
                published.push(key.public_jwk().clone());
            }
            if record.state == KeyState::Current {
                signer = Some(Arc::clone(&key));
            }
            keys.insert(record.kid, key);
        }
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": published }))
            .map_err(|_| CryptoError("cannot serialize the JWKS"))?;
        Ok(Snapshot {
            marker,
            clients,
            keys,
            signer,
            jwks: Bytes::from(jwks),
        })
    }

    fn open_key(&self, record: &KeyRecord) -> Result<SigningKey, RegistryError> {
        let bad = |reason: &str| RegistryError::BadKey {
            kid: record.kid.clone(),
            reason: reason.to_owned(),
        };
        let alg = Algorithm::parse(&record.alg).ok_or_else(|| bad("unsupported algorithm"))?;
        let sealed = record
            .sealed_private_key
            .as_deref()
            .ok_or_else(|| bad("private key destroyed but key not retired"))?;
        if record.master_key_id != self.master_key.id() {
            return Err(RegistryError::WrongMasterKey {
                kid: record.kid.clone(),
                sealed_under: record.master_key_id.clone(),
                loaded: self.master_key.id().to_owned(),
            });
        }
        let pkcs8 = self
            .master_key
            .open(record.kid.as_bytes(), sealed)
            .map_err(|e| bad(e.0))?;
        let key = SigningKey::from_pkcs8(alg, &pkcs8).map_err(|e| bad(e.0))?;
        if key.kid() != record.kid {
            return Err(bad("private key does not match its kid"));
        }
        Ok(key)
    }
}

/// Makes sure an RS256 key is current, generating and sealing one on first
/// start. Two processes racing here both generate, one insert wins.
pub async fn ensure_signing_key(
    store: &dyn Storage,
    master_key: &MasterKey,
) -> Result<(), RegistryError> {
    let has_current = store
        .list_active_keys()
        .await?
        .iter()
        .any(|k| k.state == KeyState::Current && k.alg == Algorithm::RS256.as_str());
    if has_current {
        return Ok(());
    }
    let (key, pkcs8) = tokio::task::spawn_blocking(|| SigningKey::generate(Algorithm::RS256))
        .await
        .map_err(|_| CryptoError("key generation task failed"))??;
    let now = crate::clock::unix_now();
    let record = KeyRecord {
        kid: key.kid().to_owned(),
        alg: key.alg().as_str().to_owned(),
        state: KeyState::Current,
        sealed_private_key: Some(master_key.seal(key.kid().as_bytes(), &pkcs8)?),
        master_key_id: master_key.id().to_owned(),
        public_jwk: key.public_jwk().to_string(),
        created_at: now,
        published_at: Some(now),
        activated_at: Some(now),
        retire_after: None,
    };
    if store.insert_current_key_if_none(&record).await? {
        tracing::info!(
            kid = key.kid(),
            alg = key.alg().as_str(),
            "generated the first signing key"
        );
    }
    Ok(())
}
