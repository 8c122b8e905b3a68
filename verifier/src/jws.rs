//! Compact JWS (RFC 7515 §7.1) parsing, strict: a size cap before anything
//! else, exactly two dots, unpadded canonical base64url, a header with a
//! string `alg` and no `crit`. Nothing else of JWS is supported (no JSON
//! serialization, no JWE, no `zip`, no unencoded payloads).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::claims::{self, Claims};
use crate::error::{ErrorKind, Result};

/// Signature algorithms this crate verifies (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 to 8192 bits.
    RS256,
    /// ECDSA on P-256 with SHA-256 (fixed-size 64-byte signatures).
    ES256,
    /// Ed25519.
    EdDSA,
    /// HMAC-SHA-256, with secrets from configuration only (never a JWKS).
    HS256,
}

impl Algorithm {
    /// The JOSE name (`RS256`, `ES256`, `EdDSA`, `HS256`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
        }
    }

    /// Parses a JOSE name, case-sensitively as RFC 7515 requires. `none`
    /// and every other name give `None`.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            "EdDSA" => Some(Self::EdDSA),
            "HS256" => Some(Self::HS256),
            _ => None,
        }
    }
}

/// The parts of a JWS header this crate reads. `jku`, `x5u`, `jwk`, `x5c`
/// and every other parameter are ignored: keys come only from
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
}

impl Header {
    /// `alg`, as written in the token.
    pub fn alg(&self) -> &str {
        &self.alg
    }

    /// `kid`, if present.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// `typ`, if present.
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }
}

/// Borrowed view of the header while verifying: no allocation unless a
/// value contains escapes.
#[derive(Deserialize)]
pub(crate) struct RawHeader<'a> {
    #[serde(borrow)]
    pub(crate) alg: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) typ: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Present,
}

/// Records that a parameter is there, whatever its value (even `null`).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Self(true))
    }
}

/// The three segments of a compact JWS, still encoded.
pub(crate) struct Parts<'a> {
    pub(crate) header: &'a str,
    pub(crate) claims: &'a str,
    pub(crate) signature: &'a str,
    /// `header.claims`: the bytes the signature covers.
    pub(crate) signing_input: &'a str,
}

/// Checks the size, then splits on exactly two dots.
pub(crate) fn split(token: &str, max_bytes: usize) -> Result<Parts<'_>> {
    if token.len() > max_bytes {
        return Err(ErrorKind::TokenTooLarge.into());
    }
    let malformed = || ErrorKind::Malformed("a token has exactly three segments");
    let (header, rest) = token.split_once('.').ok_or_else(malformed)?;
    let (claims, signature) = rest.split_once('.').ok_or_else(malformed)?;
    if signature.contains('.') {
        return Err(malformed().into());
    }
    if header.is_empty() || claims.is_empty() || signature.is_empty() {
        return Err(ErrorKind::Malformed("a token segment is empty").into());
    }
    Ok(Parts {
        header,
        claims,
        signature,
        signing_input: token
            .get(..header.len() + 1 + claims.len())
            .unwrap_or_default(),
    })
}

/// Decodes unpadded, canonical base64url (RFC 7515 §2): `=` padding,
/// `+`/`/`, whitespace and non-zero trailing bits are all refused.
pub(crate) fn b64_decode(segment: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| ErrorKind::Malformed("a token segment is not base64url").into())
}

/// Decodes into `buffer`, returning the bytes written; for signatures,
/// whose size is bounded, to avoid an allocation.
pub(crate) fn b64_decode_into<'b>(segment: &str, buffer: &'b mut [u8]) -> Result<&'b [u8]> {
    match URL_SAFE_NO_PAD.decode_slice(segment, buffer) {
        Ok(len) => Ok(buffer.get(..len).unwrap_or_default()),
        Err(_) => Err(ErrorKind::Malformed("the signature is not base64url").into()),
    }
}

pub(crate) fn parse_raw_header(json: &[u8]) -> Result<RawHeader<'_>> {
    // RFC 7515 §4: a JSON object; serde would also take an array.
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(ErrorKind::Malformed("the header is not a JSON object").into());
    }
    let header: RawHeader<'_> = serde_json::from_slice(json)
        .map_err(|_| ErrorKind::Malformed("the header is not a valid JOSE header"))?;
    if header.crit.0 {
        return Err(ErrorKind::CriticalHeader.into());
    }
    Ok(header)
}

