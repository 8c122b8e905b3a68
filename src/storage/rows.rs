//! Rows as both backends return them, and their conversion to domain types:
//! the one place that knows how a client or key is laid out in a table.

use secrecy::SecretString;

use super::{Change, ChangeKind, StorageError};
use crate::crypto::Algorithm;
use crate::domain::{
    Audience, Client, ClientId, GrantType, KeyId, KeyRecord, KeySetName, KeyState, ScopeSet,
};

pub const CLIENT_COLUMNS: &str = "client_id, name, secret_hash, scopes, audiences, grant_types, \
     signing_alg, token_ttl_secs, quota_per_minute, enabled, version, created_at, updated_at";

pub const KEY_COLUMNS: &str = "kid, key_set, alg, state, private_key, master_key_id, public_jwk, \
     created_at, published_at, activated_at, retire_after, promote_at, exported_at";

#[derive(sqlx::FromRow)]
pub struct ChangeRow {
    seq: i64,
    kind: String,
    id: String,
}

impl TryFrom<ChangeRow> for Change {
    type Error = StorageError;

    fn try_from(row: ChangeRow) -> Result<Self, StorageError> {
        let kind = match row.kind.as_str() {
            "client" => ChangeKind::Client,
            "key" => ChangeKind::Key,
            other => {
                return Err(StorageError::Corrupt(format!(
                    "change {}: unknown kind {other:?}",
                    row.seq
                )));
            }
        };
        Ok(Self {
            seq: row.seq,
            kind,
            id: row.id,
        })
    }
}

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
        let corrupt = |what: String| StorageError::Corrupt(format!("key {:?}: {what}", row.kid));
        let set = KeySetName::parse(&row.key_set)
            .map_err(|e| corrupt(format!("key set {:?}: {e}", row.key_set)))?;
        let alg = Algorithm::parse(&row.alg)
            .ok_or_else(|| corrupt(format!("unknown alg {:?}", row.alg)))?;
        if alg != set.alg() {
            return Err(corrupt(format!(
                "alg {alg} does not belong to key set {set}"
            )));
        }
        Ok(KeyRecord {
            kid: KeyId::parse(&row.kid).map_err(|e| corrupt(e.0.to_owned()))?,
            set,
            alg,
            state: KeyState::parse(&row.state)
                .ok_or_else(|| corrupt(format!("unknown state {:?}", row.state)))?,
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

/// The column values of a key that are not stored as they are in memory.
pub struct KeyValues {
    pub kid: String,
    pub key_set: String,
    pub alg: &'static str,
    pub state: &'static str,
}

impl KeyValues {
    pub fn of(key: &KeyRecord) -> Self {
        Self {
            kid: key.kid.to_string(),
            key_set: key.set.to_string(),
            alg: key.alg.as_str(),
            state: key.state.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, key_set: &str, alg: &str, state: &str) -> KeyRow {
        KeyRow {
            kid: kid.to_owned(),
            key_set: key_set.to_owned(),
            alg: alg.to_owned(),
            state: state.to_owned(),
            private_key: None,
            master_key_id: "m".to_owned(),
            public_jwk: None,
            created_at: 1,
            published_at: 1,
            activated_at: None,
            retire_after: None,
            promote_at: None,
            exported_at: None,
        }
    }

    fn corrupt(row: KeyRow) -> String {
        match KeyRecord::try_from(row) {
            Err(StorageError::Corrupt(message)) => message,
            Err(e) => panic!("not reported as corrupt: {e}"),
            Ok(record) => panic!("accepted {record:?}"),
        }
    }

    #[test]
    fn key_rows_parse_into_typed_records() {
        let record =
            KeyRecord::try_from(row("k1", "HS256 https://orders.example", "HS256", "next"))
                .unwrap();
        assert!(record.kid == "k1");
        assert_eq!(
            record.set,
            KeySetName::Hs256(Audience::parse("https://orders.example").unwrap())
        );
        assert_eq!(record.alg, Algorithm::HS256);
        assert_eq!(record.state, KeyState::Next);
        let values = KeyValues::of(&record);
        assert_eq!(
            (
                values.kid.as_str(),
                values.key_set.as_str(),
                values.alg,
                values.state
            ),
            ("k1", "HS256 https://orders.example", "HS256", "next")
        );
    }

    #[test]
    fn corrupt_key_rows_say_which_key_and_what_is_wrong() {
        assert!(corrupt(row("k1", "RS256", "RS256", "active")).contains("unknown state"));
        assert!(corrupt(row("k1", "RS512", "RS256", "current")).contains("key set \"RS512\""));
        assert!(corrupt(row("k1", "RS256", "none", "current")).contains("unknown alg"));
        assert!(corrupt(row("k1", "ES256", "RS256", "current")).contains("does not belong"));
        assert!(corrupt(row("k 1", "RS256", "RS256", "current")).starts_with("key \"k 1\""));
    }
}
