use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use serde::Serialize;

use super::{CryptoError, b64url};

/// JWS algorithms Warrant signs with (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RS256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::RS256),
            _ => None,
        }
    }
}

/// A private key parsed once, with its JWS header already encoded, so that
/// minting a token costs one serialization and one signature.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    key_pair: RsaKeyPair,
    public_jwk: serde_json::Value,
    header_b64: String,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new RSA-2048 key; returns it with its PKCS#8 encoding, to be sealed.
    pub fn generate(alg: Algorithm) -> Result<(Self, Vec<u8>), CryptoError> {
        match alg {
            Algorithm::RS256 => {
                let key_pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| CryptoError("RSA key generation failed"))?;
                let pkcs8 = key_pair
                    .as_der()
                    .map_err(|_| CryptoError("cannot encode the RSA key"))?
                    .as_ref()
                    .to_vec();
                Ok((Self::from_key_pair(alg, key_pair)?, pkcs8))
            }
        }
    }

    pub fn from_pkcs8(alg: Algorithm, pkcs8: &[u8]) -> Result<Self, CryptoError> {
        match alg {
            Algorithm::RS256 => {
                let key_pair = RsaKeyPair::from_pkcs8(pkcs8)
                    .map_err(|_| CryptoError("stored RSA key is not valid PKCS#8"))?;
                Self::from_key_pair(alg, key_pair)
            }
        }
    }

    fn from_key_pair(alg: Algorithm, key_pair: RsaKeyPair) -> Result<Self, CryptoError> {
        let public = key_pair.public_key();
        let n = b64url(public.modulus().big_endian_without_leading_zero());
        let e = b64url(public.exponent().big_endian_without_leading_zero());
        // RFC 7638: the thumbprint hashes the required members in
        // lexicographic order with no whitespace.
        let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = b64url(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref());
        let public_jwk = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "alg": alg.as_str(),
            "kid": kid,
            "n": n,
            "e": e,
        });
        let header = serde_json::json!({ "alg": alg.as_str(), "typ": "at+jwt", "kid": kid });
        let header_b64 = b64url(header.to_string().as_bytes());
        Ok(Self {
            kid,
            alg,
            key_pair,
            public_jwk,
            header_b64,
            rng: SystemRandom::new(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public half as a JWK (RFC 7517), with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> &serde_json::Value {
        &self.public_jwk
    }

    /// Compact JWS (RFC 7515 §7.1) of `claims` under this key.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, CryptoError> {
        let payload =
            serde_json::to_vec(claims).map_err(|_| CryptoError("cannot serialize claims"))?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 360);
        token.push_str(&self.header_b64);
        token.push('.');
        base64::Engine::encode_string(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &payload,
            &mut token,
        );
        let mut signature = vec![0u8; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| CryptoError("RSA signing failed"))?;
        token.push('.');
        token.push_str(&b64url(&signature));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn signed_tokens_verify_and_carry_the_pre_encoded_header() {
        let (key, pkcs8) = SigningKey::generate(Algorithm::RS256).unwrap();
        let token = key.sign(&serde_json::json!({ "sub": "x" })).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], key.kid());

        let public = key.key_pair.public_key().as_ref().to_vec();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
            .verify(signed.as_bytes(), &signature)
            .unwrap();

        let reloaded = SigningKey::from_pkcs8(Algorithm::RS256, &pkcs8).unwrap();
        assert_eq!(reloaded.kid(), key.kid());
        assert_eq!(reloaded.public_jwk(), key.public_jwk());
    }
}
