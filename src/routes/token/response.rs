//! The RFC 6749 §5.1 answer to a granted request.

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};

/// Token answers, granted or refused, are never cached (RFC 6749 §5.1).
pub fn no_store(response: &mut actix_web::HttpResponseBuilder) {
    response
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
}

/// `200` with the token response body.
pub fn token_response(
    access_token: &str,
    expires_in: u32,
    scope: &str,
) -> serde_json::Result<HttpResponse> {
    let body = token_response_body(access_token, expires_in, scope)?;
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(body))
}

/// The response body: exactly the bytes serde_json writes for
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

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
}
