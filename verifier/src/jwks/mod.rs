//! A JWK Set fetched from the issuer, parsed once and cached.
//!
//! One [`JwksCache`] per issuer per process, cloned wherever needed (it is an
//! `Arc` inside). Its keys are an immutable snapshot swapped atomically, so
//! verification reads them without a lock. A background task refreshes the
//! snapshot when its time to live runs out; an unknown `kid` triggers at most
//! one early refetch per cooldown. No lock is ever held while fetching.
//!
//! `config` holds the settings (and reads the URL and `Cache-Control`),
//! `cache` the snapshot and its refreshes, `reqwest` the default fetcher.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;

use crate::error::Result;

mod cache;
mod config;
#[cfg(feature = "reqwest")]
mod reqwest;

pub use self::cache::JwksCache;
pub use self::config::JwksConfig;
#[cfg(feature = "reqwest")]
pub use self::reqwest::ReqwestFetcher;

/// A boxed, sendable future, as returned by [`Fetch::fetch`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error from a [`Fetch`] implementation, kept for logs.
pub type FetchError = Box<dyn StdError + Send + Sync>;

/// What a JWKS fetch returns: the body and the `Cache-Control` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedJwks {
    /// The response body (a JWK Set document).
    pub body: Vec<u8>,
    /// The `Cache-Control` header, if any: its `max-age` sets how long the
    /// keys are fresh (within [`JwksConfig::min_ttl`] and [`JwksConfig::max_ttl`]).
    pub cache_control: Option<String>,
}

/// How the cache fetches the JWKS document. Implement it to use another
/// HTTP client (a TLS setup of your own, a proxy, a service mesh); the
/// default is `ReqwestFetcher` (feature `reqwest`, on by default).
///
/// The cache holds one fetcher for its lifetime (so one HTTP client and its
/// connection pool), calls it at most once at a time, and bounds each call
/// with [`JwksConfig::fetch_timeout`].
pub trait Fetch: Send + Sync + 'static {
    /// GETs `url`. Any non-success status must be an error.
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<FetchedJwks, FetchError>>;
}
