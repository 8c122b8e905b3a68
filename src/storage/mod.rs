//! Persistence behind one trait, one implementation per backend, picked from
//! the scheme of the database URL. Handlers never see this module: they read
//! the in-memory registry, which reads from here.

mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{Client, ClientId, KeyId, KeyRecord, KeySetName, NamePattern};

pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported database URL {0}: expected sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("a conflicting row exists")]
    Conflict,
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    /// The faults an operator can fix, named as such (the database's own
    /// words in brackets). A failed write is rolled back whole.
    #[error("the database's disk is full, so nothing was changed; free some space and retry [{0}]")]
    DiskFull(String),
    #[error("the database is read-only, so nothing was changed [{0}]")]
    ReadOnly(String),
    #[error(
        "the database is locked by another writer, so nothing was changed; retry, or stop whatever holds the lock [{0}]"
    )]
    Locked(String),
    #[error(
        "the database file or its directory is missing or not writable (SQLite also creates -wal and -shm files beside it) [{0}]"
    )]
    CannotOpen(String),
    /// Displayed without its source: sqlx's message already includes it.
    #[error("{0}")]
    Database(sqlx::Error),
    #[error("{0}")]
    Migrate(sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => {
                let message = db.message().to_owned();
                let backend = if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    Backend::Sqlite
                } else {
                    Backend::Postgres
                };
                match fault(backend, db.code().as_deref()) {
                    Some(Fault::DiskFull) => Self::DiskFull(message),
                    Some(Fault::ReadOnly) => Self::ReadOnly(message),
                    Some(Fault::Locked) => Self::Locked(message),
                    Some(Fault::CannotOpen) => Self::CannotOpen(message),
                    None => Self::Database(e),
                }
            }
            sqlx::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                    Self::DiskFull(io.to_string())
                }
                std::io::ErrorKind::ReadOnlyFilesystem => Self::ReadOnly(io.to_string()),
                _ => Self::Database(e),
            },
            _ => Self::Database(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(e) => e.into(),
            e => Self::Migrate(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    DiskFull,
    ReadOnly,
    Locked,
    CannotOpen,
}

/// The fault a database error code names: SQLite's (extended) result codes,
/// whose low byte is the primary code, or PostgreSQL's SQLSTATE.
fn fault(backend: Backend, code: Option<&str>) -> Option<Fault> {
    let code = code?;
    if backend == Backend::Sqlite {
        return match code.parse::<i32>().ok()? & 0xff {
            13 => Some(Fault::DiskFull),   // SQLITE_FULL
            8 => Some(Fault::ReadOnly),    // SQLITE_READONLY
            5 | 6 => Some(Fault::Locked),  // SQLITE_BUSY, SQLITE_LOCKED
            14 => Some(Fault::CannotOpen), // SQLITE_CANTOPEN
            _ => None,
        };
    }
    match code {
        "53100" => Some(Fault::DiskFull), // disk_full
        "25006" => Some(Fault::ReadOnly), // read_only_sql_transaction
        "55P03" => Some(Fault::Locked),   // lock_not_available
        _ => None,
    }
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StorageError>;
    /// Fails unless a write would succeed now (a read-only file, file system,
    /// server or role fails it), changing nothing.
    async fn check_writable(&self) -> Result<(), StorageError>;
    /// Closes every connection. On SQLite the last one to close folds the
    /// WAL back into the database file and removes the -wal and -shm files,
    /// so a finished command or stopped server leaves one file behind.
    async fn close(&self);
    /// The sequence number of the last change to clients or keys: it grows
    /// by one with each changed row (see migrations/*/0002_change_log.sql).
    async fn change_marker(&self) -> Result<i64, StorageError>;
    /// The logged changes numbered in `(after, through]`, in order. Fewer
    /// than `through - after` means some were pruned.
    async fn changes_between(&self, after: i64, through: i64) -> Result<Vec<Change>, StorageError>;
    /// Deletes log entries older than `older_than_secs` by the database's
    /// clock, except the last `keep_last`; returns how many went.
    async fn prune_changes(
        &self,
        keep_last: i64,
        older_than_secs: i64,
    ) -> Result<u64, StorageError>;

    /// Every client whose row parses, in no particular order (the full load
    /// of a snapshot); corrupt rows are reported, not fatal.
    async fn list_clients(&self) -> Result<Vec<Result<Client, StorageError>>, StorageError>;
    /// At most `limit` clients in `client_id` order (the database's
    /// collation), those after `after` if given, whose name `name` matches
    /// if given: one page of a listing, read through the primary key index
    /// so that a page costs the same wherever it starts.
    async fn list_clients_page(
        &self,
        after: Option<&ClientId>,
        limit: usize,
        name: Option<&NamePattern>,
    ) -> Result<Vec<Result<Client, StorageError>>, StorageError>;
    async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StorageError>;
    /// The clients among `ids` whose rows exist; absent ones were deleted.
    async fn get_clients(
        &self,
        ids: &[ClientId],
    ) -> Result<Vec<Result<Client, StorageError>>, StorageError>;
    /// Stores a new client. Its `version` is assigned here, not taken from
    /// `client`: the next change number, so a client deleted and created
    /// again under the same id never has a version its predecessor had
    /// (credential checks remembered for the old one cannot match).
    async fn insert_client(&self, client: &Client) -> Result<(), StorageError>;
    /// Returns false when no such client exists.
    async fn set_client_enabled(
        &self,
        id: &ClientId,
        enabled: bool,
        now: i64,
    ) -> Result<bool, StorageError>;
    /// Returns false when no such client exists.
    async fn delete_client(&self, id: &ClientId) -> Result<bool, StorageError>;

    /// Keys, oldest first; retired ones only when asked. One corrupt row
    /// fails the whole list: a key set read without one of its keys could
    /// be rotated or bootstrapped twice.
    async fn list_keys(&self, include_retired: bool) -> Result<Vec<KeyRecord>, StorageError>;
    /// True when any key, even retired, was ever stored: its master key
    /// must then already exist.
    async fn has_any_key(&self) -> Result<bool, StorageError>;
    /// Inserts a key; `Conflict` when its set already has a key in that
    /// state (another process got there first).
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StorageError>;
    /// In one transaction: the set's `current` key becomes `previous` (to
    /// retire after `retire_after`), `next_kid` becomes `current`, and
    /// `fresh_next` (if any) is published as the new `next`. Returns false,
    /// changing nothing, when `next_kid` is no longer the set's `next` key
    /// (another process rotated first).
    async fn promote(
        &self,
        set: &KeySetName,
        next_kid: &KeyId,
        now: i64,
        retire_after: i64,
        fresh_next: Option<&KeyRecord>,
    ) -> Result<bool, StorageError>;
    /// Schedules the promotion of a `next` key; false if it is not `next`.
    async fn schedule_promotion(&self, kid: &KeyId, at: i64) -> Result<bool, StorageError>;
    /// Retires a `next` or `previous` key and destroys its private half;
    /// false if no such key is in one of those states.
    async fn retire_key(&self, kid: &KeyId, now: i64) -> Result<bool, StorageError>;
    /// Records that the set's secrets were handed out.
    async fn mark_exported(&self, set: &KeySetName, now: i64) -> Result<(), StorageError>;
    /// Replaces sealed private keys in one transaction.
    async fn reseal_keys(&self, sealed: &[Resealed]) -> Result<(), StorageError>;
}

/// One entry of the change log: the row `id` of `kind` changed (or went).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub kind: ChangeKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Client,
    Key,
}

