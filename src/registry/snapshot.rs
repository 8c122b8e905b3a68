//! The immutable state the hot path reads, shaped so that a change costs
//! what it changed: clients sit in shards that a change copies only where
//! it touches them, and keys in one shared part replaced only when a key
//! changed.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher as _, RandomState};
use std::sync::Arc;

use actix_web::web::Bytes;

use crate::crypto::{Algorithm, SigningKey};
use crate::domain::{Audience, Client, ClientId, KeyId, KeyRecord, ScopeSet};

/// What the hot path sees; never mutated, only replaced.
pub struct Snapshot {
    /// The change number this state reflects (at least).
    pub(super) seq: i64,
    pub(super) clients: Clients,
    pub(super) keys: Arc<Keys>,
}

impl Snapshot {
    pub(super) fn empty() -> Self {
        Self {
            seq: -1,
            clients: Clients::default(),
            keys: Arc::new(Keys::default()),
        }
    }

    pub fn client(&self, id: &ClientId) -> Option<&Arc<Client>> {
        self.clients.get(id)
    }

    /// The key that signs a token for `audience`: the audience's own HS256
    /// key if it has one, else the current key of the client's algorithm.
    pub fn signer_for(&self, alg: Algorithm, audience: &Audience) -> Option<&Arc<SigningKey>> {
        self.keys
            .audience_signers
            .get(audience)
            .or_else(|| self.keys.signers.get(&alg))
    }

    /// The current RS256 key, the default for clients.
    pub fn default_signer(&self) -> Option<&Arc<SigningKey>> {
        self.keys.signers.get(&Algorithm::RS256)
    }

    /// The stored keys that are not retired.
    pub fn key_records(&self) -> &[KeyRecord] {
        &self.keys.records
    }

    /// The serialized JWK Set of every published key.
    pub fn jwks(&self) -> Bytes {
        self.keys.jwks.clone()
    }
}

/// Everything the snapshot knows about keys; keys are few, so a change to
/// any of them rebuilds this whole (re-using the parsed keys by kid).
#[derive(Default)]
pub(super) struct Keys {
    /// Parsed private keys by kid, kept so a reload re-parses only new keys.
    pub(super) parsed: HashMap<KeyId, Arc<SigningKey>>,
    /// The stored key rows (private halves still sealed), for maintenance.
    pub(super) records: Vec<KeyRecord>,
    /// The current key of each asymmetric set.
    pub(super) signers: HashMap<Algorithm, Arc<SigningKey>>,
    /// The current key of each HS256 audience.
    pub(super) audience_signers: HashMap<Audience, Arc<SigningKey>>,
    pub(super) jwks: Bytes,
}

/// Enough shards that at a million clients a change copies about a
/// thousand entries, few enough that copying the shard list is nothing.
pub(super) const SHARDS: usize = 1024;

type Shard = HashMap<ClientId, Arc<Client>>;

/// Clients by id in shards picked by a hash of the id. A new snapshot
/// shares every shard it did not change with the one before, so a change
/// costs one shard's copy, not the whole table's.
#[derive(Clone)]
pub(super) struct Clients {
    pick: RandomState,
    pub(super) shards: Vec<Arc<Shard>>,
}

impl Default for Clients {
    fn default() -> Self {
        Self {
            pick: RandomState::new(),
            shards: vec![Arc::default(); SHARDS],
        }
    }
}

impl Clients {
    /// A full load. Clients registered alike share one copy of their scope
    /// and audience strings (a platform's clients mostly are).
    pub(super) fn from_clients(clients: impl IntoIterator<Item = Client>) -> Self {
        let mut all = Self::default();
        let mut shards: Vec<Shard> = vec![HashMap::new(); SHARDS];
        let mut shared = SharedStrings::default();
        for client in clients {
            let client = shared.share(client);
            shards[all.shard_of(&client.id)].insert(client.id.clone(), Arc::new(client));
        }
        all.shards = shards.into_iter().map(Arc::new).collect();
        all
    }

    fn shard_of(&self, id: &ClientId) -> usize {
        // The remainder of a 64-bit hash by 1024 keeps its low bits: as
        // evenly spread as the hash.
        (self.pick.hash_one(id) % SHARDS as u64) as usize
    }

    pub(super) fn get(&self, id: &ClientId) -> Option<&Arc<Client>> {
        self.shards[self.shard_of(id)].get(id)
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// These clients as `changed` says they are now: each id in `ids` that
    /// has no row in `changed` is gone.
    pub(super) fn with_changes(&self, ids: &[ClientId], changed: Vec<Client>) -> Self {
        let mut next = self.clone();
        for id in ids {
            let shard = next.shard_of(id);
            if next.shards[shard].contains_key(id) {
                Arc::make_mut(&mut next.shards[shard]).remove(id);
            }
        }
        for client in changed {
            let shard = next.shard_of(&client.id);
            Arc::make_mut(&mut next.shards[shard]).insert(client.id.clone(), Arc::new(client));
        }
        next
    }

    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<Client>> {
        self.shards.iter().flat_map(|s| s.values())
    }
}

/// One copy of each distinct scope set and audience seen during a load.
#[derive(Default)]
struct SharedStrings {
    scopes: HashSet<ScopeSet>,
    audiences: HashSet<Audience>,
}

impl SharedStrings {
    fn share(&mut self, mut client: Client) -> Client {
        client.scopes = shared(&mut self.scopes, client.scopes);
        for audience in &mut client.audiences {
            *audience = shared(&mut self.audiences, audience.clone());
        }
        client
    }
}

/// The copy already in `seen` equal to `value` (a pointer clone), else
/// `value`, kept for the next ones.
fn shared<T: Clone + Eq + std::hash::Hash>(seen: &mut HashSet<T>, value: T) -> T {
    match seen.get(&value) {
        Some(known) => known.clone(),
        None => {
            seen.insert(value.clone());
            value
        }
    }
}
