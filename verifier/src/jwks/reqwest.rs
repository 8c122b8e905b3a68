//! The default [`Fetch`]: reqwest (feature `reqwest`, on by default).

use std::time::Duration;

use url::Url;

use super::{BoxFuture, Fetch, FetchError, FetchedJwks};
use crate::error::{Error, ErrorKind, Result};

/// The default [`Fetch`]: a `reqwest` client built once per cache.
///
/// HTTP/1.1; `https` through rustls with the aws-lc-rs provider and the
/// platform's certificate verifier. Redirects are not followed (a JWKS URL
/// that redirects is a configuration error to fix, not to paper over).
#[derive(Debug, Clone)]
pub struct ReqwestFetcher {
    client: reqwest::Client,
    max_body_bytes: usize,
}

impl ReqwestFetcher {
    /// A client with this overall request timeout and body size limit.
    pub fn new(timeout: Duration, max_body_bytes: usize) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("warrant-verifier/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::InvalidConfiguration("cannot build the HTTP client"),
                    e,
                )
            })?;
        Ok(Self::with_client(client, max_body_bytes))
    }

    /// Uses `client` (your proxy, TLS roots, timeouts).
    pub fn with_client(client: reqwest::Client, max_body_bytes: usize) -> Self {
        Self {
            client,
            max_body_bytes,
        }
    }
}

impl Fetch for ReqwestFetcher {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<FetchedJwks, FetchError>> {
        Box::pin(async move {
            // The cache hands over the serialization of the URL it parsed
            // and checked; the WHATWG parser reads it back as the same URL.
            let url = Url::parse(url)?;
            let mut response = self
                .client
                .get(url)
                .header(
                    reqwest::header::ACCEPT,
                    "application/jwk-set+json, application/json",
                )
                .send()
                .await?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("JWKS endpoint answered {status}").into());
            }
            let cache_control = response
                .headers()
                .get(reqwest::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > self.max_body_bytes {
                    return Err(format!("JWKS larger than {} bytes", self.max_body_bytes).into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(FetchedJwks {
                body,
                cache_control,
            })
        })
    }
}
