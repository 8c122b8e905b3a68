use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{KeyRecord, KeyState, Storage, StorageError};
use crate::crypto::Algorithm;
use crate::domain::{Audience, Client, ClientId, GrantType, ScopeSet};

/// The embedded default: one SQLite file in WAL mode.
pub struct SqliteStorage {
    pool: SqlitePool,
}

impl SqliteStorage {
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        create_private_file(options.get_filename())?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

/// The database holds secret hashes and sealed keys: create it readable by
/// its owner only (SQLite gives its -wal and -shm files the same mode).
fn create_private_file(path: &std::path::Path) -> Result<(), StorageError> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(sqlx::Error::Io(e).into()),
    }
}

const CLIENT_COLUMNS: &str = "client_id, name, secret_hash, scopes, audiences, grant_types, \
     signing_alg, token_ttl_secs, enabled, version, created_at, updated_at";

fn client_from_row(row: &SqliteRow) -> Result<Client, StorageError> {
    let id: String = row.try_get("client_id")?;
    let corrupt = |what: &str| StorageError::Corrupt(format!("client {id:?}: {what}"));
    let scopes: String = row.try_get("scopes")?;
    let audiences: String = row.try_get("audiences")?;
    let grant_types: String = row.try_get("grant_types")?;
    let signing_alg: String = row.try_get("signing_alg")?;
    let ttl: i64 = row.try_get("token_ttl_secs")?;
    Ok(Client {
        id: ClientId::parse(&id).map_err(|e| corrupt(e.0))?,
        name: row.try_get("name")?,
        secret_hash: SecretString::from(row.try_get::<String, _>("secret_hash")?),
        scopes: ScopeSet::parse(&scopes).map_err(|e| corrupt(e.0))?,
        audiences: audiences
            .split(' ')
            .map(Audience::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(e.0))?,
        grant_types: GrantType::parse_list(&grant_types).map_err(|e| corrupt(e.0))?,
        signing_alg: Algorithm::parse(&signing_alg)
            .filter(|alg| !alg.is_symmetric())
            .ok_or_else(|| corrupt("unknown signing_alg"))?,
        token_ttl_secs: u32::try_from(ttl).map_err(|_| corrupt("token_ttl_secs out of range"))?,
        enabled: row.try_get("enabled")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<KeyRecord, StorageError> {
    let kid: String = row.try_get("kid")?;
    let state: String = row.try_get("state")?;
    let state = KeyState::parse(&state)
        .ok_or_else(|| StorageError::Corrupt(format!("key {kid:?}: unknown state {state:?}")))?;
    Ok(KeyRecord {
        key_set: row.try_get("key_set")?,
        alg: row.try_get("alg")?,
        state,
        sealed_private_key: row.try_get("private_key")?,
        master_key_id: row.try_get("master_key_id")?,
        public_jwk: row.try_get("public_jwk")?,
        created_at: row.try_get("created_at")?,
        published_at: row.try_get("published_at")?,
        activated_at: row.try_get("activated_at")?,
        retire_after: row.try_get("retire_after")?,
        promote_at: row.try_get("promote_at")?,
        exported_at: row.try_get("exported_at")?,
        kid,
    })
}

fn join<T>(items: &[T], f: impl Fn(&T) -> &str) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn change_marker(&self) -> Result<i64, StorageError> {
        let version = sqlx::query_scalar("SELECT version FROM change_marker WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(version)
    }

    async fn list_clients(&self) -> Result<Vec<Result<Client, StorageError>>, StorageError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, client_id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(client_from_row).collect())
    }

    async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StorageError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StorageError> {
        let result = sqlx::query(
            "INSERT INTO clients (client_id, name, secret_hash, scopes, audiences, grant_types, \
             signing_alg, token_ttl_secs, enabled, version, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(client.id.as_str())
        .bind(&client.name)
        .bind(client.secret_hash.expose_secret())
        .bind(client.scopes.to_string())
        .bind(join(&client.audiences, Audience::as_str))
        .bind(join(&client.grant_types, |g| g.as_str()))
        .bind(client.signing_alg.as_str())
        .bind(i64::from(client.token_ttl_secs))
        .bind(client.enabled)
        .bind(client.version)
        .bind(client.created_at)
        .bind(client.updated_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StorageError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_client_enabled(&self, id: &ClientId, enabled: bool) -> Result<bool, StorageError> {
        let result = sqlx::query(
            "UPDATE clients SET enabled = ?, version = version + 1, updated_at = ? \
             WHERE client_id = ?",
        )
        .bind(enabled)
        .bind(crate::clock::unix_now())
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StorageError> {
        let result = sqlx::query("DELETE FROM clients WHERE client_id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn list_keys(&self, include_retired: bool) -> Result<Vec<KeyRecord>, StorageError> {
        let rows = sqlx::query(
            "SELECT kid, key_set, alg, state, private_key, master_key_id, public_jwk, created_at, \
             published_at, activated_at, retire_after, promote_at, exported_at FROM signing_keys \
             WHERE ? OR state <> 'retired' ORDER BY created_at, kid",
        )
        .bind(include_retired)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn has_any_key(&self) -> Result<bool, StorageError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM signing_keys LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StorageError> {
        insert_key(&mut *self.pool.acquire().await?, key).await
    }

    async fn promote(
        &self,
        key_set: &str,
        next_kid: &str,
        now: i64,
        retire_after: i64,
        fresh_next: Option<&KeyRecord>,
    ) -> Result<bool, StorageError> {
        // IMMEDIATE takes the write lock first: two processes rotating at
        // once serialize here instead of failing to upgrade a read lock.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let is_next: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM signing_keys WHERE kid = ? AND key_set = ? AND state = 'next'",
        )
        .bind(next_kid)
        .bind(key_set)
        .fetch_optional(&mut *tx)
        .await?;
        if is_next.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET state = 'previous', retire_after = ? \
             WHERE key_set = ? AND state = 'current'",
        )
        .bind(retire_after)
        .bind(key_set)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'current', activated_at = ?, promote_at = NULL \
             WHERE kid = ?",
        )
        .bind(now)
        .bind(next_kid)
        .execute(&mut *tx)
        .await?;
        if let Some(fresh) = fresh_next {
            insert_key(&mut tx, fresh).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn schedule_promotion(&self, kid: &str, at: i64) -> Result<bool, StorageError> {
        let result =
            sqlx::query("UPDATE signing_keys SET promote_at = ? WHERE kid = ? AND state = 'next'")
                .bind(at)
                .bind(kid)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn retire_key(&self, kid: &str, now: i64) -> Result<bool, StorageError> {
        let result = sqlx::query(
            "UPDATE signing_keys SET state = 'retired', private_key = NULL, \
             retire_after = MIN(COALESCE(retire_after, ?), ?), promote_at = NULL \
             WHERE kid = ? AND state IN ('next', 'previous')",
        )
        .bind(now)
        .bind(now)
        .bind(kid)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn mark_exported(&self, key_set: &str, now: i64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE signing_keys SET exported_at = ? WHERE key_set = ? AND state <> 'retired'",
        )
        .bind(now)
        .bind(key_set)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reseal_keys(&self, sealed: &[(String, Vec<u8>, String)]) -> Result<(), StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (kid, private_key, master_key_id) in sealed {
            sqlx::query(
                "UPDATE signing_keys SET private_key = ?, master_key_id = ? \
                 WHERE kid = ? AND private_key IS NOT NULL",
            )
            .bind(private_key)
            .bind(master_key_id)
            .bind(kid)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_key(
    conn: &mut sqlx::SqliteConnection,
    key: &KeyRecord,
) -> Result<(), StorageError> {
    let result = sqlx::query(
        "INSERT INTO signing_keys (kid, key_set, alg, state, private_key, master_key_id, \
         public_jwk, created_at, published_at, activated_at, retire_after, promote_at, exported_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&key.kid)
    .bind(&key.key_set)
    .bind(&key.alg)
    .bind(key.state.as_str())
    .bind(&key.sealed_private_key)
    .bind(&key.master_key_id)
    .bind(&key.public_jwk)
    .bind(key.created_at)
    .bind(key.published_at)
    .bind(key.activated_at)
    .bind(key.retire_after)
    .bind(key.promote_at)
    .bind(key.exported_at)
    .execute(conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StorageError::Conflict),
        Err(e) => Err(e.into()),
    }
}
