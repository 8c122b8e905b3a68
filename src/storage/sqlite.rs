use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection as _, Sqlite};

use super::rows::{
    CLIENT_COLUMNS, ChangeRow, ClientRow, ClientValues, KEY_COLUMNS, KeyRow, KeyValues,
};
use super::{Change, IDS_PER_QUERY, Resealed, Storage, StorageError, unique_violation};
use crate::domain::{Client, ClientId, KeyId, KeyRecord, KeySetName, NamePattern};

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

#[async_trait]
impl Storage for SqliteStorage {
    async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        // A write that changes nothing, rolled back: it needs the same
        // rights and locks as a real one.
        let mut conn = self.pool.acquire().await?;
        let result = check_writable(&mut conn).await;
        close_if_failed(&mut conn, result)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn change_marker(&self) -> Result<i64, StorageError> {
        let version = sqlx::query_scalar("SELECT version FROM change_marker WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(version)
    }

    async fn changes_between(&self, after: i64, through: i64) -> Result<Vec<Change>, StorageError> {
        let rows: Vec<ChangeRow> = sqlx::query_as(
            "SELECT seq, kind, id FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq",
        )
        .bind(after)
        .bind(through)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Change::try_from).collect()
    }

    async fn prune_changes(
        &self,
        keep_last: i64,
        older_than_secs: i64,
    ) -> Result<u64, StorageError> {
        let result = sqlx::query(
            "DELETE FROM changes WHERE at <= CAST(strftime('%s', 'now') AS INTEGER) - ? \
             AND seq <= (SELECT version FROM change_marker WHERE id = 1) - ?",
        )
        .bind(older_than_secs)
        .bind(keep_last)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn list_clients(&self) -> Result<Vec<Result<Client, StorageError>>, StorageError> {
        // No ORDER BY: the full load needs no order, and sorting a million
        // rows cost SQLite more than reading them.
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients");
        let rows: Vec<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Client::try_from).collect())
    }

    async fn list_clients_page(
        &self,
        after: Option<&ClientId>,
        limit: usize,
        name: Option<&NamePattern>,
    ) -> Result<Vec<Result<Client, StorageError>>, StorageError> {
        // No id is empty and '%' matches every name: one statement serves
        // every page, and the key condition stays a range on the index.
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id > ? \
             AND lower(name) LIKE ? ESCAPE '\\' ORDER BY client_id LIMIT ?"
        );
        let rows: Vec<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(after.map_or("", ClientId::as_str))
            .bind(name.map_or("%", NamePattern::like_pattern))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Client::try_from).collect())
    }

    async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StorageError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?");
        let row: Option<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(Client::try_from).transpose()
    }

    async fn get_clients(
        &self,
        ids: &[ClientId],
    ) -> Result<Vec<Result<Client, StorageError>>, StorageError> {
        let mut clients = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let sql =
                format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id IN ({placeholders})");
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            let rows: Vec<ClientRow> = query.fetch_all(&self.pool).await?;
            clients.extend(rows.into_iter().map(Client::try_from));
        }
        Ok(clients)
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StorageError> {
        let values = ClientValues::of(client);
        let sql = format!(
            "INSERT INTO clients ({CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
             (SELECT version + 1 FROM change_marker WHERE id = 1), ?, ?)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(client.id.as_str())
            .bind(&client.name)
            .bind(client.secret_hash.expose_secret())
            .bind(values.scopes)
            .bind(values.audiences)
            .bind(values.grant_types)
            .bind(values.signing_alg)
            .bind(values.token_ttl_secs)
            .bind(values.quota_per_minute)
            .bind(client.enabled)
            .bind(client.created_at)
            .bind(client.updated_at)
            .execute(&self.pool)
            .await
            .map_err(unique_violation)?;
        Ok(())
    }

    async fn set_client_enabled(
        &self,
        id: &ClientId,
        enabled: bool,
        now: i64,
    ) -> Result<bool, StorageError> {
        let result = sqlx::query(
            "UPDATE clients SET enabled = ?, version = version + 1, updated_at = ? \
             WHERE client_id = ?",
        )
        .bind(enabled)
        .bind(now)
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
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys WHERE ? OR state <> 'retired' ORDER BY created_at, kid"
        );
        let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(include_retired)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(KeyRecord::try_from).collect()
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
        set: &KeySetName,
        next_kid: &KeyId,
        now: i64,
        retire_after: i64,
        fresh_next: Option<&KeyRecord>,
    ) -> Result<bool, StorageError> {
        let mut conn = self.pool.acquire().await?;
        let result = promote(&mut conn, set, next_kid, now, retire_after, fresh_next).await;
        close_if_failed(&mut conn, result)
    }

    async fn schedule_promotion(&self, kid: &KeyId, at: i64) -> Result<bool, StorageError> {
        let result =
            sqlx::query("UPDATE signing_keys SET promote_at = ? WHERE kid = ? AND state = 'next'")
                .bind(at)
                .bind(kid.as_str())
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn retire_key(&self, kid: &KeyId, now: i64) -> Result<bool, StorageError> {
        let result = sqlx::query(
            "UPDATE signing_keys SET state = 'retired', private_key = NULL, \
             retire_after = MIN(COALESCE(retire_after, ?), ?), promote_at = NULL \
             WHERE kid = ? AND state IN ('next', 'previous')",
        )
        .bind(now)
        .bind(now)
        .bind(kid.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn mark_exported(&self, set: &KeySetName, now: i64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE signing_keys SET exported_at = ? WHERE key_set = ? AND state <> 'retired'",
        )
        .bind(now)
        .bind(set.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reseal_keys(&self, sealed: &[Resealed]) -> Result<(), StorageError> {
        let mut conn = self.pool.acquire().await?;
        let result = reseal_keys(&mut conn, sealed).await;
        close_if_failed(&mut conn, result)
    }
}

/// A connection whose write transaction failed is closed, not pooled: on a
/// full disk SQLite may already have rolled back by itself, sqlx's ROLLBACK
/// then fails, and sqlx would refuse every later transaction on that
/// connection ("begin_with at non-zero transaction depth").
fn close_if_failed<T>(
    conn: &mut PoolConnection<Sqlite>,
    result: Result<T, StorageError>,
) -> Result<T, StorageError> {
    if result.is_err() {
        conn.close_on_drop();
    }
    result
}

async fn check_writable(conn: &mut SqliteConnection) -> Result<(), StorageError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("UPDATE change_marker SET version = version WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(())
}

async fn promote(
    conn: &mut SqliteConnection,
    set: &KeySetName,
    next_kid: &KeyId,
    now: i64,
    retire_after: i64,
    fresh_next: Option<&KeyRecord>,
) -> Result<bool, StorageError> {
    // IMMEDIATE takes the write lock first: two processes rotating at once
    // serialize here instead of failing to upgrade a read lock.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let is_next: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM signing_keys WHERE kid = ? AND key_set = ? AND state = 'next'",
    )
    .bind(next_kid.as_str())
    .bind(set.to_string())
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
    .bind(set.to_string())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE signing_keys SET state = 'current', activated_at = ?, promote_at = NULL \
         WHERE kid = ?",
    )
    .bind(now)
    .bind(next_kid.as_str())
    .execute(&mut *tx)
    .await?;
    if let Some(fresh) = fresh_next {
        insert_key(&mut tx, fresh).await?;
    }
    tx.commit().await?;
    Ok(true)
}

async fn reseal_keys(conn: &mut SqliteConnection, sealed: &[Resealed]) -> Result<(), StorageError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for resealed in sealed {
        sqlx::query(
            "UPDATE signing_keys SET private_key = ?, master_key_id = ? \
             WHERE kid = ? AND private_key IS NOT NULL",
        )
        .bind(&resealed.sealed_private_key)
        .bind(&resealed.master_key_id)
        .bind(resealed.kid.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_key(conn: &mut SqliteConnection, key: &KeyRecord) -> Result<(), StorageError> {
    let values = KeyValues::of(key);
    let sql = format!(
        "INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(values.kid)
        .bind(values.key_set)
        .bind(values.alg)
        .bind(values.state)
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
        .await
        .map_err(unique_violation)?;
    Ok(())
}
