use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::{CryptoError, b64url, random_bytes};

/// JWS algorithms Warrant signs with (RFC 7518 §3.1, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    RS256,
    ES256,
    EdDSA,
    HS256,
}

impl Algorithm {
    pub const ASYMMETRIC: [Algorithm; 3] = [Self::RS256, Self::ES256, Self::EdDSA];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            "EdDSA" => Some(Self::EdDSA),
            "HS256" => Some(Self::HS256),
            _ => None,
        }
    }

    /// HS256 keys are secrets shared with one resource server: never
    /// published in the JWKS.
    pub fn is_symmetric(self) -> bool {
        self == Self::HS256
    }
}

crate::labels::labels!(Algorithm {
    RS256 => "RS256",
    ES256 => "ES256",
    EdDSA => "EdDSA",
    HS256 => "HS256",
});

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Our RSA keys are 2048 bits; `from_secret` accepts what aws-lc-rs
/// accepts, which is at most 8192 bits.
const MAX_RSA_SIGNATURE_BYTES: usize = 8192 / 8;

enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    // Boxed: an HMAC key holds its precomputed state (over 1 KiB).
    Hmac(Box<hmac::Key>),
}

/// A private key parsed once, with its JWS header already encoded, so that
/// minting a token costs one serialization and one signature.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    signer: Signer,
    /// The public JWK; `None` for HS256.
    public_jwk: Option<serde_json::Value>,
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

/// RFC 7638: SHA-256 over the required members, sorted, no whitespace.
fn thumbprint(canonical: &str) -> String {
    b64url(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

impl SigningKey {
    /// A new key; returns it with the secret bytes to seal (PKCS#8 for
    /// asymmetric keys, the raw secret for HS256).
    pub fn generate(alg: Algorithm) -> Result<(Self, Vec<u8>), CryptoError> {
        let failed = |_| CryptoError("key generation failed");
        let secret = match alg {
            Algorithm::RS256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(failed)?
                .as_der()
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(failed)?
                .to_pkcs8v1()
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::EdDSA => Ed25519KeyPair::generate()
                .map_err(failed)?
                .to_pkcs8()
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::HS256 => random_bytes::<32>()?.to_vec(),
        };
        // An HS256 kid cannot be a thumbprint (that would publish a hash of
        // the secret): it is random.
        let kid = alg
            .is_symmetric()
            .then(|| random_bytes::<16>().map(|b| b64url(&b)))
            .transpose()?;
        Ok((Self::from_secret(alg, kid.as_deref(), &secret)?, secret))
    }

    /// Rebuilds a key from what [`generate`](Self::generate) returned.
    /// Asymmetric kids are derived from the key; HS256 needs `kid`.
    pub fn from_secret(
        alg: Algorithm,
        kid: Option<&str>,
        secret: &[u8],
    ) -> Result<Self, CryptoError> {
        let rejected = |_| CryptoError("stored private key is not valid for its algorithm");
        let (signer, public_jwk, kid) = match alg {
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(secret).map_err(rejected)?;
                let public = pair.public_key();
                let n = b64url(public.modulus().big_endian_without_leading_zero());
                let e = b64url(public.exponent().big_endian_without_leading_zero());
                let kid = thumbprint(&format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#));
                let jwk = serde_json::json!({ "kty": "RSA", "n": n, "e": e });
                (Signer::Rsa(pair), Some(jwk), kid)
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, secret)
                    .map_err(rejected)?;
                // Uncompressed SEC1 point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(CryptoError("unexpected P-256 public key encoding"));
                }
                let (x, y) = (b64url(&point[1..33]), b64url(&point[33..]));
                let kid = thumbprint(&format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
                ));
                let jwk = serde_json::json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y });
                (Signer::Ecdsa(pair), Some(jwk), kid)
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(secret).map_err(rejected)?;
                let x = b64url(pair.public_key().as_ref());
                let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
                let jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": x });
                (Signer::Ed25519(pair), Some(jwk), kid)
            }
            Algorithm::HS256 => {
                if secret.len() < 32 {
                    return Err(CryptoError("HS256 secret shorter than 256 bits"));
                }
                let kid = kid.ok_or(CryptoError("an HS256 key needs its kid"))?;
                (
                    Signer::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
                    None,
                    kid.to_owned(),
                )
            }
        };
        let public_jwk = public_jwk.map(|mut jwk| {
            jwk["kid"] = kid.clone().into();
            jwk["alg"] = alg.as_str().into();
            jwk["use"] = "sig".into();
            jwk
        });
        let header = serde_json::json!({ "alg": alg.as_str(), "typ": "at+jwt", "kid": kid });
        Ok(Self {
            header_b64: b64url(header.to_string().as_bytes()),
            kid,
            alg,
            signer,
            public_jwk,
            rng: SystemRandom::new(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public half as a JWK (RFC 7517) with `kid`, `alg` and `use`;
    /// `None` for HS256.
    pub fn public_jwk(&self) -> Option<&serde_json::Value> {
        self.public_jwk.as_ref()
    }

    /// Compact JWS (RFC 7515 §7.1) of `claims` under this key.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, CryptoError> {
        let payload =
            serde_json::to_vec(claims).map_err(|_| CryptoError("cannot serialize claims"))?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 360);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let failed = |_| CryptoError("signing failed");
        // Each signature is base64url-encoded from where aws-lc-rs put it.
        match &self.signer {
            Signer::Rsa(pair) => {
                let mut signature = [0u8; MAX_RSA_SIGNATURE_BYTES];
                let signature = signature
                    .get_mut(..pair.public_modulus_len())
                    .ok_or(CryptoError("RSA key larger than 8192 bits"))?;
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, token.as_bytes(), signature)
                    .map_err(failed)?;
                append_signature(&mut token, signature);
            }
            Signer::Ecdsa(pair) => {
                let signature = pair.sign(&self.rng, token.as_bytes()).map_err(failed)?;
                append_signature(&mut token, signature.as_ref());
            }
            Signer::Ed25519(pair) => {
                let signature = pair.sign(token.as_bytes());
                append_signature(&mut token, signature.as_ref());
            }
            Signer::Hmac(key) => {
                let tag = hmac::sign(key, token.as_bytes());
                append_signature(&mut token, tag.as_ref());
            }
        }
        Ok(token)
    }
}

