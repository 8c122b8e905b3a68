//! Everything that weakens a check. Each use should be rare, deliberate and
//! easy to find in review: `grep dangerous`.

use crate::claims::Claims;
use crate::error::Result;
use crate::jws::{self, Header};
use crate::validation::Validation;

/// Accepts tokens whose header has no `typ`, or a `typ` other than
/// `at+jwt`, for issuers that mint plain JWTs as access tokens.
///
/// This opens the door to token confusion (RFC 8725 §3.11): an ID token or
/// any other JWT signed by the same keys, with the right `iss` and `aud`,
/// would pass as an access token.
pub fn accept_untyped_tokens(validation: &mut Validation) {
    validation.accept_untyped = true;
}

/// Decodes a token **without verifying anything** but its syntax: size cap
/// (`max_token_bytes`), compact serialization, header, and claim types.
///
/// No signature, issuer, audience or time check is made: never authorize
/// anything with the result. Useful to log or inspect a refused token.
pub fn decode_unverified(token: &str, max_token_bytes: usize) -> Result<(Header, Claims)> {
    let parts = jws::split(token, max_token_bytes)?;
    let header = jws::parse_header(parts.header)?;
    let claims = jws::parse_claims(parts.claims)?;
    Ok((header, claims))
}
