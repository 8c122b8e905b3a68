//! actix-web support (feature `actix`): the [`BearerAuth`] middleware and
//! the [`Claims`] extractor, answering as RFC 6750 §3 says.
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, web};
//! use warrant_verifier::actix::BearerAuth;
//! use warrant_verifier::{Claims, Verifier};
//!
//! fn routes(verifier: Verifier) -> App<impl actix_web::dev::ServiceFactory<
//!     actix_web::dev::ServiceRequest, Config = (), Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
//!     Error = actix_web::Error, InitError = ()>> {
//!     App::new().service(
//!         web::resource("/orders")
//!             .wrap(BearerAuth::new(verifier).require_all_scopes(&["orders:read"]))
//!             .route(web::get().to(|claims: Claims| async move {
//!                 HttpResponse::Ok().body(format!("hello {}", claims.client_id()))
//!             })),
//!     )
//! }
//! ```
//!
//! | request | answer |
//! |---|---|
//! | no `Authorization`, or another scheme | 401, `WWW-Authenticate: Bearer realm="…"` |
//! | `Authorization: Bearer` with no token, a token with forbidden characters, several `Authorization` headers | 400, `Bearer realm="…", error="invalid_request", error_description="…"` |
//! | a token that does not verify | 401, `Bearer realm="…", error="invalid_token", error_description="…"` |
//! | a valid token without the route's scopes | 403, `Bearer realm="…", error="insufficient_scope", error_description="…", scope="…"` |
//! | no usable key (JWKS never fetched, or stale beyond bounds): [`Error::is_unavailable`](crate::Error::is_unavailable) | 503 with `Retry-After`, never 500 |
//!
//! Error bodies are JSON `{"error", "error_description"}`; descriptions
//! never carry internal details.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, ResponseError, web};

use crate::claims::Claims;
use crate::verifier::Verifier;

mod refusal;

pub use self::refusal::BearerError;

/// The realm named in challenges unless [`BearerAuth::realm`] sets another.
pub const DEFAULT_REALM: &str = "api";

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Middleware that lets a request through only with a valid bearer token,
/// whose [`Claims`] it puts in the request extensions (take them with the
/// `Claims` extractor).
///
/// Wrap an `App`, a `scope` or a `resource`; give each route its required
/// scopes with [`require_all_scopes`](Self::require_all_scopes) or
/// [`require_any_scope`](Self::require_any_scope).
#[derive(Clone)]
pub struct BearerAuth {
    config: Rc<Config>,
}

#[derive(Clone)]
struct Config {
    verifier: Verifier,
    realm: Arc<str>,
    scopes: Vec<String>,
    all: bool,
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("realm", &self.config.realm)
            .field("scopes", &self.config.scopes)
            .field("all", &self.config.all)
            .finish_non_exhaustive()
    }
}

impl BearerAuth {
    /// Requires a valid token, with no particular scope.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            config: Rc::new(Config {
                verifier,
                realm: DEFAULT_REALM.into(),
                scopes: Vec::new(),
                all: true,
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = Rc::unwrap_or_clone(self.config);
        change(&mut config);
        Self {
            config: Rc::new(config),
        }
    }

    /// The `realm` of the challenges. Default: [`DEFAULT_REALM`].
    pub fn realm(self, realm: &str) -> Self {
        self.with(|c| c.realm = realm.into())
    }

    /// Requires every one of `scopes` (403 `insufficient_scope` otherwise).
    pub fn require_all_scopes(self, scopes: &[&str]) -> Self {
        self.with(|c| {
            c.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
            c.all = true;
        })
    }

    /// Requires at least one of `scopes` (403 `insufficient_scope` otherwise).
    pub fn require_any_scope(self, scopes: &[&str]) -> Self {
        self.with(|c| {
            c.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
            c.all = false;
        })
    }
}

impl Config {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, BearerError> {
        let token = bearer_token(headers).map_err(|e| e.realm(&self.realm))?;
        let claims = self
            .verifier
            .verify(token)
            .await
            .map_err(|e| BearerError::new(&e).realm(&self.realm))?;
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        let granted = if self.all {
            claims.require_all_scopes(&scopes)
        } else {
            claims.require_any_scope(&scopes)
        };
        granted.map_err(|e| {
            let mut error = BearerError::new(&e).realm(&self.realm);
            error.scope = Some(self.scopes.join(" "));
            error
        })?;
        Ok(claims)
    }
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1).
fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(BearerError::no_token());
    };
    if values.next().is_some() {
        return Err(BearerError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| BearerError::invalid_request("the Authorization header is not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme: for this resource, no bearer token was offered.
        return Err(BearerError::no_token());
    }
    let token = rest.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(BearerError::invalid_request(
            "the Authorization header is not `Bearer <token>`",
        ));
    }
    Ok(token)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

impl<S, B> Transform<S, ServiceRequest> for BearerAuth
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = BearerAuthMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BearerAuthMiddleware {
            service: Rc::new(service),
            config: Rc::clone(&self.config),
        }))
    }
}

/// The service [`BearerAuth`] wraps around yours.
pub struct BearerAuthMiddleware<S> {
    service: Rc<S>,
    config: Rc<Config>,
}

impl<S> fmt::Debug for BearerAuthMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthMiddleware")
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for BearerAuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let config = Rc::clone(&self.config);
        Box::pin(async move {
            let outcome = config.authenticate(request.headers()).await;
            match outcome {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    service
                        .call(request)
                        .await
                        .map(ServiceResponse::map_into_left_body)
                }
                Err(error) => Ok(request
                    .into_response(error.error_response())
                    .map_into_right_body()),
            }
        })
    }
}

/// Takes the [`Claims`] that [`BearerAuth`] verified. On a route without
/// the middleware, verifies the bearer token itself with the [`Verifier`]
/// registered as app data (`App::app_data(verifier)` or `web::Data<Verifier>`),
/// with no scope requirement.
impl FromRequest for Claims {
    type Error = BearerError;
    type Future = LocalBoxFuture<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(claims) = request.extensions().get::<Claims>() {
            let claims = claims.clone();
            return Box::pin(async move { Ok(claims) });
        }
        let verifier = request.app_data::<Verifier>().cloned().or_else(|| {
            request
                .app_data::<web::Data<Verifier>>()
                .map(|v| v.get_ref().clone())
        });
        let Some(verifier) = verifier else {
            tracing::error!(
                path = request.path(),
                "Claims extracted on a route with neither BearerAuth nor a Verifier in app data"
            );
            return Box::pin(async { Err(BearerError::no_token()) });
        };
        let request = request.clone();
        Box::pin(async move {
            let token = bearer_token(request.headers())?;
            verifier
                .verify(token)
                .await
                .map_err(|e| BearerError::new(&e))
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::StatusCode;
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_syntax_strict() {
        assert_eq!(bearer_token(&headers(&["Bearer a.b.c"])).unwrap(), "a.b.c");
        assert_eq!(
            bearer_token(&headers(&["bEaReR  a.b-_c="])).unwrap(),
            "a.b-_c="
        );
        assert_eq!(bearer_token(&headers(&[])).unwrap_err().code(), None);
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcjpwYXNz"]))
                .unwrap_err()
                .code(),
            None
        );
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer =abc",
            "Bearer a\"b",
        ] {
            let error = bearer_token(&headers(&[bad])).unwrap_err();
            assert_eq!(error.code(), Some("invalid_request"), "{bad}");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        }
        let twice = bearer_token(&headers(&["Bearer a", "Bearer b"])).unwrap_err();
        assert_eq!(twice.code(), Some("invalid_request"));
    }
}
