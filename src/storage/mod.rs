//! Persistence behind one trait, one implementation per backend, picked from
//! the scheme of the database URL. Handlers never see this module: they read
//! the in-memory registry, which reads from here.

mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::{Client, ClientId};

pub use sqlite::SqliteStorage;

/// A signing key as stored: public half in clear, private half sealed.
#[derive(Clone)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    /// `nonce || ciphertext || tag` under the master key; `None` once retired.
    pub sealed_private_key: Option<Vec<u8>>,
    pub master_key_id: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub published_at: Option<i64>,
    pub activated_at: Option<i64>,
    pub retire_after: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Current,
    Previous,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "next" => Self::Next,
            "current" => Self::Current,
            "previous" => Self::Previous,
            "retired" => Self::Retired,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported database URL {0:?}: expected sqlite:PATH")]
    UnsupportedUrl(String),
    #[error("a client with this id already exists")]
    Conflict,
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StorageError>;
    /// A cheap check that the database answers.
    async fn ping(&self) -> Result<(), StorageError>;
    /// A number that changes whenever clients or keys change.
    async fn change_marker(&self) -> Result<i64, StorageError>;

    /// Every client whose row parses; corrupt rows are reported, not fatal.
    async fn list_clients(&self) -> Result<Vec<Result<Client, StorageError>>, StorageError>;
    async fn get_client(&self, id: &ClientId) -> Result<Option<Client>, StorageError>;
    async fn insert_client(&self, client: &Client) -> Result<(), StorageError>;
    /// Returns false when no such client exists.
    async fn set_client_enabled(&self, id: &ClientId, enabled: bool) -> Result<bool, StorageError>;
    /// Returns false when no such client exists.
    async fn delete_client(&self, id: &ClientId) -> Result<bool, StorageError>;

    /// Keys that are not retired.
    async fn list_active_keys(&self) -> Result<Vec<KeyRecord>, StorageError>;
    /// True when any key, even retired, was ever stored: its master key
    /// must then already exist.
    async fn has_any_key(&self) -> Result<bool, StorageError>;
    /// Inserts `key` as the current key for its algorithm unless one exists
    /// already (another process may have won the race); returns whether it
    /// was inserted.
    async fn insert_current_key_if_none(&self, key: &KeyRecord) -> Result<bool, StorageError>;
}

/// Opens the storage the URL names, creating an embedded database if needed.
pub async fn connect(url: &str) -> Result<Arc<dyn Storage>, StorageError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStorage::connect(url).await?))
    } else {
        Err(StorageError::UnsupportedUrl(url.to_owned()))
    }
}
