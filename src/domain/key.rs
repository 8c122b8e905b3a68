//! Signing keys as the server reasons about them: which set a key rotates
//! in, where it is in its life, and the JWK Set that publishes them. Rows
//! become these once, in storage; nothing above it compares key strings.

use std::fmt;

use super::{Audience, ParseError};
use crate::crypto::Algorithm;

/// A key's `kid`: an RFC 7638 thumbprint for asymmetric keys, random for
/// HS256; base64url either way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError("kid is empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(ParseError("kid is longer than 128 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ParseError("kid has characters outside base64url"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// A kid arrives as text from token headers and command lines; comparing it
// with a parsed one needs no allocation.
impl PartialEq<str> for KeyId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for KeyId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for KeyId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// The set a key rotates in: one per asymmetric algorithm, one per HS256
/// audience. Displayed (and stored) as "RS256", "ES256", "EdDSA" or
/// "HS256 <audience>".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySetName {
    Asymmetric(Algorithm),
    Hs256(Audience),
}

impl KeySetName {
    pub fn parse(name: &str) -> Result<Self, ParseError> {
        match name.split_once(' ') {
            Some(("HS256", audience)) => Audience::parse(audience).map(Self::Hs256),
            Some(_) => Err(ParseError(
                "unknown key set (expected an algorithm or \"HS256 <audience>\")",
            )),
            None => Algorithm::parse(name)
                .filter(|alg| !alg.is_symmetric())
                .map(Self::Asymmetric)
                .ok_or(ParseError(
                    "unknown key set (expected RS256, ES256, EdDSA or \"HS256 <audience>\")",
                )),
        }
    }

    pub fn alg(&self) -> Algorithm {
        match self {
            Self::Asymmetric(alg) => *alg,
            Self::Hs256(_) => Algorithm::HS256,
        }
    }
}

impl fmt::Display for KeySetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Asymmetric(alg) => f.write_str(alg.as_str()),
            Self::Hs256(audience) => write!(f, "HS256 {audience}"),
        }
    }
}

/// `next` (published, not signing) → `current` (signing) → `previous`
/// (published, not signing) → `retired` (gone, private half destroyed).
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

    /// Whether verifiers must find a key in this state in the JWKS.
    pub fn is_published(self) -> bool {
        self != Self::Retired
    }
}

/// A signing key as stored: public half in clear, private half sealed.
#[derive(Clone)]
pub struct KeyRecord {
    pub kid: KeyId,
    pub set: KeySetName,
    /// Always `set.alg()`: storage refuses a row where they differ.
    pub alg: Algorithm,
    pub state: KeyState,
    /// `nonce || ciphertext || tag` under the master key; `None` once retired.
    pub sealed_private_key: Option<Vec<u8>>,
    pub master_key_id: String,
    /// The public JWK as generated; `None` for HS256.
    pub public_jwk: Option<String>,
    pub created_at: i64,
    pub published_at: i64,
    pub activated_at: Option<i64>,
    pub retire_after: Option<i64>,
    pub promote_at: Option<i64>,
    pub exported_at: Option<i64>,
}

impl KeyRecord {
    /// The stored public JWK, if verifiers should see it now. An
    /// unreadable one is left out, as a verifier skips keys it cannot use.
    pub fn published_jwk(&self) -> Option<serde_json::Value> {
        if !self.state.is_published() {
            return None;
        }
        serde_json::from_str(self.public_jwk.as_deref()?).ok()
    }
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("set", &self.set)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The JWK Set document (RFC 7517 §5) of these public keys: what the
/// server serves and what `warrant verify` checks against.
pub fn jwk_set(
    public_jwks: impl IntoIterator<Item = serde_json::Value>,
) -> Result<Vec<u8>, serde_json::Error> {
    let keys: Vec<serde_json::Value> = public_jwks.into_iter().collect();
    serde_json::to_vec(&serde_json::json!({ "keys": keys }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kids_are_base64url_of_bounded_length() {
        assert!(KeyId::parse("").is_err());
        assert!(KeyId::parse(&"a".repeat(129)).is_err());
        assert!(KeyId::parse("a b").is_err());
        assert!(KeyId::parse("a+b/c=").is_err());
        let kid = KeyId::parse("Zx-_09azAZ").unwrap();
        assert_eq!(kid.as_str(), "Zx-_09azAZ");
        assert!(kid == "Zx-_09azAZ");
    }

    #[test]
    fn key_set_names_round_trip_and_reject_the_rest() {
        for name in ["RS256", "ES256", "EdDSA", "HS256 https://orders.example"] {
            assert_eq!(KeySetName::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(
            KeySetName::parse("HS256 https://orders.example")
                .unwrap()
                .alg(),
            Algorithm::HS256
        );
        // HS256 keys belong to an audience; a bare HS256 set does not exist.
        assert!(KeySetName::parse("HS256").is_err());
        assert!(KeySetName::parse("RS256 https://orders.example").is_err());
        assert!(KeySetName::parse("HS256 not a uri").is_err());
        assert!(KeySetName::parse("none").is_err());
        assert!(KeySetName::parse("").is_err());
    }

    #[test]
    fn only_retired_keys_are_unpublished() {
        for state in ["next", "current", "previous", "retired"] {
            let parsed = KeyState::parse(state).unwrap();
            assert_eq!(parsed.as_str(), state);
            assert_eq!(parsed.is_published(), state != "retired");
        }
        assert_eq!(KeyState::parse("Current"), None);
    }

    #[test]
    fn a_jwk_set_lists_its_keys_under_keys() {
        let jwk = serde_json::json!({ "kty": "OKP", "kid": "a" });
        let set: serde_json::Value =
            serde_json::from_slice(&jwk_set([jwk.clone()]).unwrap()).unwrap();
        assert_eq!(set, serde_json::json!({ "keys": [jwk] }));
        let empty: serde_json::Value = serde_json::from_slice(&jwk_set([]).unwrap()).unwrap();
        assert_eq!(empty, serde_json::json!({ "keys": [] }));
    }

    proptest! {
        #[test]
        fn any_base64url_kid_up_to_128_round_trips(s in "[A-Za-z0-9_-]{1,128}") {
            let kid = KeyId::parse(&s).unwrap();
            prop_assert_eq!(kid.as_str(), s.as_str());
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = KeyId::parse(&s);
            let _ = KeySetName::parse(&s);
        }
    }
}