/// Ids per `IN (…)` list: far below SQLite's limit on bound parameters.
const IDS_PER_QUERY: usize = 500;

/// A private key sealed again, under the master key `master_key_id`.
pub struct Resealed {
    pub kid: KeyId,
    pub sealed_private_key: Vec<u8>,
    pub master_key_id: String,
}

/// The backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Opens the storage the URL names, creating an embedded database if needed.
pub async fn connect(url: &str) -> Result<Arc<dyn Storage>, StorageError> {
    match Backend::of(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(SqliteStorage::connect(url).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(PostgresStorage::connect(url).await?)),
        None => Err(StorageError::UnsupportedUrl(redact_url(url))),
    }
}

/// A unique-constraint violation is a conflict the caller can act on.
fn unique_violation(e: sqlx::Error) -> StorageError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        e => e.into(),
    }
}

/// `url` with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_named_from_sqlite_and_postgresql_codes() {
        assert_eq!(fault(Backend::Sqlite, Some("13")), Some(Fault::DiskFull));
        assert_eq!(fault(Backend::Sqlite, Some("8")), Some(Fault::ReadOnly));
        assert_eq!(fault(Backend::Sqlite, Some("1032")), Some(Fault::ReadOnly)); // SQLITE_READONLY_DBMOVED
        assert_eq!(fault(Backend::Sqlite, Some("5")), Some(Fault::Locked));
        assert_eq!(fault(Backend::Sqlite, Some("517")), Some(Fault::Locked)); // SQLITE_BUSY_SNAPSHOT
        assert_eq!(fault(Backend::Sqlite, Some("14")), Some(Fault::CannotOpen));
        assert_eq!(
            fault(Backend::Postgres, Some("53100")),
            Some(Fault::DiskFull)
        );
        assert_eq!(
            fault(Backend::Postgres, Some("25006")),
            Some(Fault::ReadOnly)
        );
        assert_eq!(fault(Backend::Postgres, Some("55P03")), Some(Fault::Locked));
        assert_eq!(fault(Backend::Sqlite, Some("1")), None);
        assert_eq!(fault(Backend::Sqlite, Some("2067")), None); // SQLITE_CONSTRAINT_UNIQUE
        assert_eq!(fault(Backend::Postgres, Some("23505")), None);
        assert_eq!(fault(Backend::Sqlite, None), None);
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://warrant:s3cret@db:5432/warrant"),
            "postgres://warrant:***@db:5432/warrant"
        );
        assert_eq!(redact_url("postgres://db/warrant"), "postgres://db/warrant");
        assert_eq!(redact_url("sqlite:warrant.db"), "sqlite:warrant.db");
        assert_eq!(redact_url("postgres://u:p@ss@h/d"), "postgres://u:***@h/d");
    }
}
