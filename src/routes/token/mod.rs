//! `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4).
//!
//! A request goes through typed phases, each a function from one value to
//! the next: [`TokenRequest::parse`] → authenticate ([`Credentials`] to a
//! [`Client`]) → quota → [`Client::grant`] → [`mint`] → response. Every
//! refusal is an RFC 6749 §5.2 error body; nothing internal reaches the
//! client. One log line per request is written from the typed values.
//!
//! [`Credentials`]: crate::credentials::Credentials

mod error;
mod request;
mod response;

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

pub use error::{TokenError, Unavailable};
pub use request::{TokenRequest, fuzz_parse_request};

use super::AppState;
use crate::credentials::AuthFailure;
use crate::crypto::{CryptoError, SigningKey, b64url, random_bytes};
use crate::domain::{AccessTokenClaims, Client, ClientId, Grant};
use crate::limits::Limit;
use crate::metrics::{Metrics, Outcome};
use crate::registry::Snapshot;
use crate::telemetry::{TokenOutcome, TokenRequestLine, log_token_request};

const X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

pub async fn method_not_allowed() -> HttpResponse {
    TokenError::MethodNotAllowed.error_response()
}

/// Serves one token request and logs one line for it (client id, outcome,
/// latency; never the secret or the token).
pub async fn issue(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let ids = RequestIds::draw(&request);
    match TokenRequest::parse(&request, body, state.max_body_bytes).await {
        Ok(token_request) => {
            let result = match &ids.jti {
                Some(jti) => exchange(&state, &request, &token_request, jti).await,
                None => Err(TokenError::Internal(
                    CryptoError("the system random generator failed").into(),
                )),
            };
            respond(
                &state,
                &ids,
                Some(token_request.client_id()),
                started,
                result,
            )
        }
        Err(e) => respond(&state, &ids, None, started, Err(e)),
    }
}

/// The phases after parsing: authenticate, quota, grant, mint.
async fn exchange(
    state: &AppState,
    http: &HttpRequest,
    request: &TokenRequest,
    jti: &str,
) -> Result<Issued, TokenError> {
    let snapshot = state.registry.snapshot();
    let client = state
        .authenticator
        .authenticate(&snapshot, &request.credentials, state.client_address(http))
        .await?;
    take_quota(state, &client)?;
    let grant = client.grant(request.scope.as_deref(), &request.resource)?;
    mint(state, &snapshot, &client, grant, jti)
}

fn take_quota(state: &AppState, client: &Client) -> Result<(), TokenError> {
    match client
        .quota_per_minute
        .and_then(|quota| state.quotas.take(&client.id, quota))
    {
        Some(retry_after) => Err(TokenError::RateLimited {
            limit: Limit::Quota,
            retry_after,
        }),
        None => Ok(()),
    }
}

/// A signed token and what the log says about it.
struct Issued {
    access_token: String,
    expires_in: u32,
    grant: Grant,
    signer: Arc<SigningKey>,
}

fn mint(
    state: &AppState,
    snapshot: &Snapshot,
    client: &Client,
    grant: Grant,
    jti: &str,
) -> Result<Issued, TokenError> {
    let now = crate::clock::unix_now();
    if state.registry.seconds_since_database(now) > state.outage_grace_secs {
        return Err(TokenError::Unavailable(Unavailable::DatabaseAway));
    }
    let signer = snapshot
        .signer_for(client.signing_alg, &grant.audience)
        .ok_or(TokenError::Unavailable(Unavailable::NoSigningKey))?;
    let claims = AccessTokenClaims {
        iss: &state.issuer,
        sub: client.id.as_str(),
        aud: grant.audience.as_str(),
        exp: now + i64::from(client.token_ttl_secs),
        iat: now,
        jti,
        client_id: client.id.as_str(),
        scope: grant.scope.as_str(),
    };
    let signing = Instant::now();
    let access_token = signer
        .sign(&claims)
        .map_err(|e| TokenError::Internal(e.into()))?;
    state
        .metrics
        .issued(&client.id, signer.alg(), signing.elapsed());
    Ok(Issued {
        access_token,
        expires_in: client.token_ttl_secs,
        grant,
        signer: Arc::clone(signer),
    })
}

/// The request id every answer and log line carries, and the token's `jti`,
/// from one call to the random generator (a call costs more than the bytes).
struct RequestIds {
    request_id: String,
    /// `None` when the generator failed: nothing can be issued.
    jti: Option<String>,
}

impl RequestIds {
    fn draw(request: &HttpRequest) -> Self {
        let random = random_bytes::<24>().ok();
        let (id, jti) = match random.as_ref().map(|r| r.split_at(8)) {
            Some((id, jti)) => (Some(id), Some(b64url(jti))),
            None => (None, None),
        };
        Self {
            request_id: request_id(request, id),
            jti,
        }
    }
}

/// The caller's `X-Request-Id` when it is a sane one (1 to 64 visible ASCII
/// characters), else a fresh random one.
fn request_id(request: &HttpRequest, random: Option<&[u8]>) -> String {
    request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| random.map_or_else(|| "-".to_owned(), b64url))
}

/// The one place a request's outcome is counted, logged and answered.
fn respond(
    state: &AppState,
    ids: &RequestIds,
    client_id: Option<&ClientId>,
    started: Instant,
    result: Result<Issued, TokenError>,
) -> HttpResponse {
    count(&state.metrics, &result);
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let request_id = ids.request_id.as_str();
    let client_id = client_id.map(ClientId::as_str);
    match &result {
        Ok(issued) => log_token_request(&TokenRequestLine {
            request_id,
            client_id,
            outcome: TokenOutcome::Issued {
                scope: issued.grant.scope.as_str(),
                aud: issued.grant.audience.as_str(),
                kid: issued.signer.kid(),
                jti: ids.jti.as_deref().unwrap_or("-"),
            },
            latency_us,
        }),
        Err(e @ TokenError::Internal(_)) => {
            let client_id = client_id.unwrap_or("-");
            tracing::error!(request_id, client_id, outcome = e.code(), error = ?e, latency_us, "token request");
        }
        Err(e) => log_token_request(&TokenRequestLine {
            request_id,
            client_id,
            outcome: TokenOutcome::Refused {
                code: e.code(),
                reason: e,
            },
            latency_us,
        }),
    }
    let mut response = match result.and_then(|issued| {
        response::token_response(
            &issued.access_token,
            issued.expires_in,
            issued.grant.scope.as_str(),
        )
        .map_err(|e| TokenError::Internal(e.into()))
    }) {
        Ok(response) => response,
        Err(e) => e.error_response(),
    };
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

fn count(metrics: &Metrics, result: &Result<Issued, TokenError>) {
    let error = match result {
        Ok(_) => {
            metrics.outcomes.add(Outcome::Issued);
            return;
        }
        Err(e) => e,
    };
    metrics.outcomes.add(error.outcome());
    let failure = match error {
        TokenError::InvalidClient(failure) => failure.reason(),
        TokenError::Unavailable(Unavailable::Argon2Busy) => AuthFailure::Busy.reason(),
        TokenError::RateLimited { limit, .. } => {
            metrics.rate_limited.add(*limit);
            None
        }
        _ => None,
    };
    if let Some(reason) = failure {
        metrics.auth_failures.add(reason);
    }
}
