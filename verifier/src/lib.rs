//! Verifies the OAuth 2.0 JWT access tokens (RFC 9068) that Warrant — or any
//! issuer following the same profile — mints, offline: no call to the
//! issuer per request, only a cached JWK Set.
//!
//! ```no_run
//! # async fn run(token: &str) -> Result<(), warrant_verifier::Error> {
//! use warrant_verifier::{JwksCache, JwksConfig, Validation, Verifier};
//!
//! // Once, at start-up (within a Tokio runtime):
//! let jwks = JwksCache::new(JwksConfig::new("https://auth.example.com/.well-known/jwks.json"))?;
//! let verifier = Verifier::builder(Validation::new(
//!     "https://auth.example.com",
//!     ["https://orders.example.com"],
//! ))
//! .jwks(jwks)
//! .build()?;
//!
//! // Per request:
//! let claims = verifier.verify(token).await?;
//! claims.require_all_scopes(&["orders:read"])?;
//! println!("call from client {}", claims.client_id());
//! # Ok(()) }
//! ```
//!
//! What is checked, always: the size (before anything is decoded), the
//! compact serialization (exactly two dots, unpadded base64url), `alg` among
//! RS256, ES256, EdDSA, HS256 and **bound to the key** (a key verifies one
//! algorithm; HS256 only with configured secrets, never a JWKS key), no
//! `crit`, `typ` `at+jwt`, the signature, `iss` exactly, `aud` any-of, `exp`
//! required and not past, `nbf` and `iat` not in the future (with
//! [`Validation::leeway`]), and every registered claim of the right JSON
//! type. Header keys (`jku`, `x5u`, `jwk`, `x5c`) are ignored.
//!
//! Features: `reqwest` (default) provides `ReqwestFetcher`, the default
//! JWKS client; `actix` adds the `actix` module (middleware and extractor).

#![deny(missing_docs)]

mod claims;
pub mod dangerous;
mod error;
mod jwks;
mod jws;
mod key;
mod validation;
mod verifier;

#[cfg(feature = "actix")]
pub mod actix;

pub use claims::Claims;
pub use error::{Error, ErrorKind, Result};
#[cfg(feature = "reqwest")]
pub use jwks::ReqwestFetcher;
pub use jwks::{BoxFuture, Fetch, FetchError, FetchedJwks, JwksCache, JwksConfig};
pub use jws::Header;
pub use key::KeySet;
pub use validation::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, Validation};
pub use verifier::{Verifier, VerifierBuilder};
