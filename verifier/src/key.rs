//! Verification keys, parsed once: from a JWK Set (RS256, ES256, EdDSA) or
//! from configuration (HS256 secrets).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use serde::Deserialize;

use crate::error::{Error, ErrorKind, Result};
use crate::jws::{Algorithm, b64_decode};

/// A key ready to verify signatures of exactly one algorithm.
#[derive(Clone)]
pub(crate) enum VerifyingKey {
    /// RS256, ES256 or EdDSA: the public key, parsed at fetch time.
    Public(Algorithm, ParsedPublicKey),
    /// HS256 (boxed: an HMAC key is over 1 KiB of precomputed state).
    Hmac(Box<hmac::Key>),
}

impl VerifyingKey {
    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            Self::Public(alg, _) => *alg,
            Self::Hmac(_) => Algorithm::HS256,
        }
    }

    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Public(_, key) => key.verify_sig(message, signature).is_ok(),
            Self::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }

    /// An HS256 key. RFC 7518 §3.2: the secret has at least 256 bits.
    pub(crate) fn hs256(secret: &[u8]) -> Result<Self> {
        if secret.len() < 32 {
            return Err(ErrorKind::InvalidConfiguration(
                "an HS256 secret must be at least 32 bytes (RFC 7518 §3.2)",
            )
            .into());
        }
        Ok(Self::Hmac(Box::new(hmac::Key::new(
            hmac::HMAC_SHA256,
            secret,
        ))))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.algorithm().as_str())
    }
}

/// An immutable set of public keys by `kid`, parsed from a JWK Set
/// (RFC 7517 §5). Cheap to clone.
///
/// Keys this crate cannot use are skipped, not fatal: unknown `kty` or
/// `crv`, an `alg` other than RS256/ES256/EdDSA, `use` other than `sig`,
/// `key_ops` without `verify`, symmetric (`oct`) keys, RSA moduli under
/// 2048 bits, keys without `kid`, invalid key material, and every key whose
/// `kid` appears more than once (ambiguous).
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Arc<HashMap<String, VerifyingKey>>,
    skipped: usize,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<_> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("skipped", &self.skipped)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

/// The JWK members we read; every one strictly typed (a key whose member
/// has the wrong type is skipped).
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeySet {
    /// Parses a JWK Set document: `{"keys": [...]}`.
    ///
    /// Fails only when the document itself is not a JWK Set; unusable keys
    /// are skipped (see the type's documentation and [`KeySet::skipped`]).
    pub fn from_jwks(json: &[u8]) -> Result<Self> {
        let raw: RawJwkSet = serde_json::from_slice(json)
            .map_err(|e| Error::with_source(ErrorKind::Fetch, format!("not a JWK Set: {e}")))?;
        let mut keys = HashMap::with_capacity(raw.keys.len());
        let mut duplicates = Vec::new();
        let mut skipped = 0;
        for value in raw.keys {
            let parsed = serde_json::from_value::<RawJwk>(value)
                .ok()
                .and_then(|jwk| Some((jwk.kid.clone()?, parse_jwk(&jwk)?)));
            match parsed {
                Some((kid, key)) => {
                    if keys.insert(kid.clone(), key).is_some() {
                        duplicates.push(kid);
                    }
                }
                None => skipped += 1,
            }
        }
        for kid in duplicates {
            if keys.remove(&kid).is_some() {
                skipped += 2;
            } else {
                skipped += 1;
            }
        }
        Ok(Self {
            keys: Arc::new(keys),
            skipped,
        })
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the usable keys, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether a usable key has this `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// How many entries of the document were skipped as unusable.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }
}

fn parse_jwk(jwk: &RawJwk) -> Option<VerifyingKey> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return None;
    }
    let alg = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", None) => Algorithm::RS256,
        ("EC", Some("P-256")) => Algorithm::ES256,
        ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
        // `oct` keys never come from a JWKS; other curves and types are
        // not supported.
        _ => return None,
    };
    // The key's own `alg`, when given, must be the one its type implies.
    if jwk.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
        return None;
    }
    let key = match alg {
        Algorithm::RS256 => {
            let n = b64_decode(jwk.n.as_deref()?).ok()?;
            let e = b64_decode(jwk.e.as_deref()?).ok()?;
            // At least 2048 bits; an odd exponent above 1 (e = 1 would make
            // every "signature" of a padded message valid).
            let e_is_usable = e.last().is_some_and(|b| b & 1 == 1) && e.as_slice() != [1];
            if n.len() < 256 || !e_is_usable {
                return None;
            }
            RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .ok()?
        }
        Algorithm::ES256 => {
            let x = b64_decode(jwk.x.as_deref()?).ok()?;
            let y = b64_decode(jwk.y.as_deref()?).ok()?;
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).ok()?
        }
        Algorithm::EdDSA => {
            let x = b64_decode(jwk.x.as_deref()?).ok()?;
            if x.len() != 32 {
                return None;
            }
            ParsedPublicKey::new(&ED25519, x).ok()?
        }
        Algorithm::HS256 => return None,
    };
    Some(VerifyingKey::Public(alg, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let jwks = br#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
            {"kty":"EC","kid":"p384","crv":"P-384","x":"AA","y":"AA"},
            {"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":7,"n":"AQAB","e":"AQAB"},
            {"kty":"OKP","kid":"x","crv":"X25519","x":"AA"},
            {"kty":"OKP","kid":"bad-ed","crv":"Ed25519","x":"AAAA"},
            "not an object"
        ]}"#;
        let set = KeySet::from_jwks(jwks).unwrap();
        assert!(set.is_empty());
        assert_eq!(set.skipped(), 7);
    }

    #[test]
    fn a_document_that_is_not_a_jwk_set_is_an_error() {
        for bad in [&b"[]"[..], b"{}", b"{\"keys\":{}}", b"nope"] {
            assert_eq!(
                *KeySet::from_jwks(bad).unwrap_err().kind(),
                ErrorKind::Fetch
            );
        }
    }

    #[test]
    fn short_hs256_secrets_are_refused() {
        assert!(VerifyingKey::hs256(&[7; 31]).is_err());
        assert!(VerifyingKey::hs256(&[7; 32]).is_ok());
    }
}
