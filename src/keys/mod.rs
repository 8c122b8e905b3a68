//! The key lifecycle: `next` → `current` → `previous` → `retired`.
//!
//! A key is published (`next`) before it signs, for at least the JWKS
//! `max-age` plus a margin, so that every verifier honouring our
//! `Cache-Control` already holds it when the first token it signed arrives.
//! A key that stops signing (`previous`) stays published until every token it
//! signed has expired, then retires: it leaves the JWKS and its private half
//! is destroyed. Each transition is one conditional database write, so when
//! several processes race, one wins and the others find nothing to do.

use crate::crypto::{Algorithm, CryptoError, MasterKey, SigningKey, b64url};
use crate::domain::{Audience, KeyId, KeyRecord, KeySetName, KeyState};
use crate::storage::{Resealed, Storage, StorageError};

mod policy;

pub use policy::{KeyPolicy, Transition, plan};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("{0}")]
    Refused(String),
}

/// How `rotate` treats a `next` key that is not yet safe to sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateMode {
    IfSafe,
    /// Promote when it becomes safe (the server does it).
    Schedule,
    /// Promote now: verifiers that cached the JWKS before the key was
    /// published reject new tokens until they refetch.
    Force,
}

#[derive(Debug)]
pub enum Rotation {
    Promoted {
        current: KeyId,
        previous: Option<KeyId>,
        next: KeyId,
    },
    NotYetSafe {
        next: KeyId,
        safe_at: Option<i64>,
    },
    Scheduled {
        next: KeyId,
        at: i64,
    },
    /// The set had no `next` key; one is now published.
    PublishedNext {
        next: KeyId,
        safe_at: Option<i64>,
    },
}

/// One exported HS256 secret.
pub struct ExportedSecret {
    pub kid: KeyId,
    pub state: KeyState,
    pub secret_b64url: String,
}

pub struct KeyManager<'a> {
    store: &'a dyn Storage,
    master_key: &'a MasterKey,
    policy: KeyPolicy,
}

impl<'a> KeyManager<'a> {
    pub fn new(store: &'a dyn Storage, master_key: &'a MasterKey, policy: KeyPolicy) -> Self {
        Self {
            store,
            master_key,
            policy,
        }
    }

    /// A new key for `set`, generated off the async workers and sealed.
    pub async fn new_record(
        &self,
        set: &KeySetName,
        state: KeyState,
        now: i64,
    ) -> Result<KeyRecord, KeyError> {
        let alg = set.alg();
        let (key, secret) = tokio::task::spawn_blocking(move || SigningKey::generate(alg))
            .await
            .map_err(|_| CryptoError("key generation task failed"))??;
        let kid = KeyId::parse(key.kid()).map_err(|_| CryptoError("generated kid is invalid"))?;
        Ok(KeyRecord {
            sealed_private_key: Some(self.master_key.seal(kid.as_bytes(), &secret)?),
            kid,
            set: set.clone(),
            alg,
            state,
            master_key_id: self.master_key.id().to_owned(),
            public_jwk: key.public_jwk().map(ToString::to_string),
            created_at: now,
            published_at: now,
            activated_at: (state == KeyState::Current).then_some(now),
            retire_after: None,
            promote_at: None,
            exported_at: None,
        })
    }

