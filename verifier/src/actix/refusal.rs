//! [`BearerError`]: what the middleware and the extractor answer, as
//! RFC 6750 §3 says.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use super::DEFAULT_REALM;
use crate::error::{Error, ErrorKind};

/// An RFC 6750 refusal: status, `WWW-Authenticate` challenge, JSON body.
///
/// Made from an [`Error`] with [`BearerError::new`] (or `From`), so that a
/// handler verifying tokens itself answers as the middleware does.
pub struct BearerError {
    status: StatusCode,
    code: Option<&'static str>,
    description: Cow<'static, str>,
    pub(super) scope: Option<String>,
    realm: Arc<str>,
}

impl BearerError {
    /// The refusal for a verification error: 503 when
    /// [`Error::is_unavailable`] (not the token's fault), else 403
    /// `insufficient_scope` or 401 `invalid_token`.
    pub fn new(error: &Error) -> Self {
        let (status, code) = if error.is_unavailable() {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        } else if *error.kind() == ErrorKind::InsufficientScope {
            (StatusCode::FORBIDDEN, "insufficient_scope")
        } else {
            (StatusCode::UNAUTHORIZED, "invalid_token")
        };
        Self {
            status,
            code: Some(code),
            description: error.to_string().into(),
            scope: None,
            realm: DEFAULT_REALM.into(),
        }
    }

    pub(super) fn no_token() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: None,
            description: "a bearer token is required".into(),
            scope: None,
            realm: DEFAULT_REALM.into(),
        }
    }

    pub(super) fn invalid_request(description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: Some("invalid_request"),
            description: description.into(),
            scope: None,
            realm: DEFAULT_REALM.into(),
        }
    }

    pub(super) fn realm(mut self, realm: &Arc<str>) -> Self {
        self.realm = Arc::clone(realm);
        self
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The RFC 6750 error code, if any (none when no token was offered).
    pub fn code(&self) -> Option<&'static str> {
        self.code
    }

    fn challenge(&self) -> String {
        let mut challenge = format!("Bearer realm=\"{}\"", quote(&self.realm));
        if let Some(code) = self.code {
            challenge.push_str(&format!(
                ", error=\"{code}\", error_description=\"{}\"",
                quote(&self.description)
            ));
        }
        if let Some(scope) = &self.scope {
            challenge.push_str(&format!(", scope=\"{}\"", quote(scope)));
        }
        challenge
    }
}

/// Makes `s` safe inside a quoted-string: only visible ASCII and spaces,
/// without `"` or `\`.
fn quote(s: &str) -> Cow<'_, str> {
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
                .collect(),
        )
    }
}

impl From<Error> for BearerError {
    fn from(error: Error) -> Self {
        Self::new(&error)
    }
}

impl fmt::Display for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{} {code}: {}", self.status.as_u16(), self.description),
            None => write!(f, "{}: {}", self.status.as_u16(), self.description),
        }
    }
}

impl fmt::Debug for BearerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ResponseError for BearerError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "5"));
        } else if let Ok(challenge) = HeaderValue::from_str(&self.challenge()) {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        let body = serde_json::json!({
            "error": self.code.unwrap_or("invalid_token"),
            "error_description": self.description,
        });
        if self.code.is_none() {
            // RFC 6750 §3.1: no error code when no token was offered.
            return response.finish();
        }
        response.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750() {
        let mut error = BearerError::new(&ErrorKind::InsufficientScope.into());
        error.scope = Some("a b".into());
        assert_eq!(
            error.challenge(),
            r#"Bearer realm="api", error="insufficient_scope", error_description="insufficient scope", scope="a b""#
        );
        assert_eq!(BearerError::no_token().challenge(), r#"Bearer realm="api""#);
        assert_eq!(quote("a\"b\\c\nd"), "abcd");
    }

    /// Every kind, so that a kind added later cannot be forgotten here: the
    /// `match` has no wildcard and stops compiling until it is listed.
    fn every_kind() -> Vec<ErrorKind> {
        let kinds = vec![
            ErrorKind::TokenTooLarge,
            ErrorKind::Malformed("m"),
            ErrorKind::UnsupportedAlgorithm,
            ErrorKind::CriticalHeader,
            ErrorKind::InvalidType,
            ErrorKind::MissingKeyId,
            ErrorKind::UnknownKeyId,
            ErrorKind::AlgorithmMismatch,
            ErrorKind::InvalidSignature,
            ErrorKind::MissingClaim("exp"),
            ErrorKind::InvalidClaim("exp"),
            ErrorKind::InvalidIssuer,
            ErrorKind::InvalidAudience,
            ErrorKind::Expired,
            ErrorKind::NotYetValid,
            ErrorKind::IssuedInFuture,
            ErrorKind::InsufficientScope,
            ErrorKind::KeysUnavailable,
            ErrorKind::Fetch,
            ErrorKind::InvalidConfiguration("c"),
        ];
        for kind in &kinds {
            match kind {
                ErrorKind::TokenTooLarge
                | ErrorKind::Malformed(_)
                | ErrorKind::UnsupportedAlgorithm
                | ErrorKind::CriticalHeader
                | ErrorKind::InvalidType
                | ErrorKind::MissingKeyId
                | ErrorKind::UnknownKeyId
                | ErrorKind::AlgorithmMismatch
                | ErrorKind::InvalidSignature
                | ErrorKind::MissingClaim(_)
                | ErrorKind::InvalidClaim(_)
                | ErrorKind::InvalidIssuer
                | ErrorKind::InvalidAudience
                | ErrorKind::Expired
                | ErrorKind::NotYetValid
                | ErrorKind::IssuedInFuture
                | ErrorKind::InsufficientScope
                | ErrorKind::KeysUnavailable
                | ErrorKind::Fetch
                | ErrorKind::InvalidConfiguration(_) => {}
            }
        }
        kinds
    }

    #[test]
    fn the_middleware_answers_503_exactly_for_the_errors_that_are_unavailable() {
        let mut unavailable = 0;
        for kind in every_kind() {
            let error = Error::from(kind.clone());
            let answer = BearerError::new(&error);
            if error.is_unavailable() {
                unavailable += 1;
                assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{kind:?}");
                assert_eq!(answer.code(), Some("temporarily_unavailable"), "{kind:?}");
            } else {
                assert_ne!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{kind:?}");
                let expected = if kind == ErrorKind::InsufficientScope {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::UNAUTHORIZED
                };
                assert_eq!(answer.status(), expected, "{kind:?}");
            }
        }
        // Not vacuous: no usable key, a failed fetch, a broken configuration.
        assert_eq!(unavailable, 3);
        assert!(Error::from(ErrorKind::KeysUnavailable).is_unavailable());
    }
}
