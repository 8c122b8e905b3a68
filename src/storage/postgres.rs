use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use super::rows::{
    CLIENT_COLUMNS, ChangeRow, ClientRow, ClientValues, KEY_COLUMNS, KeyRow, KeyValues,
};
use super::{Change, IDS_PER_QUERY, Resealed, Storage, StorageError, unique_violation};
use crate::domain::{Client, ClientId, KeyId, KeyRecord, KeySetName, NamePattern};

/// PostgreSQL, for several replicas sharing one database.
pub struct PostgresStorage {
    pool: PgPool,
}

impl PostgresStorage {
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        // A lock held elsewhere (a stuck session, a long migration) fails a
        // statement after 5 s, as SQLite's busy timeout does, instead of
        // hanging a command or a poll forever.
        let options = PgConnectOptions::from_str(url)?.options([("lock_timeout", "5s")]);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            // Short: a poll against an unreachable database should fail
            // quickly so that readiness reflects it.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn migrate(&self) -> Result<(), StorageError> {
        // sqlx holds an advisory lock while it migrates: replicas starting
        // together wait for the first one instead of racing.
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        // A write that changes nothing, rolled back: it needs the same
        // rights and locks as a real one.
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE change_marker SET version = version WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(())
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
            "SELECT seq, kind, id FROM changes WHERE seq > $1 AND seq <= $2 ORDER BY seq",
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
            "DELETE FROM changes WHERE at <= EXTRACT(EPOCH FROM now())::BIGINT - $1 \
             AND seq <= (SELECT version FROM change_marker WHERE id = 1) - $2",
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
        // Under "C", lower() folds ASCII only, as SQLite's does, and LIKE
        // compares bytes: the same names match on both backends.
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id > $1 \
             AND lower(name COLLATE \"C\") LIKE $2 ESCAPE '\\' ORDER BY client_id LIMIT $3"
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
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1");
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
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ANY($1)");
        let mut clients = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let chunk: Vec<&str> = chunk.iter().map(ClientId::as_str).collect();
            let rows: Vec<ClientRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(chunk)
                .fetch_all(&self.pool)
                .await?;
            clients.extend(rows.into_iter().map(Client::try_from));
        }
        Ok(clients)
    }

    async fn insert_client(&self, client: &Client) -> Result<(), StorageError> {
        let values = ClientValues::of(client);
        let sql = format!(
            "INSERT INTO clients ({CLIENT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             (SELECT version + 1 FROM change_marker WHERE id = 1), $11, $12)"
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
            "UPDATE clients SET enabled = $1, version = version + 1, updated_at = $2 \
             WHERE client_id = $3",
        )
        .bind(enabled)
        .bind(now)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StorageError> {
        let result = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn list_keys(&self, include_retired: bool) -> Result<Vec<KeyRecord>, StorageError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys WHERE $1 OR state <> 'retired' ORDER BY created_at, kid"
        );
        let rows: Vec<KeyRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(include_retired)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(KeyRecord::try_from).collect()
    }

    async fn has_any_key(&self) -> Result<bool, StorageError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM signing_keys LIMIT 1")
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
        let mut tx = self.pool.begin().await?;
        // Locks the next key's row: a replica rotating at the same moment
        // waits here, then finds the key no longer `next` and backs off.
        let is_next: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM signing_keys WHERE kid = $1 AND key_set = $2 AND state = 'next' FOR UPDATE",
        )
        .bind(next_kid.as_str())
        .bind(set.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if is_next.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE signing_keys SET state = 'previous', retire_after = $1 \
             WHERE key_set = $2 AND state = 'current'",
        )
        .bind(retire_after)
        .bind(set.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE signing_keys SET state = 'current', activated_at = $1, promote_at = NULL \
             WHERE kid = $2",
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

    async fn schedule_promotion(&self, kid: &KeyId, at: i64) -> Result<bool, StorageError> {
        let result = sqlx::query(
            "UPDATE signing_keys SET promote_at = $1 WHERE kid = $2 AND state = 'next'",
        )
        .bind(at)
        .bind(kid.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn retire_key(&self, kid: &KeyId, now: i64) -> Result<bool, StorageError> {
        let result = sqlx::query(
            "UPDATE signing_keys SET state = 'retired', private_key = NULL, \
             retire_after = LEAST(COALESCE(retire_after, $1), $1), promote_at = NULL \
             WHERE kid = $2 AND state IN ('next', 'previous')",
        )
        .bind(now)
        .bind(kid.as_str())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn mark_exported(&self, set: &KeySetName, now: i64) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE signing_keys SET exported_at = $1 WHERE key_set = $2 AND state <> 'retired'",
        )
        .bind(now)
        .bind(set.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reseal_keys(&self, sealed: &[Resealed]) -> Result<(), StorageError> {
        let mut tx = self.pool.begin().await?;
        for resealed in sealed {
            sqlx::query(
                "UPDATE signing_keys SET private_key = $1, master_key_id = $2 \
                 WHERE kid = $3 AND private_key IS NOT NULL",
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
}

async fn insert_key(conn: &mut PgConnection, key: &KeyRecord) -> Result<(), StorageError> {
    let values = KeyValues::of(key);
    let sql = format!(
        "INSERT INTO signing_keys ({KEY_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
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
