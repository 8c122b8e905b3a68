//! `POST /oauth/token`: the client credentials grant (RFC 6749 §4.4).
//!
//! The request is parsed strictly and in a fixed order: body, grant type,
//! client authentication, then what the client asks for (scope, audience).
//! Every refusal is an RFC 6749 §5.2 error body; nothing internal reaches the
//! client.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use futures_util::StreamExt as _;
use secrecy::SecretString;
use serde::Serialize;

use crate::credentials::AuthFailure;
use crate::crypto::{CryptoError, SigningKey, b64url, random_bytes};
use crate::domain::{AccessTokenClaims, Audience, Client, ClientId, GrantType, ScopeSet};
use crate::limits::Limit;
use crate::startup::AppState;
use crate::telemetry::{TokenOutcome, TokenRequestLine, log_token_request};

/// More form parameters than this is not a token request.
const MAX_PARAMS: usize = 32;
/// Our secrets are 43 characters; anything much longer cannot match and is
/// refused before argon2 sees it.
const MAX_SECRET_LEN: usize = 256;

#[derive(thiserror::Error)]
pub enum TokenError {
    #[error("invalid_request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// `challenge`: answer with `WWW-Authenticate: Basic` (the client used
    /// Basic, or sent no credentials at all). `reason` is for the log only:
    /// the client learns nothing about which check failed.
    #[error("invalid_client: {reason}")]
    InvalidClient {
        challenge: bool,
        reason: &'static str,
    },
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
    #[error("temporarily unavailable: {0}")]
    Unavailable(&'static str),
    /// A rate limit or quota (429).
    #[error("rate limited: {}", .limit.as_str())]
    RateLimited { limit: Limit, retry_after: Duration },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
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
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::PayloadTooLarge(_) | Self::MethodNotAllowed => {
                "invalid_request"
            }
            Self::InvalidClient { .. } => "invalid_client",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::Unavailable(_) | Self::RateLimited { .. } => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }

