//! The verifier: keys, settings, and the checks in order.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::claims::Claims;
use crate::error::{ErrorKind, Result};
use crate::jwks::JwksCache;
use crate::jws::{self, Algorithm};
use crate::key::{KeySet, VerifyingKey};
use crate::validation::Validation;

/// Verifies access tokens. Build one per issuer at start-up and share it:
/// it is cheap to clone (an `Arc` inside), `Send` and `Sync`.
///
/// ```no_run
/// # async fn run(token: &str) -> Result<(), warrant_verifier::Error> {
/// use warrant_verifier::{JwksCache, JwksConfig, Validation, Verifier};
///
/// let jwks = JwksCache::new(JwksConfig::new("https://auth.example.com/.well-known/jwks.json"))?;
/// let verifier = Verifier::builder(Validation::new(
///     "https://auth.example.com",
///     ["https://orders.example.com"],
/// ))
/// .jwks(jwks)
/// .build()?;
///
/// let claims = verifier.verify(token).await?;
/// claims.require_all_scopes(&["orders:read"])?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    validation: Validation,
    public_keys: PublicKeys,
    secrets: HashMap<String, VerifyingKey>,
}

enum PublicKeys {
    None,
    Fixed(KeySet),
    Jwks(JwksCache),
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<_> = self.inner.secrets.keys().collect();
        kids.sort();
        let keys: &dyn fmt::Debug = match &self.inner.public_keys {
            PublicKeys::None => &"none",
            PublicKeys::Fixed(keys) => keys,
            PublicKeys::Jwks(cache) => cache,
        };
        f.debug_struct("Verifier")
            .field("validation", &self.inner.validation)
            .field("public_keys", keys)
            .field("hs256_kids", &kids)
            .finish()
    }
}

/// Builds a [`Verifier`]: the [`Validation`], then where keys come from.
#[must_use]
pub struct VerifierBuilder {
    validation: Validation,
    public_keys: PublicKeys,
    secrets: Vec<(String, Vec<u8>)>,
    conflict: bool,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("validation", &self.validation)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// RS256, ES256 and EdDSA keys from the issuer's JWK Set, cached.
    pub fn jwks(mut self, cache: JwksCache) -> Self {
        self.conflict |= !matches!(self.public_keys, PublicKeys::None);
        self.public_keys = PublicKeys::Jwks(cache);
        self
    }

    /// RS256, ES256 and EdDSA keys fixed at start-up (no fetching), e.g.
    /// from [`KeySet::from_jwks`] on a file.
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.conflict |= !matches!(self.public_keys, PublicKeys::None);
        self.public_keys = PublicKeys::Fixed(keys);
        self
    }

    /// An HS256 secret shared with the issuer out of band, for tokens whose
    /// header names `kid`. At least 32 bytes (RFC 7518 §3.2). HS256 tokens
    /// are verified only with these secrets, never with JWKS keys.
    pub fn hs256_secret(mut self, kid: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        self.secrets.push((kid.into(), secret.as_ref().to_vec()));
        self
    }

    /// Checks the settings and builds the verifier.
    ///
    /// Fails with [`ErrorKind::InvalidConfiguration`] when the issuer or the
    /// audiences are empty, no key source is given, both
    /// [`jwks`](Self::jwks) and [`keys`](Self::keys) are, or a secret is
    /// too short or repeats a `kid`.
    pub fn build(self) -> Result<Verifier> {
        self.validation
            .check()
            .map_err(ErrorKind::InvalidConfiguration)?;
        if self.conflict {
            return Err(ErrorKind::InvalidConfiguration(
                "give either a JwksCache or a fixed KeySet, not both",
            )
            .into());
        }
        if matches!(self.public_keys, PublicKeys::None) && self.secrets.is_empty() {
            return Err(ErrorKind::InvalidConfiguration(
                "no keys: give a JwksCache, a KeySet or an HS256 secret",
            )
            .into());
        }
        let mut secrets = HashMap::with_capacity(self.secrets.len());
        for (kid, secret) in self.secrets {
            let key = VerifyingKey::hs256(&secret)?;
            if secrets.insert(kid, key).is_some() {
                return Err(
                    ErrorKind::InvalidConfiguration("two HS256 secrets have the same kid").into(),
                );
            }
        }
        Ok(Verifier {
            inner: Arc::new(Inner {
                validation: self.validation,
                public_keys: self.public_keys,
                secrets,
            }),
        })
    }
}

