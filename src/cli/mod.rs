//! The command line: `warrant serve`, `warrant migrate`, and one file per
//! command tree (`client`, `keys`, `verify`), each with its `exec`. Doc
//! comments here and there are the `--help` text.

pub mod client;
pub mod keys;
pub mod verify;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::configuration::Settings;
use crate::startup::{Application, connect_storage, open_storage};
use crate::storage::Storage;

/// Warrant: an OAuth 2.0 client-credentials token authority.
///
/// Settings come from built-in defaults, then the --config file, then
/// WARRANT_* environment variables (see README.md).
#[derive(Debug, Parser)]
#[command(name = "warrant", version)]
pub struct Cli {
    /// TOML settings file.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the token server (creates the database, master key and first
    /// signing key on first start).
    Serve,
    /// Apply pending database migrations and exit (for operators who run
    /// them separately, with auto_migrate = false on the servers).
    Migrate,
    /// Decode a token and verify it against this server's keys (as a
    /// resource server would, with the warrant-verifier crate), saying why it
    /// is rejected if it is. Exits 0 when valid, 1 when not.
    Verify(verify::VerifyArgs),
    /// Manage clients: who may obtain tokens, for which scopes and audiences.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Manage signing keys: list, generate, rotate, retire, export HS256
    /// secrets, re-seal under a new master key.
    ///
    /// Keys move next -> current -> previous -> retired. A next key is
    /// published in the JWKS before it may sign (jwks_max_age_secs +
    /// keys.publication_margin_secs), so no verifier meets an unknown kid; a
    /// previous key stays published until its tokens have expired.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

pub async fn serve_command(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(settings).await?;
    application.run_until_stopped().await?;
    Ok(())
}

pub async fn migrate_command(settings: Settings) -> anyhow::Result<()> {
    let store = connect_storage(&settings).await?;
    let result = store.migrate().await;
    store.close().await;
    result.context("cannot migrate the database")?;
    println!("The database schema is up to date.");
    Ok(())
}

/// Runs `work` on the database the settings name (migrated unless
/// `auto_migrate` is off), then closes it, whatever `work` returned: SQLite
/// then leaves one file, without -wal and -shm.
async fn with_storage<T>(
    settings: &Settings,
    work: impl AsyncFnOnce(&dyn Storage) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let store = open_storage(settings).await?;
    let result = work(store.as_ref()).await;
    store.close().await;
    result
}