    /// First start: an RS256 key that signs at once (no verifier can have
    /// cached a JWKS without it) and a `next` key published behind it.
    pub async fn bootstrap(&self, now: i64) -> Result<(), KeyError> {
        let set = KeySetName::Asymmetric(Algorithm::RS256);
        let keys = self.store.list_keys(true).await?;
        if keys.iter().any(|k| k.set == set) {
            return Ok(());
        }
        for state in [KeyState::Current, KeyState::Next] {
            let record = self.new_record(&set, state, now).await?;
            match self.store.insert_key(&record).await {
                Ok(()) => {
                    tracing::info!(kid = %record.kid, set = %set, state = state.as_str(), "generated a signing key")
                }
                // Another process bootstrapped at the same moment.
                Err(StorageError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Publishes a new `next` key for `set`.
    pub async fn generate(&self, set: &KeySetName, now: i64) -> Result<KeyRecord, KeyError> {
        if let Some(next) = self.find(set, KeyState::Next).await? {
            return Err(KeyError::Refused(format!(
                "key set {set} already has a next key ({}); rotate or retire it first",
                next.kid
            )));
        }
        let record = self.new_record(set, KeyState::Next, now).await?;
        match self.store.insert_key(&record).await {
            Ok(()) => Ok(record),
            Err(StorageError::Conflict) => Err(KeyError::Refused(format!(
                "key set {set} got a next key from another process meanwhile"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn find(&self, set: &KeySetName, state: KeyState) -> Result<Option<KeyRecord>, KeyError> {
        Ok(self
            .store
            .list_keys(false)
            .await?
            .into_iter()
            .find(|k| &k.set == set && k.state == state))
    }

    pub async fn rotate(
        &self,
        set: &KeySetName,
        mode: RotateMode,
        now: i64,
    ) -> Result<Rotation, KeyError> {
        let Some(next) = self.find(set, KeyState::Next).await? else {
            let record = self.generate(set, now).await?;
            if mode != RotateMode::Force {
                return Ok(Rotation::PublishedNext {
                    safe_at: self.policy.safe_at(&record),
                    next: record.kid,
                });
            }
            return self.promote(set, &record.kid, now).await;
        };
        let safe_at = self.policy.safe_at(&next);
        let safe = self.policy.is_safe(&next, now);
        match mode {
            RotateMode::Force => self.promote(set, &next.kid, now).await,
            _ if safe => self.promote(set, &next.kid, now).await,
            RotateMode::IfSafe => Ok(Rotation::NotYetSafe {
                next: next.kid,
                safe_at,
            }),
            RotateMode::Schedule => {
                let Some(at) = safe_at else {
                    return Err(KeyError::Refused(format!(
                        "the next secret of {set} was never exported; run `warrant keys export-secret` \
                         and give it to the resource server first"
                    )));
                };
                if !self.store.schedule_promotion(&next.kid, at).await? {
                    return Err(KeyError::Refused(format!(
                        "key {} is no longer next",
                        next.kid
                    )));
                }
                Ok(Rotation::Scheduled { next: next.kid, at })
            }
        }
    }

    async fn promote(
        &self,
        set: &KeySetName,
        next_kid: &KeyId,
        now: i64,
    ) -> Result<Rotation, KeyError> {
        let previous = self.find(set, KeyState::Current).await?.map(|k| k.kid);
        let fresh = self.new_record(set, KeyState::Next, now).await?;
        let retire_after = now.saturating_add(self.policy.retire_delay);
        if !self
            .store
            .promote(set, next_kid, now, retire_after, Some(&fresh))
            .await?
        {
            return Err(KeyError::Refused(format!(
                "key {next_kid} is no longer the next key of {set}: another process rotated first"
            )));
        }
        Ok(Rotation::Promoted {
            current: next_kid.clone(),
            previous,
            next: fresh.kid,
        })
    }

    /// Retires a `next` or `previous` key. A `previous` key that may still
    /// verify live tokens needs `force`; the `current` key cannot be retired.
    pub async fn retire(&self, kid: &KeyId, force: bool, now: i64) -> Result<(), KeyError> {
        let keys = self.store.list_keys(false).await?;
        let Some(key) = keys.iter().find(|k| &k.kid == kid) else {
            return Err(KeyError::Refused(format!(
                "no published key with kid {kid}"
            )));
        };
        match key.state {
            KeyState::Current => {
                return Err(KeyError::Refused(format!(
                    "{kid} is the current key of {}: rotate first",
                    key.set
                )));
            }
            KeyState::Previous if !force && key.retire_after.is_some_and(|t| t > now) => {
                return Err(KeyError::Refused(format!(
                    "{kid} may still verify tokens until {}; retiring it now makes them fail \
                     (--force-while-tokens-live to do it anyway)",
                    crate::clock::rfc3339(key.retire_after.unwrap_or(now))
                )));
            }
            _ => {}
        }
        if !self.store.retire_key(kid, now).await? {
            return Err(KeyError::Refused(format!(
                "{kid} changed state meanwhile; nothing retired"
            )));
        }
        Ok(())
    }

    /// Carries out the transitions [`plan`] finds due among `keys`.
    /// Returns what it did, for the log; a transition another process made
    /// first is skipped.
    pub async fn maintain(&self, keys: &[KeyRecord], now: i64) -> Result<Vec<String>, KeyError> {
        let mut done = Vec::new();
        for transition in plan(keys, &self.policy, now) {
            match transition {
                Transition::Retire { kid, set } => {
                    if self.store.retire_key(&kid, now).await? {
                        done.push(format!("retired {kid} of {set}"));
                    }
                }
                Transition::Promote { set, next } => match self.promote(&set, &next, now).await {
                    Ok(_) => done.push(format!("promoted {next} to current in {set}")),
                    Err(KeyError::Refused(_)) => {}
                    Err(e) => return Err(e),
                },
                Transition::PublishNext { set } => match self.generate(&set, now).await {
                    Ok(record) => done.push(format!("published next key {} in {set}", record.kid)),
                    Err(KeyError::Refused(_)) => {}
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(done)
    }

    /// The secrets of an HS256 audience's published keys, for its resource
    /// server; marks them exported (which lets the `next` one be promoted).
    pub async fn export_secrets(
        &self,
        audience: &Audience,
        now: i64,
    ) -> Result<Vec<ExportedSecret>, KeyError> {
        let set = KeySetName::Hs256(audience.clone());
        let mut secrets = Vec::new();
        for key in self
            .store
            .list_keys(false)
            .await?
            .into_iter()
            .filter(|k| k.set == set)
        {
            let sealed = key
                .sealed_private_key
                .as_deref()
                .ok_or(CryptoError("a published secret has no private half"))?;
            let secret = self.master_key.open(key.kid.as_bytes(), sealed)?;
            secrets.push(ExportedSecret {
                kid: key.kid,
                state: key.state,
                secret_b64url: b64url(&secret),
            });
        }
        if secrets.is_empty() {
            return Err(KeyError::Refused(format!(
                "no HS256 keys for {audience}: `warrant keys generate --alg HS256 --audience {audience}` first"
            )));
        }
        self.store.mark_exported(&set, now).await?;
        Ok(secrets)
    }

    /// Re-seals every stored private key under `new`, in one transaction.
    pub async fn rewrap(&self, new: &MasterKey) -> Result<usize, KeyError> {
        let mut sealed = Vec::new();
        for key in self.store.list_keys(true).await? {
            let Some(private) = key.sealed_private_key.as_deref() else {
                continue;
            };
            if key.master_key_id != self.master_key.id() {
                return Err(KeyError::Refused(format!(
                    "key {} is sealed under master key {}, not the one loaded ({})",
                    key.kid,
                    key.master_key_id,
                    self.master_key.id()
                )));
            }
            let plain = self.master_key.open(key.kid.as_bytes(), private)?;
            sealed.push(Resealed {
                sealed_private_key: new.seal(key.kid.as_bytes(), &plain)?,
                kid: key.kid,
                master_key_id: new.id().to_owned(),
            });
        }
        self.store.reseal_keys(&sealed).await?;
        Ok(sealed.len())
    }
}
