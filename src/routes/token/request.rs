//! Reading a token request: strictly, in a fixed order — Content-Type, body,
//! form, grant type, then client credentials (RFC 6749 §2.3.1, §4.4.2).

use std::borrow::Cow;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpMessage as _, HttpRequest, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use futures_util::StreamExt as _;
use secrecy::SecretString;

use super::TokenError;
use crate::credentials::{AuthFailure, AuthMethod, Credentials};
use crate::domain::ClientId;

/// More form parameters than this is not a token request.
const MAX_PARAMS: usize = 32;

/// A client credentials request, parsed: who the client says it is and
/// what it asks for.
pub struct TokenRequest {
    pub credentials: Credentials,
    /// The `scope` parameter; absent means all the client's scopes.
    pub scope: Option<String>,
    /// Every `resource` parameter (RFC 8707).
    pub resource: Vec<String>,
}

impl TokenRequest {
    pub async fn parse(
        request: &HttpRequest,
        body: web::Payload,
        max_body_bytes: usize,
    ) -> Result<Self, TokenError> {
        if !request
            .content_type()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        {
            return Err(TokenError::InvalidRequest(
                "Content-Type must be application/x-www-form-urlencoded".into(),
            ));
        }
        let body = read_body(request.headers(), body, max_body_bytes).await?;
        Self::from_form(request.headers(), TokenForm::parse(&body)?)
    }

    fn from_form(headers: &HeaderMap, form: TokenForm) -> Result<Self, TokenError> {
        match form.grant_type.as_deref() {
            None => return Err(TokenError::InvalidRequest("grant_type is required".into())),
            Some("client_credentials") => {}
            Some(_) => return Err(TokenError::UnsupportedGrantType),
        }
        let credentials = credentials(headers, &form)?;
        Ok(Self {
            credentials,
            scope: form.scope,
            resource: form.resource,
        })
    }

    pub fn client_id(&self) -> &ClientId {
        self.credentials.client_id()
    }
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

/// RFC 6749 §2.3.1: HTTP Basic (each half form-urlencoded) or the
/// `client_id`/`client_secret` body parameters, never both.
fn credentials(headers: &HeaderMap, form: &TokenForm) -> Result<Credentials, TokenError> {
    let mut authorizations = headers.get_all(header::AUTHORIZATION);
    let authorization = authorizations.next();
    if authorizations.next().is_some() {
        return Err(TokenError::InvalidRequest(
            "Authorization is repeated".into(),
        ));
    }
    let (method, client_id, secret) = match authorization {
        Some(value) => {
            let (client_id, secret) = parse_basic(value)?;
            if form.client_secret.is_some() {
                return Err(TokenError::InvalidRequest(
                    "use one client authentication method: Basic or client_secret, not both".into(),
                ));
            }
            if form.client_id.as_ref().is_some_and(|id| *id != client_id) {
                return Err(TokenError::InvalidRequest(
                    "client_id does not match the Basic credentials".into(),
                ));
            }
            (
                AuthMethod::ClientSecretBasic,
                Cow::Owned(client_id),
                SecretString::from(secret),
            )
        }
        None => match (&form.client_id, &form.client_secret) {
            (Some(client_id), Some(secret)) => (
                AuthMethod::ClientSecretPost,
                Cow::Borrowed(client_id.as_str()),
                secret.clone(),
            ),
            _ => return Err(AuthFailure::NoCredentials.into()),
        },
    };
    let client_id = ClientId::parse(&client_id).map_err(|_| AuthFailure::Malformed)?;
    Ok(Credentials::Secret {
        method,
        client_id,
        secret,
    })
}

fn parse_basic(value: &HeaderValue) -> Result<(String, String), TokenError> {
    let malformed = || TokenError::InvalidRequest("malformed Basic credentials".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthFailure::UnsupportedScheme.into());
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
    credentials(&headers, &form).is_ok()
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

    #[test]
    fn a_request_names_its_client_and_method() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, basic("c1:s"));
        let form = TokenForm::parse(b"grant_type=client_credentials&scope=a").unwrap();
        let request = TokenRequest::from_form(&headers, form).unwrap();
        assert_eq!(request.client_id().as_str(), "c1");
        assert_eq!(request.credentials.method(), AuthMethod::ClientSecretBasic);
        assert_eq!(request.scope.as_deref(), Some("a"));

        let form = TokenForm::parse(b"grant_type=client_credentials&client_id=c2&client_secret=s")
            .unwrap();
        let request = TokenRequest::from_form(&HeaderMap::new(), form).unwrap();
        assert_eq!(request.client_id().as_str(), "c2");
        assert_eq!(request.credentials.method(), AuthMethod::ClientSecretPost);

        let form = TokenForm::parse(b"grant_type=client_credentials").unwrap();
        assert!(matches!(
            TokenRequest::from_form(&HeaderMap::new(), form),
            Err(TokenError::InvalidClient(AuthFailure::NoCredentials))
        ));
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
