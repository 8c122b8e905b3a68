//! What every handler shares, and how it is made from the settings. It lives
//! beside the routes, so the assembly (`startup`) depends on the routes and
//! never the other way round.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::web::Bytes;

use crate::configuration::Settings;
use crate::credentials::{AuthConfig, ClientAuthenticator};
use crate::domain::ClientId;
use crate::forwarded::TrustedProxies;
use crate::limits::{AuthFailureLimits, Buckets};
use crate::metrics::Metrics;
use crate::registry::Registry;

/// Built once; shared by every worker.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub authenticator: ClientAuthenticator,
    pub issuer: String,
    pub metadata: Bytes,
    pub public_cache_control: String,
    pub max_body_bytes: usize,
    /// See `Settings::outage_grace_secs`.
    pub outage_grace_secs: i64,
    /// Whose `X-Forwarded-For` names the address the failure limits count.
    pub trusted_proxies: TrustedProxies,
    pub quotas: Buckets<ClientId>,
    pub metrics: Metrics,
}

impl AppState {
    /// `issuer` is the settings' issuer resolved against the bound address.
    pub fn new(
        settings: &Settings,
        registry: Arc<Registry>,
        issuer: String,
    ) -> anyhow::Result<Self> {
        let auth = &settings.auth;
        let limits = &settings.limits;
        let authenticator = ClientAuthenticator::new(
            AuthConfig {
                argon2_concurrency: auth.concurrency(),
                argon2_queue_timeout: Duration::from_millis(auth.argon2_queue_timeout_ms),
                remember_idle: Duration::from_secs(auth.credential_cache_secs),
                remember_at_most: Duration::from_secs(auth.credential_cache_max_secs),
            },
            AuthFailureLimits::new(
                limits.failed_auth_per_client_per_minute,
                limits.failed_auth_per_client_everywhere_per_minute,
                limits.failed_auth_per_address_per_minute,
            ),
        )?;
        let metadata = serde_json::to_vec(&super::metadata_document(&issuer))?;
        Ok(Self {
            registry,
            authenticator,
            issuer,
            metadata: Bytes::from(metadata),
            public_cache_control: format!("public, max-age={}", settings.jwks_max_age_secs),
            max_body_bytes: settings.token.max_body_bytes,
            outage_grace_secs: i64::try_from(settings.outage_grace_secs).unwrap_or(i64::MAX),
            trusted_proxies: TrustedProxies::parse(&limits.trusted_proxies)
                .map_err(anyhow::Error::msg)?,
            quotas: Buckets::default(),
            metrics: Metrics::default(),
        })
    }

    /// The source address the failure limits count: the peer, or behind a
    /// trusted proxy the client it names (see [`crate::forwarded`]).
    pub fn client_address(&self, request: &HttpRequest) -> Option<IpAddr> {
        let peer = request.peer_addr()?.ip();
        let forwarded_for = request.headers().get_all("x-forwarded-for");
        let forwarded_for = forwarded_for.filter_map(|v| v.to_str().ok());
        Some(self.trusted_proxies.client_address(peer, forwarded_for))
    }
}