    fn description(&self) -> Cow<'static, str> {
        match self {
            Self::InvalidRequest(d) | Self::InvalidScope(d) | Self::InvalidTarget(d) => d.clone(),
            Self::InvalidClient { .. } => "client authentication failed".into(),
            Self::UnauthorizedClient => {
                "this client may not use the client_credentials grant".into()
            }
            Self::UnsupportedGrantType => "only grant_type=client_credentials is supported".into(),
            Self::PayloadTooLarge(limit) => {
                format!("request body larger than {limit} bytes").into()
            }
            Self::MethodNotAllowed => "the token endpoint accepts POST only".into(),
            Self::Unavailable(d) => (*d).into(),
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
            Self::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        no_store(&mut response);
        match self {
            Self::InvalidClient {
                challenge: true, ..
            } => {
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

fn no_store(response: &mut actix_web::HttpResponseBuilder) {
    response
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
}

/// The RFC 6749 §5.1 response body: exactly the bytes serde_json writes for
/// `{access_token, token_type: "Bearer", expires_in, scope}` (a unit test
/// checks it). The token goes in as is: a compact JWS is base64url and dots,
/// which JSON never escapes, and serde_json's escaping scan over a token of
/// 400-800 bytes cost more than the rest of the response.
fn token_response_body(
    access_token: &str,
    expires_in: u32,
    scope: &str,
) -> serde_json::Result<Vec<u8>> {
    debug_assert!(
        access_token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    );
    let mut body = Vec::with_capacity(access_token.len() + scope.len() + 80);
    body.extend_from_slice(br#"{"access_token":""#);
    body.extend_from_slice(access_token.as_bytes());
    body.extend_from_slice(br#"","token_type":"Bearer","expires_in":"#);
    serde_json::to_writer(&mut body, &expires_in)?;
    body.extend_from_slice(br#","scope":"#);
    serde_json::to_writer(&mut body, scope)?;
    body.push(b'}');
    Ok(body)
}

pub async fn method_not_allowed() -> HttpResponse {
    TokenError::MethodNotAllowed.error_response()
}

/// Logs one line per request (client id, outcome, latency; never the secret
/// or the token) around [`handle`].
pub async fn issue(
    request: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let (id_random, jti_random) = request_randomness().unzip();
    let request_id = request_id(&request, id_random);
    let mut client_id = None;
    let result = handle(&request, body, &state, &mut client_id, jti_random).await;
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let client_id = client_id.as_ref().map_or("-", ClientId::as_str);
    state.metrics.outcome(match &result {
        Ok(_) => "issued",
        Err(TokenError::RateLimited { .. }) => "rate_limited",
        Err(e) => e.code(),
    });
    match &result {
        Ok(issued) => log_token_request(&TokenRequestLine {
            request_id: &request_id,
            client_id: Some(client_id),
            outcome: TokenOutcome::Issued {
                scope: &issued.scope,
                aud: issued.audience.as_str(),
                kid: issued.signer.kid(),
                jti: &issued.jti,
            },
            latency_us,
        }),
        Err(e @ TokenError::Internal(_)) => {
            tracing::error!(request_id, client_id, outcome = e.code(), error = ?e, latency_us, "token request");
        }
        Err(e) => log_token_request(&TokenRequestLine {
            request_id: &request_id,
            client_id: Some(client_id),
            outcome: TokenOutcome::Refused {
                code: e.code(),
                reason: e,
            },
            latency_us,
        }),
    }
    let mut response = match result {
        Ok(issued) => issued.response,
        Err(e) => e.error_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

const X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// Random bytes for a fresh request id and for the jti, drawn with one call
/// to the generator: a call costs more than the bytes.
fn request_randomness() -> Option<([u8; 8], [u8; 16])> {
    let bytes = random_bytes::<24>().ok()?;
    let (id, jti) = bytes.split_first_chunk::<8>()?;
    Some((*id, jti.try_into().ok()?))
}

/// The caller's `X-Request-Id` when it is a sane one (1 to 64 visible ASCII
/// characters), else a fresh random one (`random`): log lines and answers
/// carry it.
fn request_id(request: &HttpRequest, random: Option<[u8; 8]>) -> String {
    request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| random.map_or_else(|| "-".to_owned(), |b| b64url(&b)))
}

struct Issued {
    response: HttpResponse,
    scope: String,
    audience: Audience,
    signer: Arc<SigningKey>,
    jti: String,
}

async fn handle(
    request: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    client_id_out: &mut Option<ClientId>,
    jti_random: Option<[u8; 16]>,
) -> Result<Issued, TokenError> {
    if !request
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        return Err(TokenError::InvalidRequest(
            "Content-Type must be application/x-www-form-urlencoded".into(),
        ));
    }
    let body = read_body(request.headers(), body, state.max_body_bytes).await?;
    let form = TokenForm::parse(&body)?;

    match form.grant_type.as_deref() {
        None => return Err(TokenError::InvalidRequest("grant_type is required".into())),
        Some("client_credentials") => {}
        Some(_) => return Err(TokenError::UnsupportedGrantType),
    }

    let credentials = Credentials::from_request(request.headers(), &form)?;
    let challenge = credentials.method == AuthMethod::Basic;
    let invalid_client = |reason| TokenError::InvalidClient { challenge, reason };
    let id = ClientId::parse(&credentials.client_id)
        .map_err(|_| invalid_client("malformed client_id"))?;
    *client_id_out = Some(id.clone());
    if credentials.secret_len > MAX_SECRET_LEN {
        return Err(invalid_client("secret too long"));
    }

    let snapshot = state.registry.snapshot();
    let known = snapshot.client(&id);
    // A remembered secret costs no argon2: failures others cause with this
    // id must not lock its owner out. Anything else is checked against the
    // failure limits before any hashing.
    let remembered = known.is_some_and(|c| state.authenticator.remembers(c, &credentials.secret));
    state.metrics.credential_cache(remembered);
    // Remembered means verified for this very version of the client, which
    // only enabled clients are: no need to check the secret a second time.
    let remembered_client = known.filter(|_| remembered).cloned();
    let client = match remembered_client {
        Some(client) => client,
        None => {
            let address = client_address(request, state);
            state
                .failure_limits
                .check(&id, address)
                .map_err(|(limit, retry_after)| {
                    state.metrics.rate_limited(limit);
                    TokenError::RateLimited { limit, retry_after }
                })?;
            state
                .authenticator
                .authenticate(&id, known, &credentials.secret)
                .await
                .map_err(|failure| {
                    state.metrics.auth_failure(failure.as_str());
                    match failure {
                        AuthFailure::Busy => {
                            TokenError::Unavailable("too many client authentications in progress")
                        }
                        other => {
                            state.failure_limits.record_failure(&id, address);
                            invalid_client(other.as_str())
                        }
                    }
                })?
        }
    };
    if let Some(quota) = client.quota_per_minute
        && let Some(retry_after) = state.quotas.take(&client.id, quota)
    {
        state.metrics.rate_limited(Limit::Quota);
        return Err(TokenError::RateLimited {
            limit: Limit::Quota,
            retry_after,
        });
    }

    if !client.may_use(GrantType::ClientCredentials) {
        return Err(TokenError::UnauthorizedClient);
    }
    let scope = granted_scope(&client, form.scope.as_deref())?;
    let audience = audience(&client, &form.resource)?;

    let now = crate::clock::unix_now();
    if state.registry.seconds_since_database(now) > state.outage_grace_secs {
        return Err(TokenError::Unavailable(
            "the database has been unreachable for too long to trust the clients in memory",
        ));
    }
    let signer =
        snapshot
            .signer_for(client.signing_alg, &audience)
            .ok_or(TokenError::Unavailable(
                "no current signing key for this client's algorithm",
            ))?;
    let jti = b64url(&jti_random.ok_or_else(|| {
        TokenError::Internal(CryptoError("the system random generator failed").into())
    })?);
    let scope_string = scope.to_string();
    let claims = AccessTokenClaims {
        iss: &state.issuer,
        sub: client.id.as_str(),
        aud: audience.as_str(),
        exp: now + i64::from(client.token_ttl_secs),
        iat: now,
        jti: &jti,
        client_id: client.id.as_str(),
        scope: &scope_string,
    };
    let signing = Instant::now();
    let access_token = signer
        .sign(&claims)
        .map_err(|e| TokenError::Internal(e.into()))?;
    state
        .metrics
        .issued(&client.id, signer.alg(), signing.elapsed());

    let body = token_response_body(&access_token, client.token_ttl_secs, &scope_string)
        .map_err(|e| TokenError::Internal(e.into()))?;
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    let response = response
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(body);
    Ok(Issued {
        response,
        scope: scope_string,
        audience,
        signer: Arc::clone(signer),
        jti,
    })
}

async fn read_body(
    headers: &HeaderMap,
    mut body: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, TokenError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(TokenError::PayloadTooLarge(limit));
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(256).min(limit));
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|_| TokenError::InvalidRequest("could not read the request body".into()))?;
        if bytes.len() + chunk.len() > limit {
            return Err(TokenError::PayloadTooLarge(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The parameters of a token request we know; others are ignored
/// (RFC 6749 §3.2). Empty values count as absent (§3.1).
#[derive(Default)]
struct TokenForm {
    grant_type: Option<String>,
    scope: Option<String>,
    resource: Vec<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    client_secret_len: usize,
}

impl TokenForm {
    fn parse(body: &[u8]) -> Result<Self, TokenError> {
        let mut form = Self::default();
        for (count, (name, value)) in form_urlencoded::parse(body).enumerate() {
            if count == MAX_PARAMS {
                return Err(TokenError::InvalidRequest("too many parameters".into()));
            }
            if value.is_empty() {
                continue;
            }
            let slot = match name.as_ref() {
                "grant_type" => &mut form.grant_type,
                "scope" => &mut form.scope,
                "client_id" => &mut form.client_id,
                "resource" => {
                    form.resource.push(value.into_owned());
                    continue;
                }
                "client_secret" => {
                    if form.client_secret.is_some() {
                        return Err(repeated("client_secret"));
                    }
                    form.client_secret_len = value.len();
                    form.client_secret = Some(SecretString::from(value.into_owned()));
                    continue;
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(repeated(&name));
            }
            *slot = Some(value.into_owned());
        }
        Ok(form)
    }
}

fn repeated(name: &str) -> TokenError {
    TokenError::InvalidRequest(format!("parameter {name} is repeated").into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthMethod {
    Basic,
    Post,
}

struct Credentials {
    method: AuthMethod,
    client_id: String,
    secret: SecretString,
    secret_len: usize,
}

impl Credentials {
    /// RFC 6749 §2.3.1: HTTP Basic (each half form-urlencoded) or the
    /// `client_id`/`client_secret` body parameters, never both.
    fn from_request(headers: &HeaderMap, form: &TokenForm) -> Result<Self, TokenError> {
        let mut authorizations = headers.get_all(header::AUTHORIZATION);
        let authorization = authorizations.next();
        if authorizations.next().is_some() {
            return Err(TokenError::InvalidRequest(
                "Authorization is repeated".into(),
            ));
        }
        match authorization {
            Some(value) => {
                let (client_id, secret) = parse_basic(value)?;
                if form.client_secret.is_some() {
                    return Err(TokenError::InvalidRequest(
                        "use one client authentication method: Basic or client_secret, not both"
                            .into(),
                    ));
                }
                if form.client_id.as_ref().is_some_and(|id| *id != client_id) {
                    return Err(TokenError::InvalidRequest(
                        "client_id does not match the Basic credentials".into(),
                    ));
                }
                Ok(Self {
                    method: AuthMethod::Basic,
                    client_id,
                    secret_len: secret.len(),
                    secret: SecretString::from(secret),
                })
            }
            None => match (&form.client_id, &form.client_secret) {
                (Some(client_id), Some(secret)) => Ok(Self {
                    method: AuthMethod::Post,
                    client_id: client_id.clone(),
                    secret: secret.clone(),
                    secret_len: form.client_secret_len,
                }),
                _ => Err(TokenError::InvalidClient {
                    challenge: true,
                    reason: "no client credentials",
                }),
            },
        }
    }
}

fn parse_basic(value: &HeaderValue) -> Result<(String, String), TokenError> {
    let malformed = || TokenError::InvalidRequest("malformed Basic credentials".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(TokenError::InvalidClient {
            challenge: true,
            reason: "unsupported authentication scheme",
        });
    }
    let encoded = encoded.trim();
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok((
        form_decode(id).ok_or_else(malformed)?,
        form_decode(secret).ok_or_else(malformed)?,
    ))
}

/// The source address the failure limits count: the peer, or behind a
/// trusted proxy the client it names (see [`crate::forwarded`]).
fn client_address(request: &HttpRequest, state: &AppState) -> Option<std::net::IpAddr> {
    let peer = request.peer_addr()?.ip();
    let forwarded_for = request.headers().get_all("x-forwarded-for");
    let forwarded_for = forwarded_for.filter_map(|v| v.to_str().ok());
    Some(state.trusted_proxies.client_address(peer, forwarded_for))
}

/// `application/x-www-form-urlencoded` decoding of one value.
fn form_decode(s: &str) -> Option<String> {
    let plus_as_space = if s.contains('+') {
        Cow::Owned(s.replace('+', " "))
    } else {
        Cow::Borrowed(s)
    };
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

fn granted_scope(client: &Client, requested: Option<&str>) -> Result<ScopeSet, TokenError> {
    let Some(requested) = requested else {
        return Ok(client.scopes.clone());
    };
    let requested = ScopeSet::parse(requested).map_err(|e| TokenError::InvalidScope(e.0.into()))?;
    if let Some(unknown) = requested.iter().find(|s| !client.scopes.contains(s)) {
        return Err(TokenError::InvalidScope(
            format!(
                "scope {} is not registered for this client",
                unknown.as_str()
            )
            .into(),
        ));
    }
    Ok(requested)
}

/// RFC 8707: one `resource` per token; absent means the client's default.
fn audience(client: &Client, resources: &[String]) -> Result<Audience, TokenError> {
    let requested = match resources {
        [] => {
            return client
                .default_audience()
                .cloned()
                .ok_or(TokenError::InvalidTarget(
                    "this client has no audience".into(),
                ));
        }
        [one] => one,
        _ => {
            return Err(TokenError::InvalidTarget(
                "one resource per token request".into(),
            ));
        }
    };
    let audience = Audience::parse(requested).map_err(|e| TokenError::InvalidTarget(e.0.into()))?;
    if !client.audiences.contains(&audience) {
        return Err(TokenError::InvalidTarget(
            "resource is not registered for this client".into(),
        ));
    }
    Ok(audience)
}

/// Runs the request parsers (form body, then client credentials) on
/// arbitrary input: the entry point of the `fuzz/` targets and of the corpus
/// test. Returns whether the input parsed as a token request.
#[doc(hidden)]
pub fn fuzz_parse_request(body: &[u8], authorization: Option<&[u8]>) -> bool {
    let Ok(form) = TokenForm::parse(body) else {
        return false;
    };
    let mut headers = HeaderMap::new();
    if let Some(value) = authorization.and_then(|a| HeaderValue::from_bytes(a).ok()) {
        headers.insert(header::AUTHORIZATION, value);
    }
    Credentials::from_request(&headers, &form).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn basic(raw: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw))).unwrap()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let (id, secret) = parse_basic(&basic("my%20client:p%3Ass+word")).unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret, "p:ss word");
    }

    #[test]
    fn basic_scheme_is_case_insensitive_and_other_schemes_are_not_basic() {
        let value = HeaderValue::from_str(&format!("bAsIc {}", STANDARD.encode("a:b"))).unwrap();
        assert!(parse_basic(&value).is_ok());
        let bearer = HeaderValue::from_static("Bearer abc");
        assert!(matches!(
            parse_basic(&bearer),
            Err(TokenError::InvalidClient { .. })
        ));
    }

    #[test]
    fn malformed_basic_is_invalid_request() {
        for raw in ["Basic", "Basic !!!", "Basic Zm9v"] {
            let value = HeaderValue::from_static(raw);
            assert!(
                matches!(parse_basic(&value), Err(TokenError::InvalidRequest(_))),
                "{raw}"
            );
        }
    }

    #[test]
    fn the_token_response_body_is_what_serde_json_writes() {
        #[derive(Serialize)]
        struct TokenResponse<'a> {
            access_token: &'a str,
            token_type: &'static str,
            expires_in: u32,
            scope: &'a str,
        }
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLV8";
        let cases = [
            (900, "read write"),
            (0, "a"),
            (u32::MAX, "x!#[]~"),
            (60, "q\"u\\o"),
        ];
        for (expires_in, scope) in cases {
            let expected = serde_json::to_vec(&TokenResponse {
                access_token: token,
                token_type: "Bearer",
                expires_in,
                scope,
            })
            .unwrap();
            let body = token_response_body(token, expires_in, scope).unwrap();
            assert_eq!(
                String::from_utf8(body).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn form_decoding_turns_plus_into_space_then_percent_decodes() {
        assert_eq!(form_decode("a+b%2Bc%20d").as_deref(), Some("a b+c d"));
        assert_eq!(form_decode("plain").as_deref(), Some("plain"));
        assert_eq!(form_decode("%FF"), None);
    }

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_ignored() {
        assert!(matches!(
            TokenForm::parse(b"grant_type=a&grant_type=b"),
            Err(TokenError::InvalidRequest(_))
        ));
        let form = TokenForm::parse(b"grant_type=client_credentials&scope=&x=1&x=2").unwrap();
        assert_eq!(form.grant_type.as_deref(), Some("client_credentials"));
        assert!(form.scope.is_none());
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let body = (0..40)
            .map(|i| format!("p{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(TokenForm::parse(body.as_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn form_parsing_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = TokenForm::parse(&body);
        }

        #[test]
        fn basic_parsing_never_panics(raw in "[ -~]{0,200}") {
            if let Ok(value) = HeaderValue::from_str(&raw) {
                let _ = parse_basic(&value);
            }
        }
    }
}
