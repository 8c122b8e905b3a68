//! The in-memory copy of clients and keys that the token endpoint reads.
//!
//! Issuing a token never touches the database: handlers read an immutable
//! [`Snapshot`] through an atomic pointer. A background task polls the
//! database's change marker (one single-row read) and swaps in a new snapshot
//! when clients or keys changed, whoever changed them: this process, the CLI
//! or another replica.
//!
//! A new snapshot costs what changed: the change log names the rows changed
//! since the number the snapshot reflects, and only those are read again.
//! Everything is read again at start-up and when the log cannot tell (this
//! server was away longer than the log keeps, or too much changed).

mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use arc_swap::{ArcSwap, Guard};

use crate::crypto::{CryptoError, MasterKey, SigningKey};
use crate::domain::{ClientId, KeyId, KeyRecord, KeySetName, KeyState, jwk_set};
use crate::keys::{KeyError, KeyManager, KeyPolicy};
use crate::storage::{Change, ChangeKind, Storage, StorageError};

pub use snapshot::Snapshot;
use snapshot::{Clients, Keys};

/// More changes than this since the last read cost less as one full reload
/// than as that many rows read one by one.
const MAX_INCREMENTAL_CHANGES: i64 = 10_000;

/// How long the change log keeps entries, which is how long a server may
/// be away and still catch up row by row.
#[derive(Debug, Clone, Copy)]
pub struct ChangeLogRetention {
    pub secs: i64,
    /// Entries kept whatever their age.
    pub min_entries: i64,
}

impl Default for ChangeLogRetention {
    fn default() -> Self {
        Self {
            secs: 24 * 3600,
            min_entries: 10_000,
        }
    }
}

