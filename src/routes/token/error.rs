//! The token endpoint's refusals: RFC 6749 §5.2 error bodies. Domain errors
//! become a [`TokenError`] in one `From` impl each; nothing internal reaches
//! the client.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use super::response::no_store;
use crate::credentials::AuthFailure;
use crate::domain::GrantError;
use crate::limits::Limit;
use crate::metrics::Outcome;

#[derive(thiserror::Error)]
pub enum TokenError {
    #[error("invalid_request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// The client learns nothing about which check failed; the log does.
    #[error("invalid_client: {}", .0.as_str())]
    InvalidClient(AuthFailure),
    #[error("unauthorized_client")]
    UnauthorizedClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(Cow<'static, str>),
    #[error("invalid_target: {0}")]
    InvalidTarget(Cow<'static, str>),
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("temporarily unavailable: {}", .0.description())]
    Unavailable(Unavailable),
    /// A rate limit or quota (429).
    #[error("rate limited: {}", .limit.as_str())]
    RateLimited { limit: Limit, retry_after: Duration },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Why a request that may succeed later is refused now (503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Too many argon2 verifications already waiting.
    Argon2Busy,
    /// The database has been away longer than `outage_grace_secs`.
    DatabaseAway,
    /// No current key for the client's algorithm yet.
    NoSigningKey,
}

impl Unavailable {
    fn description(self) -> &'static str {
        match self {
            Self::Argon2Busy => "too many client authentications in progress",
            Self::DatabaseAway => {
                "the database has been unreachable for too long to trust the clients in memory"
            }
            Self::NoSigningKey => "no current signing key for this client's algorithm",
        }
    }
}

impl From<AuthFailure> for TokenError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Busy => Self::Unavailable(Unavailable::Argon2Busy),
            AuthFailure::RateLimited { limit, retry_after } => {
                Self::RateLimited { limit, retry_after }
            }
            AuthFailure::NoCredentials
            | AuthFailure::UnsupportedScheme
            | AuthFailure::Malformed
            | AuthFailure::UnknownClient
            | AuthFailure::WrongSecret
            | AuthFailure::Disabled => Self::InvalidClient(failure),
        }
    }
}

impl From<GrantError> for TokenError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::UnauthorizedClient => Self::UnauthorizedClient,
            GrantError::InvalidScope(d) => Self::InvalidScope(d),
            GrantError::InvalidTarget(d) => Self::InvalidTarget(d),
        }
    }
}

impl fmt::Debug for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl TokenError {
    /// What this refusal counts as in the metrics.
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::InvalidRequest(_) | Self::PayloadTooLarge(_) | Self::MethodNotAllowed => {
                Outcome::InvalidRequest
            }
            Self::InvalidClient(_) => Outcome::InvalidClient,
            Self::UnauthorizedClient => Outcome::UnauthorizedClient,
            Self::UnsupportedGrantType => Outcome::UnsupportedGrantType,
            Self::InvalidScope(_) => Outcome::InvalidScope,
            Self::InvalidTarget(_) => Outcome::InvalidTarget,
            Self::Unavailable(_) => Outcome::TemporarilyUnavailable,
            Self::RateLimited { .. } => Outcome::RateLimited,
            Self::Internal(_) => Outcome::ServerError,
        }
    }

    /// The RFC 6749 §5.2 `error` code.
    pub fn code(&self) -> &'static str {
        match self.outcome() {
            Outcome::RateLimited => Outcome::TemporarilyUnavailable.as_str(),
            outcome => outcome.as_str(),
        }
    }

    fn description(&self) -> Cow<'static, str> {
        match self {
            Self::InvalidRequest(d) | Self::InvalidScope(d) | Self::InvalidTarget(d) => d.clone(),
            Self::InvalidClient(_) => "client authentication failed".into(),
            Self::UnauthorizedClient => GrantError::UnauthorizedClient.to_string().into(),
            Self::UnsupportedGrantType => "only grant_type=client_credentials is supported".into(),
            Self::PayloadTooLarge(limit) => {
                format!("request body larger than {limit} bytes").into()
            }
            Self::MethodNotAllowed => "the token endpoint accepts POST only".into(),
            Self::Unavailable(why) => why.description().into(),
            Self::RateLimited {
                limit: Limit::Quota,
                ..
            } => "this client's token quota is used up for now".into(),
            Self::RateLimited { .. } => "too many failed authentications; retry later".into(),
            Self::Internal(_) => "the server could not issue a token".into(),
        }
    }
}

impl ResponseError for TokenError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidClient(_) => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidRequest(_)
            | Self::UnauthorizedClient
            | Self::UnsupportedGrantType
            | Self::InvalidScope(_)
            | Self::InvalidTarget(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        no_store(&mut response);
        match self {
            // RFC 9110 §15.5.2: every 401 carries a challenge, whichever
            // method the client tried (Basic is the one a challenge can
            // name; RFC 6749 §5.2).
            Self::InvalidClient(_) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    r#"Basic realm="warrant", charset="UTF-8""#,
                ));
            }
            Self::MethodNotAllowed => {
                response.insert_header((header::ALLOW, "POST"));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::RateLimited { retry_after, .. } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response.insert_header((header::RETRY_AFTER, secs.max(1).to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            error_description: self.description(),
        })
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    error_description: Cow<'static, str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_client_answer_is_the_same_401_with_a_challenge() {
        for failure in [
            AuthFailure::NoCredentials,
            AuthFailure::UnsupportedScheme,
            AuthFailure::Malformed,
            AuthFailure::UnknownClient,
            AuthFailure::WrongSecret,
            AuthFailure::Disabled,
        ] {
            let response = TokenError::from(failure).error_response();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{failure:?}");
            assert!(
                response.headers().contains_key(header::WWW_AUTHENTICATE),
                "{failure:?}"
            );
        }
    }

    #[test]
    fn busy_and_limited_authentication_ask_to_retry() {
        let busy = TokenError::from(AuthFailure::Busy);
        assert_eq!(busy.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.code(), "temporarily_unavailable");
        let limited = TokenError::from(AuthFailure::RateLimited {
            limit: Limit::FailuresPerAddress,
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(limited.status_code(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.code(), "temporarily_unavailable");
        let response = limited.error_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "2");
    }
}
