//! The key lifecycle: `next` → `current` → `previous` → `retired`.
//!
//! A key is published (`next`) before it signs, for at least the JWKS
//! `max-age` plus a margin, so that every verifier honouring our
//! `Cache-Control` already holds it when the first token it signed arrives.
//! A key that stops signing (`previous`) stays published until every token it
//! signed has expired, then retires: it leaves the JWKS and its private half
//! is destroyed. Each transition is one conditional database write, so when
//! several processes race, one wins and the others find nothing to do.

use crate::configuration::Settings;
use crate::crypto::{Algorithm, CryptoError, MasterKey, SigningKey, b64url};
use crate::domain::{Audience, KeyId, KeyRecord, KeySetName, KeyState};
use crate::storage::{Resealed, Storage, StorageError};

/// The timings that make rotation safe, derived from the settings.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    /// A `next` key may sign this long after it was published:
    /// JWKS max-age + publication margin.
    pub publication_delay: i64,
    /// A `previous` key stays published this long after it stopped
    /// signing: the longest token lifetime + leeway.
    pub retire_delay: i64,
    /// Rotate a set's current key after this long; `None`: only by hand.
    pub rotation_period: Option<i64>,
}

impl KeyPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            publication_delay: secs(settings.jwks_max_age_secs)
                .saturating_add(secs(settings.keys.publication_margin_secs)),
            retire_delay: i64::from(settings.token.max_ttl_secs)
                .saturating_add(secs(settings.keys.retire_leeway_secs)),
            rotation_period: (settings.keys.rotation_period_secs > 0)
                .then(|| secs(settings.keys.rotation_period_secs)),
        }
    }

    /// When `next` may start signing; `None` for an HS256 secret that was
    /// never exported (no resource server can know it yet). Times are stored
    /// in whole seconds, rounded down: one second more makes sure that the
    /// real delay is never shorter than the policy's.
    pub fn safe_at(&self, next: &KeyRecord) -> Option<i64> {
        let published = match next.set {
            KeySetName::Hs256(_) => next.exported_at?,
            KeySetName::Asymmetric(_) => next.published_at,
        };
        Some(
            published
                .saturating_add(self.publication_delay)
                .saturating_add(1),
        )
    }

    fn is_safe(&self, next: &KeyRecord, now: i64) -> bool {
        self.safe_at(next).is_some_and(|at| at <= now)
    }
}

/// A key transition that is due; [`plan`] decides, [`KeyManager::maintain`]
/// carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Every token this `previous` key signed has expired.
    Retire { kid: KeyId, set: KeySetName },
    /// The set's `next` key becomes `current`.
    Promote { set: KeySetName, next: KeyId },
    /// The set rotates on a period but has no `next` key to rotate to.
    PublishNext { set: KeySetName },
}

