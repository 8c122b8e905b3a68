//! The verified-credential cache: after a secret verifies with argon2, an
//! HMAC of it (under a per-process random key) is kept with the client's row
//! version, so a repeat request costs one HMAC and a constant-time compare.
//!
//! An entry dies when the client changes (new version), when it has not been
//! used for `idle` (`auth.credential_cache_secs`), and at the latest `max_age`
//! after the verify that made it (`auth.credential_cache_max_secs`). Renewing
//! on use keeps a busy client out of argon2, so that failures others cause
//! with its id (which hold back only requests that need argon2) reach it as
//! seldom as possible. Failures are never remembered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use secrecy::{ExposeSecret as _, SecretString};

use crate::crypto::{CryptoError, random_bytes};
use crate::domain::{Client, ClientId};

/// More entries than this and expired ones are swept on insert.
const SWEEP_ABOVE: usize = 10_000;

/// An expiry moves only when it would move by at least this much: renewing
/// on every request would make every request write the same cache line.
const RENEW_STEP_MS: u64 = 1000;

struct Entry {
    tag: hmac::Tag,
    version: i64,
    /// Milliseconds since [`RememberedSecrets::epoch`].
    hard_expiry_ms: u64,
    expiry_ms: AtomicU64,
}

pub(super) struct RememberedSecrets {
    mac_key: hmac::Key,
    entries: RwLock<HashMap<ClientId, Entry>>,
    idle: Duration,
    max_age: Duration,
    epoch: Instant,
}

impl RememberedSecrets {
    pub(super) fn new(idle: Duration, max_age: Duration) -> Result<Self, CryptoError> {
        Ok(Self {
            mac_key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()?),
            entries: RwLock::new(HashMap::new()),
            idle,
            max_age: max_age.max(idle),
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    /// The secret alone: the entry is the client's already, and a 43-byte
    /// message is one SHA-256 block where id and secret together were two.
    fn tag(&self, secret: &SecretString) -> hmac::Tag {
        hmac::sign(&self.mac_key, secret.expose_secret().as_bytes())
    }

    /// True when `secret` verified for this very version of `client`
    /// recently; renews the entry.
    pub(super) fn contains(&self, client: &Client, secret: &SecretString) -> bool {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = entries.get(&client.id) else {
            return false;
        };
        let now = self.now_ms();
        let expiry = entry.expiry_ms.load(Ordering::Relaxed);
        if entry.version != client.version || now >= expiry {
            return false;
        }
        let tag = self.tag(secret);
        if verify_slices_are_equal(tag.as_ref(), entry.tag.as_ref()).is_err() {
            return false;
        }
        let renewed = now
            .saturating_add(millis(self.idle))
            .min(entry.hard_expiry_ms);
        if renewed >= expiry.saturating_add(RENEW_STEP_MS) {
            entry.expiry_ms.fetch_max(renewed, Ordering::Relaxed);
        }
        true
    }

    /// Remembers that `secret` verified for `client` just now.
    pub(super) fn insert(&self, client: &Client, secret: &SecretString) {
        let now = self.now_ms();
        let entry = Entry {
            tag: self.tag(secret),
            version: client.version,
            hard_expiry_ms: now.saturating_add(millis(self.max_age)),
            expiry_ms: AtomicU64::new(now.saturating_add(millis(self.idle))),
        };
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() > SWEEP_ABOVE {
            entries.retain(|_, e| e.expiry_ms.load(Ordering::Relaxed) > now);
        }
        entries.insert(client.id.clone(), entry);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(version: i64) -> Client {
        Client {
            version,
            ..Client::example()
        }
    }

    #[test]
    fn an_entry_matches_only_its_secret_and_its_client_version() {
        let cache =
            RememberedSecrets::new(Duration::from_secs(60), Duration::from_secs(60)).unwrap();
        let secret = SecretString::from("s3cret");
        cache.insert(&client(1), &secret);
        assert!(cache.contains(&client(1), &secret));
        assert!(!cache.contains(&client(1), &SecretString::from("other")));
        assert!(!cache.contains(&client(2), &secret));
    }

    #[test]
    fn use_renews_an_entry_but_never_past_its_hard_expiry() {
        let mut cache =
            RememberedSecrets::new(Duration::from_secs(10), Duration::from_secs(30)).unwrap();
        let secret = SecretString::from("s3cret");
        let c = client(1);
        cache.insert(&c, &secret);
        // Used every 8 s, the entry outlives its 10 s idle time...
        for elapsed in [8, 16, 24, 29] {
            cache.epoch -= Duration::from_secs(if elapsed == 29 { 5 } else { 8 });
            assert!(cache.contains(&c, &secret), "at {elapsed} s");
        }
        // ...but not the 30 s since its verify, though used 2 s ago.
        cache.epoch -= Duration::from_secs(2);
        assert!(!cache.contains(&c, &secret));
    }

    #[test]
    fn expired_entries_are_not_used() {
        let cache = RememberedSecrets::new(Duration::ZERO, Duration::ZERO).unwrap();
        let secret = SecretString::from("s3cret");
        cache.insert(&client(1), &secret);
        assert!(!cache.contains(&client(1), &secret));
    }
}
