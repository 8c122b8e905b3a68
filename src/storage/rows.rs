//! Rows as both backends return them, and their conversion to domain types:
//! the one place that knows how a client or key is laid out in a table.

use secrecy::SecretString;

use super::{KeyRecord, KeyState, StorageError};
use crate::crypto::Algorithm;
use crate::domain::{Audience, Client, ClientId, GrantType, ScopeSet};

pub const CLIENT_COLUMNS: &str = "client_id, name, secret_hash, scopes, audiences, grant_types, \
     signing_alg, token_ttl_secs, quota_per_minute, enabled, version, created_at, updated_at";

pub const KEY_COLUMNS: &str = "kid, key_set, alg, state, private_key, master_key_id, public_jwk, \
     created_at, published_at, activated_at, retire_after, promote_at, exported_at";

#[derive(sqlx::FromRow)]
pub struct ClientRow {
    client_id: String,
    name: String,
    secret_hash: String,
    scopes: String,
    audiences: String,
    grant_types: String,
    signing_alg: String,
    token_ttl_secs: i64,
    quota_per_minute: Option<i64>,
    enabled: bool,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StorageError;

    fn try_from(row: ClientRow) -> Result<Self, StorageError> {
        let corrupt =
            |what: &str| StorageError::Corrupt(format!("client {:?}: {what}", row.client_id));
        Ok(Client {
            id: ClientId::parse(&row.client_id).map_err(|e| corrupt(e.0))?,
            secret_hash: SecretString::from(row.secret_hash.clone()),
            scopes: ScopeSet::parse(&row.scopes).map_err(|e| corrupt(e.0))?,
            audiences: row
                .audiences
                .split(' ')
                .map(Audience::parse)
                .collect::<Result<_, _>>()
                .map_err(|e| corrupt(e.0))?,
            grant_types: GrantType::parse_list(&row.grant_types).map_err(|e| corrupt(e.0))?,
            signing_alg: Algorithm::parse(&row.signing_alg)
                .filter(|alg| !alg.is_symmetric())
                .ok_or_else(|| corrupt("unknown signing_alg"))?,
            token_ttl_secs: u32::try_from(row.token_ttl_secs)
                .map_err(|_| corrupt("token_ttl_secs out of range"))?,
            quota_per_minute: row
                .quota_per_minute
                .map(u32::try_from)
                .transpose()
                .map_err(|_| corrupt("quota_per_minute out of range"))?,
            name: row.name,
            enabled: row.enabled,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The column values of a client, in `CLIENT_COLUMNS` order after the id.
pub struct ClientValues {
    pub scopes: String,
    pub audiences: String,
    pub grant_types: String,
    pub signing_alg: &'static str,
    pub token_ttl_secs: i64,
    pub quota_per_minute: Option<i64>,
}

impl ClientValues {
    pub fn of(client: &Client) -> Self {
        let join = |items: Vec<&str>| items.join(" ");
        Self {
            scopes: client.scopes.to_string(),
            audiences: join(client.audiences.iter().map(Audience::as_str).collect()),
            grant_types: join(client.grant_types.iter().map(|g| g.as_str()).collect()),
            signing_alg: client.signing_alg.as_str(),
            token_ttl_secs: i64::from(client.token_ttl_secs),
            quota_per_minute: client.quota_per_minute.map(i64::from),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct KeyRow {
    kid: String,
    key_set: String,
    alg: String,
    state: String,
    private_key: Option<Vec<u8>>,
    master_key_id: String,
    public_jwk: Option<String>,
    created_at: i64,
    published_at: i64,
    activated_at: Option<i64>,
    retire_after: Option<i64>,
    promote_at: Option<i64>,
    exported_at: Option<i64>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StorageError;

    fn try_from(row: KeyRow) -> Result<Self, StorageError> {
        let state = KeyState::parse(&row.state).ok_or_else(|| {
            StorageError::Corrupt(format!("key {:?}: unknown state {:?}", row.kid, row.state))
        })?;
        Ok(KeyRecord {
            kid: row.kid,
            key_set: row.key_set,
            alg: row.alg,
            state,
            sealed_private_key: row.private_key,
            master_key_id: row.master_key_id,
            public_jwk: row.public_jwk,
            created_at: row.created_at,
            published_at: row.published_at,
            activated_at: row.activated_at,
            retire_after: row.retire_after,
            promote_at: row.promote_at,
            exported_at: row.exported_at,
        })
    }
}
