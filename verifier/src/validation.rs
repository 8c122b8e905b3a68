//! What a token must satisfy besides its signature.

use std::time::Duration;

/// The checks applied to every token. Every field starts at its secure
/// default; change only what your deployment needs.
///
/// ```
/// use std::time::Duration;
/// use warrant_verifier::Validation;
///
/// let mut validation = Validation::new("https://auth.example.com", ["https://orders.example.com"]);
/// validation.leeway = Duration::from_secs(10);
/// ```
///
/// Always checked, whatever the settings: the signature with a key bound to
/// the token's algorithm; `typ` is `at+jwt`; no `crit` header; `exp`
/// present; every registered claim (`iss`, `sub`, `aud`, `exp`, `nbf`,
/// `iat`, `jti`, `client_id`, `scope`) of the right JSON type.
/// Checks that can be weakened are weakened only through [`crate::dangerous`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Validation {
    /// The one accepted `iss`, compared byte for byte (no prefix match, no
    /// trailing-slash normalisation). Required: there is no default.
    pub issuer: String,
    /// Accepted audiences: the token's `aud` (a string or an array of
    /// strings) must contain at least one of them. Required: must not be
    /// empty.
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    /// Default: **30 seconds**. Keep it under a minute: it extends every
    /// token's life by as much.
    pub leeway: Duration,
    /// Longest token accepted, in bytes, checked before anything is
    /// decoded. Default: **8192** (Warrant's RS256 tokens are about 800).
    pub max_token_bytes: usize,
    /// Whether a token without `typ: at+jwt` may pass. Default: `false`;
    /// set only through [`crate::dangerous::accept_untyped_tokens`].
    pub(crate) accept_untyped: bool,
}

/// Default for [`Validation::leeway`].
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default for [`Validation::max_token_bytes`].
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

impl Validation {
    /// Checks for tokens issued by `issuer` for any of `audiences`, with
    /// every other setting at its default.
    pub fn new<I, A>(issuer: impl Into<String>, audiences: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<String>,
    {
        Self {
            issuer: issuer.into(),
            audiences: audiences.into_iter().map(Into::into).collect(),
            leeway: DEFAULT_LEEWAY,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            accept_untyped: false,
        }
    }

    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if self.issuer.is_empty() {
            return Err("Validation::issuer must not be empty");
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err("Validation::audiences must name at least one audience, none empty");
        }
        if self.max_token_bytes == 0 {
            return Err("Validation::max_token_bytes must be positive");
        }
        // A large leeway quietly switches exp/nbf/iat off.
        if self.leeway > Duration::from_secs(300) {
            return Err("Validation::leeway must be at most 5 minutes");
        }
        Ok(())
    }
}
