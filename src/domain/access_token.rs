use serde::Serialize;

/// The claims of an access token (RFC 9068 §2.2), serialized in this field
/// order. The token endpoint signs these; the benchmarks sign the same.
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub jti: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
}