/// Decodes and parses a header segment.
pub(crate) fn parse_header(segment: &str) -> Result<Header> {
    let json = b64_decode(segment)?;
    let raw = parse_raw_header(&json)?;
    Ok(Header {
        alg: raw.alg.into_owned(),
        kid: raw.kid.map(Cow::into_owned),
        typ: raw.typ.map(Cow::into_owned),
    })
}

/// Decodes and parses a claims segment.
pub(crate) fn parse_claims(segment: &str) -> Result<Claims> {
    claims::from_json(&b64_decode(segment)?)
}

/// RFC 9068 §4: `typ` is `at+jwt`; the `application/` prefix may be present
/// (RFC 7515 §4.1.9), and media types compare case-insensitively.
pub(crate) fn is_access_token_type(typ: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => typ.get(12..).unwrap_or(""),
        _ => typ,
    };
    typ.eq_ignore_ascii_case("at+jwt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn split_requires_exactly_two_dots_and_the_size_cap() {
        assert!(split("a.b.c", 5).is_ok());
        assert_eq!(
            *split("a.b.c", 4).map(|_| ()).unwrap_err().kind(),
            ErrorKind::TokenTooLarge
        );
        for bad in ["a.b", "a.b.c.d", "abc", "..", "a..c", ".b.c", "a.b."] {
            assert!(
                matches!(
                    split(bad, 100).map(|_| ()).unwrap_err().kind(),
                    ErrorKind::Malformed(_)
                ),
                "{bad}"
            );
        }
        let parts = split("hh.cc.ss", 100).unwrap();
        assert_eq!(
            (
                parts.header,
                parts.claims,
                parts.signature,
                parts.signing_input
            ),
            ("hh", "cc", "ss", "hh.cc")
        );
    }

    #[test]
    fn base64_must_be_unpadded_url_safe_and_canonical() {
        assert_eq!(b64_decode("YQ").unwrap(), b"a");
        for bad in ["YQ==", "Y+", "Y/", "YQ ", "Y", "YR"] {
            assert!(b64_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_with_crit_or_without_alg_is_refused_and_keys_in_it_are_ignored() {
        let header = parse_header(&b64(r#"{"alg":"RS256","kid":"k","typ":"at+jwt","jku":"https://evil","jwk":{"kty":"oct"},"x5c":["x"]}"#)).unwrap();
        assert_eq!(
            (header.alg(), header.kid(), header.typ()),
            ("RS256", Some("k"), Some("at+jwt"))
        );
        let crit = parse_header(&b64(r#"{"alg":"RS256","crit":["exp"]}"#));
        assert_eq!(*crit.unwrap_err().kind(), ErrorKind::CriticalHeader);
        let crit = parse_header(&b64(r#"{"alg":"RS256","crit":null}"#));
        assert_eq!(*crit.unwrap_err().kind(), ErrorKind::CriticalHeader);
        for bad in [
            r#"{"kid":"k"}"#,
            r#"{"alg":1}"#,
            r#"{"alg":"RS256","alg":"none"}"#,
            "[]",
            "{",
            r#"{"alg":"RS256","kid":7}"#,
        ] {
            assert!(
                matches!(
                    parse_header(&b64(bad)).unwrap_err().kind(),
                    ErrorKind::Malformed(_)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn typ_accepts_both_spellings_case_insensitively() {
        for good in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(is_access_token_type(good), "{good}");
        }
        for bad in [
            "JWT",
            "at+jwt ",
            "application/jwt",
            "applicationXat+jwt",
            "",
            "application/",
        ] {
            assert!(!is_access_token_type(bad), "{bad}");
        }
    }

    #[test]
    fn algorithms_round_trip_and_none_is_unknown() {
        for alg in [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::HS256,
        ] {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
        }
        for bad in ["none", "None", "rs256", "RS384", "PS256", ""] {
            assert_eq!(Algorithm::from_name(bad), None);
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics_on_arbitrary_strings(s in ".{0,300}") {
            let _ = crate::dangerous::decode_unverified(&s, 8192);
        }

        #[test]
        fn parsing_never_panics_on_dotted_base64ish_input(
            a in "[A-Za-z0-9_=+/-]{0,80}", b in "[A-Za-z0-9_=+/-]{0,200}", c in "[A-Za-z0-9_=.-]{0,100}"
        ) {
            let _ = crate::dangerous::decode_unverified(&format!("{a}.{b}.{c}"), 8192);
        }

        #[test]
        fn parsing_never_panics_on_arbitrary_json_segments(h in "\\PC{0,60}", c in "\\PC{0,120}") {
            let token = format!("{}.{}.c2ln", b64(&h), b64(&c));
            let _ = crate::dangerous::decode_unverified(&token, 8192);
        }
    }
}
