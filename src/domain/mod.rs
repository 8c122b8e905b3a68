//! Parsed, validated values, and the access token claims and signing keys
//! made of them.
//! Every untrusted string becomes one of these through `parse` before
//! anything else looks at it.

mod access_token;
mod audience;
mod client;
mod client_id;
mod grant;
mod key;
mod name_pattern;
mod scope;

pub use access_token::AccessTokenClaims;
pub use audience::Audience;
pub use client::{Client, GrantType};
pub use client_id::ClientId;
pub use grant::{Grant, GrantError};
pub use key::{KeyId, KeyRecord, KeySetName, KeyState, jwk_set};
pub use name_pattern::NamePattern;
pub use scope::{Scope, ScopeSet};

/// Why a value was refused; the text is safe to show to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub &'static str);