/// Large enough for the signature of an RSA-8192 key (1024 bytes), with the
/// slack base64's decoded-length estimate needs.
const MAX_SIGNATURE: usize = 1032;

impl Verifier {
    /// Starts building a verifier with these checks.
    pub fn builder(validation: Validation) -> VerifierBuilder {
        VerifierBuilder {
            validation,
            public_keys: PublicKeys::None,
            secrets: Vec::new(),
            conflict: false,
        }
    }

    /// The checks applied.
    pub fn validation(&self) -> &Validation {
        &self.inner.validation
    }

    /// Whether keys are available (always, with fixed keys or secrets only).
    pub fn is_ready(&self) -> bool {
        match &self.inner.public_keys {
            PublicKeys::Jwks(cache) => cache.is_ready(),
            PublicKeys::None | PublicKeys::Fixed(_) => true,
        }
    }

    /// Verifies a compact JWS access token and returns its claims.
    ///
    /// In order: size, syntax, header (`alg` supported, no `crit`, `typ`
    /// `at+jwt`, `kid` present), key by `kid` bound to `alg`, signature,
    /// claim types, `iss`, `aud`, `exp`, `nbf`, `iat`.
    ///
    /// Completes without waiting when the key is held. Otherwise waits at
    /// most [`JwksConfig::fetch_timeout`](crate::JwksConfig::fetch_timeout)
    /// for the first JWKS fetch or one unknown-`kid` refetch.
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        let validation = &self.inner.validation;
        let parts = jws::split(token, validation.max_token_bytes)?;
        let header_json = jws::b64_decode(parts.header)?;
        let header = jws::parse_raw_header(&header_json)?;
        let alg = Algorithm::from_name(&header.alg).ok_or(ErrorKind::UnsupportedAlgorithm)?;
        if !validation.accept_untyped
            && !header.typ.as_deref().is_some_and(jws::is_access_token_type)
        {
            return Err(ErrorKind::InvalidType.into());
        }
        let kid = header.kid.as_deref().ok_or(ErrorKind::MissingKeyId)?;
        let mut signature = [0u8; MAX_SIGNATURE];
        let signature = jws::b64_decode_into(parts.signature, &mut signature)?;
        let message = parts.signing_input.as_bytes();

        let check = |key: &VerifyingKey| -> Result<()> {
            if key.algorithm() != alg {
                return Err(ErrorKind::AlgorithmMismatch.into());
            }
            if !key.verify(message, signature) {
                return Err(ErrorKind::InvalidSignature.into());
            }
            Ok(())
        };
        if alg == Algorithm::HS256 {
            // Secrets only: a public key never verifies an HMAC.
            check(self.inner.secrets.get(kid).ok_or(ErrorKind::UnknownKeyId)?)?;
        } else {
            match &self.inner.public_keys {
                PublicKeys::Jwks(cache) => cache.with_key(kid, check).await??,
                PublicKeys::Fixed(keys) => check(keys.get(kid).ok_or(ErrorKind::UnknownKeyId)?)?,
                PublicKeys::None => return Err(ErrorKind::UnknownKeyId.into()),
            }
        }

        let claims = jws::parse_claims(parts.claims)?;
        self.check_claims(&claims)?;
        Ok(claims)
    }

    fn check_claims(&self, claims: &Claims) -> Result<()> {
        let validation = &self.inner.validation;
        if claims.issuer() != validation.issuer {
            return Err(ErrorKind::InvalidIssuer.into());
        }
        if !claims
            .audiences()
            .iter()
            .any(|aud| validation.audiences.contains(aud))
        {
            return Err(ErrorKind::InvalidAudience.into());
        }
        let now = unix_now();
        let leeway = i64::try_from(validation.leeway.as_secs()).unwrap_or(i64::MAX);
        if now >= claims.expires_at().saturating_add(leeway) {
            return Err(ErrorKind::Expired.into());
        }
        if claims
            .not_before()
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(ErrorKind::NotYetValid.into());
        }
        if claims.issued_at() > now.saturating_add(leeway) {
            return Err(ErrorKind::IssuedInFuture.into());
        }
        Ok(())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