/// The transitions due at `now` among `keys` (one snapshot of every
/// unretired key): expired `previous` keys retire; a `next` key that is
/// safe to sign with is promoted when its promotion was scheduled, when its
/// set has no `current` key yet, or when the current key's rotation period
/// is over; and with a rotation period, an asymmetric set without a `next`
/// key gets one. HS256 sets never get one on their own: a new secret is of
/// no use until someone hands it to the resource server.
pub fn plan(keys: &[KeyRecord], policy: &KeyPolicy, now: i64) -> Vec<Transition> {
    let mut due: Vec<Transition> = keys
        .iter()
        .filter(|k| k.state == KeyState::Previous && k.retire_after.is_some_and(|t| t <= now))
        .map(|k| Transition::Retire {
            kid: k.kid.clone(),
            set: k.set.clone(),
        })
        .collect();
    let mut sets: Vec<&KeySetName> = keys.iter().map(|k| &k.set).collect();
    sets.sort_unstable_by_key(|set| set.to_string());
    sets.dedup();
    for set in sets {
        let in_set = |state| keys.iter().find(|k| &k.set == set && k.state == state);
        let current = in_set(KeyState::Current);
        match in_set(KeyState::Next) {
            Some(next) if policy.is_safe(next, now) => {
                let scheduled = next.promote_at.is_some_and(|at| at <= now);
                let period_over = match (current, policy.rotation_period) {
                    (Some(current), Some(period)) => current
                        .activated_at
                        .is_some_and(|at| at.saturating_add(period) <= now),
                    _ => false,
                };
                if scheduled || current.is_none() || period_over {
                    due.push(Transition::Promote {
                        set: set.clone(),
                        next: next.kid.clone(),
                    });
                }
            }
            Some(_) => {}
            None if current.is_some()
                && policy.rotation_period.is_some()
                && !set.alg().is_symmetric() =>
            {
                due.push(Transition::PublishNext { set: set.clone() });
            }
            None => {}
        }
    }
    due
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn policy(rotation_period: Option<i64>) -> KeyPolicy {
        KeyPolicy {
            publication_delay: 100,
            retire_delay: 1000,
            rotation_period,
        }
    }

    fn rs256() -> KeySetName {
        KeySetName::Asymmetric(Algorithm::RS256)
    }

    fn hs256() -> KeySetName {
        KeySetName::Hs256(Audience::parse("https://orders.example").unwrap())
    }

    fn key(kid: &str, set: &KeySetName, state: KeyState) -> KeyRecord {
        KeyRecord {
            kid: KeyId::parse(kid).unwrap(),
            set: set.clone(),
            alg: set.alg(),
            state,
            sealed_private_key: Some(vec![0; 8]),
            master_key_id: "m".to_owned(),
            public_jwk: None,
            created_at: 0,
            published_at: 0,
            activated_at: (state == KeyState::Current).then_some(0),
            retire_after: None,
            promote_at: None,
            exported_at: None,
        }
    }

    /// A `next` key published `age` seconds ago: with `policy`, safe from
    /// 101 s on (the delay, plus one second for whole-second times).
    fn next(kid: &str, set: &KeySetName, age: i64) -> KeyRecord {
        let mut next = key(kid, set, KeyState::Next);
        next.published_at = NOW - age;
        next
    }

    fn promote(set: &KeySetName, kid: &str) -> Transition {
        Transition::Promote {
            set: set.clone(),
            next: KeyId::parse(kid).unwrap(),
        }
    }

    #[test]
    fn a_previous_key_retires_once_its_tokens_expired_and_not_before() {
        let mut previous = key("p", &rs256(), KeyState::Previous);
        previous.retire_after = Some(NOW);
        let keys = [key("c", &rs256(), KeyState::Current), previous.clone()];
        assert_eq!(
            plan(&keys, &policy(None), NOW),
            [Transition::Retire {
                kid: previous.kid.clone(),
                set: rs256()
            }]
        );
        assert_eq!(plan(&keys, &policy(None), NOW - 1), []);
    }

    #[test]
    fn a_scheduled_promotion_happens_when_due_and_safe() {
        let mut scheduled = next("n", &rs256(), 101);
        scheduled.promote_at = Some(NOW);
        let keys = [key("c", &rs256(), KeyState::Current), scheduled];
        assert_eq!(plan(&keys, &policy(None), NOW), [promote(&rs256(), "n")]);
        assert_eq!(plan(&keys, &policy(None), NOW - 1), []);
    }

    #[test]
    fn an_unscheduled_next_key_waits_while_the_current_one_signs() {
        let keys = [
            key("c", &rs256(), KeyState::Current),
            next("n", &rs256(), 10_000),
        ];
        assert_eq!(plan(&keys, &policy(None), NOW), []);
    }

    #[test]
    fn the_first_key_of_a_new_set_is_promoted_once_safe() {
        let es256 = KeySetName::Asymmetric(Algorithm::ES256);
        let keys = [
            key("c", &rs256(), KeyState::Current),
            next("n", &es256, 101),
        ];
        assert_eq!(plan(&keys, &policy(None), NOW), [promote(&es256, "n")]);
        let young = [next("n", &es256, 100)];
        assert_eq!(plan(&young, &policy(None), NOW), []);
    }

    #[test]
    fn a_rotation_period_rotates_only_to_a_safe_next_key() {
        let mut current = key("c", &rs256(), KeyState::Current);
        current.activated_at = Some(NOW - 500);
        let safe = [current.clone(), next("n", &rs256(), 101)];
        assert_eq!(
            plan(&safe, &policy(Some(500)), NOW),
            [promote(&rs256(), "n")]
        );
        assert_eq!(plan(&safe, &policy(Some(501)), NOW), []);
        let unsafe_next = [current, next("n", &rs256(), 100)];
        assert_eq!(plan(&unsafe_next, &policy(Some(500)), NOW), []);
    }

    #[test]
    fn a_rotation_period_publishes_a_next_key_for_asymmetric_sets_only() {
        let keys = [
            key("c", &rs256(), KeyState::Current),
            key("h", &hs256(), KeyState::Current),
        ];
        assert_eq!(
            plan(&keys, &policy(Some(500)), NOW),
            [Transition::PublishNext { set: rs256() }]
        );
        assert_eq!(plan(&keys, &policy(None), NOW), []);
    }

    #[test]
    fn nothing_is_promoted_before_it_is_safe() {
        // Scheduled, first of its set and past the period, but published
        // too recently.
        let mut current = key("c", &rs256(), KeyState::Current);
        current.activated_at = Some(0);
        let mut young = next("n", &rs256(), 100);
        young.promote_at = Some(NOW - 1);
        assert_eq!(plan(&[current, young], &policy(Some(1)), NOW), []);
        // An HS256 secret never exported is never safe, however old.
        let hs = [next("h", &hs256(), 10_000)];
        assert_eq!(plan(&hs, &policy(None), NOW), []);
        let mut exported = next("h", &hs256(), 10_000);
        exported.exported_at = Some(NOW - 101);
        assert_eq!(
            plan(&[exported], &policy(None), NOW),
            [promote(&hs256(), "h")]
        );
    }

    #[test]
    fn retirements_come_first_then_sets_in_name_order() {
        let es256 = KeySetName::Asymmetric(Algorithm::ES256);
        let mut previous = key("p", &rs256(), KeyState::Previous);
        previous.retire_after = Some(0);
        let keys = [next("r", &rs256(), 101), next("e", &es256, 101), previous];
        assert_eq!(
            plan(&keys, &policy(None), NOW),
            [
                Transition::Retire {
                    kid: KeyId::parse("p").unwrap(),
                    set: rs256()
                },
                promote(&es256, "e"),
                promote(&rs256(), "r"),
            ]
        );
    }
}
