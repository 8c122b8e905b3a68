//! Everything that touches key material: the master key that seals private
//! keys at rest, the signing keys, and the compact JWS we build on them.

mod jws;
mod master_key;

pub use jws::{Algorithm, SigningKey};
pub use master_key::{MASTER_KEY_ENV, MasterKey, MasterKeyError};

use aws_lc_rs::rand;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes).map_err(|_| CryptoError("the system random generator failed"))?;
    Ok(bytes)
}

/// base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An opaque failure of a cryptographic primitive. aws-lc-rs reports no more
/// detail than this on purpose, so neither do we.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CryptoError(pub &'static str);
