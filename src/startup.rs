//! Assembling the server: storage, master key, keys, registry, HTTP.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web;
use actix_web::{App, HttpServer};
use anyhow::Context as _;

use crate::configuration::Settings;
use crate::crypto::MasterKey;
use crate::keys::{KeyManager, KeyPolicy};
use crate::registry::Registry;
use crate::routes::{self, AppState};
use crate::storage::{self, Storage};

pub struct Application {
    port: u16,
    issuer: String,
    server: Server,
    registry: Arc<Registry>,
    store: Arc<dyn Storage>,
    refresh_interval: Duration,
}

/// Opens the database the settings name, without migrating it.
pub async fn connect_storage(settings: &Settings) -> anyhow::Result<Arc<dyn Storage>> {
    storage::connect(settings.database_url.expose_secret())
        .await
        .with_context(|| format!("cannot open the database {}", settings.database_url))
}

/// [`connect_storage`], then, unless `auto_migrate` is off, the migrations.
pub async fn open_storage(settings: &Settings) -> anyhow::Result<Arc<dyn Storage>> {
    let store = connect_storage(settings).await?;
    if settings.auto_migrate {
        store
            .migrate()
            .await
            .context("cannot migrate the database")?;
    }
    Ok(store)
}

impl Application {
    /// Everything that can fail at start fails here, before the port opens:
    /// a bad database, a missing or wrong master key, an unusable address.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = open_storage(&settings).await?;
        // Keys rotate and retire while we run: refuse to start on a
        // database we could read but never change.
        store
            .check_writable()
            .await
            .context("the server needs a database it can write to")?;
        let may_create_master_key = !store.has_any_key().await?;
        let (master_key, created) =
            MasterKey::load(&settings.master_key_file, may_create_master_key)?;
        if created {
            tracing::warn!(
                path = %settings.master_key_file.display(),
                "created a new master key; back it up: without it the signing keys cannot be opened"
            );
        }
        let policy = KeyPolicy::from_settings(&settings);
        KeyManager::new(store.as_ref(), &master_key, policy)
            .bootstrap(crate::clock::unix_now())
            .await?;
        let registry = Arc::new(
            Registry::load(
                Arc::clone(&store),
                master_key,
                settings.master_key_file.clone(),
                policy,
            )
            .await?
            .with_change_log_retention(settings.change_log_retention()),
        );

        let address = settings.listen_addr()?;
        let listener =
            TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener.local_addr()?;
        let issuer = settings.issuer_for(bound);
        let state = web::Data::new(AppState::new(
            &settings,
            Arc::clone(&registry),
            issuer.clone(),
        )?);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(routes::configure)
        })
        .workers(settings.workers())
        .max_connections(settings.max_connections)
        .keep_alive(Duration::from_secs(settings.keep_alive_secs))
        .client_request_timeout(Duration::from_millis(settings.request_header_timeout_ms))
        .client_disconnect_timeout(Duration::from_secs(1))
        .shutdown_timeout(settings.shutdown_timeout_secs)
        // actix stops abruptly on SIGINT; we drain on both signals ourselves.
        .disable_signals()
        .listen(listener)?
        .run();

        Ok(Self {
            port: bound.port(),
            issuer,
            server,
            registry,
            store,
            refresh_interval: settings.refresh_interval(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The in-memory state, for callers (tests) that want to refresh it
    /// without waiting for the next poll.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// Serves until SIGINT or SIGTERM, then drains in-flight requests (up
    /// to `shutdown_timeout_secs`) and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // Handlers are in place before we announce that we listen, so a
        // signal sent as soon as we say so is a graceful stop.
        let signals = ShutdownSignals::install()?;
        let poller = tokio::spawn(Arc::clone(&self.registry).poll_forever(self.refresh_interval));
        let handle = self.server.handle();
        let stopper = tokio::spawn(async move {
            signals.received().await;
            tracing::info!("shutting down: draining in-flight requests");
            handle.stop(true).await;
        });
        tracing::info!(port = self.port, issuer = %self.issuer, "warrant is listening");
        let result = self.server.await;
        poller.abort();
        stopper.abort();
        self.store.close().await;
        tracing::info!("warrant stopped");
        result
    }
}

#[cfg(unix)]
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct ShutdownSignals;

#[cfg(not(unix))]
impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn received(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