/// How a refresh brings the snapshot up to the marker.
enum Refresh {
    Apply(Vec<Change>),
    Full(&'static str),
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
    retention: ChangeLogRetention,
    /// Refreshes one at a time: two racing could store an older snapshot
    /// over a newer one, and a disable would come undone until the next
    /// poll. Never taken on the hot path.
    refreshing: tokio::sync::Mutex<()>,
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
        let empty = Snapshot::empty();
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
            retention: ChangeLogRetention::default(),
            refreshing: tokio::sync::Mutex::new(()),
        };
        let snapshot = registry.build_snapshot(true).await?;
        registry.snapshot.store(Arc::new(snapshot));
        Ok(registry)
    }

    /// Prunes the change log to `retention` while polling.
    pub fn with_change_log_retention(mut self, retention: ChangeLogRetention) -> Self {
        self.retention = retention;
        self
    }

    pub fn snapshot(&self) -> Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Ready means: the last poll reached the database and a key can sign.
    pub fn is_ready(&self) -> bool {
        self.database_reachable.load(Ordering::Relaxed)
            && !self.snapshot.load().keys.signers.is_empty()
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

    /// Brings the snapshot up to the change marker; returns whether it
    /// moved.
    pub async fn refresh(&self) -> Result<bool, RegistryError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let marker = self.store.change_marker().await?;
        let current = self.snapshot.load_full();
        if marker == current.seq {
            return Ok(false);
        }
        let snapshot = match self.plan(&current, marker).await? {
            Refresh::Apply(changes) => {
                let started = Instant::now();
                let count = changes.len();
                let snapshot = self.apply(&current, marker, changes).await?;
                tracing::debug!(
                    changes = count,
                    seq = marker,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "applied changes"
                );
                snapshot
            }
            Refresh::Full(reason) => {
                let started = Instant::now();
                let snapshot = self.build_snapshot(false).await?;
                tracing::info!(
                    reason,
                    from_seq = current.seq,
                    seq = snapshot.seq,
                    clients = snapshot.clients.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "reloaded every client and key"
                );
                snapshot
            }
        };
        self.snapshot.store(Arc::new(snapshot));
        Ok(true)
    }

    /// Whether the log holds every change in `(current.seq, marker]`.
    async fn plan(&self, current: &Snapshot, marker: i64) -> Result<Refresh, RegistryError> {
        if marker < current.seq {
            return Ok(Refresh::Full(
                "the change marker went back (a restored or replaced database)",
            ));
        }
        if marker - current.seq > MAX_INCREMENTAL_CHANGES {
            return Ok(Refresh::Full("too many changes to apply one by one"));
        }
        let changes = self.store.changes_between(current.seq, marker).await?;
        // Numbers are contiguous (see the migration), so a short list
        // means entries were pruned before this server read them.
        if changes.len() as i64 != marker - current.seq {
            return Ok(Refresh::Full(
                "the change log no longer holds every change since the last read",
            ));
        }
        Ok(Refresh::Apply(changes))
    }

    /// `current` with the logged changes applied: the changed clients read
    /// again (the list was read first, so a row changed since is at least
    /// as new, and its own entry will apply it again, harmlessly), the keys
    /// reloaded if any changed.
    async fn apply(
        &self,
        current: &Snapshot,
        marker: i64,
        changes: Vec<Change>,
    ) -> Result<Snapshot, RegistryError> {
        let mut ids = HashSet::new();
        let mut keys_changed = false;
        for change in changes {
            match change.kind {
                ChangeKind::Key => keys_changed = true,
                // An id that does not parse names no client in memory.
                ChangeKind::Client => match ClientId::parse(&change.id) {
                    Ok(id) => {
                        ids.insert(id);
                    }
                    Err(e) => tracing::error!(error = %e, "skipping a logged client change"),
                },
            }
        }
        let ids: Vec<ClientId> = ids.into_iter().collect();
        let mut changed = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            for client in self.store.get_clients(&ids).await? {
                match client {
                    Ok(client) => changed.push(client),
                    Err(e) => tracing::error!(error = %e, "skipping a client row"),
                }
            }
        }
        let keys = if keys_changed {
            Arc::new(self.load_keys(&current.keys, false).await?)
        } else {
            Arc::clone(&current.keys)
        };
        Ok(Snapshot {
            seq: marker,
            clients: current.clients.with_changes(&ids, changed),
            keys,
        })
    }

    /// Deletes what the change log no longer needs to keep. Cheap: one
    /// indexed delete of what aged out.
    async fn prune_change_log(&self) -> Result<u64, RegistryError> {
        Ok(self
            .store
            .prune_changes(self.retention.min_entries, self.retention.secs)
            .await?)
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
    ///
    /// Each server also prunes the change log: at start, then at most once
    /// a minute (or per `retention`, if shorter) and only after changes.
    pub async fn poll_forever(self: Arc<Self>, interval: Duration) {
        let mut maintenance_failing = false;
        let prune_every = Duration::from_secs(self.retention.secs.clamp(0, 60) as u64);
        let mut last_prune: Option<(Instant, i64)> = None;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.refresh().await {
                Ok(_) => {
                    self.last_reached
                        .store(crate::clock::unix_now(), Ordering::Relaxed);
                    if !self.database_reachable.swap(true, Ordering::Relaxed) {
                        tracing::info!("database reachable again");
                    }
                    let seq = self.snapshot.load().seq;
                    let due = last_prune.is_none_or(|(at, pruned_at)| {
                        seq != pruned_at && at.elapsed() >= prune_every
                    });
                    if due {
                        last_prune = Some((Instant::now(), seq));
                        match self.prune_change_log().await {
                            Ok(0) => {}
                            Ok(pruned) => tracing::debug!(pruned, "pruned the change log"),
                            Err(e) => tracing::warn!(error = %e, "cannot prune the change log"),
                        }
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
        // again, and the next poll applies it.
        let seq = self.store.change_marker().await?;
        let mut clients = Vec::new();
        for client in self.store.list_clients().await? {
            match client {
                Ok(client) => clients.push(client),
                Err(e) => tracing::error!(error = %e, "skipping a client row"),
            }
        }
        let previous = self.snapshot.load_full();
        let keys = self.load_keys(&previous.keys, strict).await?;
        Ok(Snapshot {
            seq,
            clients: Clients::from_clients(clients),
            keys: Arc::new(keys),
        })
    }

    /// Every key, re-using those of `previous` already parsed.
    async fn load_keys(&self, previous: &Keys, strict: bool) -> Result<Keys, RegistryError> {
        let mut parsed = HashMap::new();
        let mut signers = HashMap::new();
        let mut audience_signers = HashMap::new();
        let mut published = Vec::new();
        let records = self.store.list_keys(false).await?;
        for record in &records {
            let key = match previous.parsed.get(&record.kid) {
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
            parsed.insert(record.kid.clone(), key);
        }
        let jwks = jwk_set(published).map_err(|_| CryptoError("cannot serialize the JWKS"))?;
        Ok(Keys {
            parsed,
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