/// `.` and the base64url signature: the end of a compact JWS.
fn append_signature(token: &mut String, signature: &[u8]) {
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
        VerificationAlgorithm,
    };

    fn parts(token: &str) -> (serde_json::Value, String, Vec<u8>) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        (
            header,
            format!("{}.{}", parts[0], parts[1]),
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
    }

    fn check(
        alg: Algorithm,
        verification: &'static dyn VerificationAlgorithm,
        public: impl Fn(&SigningKey) -> Vec<u8>,
    ) {
        let (key, secret) = SigningKey::generate(alg).unwrap();
        let token = key.sign(&serde_json::json!({ "sub": "x" })).unwrap();
        let (header, signed, signature) = parts(&token);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["kid"], key.kid());
        UnparsedPublicKey::new(verification, public(&key))
            .verify(signed.as_bytes(), &signature)
            .unwrap();
        let reloaded = SigningKey::from_secret(alg, None, &secret).unwrap();
        assert_eq!(reloaded.kid(), key.kid());
        assert_eq!(reloaded.public_jwk(), key.public_jwk());
    }

    #[test]
    fn rs256_tokens_verify_and_reload_with_the_same_kid() {
        check(
            Algorithm::RS256,
            &RSA_PKCS1_2048_8192_SHA256,
            |k| match &k.signer {
                Signer::Rsa(p) => p.public_key().as_ref().to_vec(),
                _ => unreachable!(),
            },
        );
    }

    #[test]
    fn es256_tokens_verify_and_reload_with_the_same_kid() {
        check(Algorithm::ES256, &ECDSA_P256_SHA256_FIXED, |k| {
            match &k.signer {
                Signer::Ecdsa(p) => p.public_key().as_ref().to_vec(),
                _ => unreachable!(),
            }
        });
    }

    #[test]
    fn eddsa_tokens_verify_and_reload_with_the_same_kid() {
        check(Algorithm::EdDSA, &ED25519, |k| match &k.signer {
            Signer::Ed25519(p) => p.public_key().as_ref().to_vec(),
            _ => unreachable!(),
        });
    }

    #[test]
    fn hs256_keys_have_random_kids_and_no_public_jwk() {
        let (key, secret) = SigningKey::generate(Algorithm::HS256).unwrap();
        assert!(key.public_jwk().is_none());
        let token = key.sign(&serde_json::json!({ "sub": "x" })).unwrap();
        let (header, signed, signature) = parts(&token);
        assert_eq!(header["alg"], "HS256");
        let verify_key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        hmac::verify(&verify_key, signed.as_bytes(), &signature).unwrap();
        assert!(SigningKey::from_secret(Algorithm::HS256, None, &secret).is_err());
        let (other, _) = SigningKey::generate(Algorithm::HS256).unwrap();
        assert_ne!(other.kid(), key.kid());
    }
}
