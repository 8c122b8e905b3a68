//! The one error type of the crate.

use std::fmt;

/// Why a token was refused, or why keys are unavailable.
///
/// Small (one pointer) so that `Result<Claims, Error>` stays cheap to move.
/// Match on [`Error::kind`] to decide what to answer; the `Display` text is
/// safe to send to a client (it never contains key material, token contents
/// or transport errors: those are in [`std::error::Error::source`], for logs).
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// What went wrong. New kinds may be added in minor releases.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The token is longer than [`Validation::max_token_bytes`](crate::Validation::max_token_bytes).
    TokenTooLarge,
    /// Not a compact JWS: not exactly three segments, a segment that is not
    /// unpadded base64url, or a header or claims set that is not a JSON object.
    Malformed(&'static str),
    /// The header's `alg` is not one this crate verifies (`none` included).
    UnsupportedAlgorithm,
    /// The header carries `crit`: no extension is understood, so the token is refused.
    CriticalHeader,
    /// The header's `typ` is missing or not `at+jwt` (RFC 9068 §4).
    InvalidType,
    /// The header has no `kid`.
    MissingKeyId,
    /// No key with the token's `kid` (after at most one JWKS refetch).
    UnknownKeyId,
    /// The key named by `kid` is for another algorithm than the header's `alg`.
    AlgorithmMismatch,
    /// The signature does not verify.
    InvalidSignature,
    /// A claim required by RFC 9068 is absent.
    MissingClaim(&'static str),
    /// A registered claim has the wrong JSON type, or appears twice.
    InvalidClaim(&'static str),
    /// `iss` is not exactly the configured issuer.
    InvalidIssuer,
    /// None of the token's audiences is one of the configured ones.
    InvalidAudience,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// The token is valid but lacks the scopes required.
    InsufficientScope,
    /// No usable key: the JWKS has never been fetched, or only long ago
    /// (beyond the stale bound). Temporary: answer 503, not 401.
    KeysUnavailable,
    /// A JWKS fetch failed (transport error, status, size, or a document
    /// that is not a JWK Set).
    Fetch,
    /// The configuration cannot be used (the message says which setting).
    InvalidConfiguration(&'static str),
}

impl ErrorKind {
    fn description(&self) -> &'static str {
        match self {
            Self::TokenTooLarge => "the token is too large",
            Self::Malformed(what) => what,
            Self::UnsupportedAlgorithm => "unsupported signature algorithm",
            Self::CriticalHeader => "the token has critical header parameters",
            Self::InvalidType => "the token is not an access token (typ at+jwt)",
            Self::MissingKeyId => "the token has no key id",
            Self::UnknownKeyId => "the token's key id is unknown",
            Self::AlgorithmMismatch => "the token's algorithm does not match its key",
            Self::InvalidSignature => "invalid signature",
            Self::MissingClaim(_) => "a required claim is missing",
            Self::InvalidClaim(_) => "a claim has an invalid type",
            Self::InvalidIssuer => "invalid issuer",
            Self::InvalidAudience => "invalid audience",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::IssuedInFuture => "the token is issued in the future",
            Self::InsufficientScope => "insufficient scope",
            Self::KeysUnavailable => "no verification key is available",
            Self::Fetch => "the key set could not be fetched",
            Self::InvalidConfiguration(what) => what,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingClaim(name) => write!(f, "the required claim `{name}` is missing"),
            Self::InvalidClaim(name) => write!(f, "the claim `{name}` is invalid"),
            _ => f.write_str(self.description()),
        }
    }
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// Consumes the error, returning its kind.
    pub fn into_kind(self) -> ErrorKind {
        self.0.kind
    }

    /// `true` when the failure is not the token's fault, so that refusing
    /// the token (401) would be wrong: no usable key ([`ErrorKind::KeysUnavailable`],
    /// temporary), a failed JWKS fetch ([`ErrorKind::Fetch`]), or a
    /// verifier that cannot be used ([`ErrorKind::InvalidConfiguration`]).
    /// Answer 503 rather than 401; the `actix` middleware decides its 503s
    /// with this method.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.0.kind,
            ErrorKind::KeysUnavailable | ErrorKind::Fetch | ErrorKind::InvalidConfiguration(_)
        )
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self(Box::new(Inner {
            kind,
            source: Some(source.into()),
        }))
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self(Box::new(Inner { kind, source: None }))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.kind, f)
    }
}

/// Prints the kind and the whole cause chain, for logs.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.kind)?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Shorthand for `Result<T, warrant_verifier::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_names_the_claim_but_never_the_source() {
        let error = Error::with_source(ErrorKind::Fetch, "connection refused to 10.0.0.1");
        assert_eq!(error.to_string(), "the key set could not be fetched");
        assert!(format!("{error:?}").contains("connection refused"));
        let error = Error::from(ErrorKind::InvalidClaim("exp"));
        assert_eq!(error.to_string(), "the claim `exp` is invalid");
    }
}
