//! The claims of a verified access token (RFC 9068 §2.2), strictly typed.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{ErrorKind, Result};

/// The claims of an access token.
///
/// Returned by [`Verifier::verify`](crate::Verifier::verify) only after the
/// signature, issuer, audience and times have been checked. The registered
/// claims are typed; any other claim is in [`Claims::extra`].
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    nbf: Option<i64>,
    jti: String,
    client_id: String,
    scopes: Vec<String>,
    extra: Map<String, Value>,
}

impl Claims {
    /// `iss`: the issuer.
    pub fn issuer(&self) -> &str {
        &self.iss
    }

    /// `sub`: the subject (for client-credentials tokens, the client).
    pub fn subject(&self) -> &str {
        &self.sub
    }

    /// `aud`: the audiences (one element when the token has a string `aud`).
    pub fn audiences(&self) -> &[String] {
        &self.aud
    }

    /// `exp`: expiry, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.exp
    }

    /// `iat`: issue time, in seconds since the Unix epoch.
    pub fn issued_at(&self) -> i64 {
        self.iat
    }

    /// `nbf`: start of validity, in seconds since the Unix epoch, if present.
    pub fn not_before(&self) -> Option<i64> {
        self.nbf
    }

    /// `jti`: the token's unique identifier.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// `client_id`: the OAuth client the token was issued to.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The scopes granted: `scope` split on spaces (an array of strings is
    /// accepted too). Empty when the token has no `scope`.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// `Ok` when every scope in `required` was granted, else
    /// [`ErrorKind::InsufficientScope`]. An empty `required` always passes.
    pub fn require_all_scopes(&self, required: &[&str]) -> Result<()> {
        if required.iter().all(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(ErrorKind::InsufficientScope.into())
        }
    }

    /// `Ok` when at least one scope in `required` was granted, else
    /// [`ErrorKind::InsufficientScope`]. An empty `required` always passes.
    pub fn require_any_scope(&self, required: &[&str]) -> Result<()> {
        if required.is_empty() || required.iter().any(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(ErrorKind::InsufficientScope.into())
        }
    }

    /// Every claim that is not one of the registered ones above (`iss`,
    /// `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `client_id`, `scope`).
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

/// Parses a claims set in one pass: registered claims into their types (a
/// wrong type or a repeated claim is an error), anything else into `extra`.
pub(crate) fn from_json(bytes: &[u8]) -> Result<Claims> {
    const NOT_AN_OBJECT: ErrorKind = ErrorKind::Malformed("the claims are not a JSON object");
    let current = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let raw = match de.deserialize_map(ClaimsVisitor { current: &current }) {
        Ok(raw) => raw,
        // A registered claim of the wrong type: name it. Anything else
        // (bad syntax, truncation, not an object) is malformed JSON.
        Err(e) => {
            return Err(match (e.classify(), current.get()) {
                (serde_json::error::Category::Data, Some(name)) => ErrorKind::InvalidClaim(name),
                _ => NOT_AN_OBJECT,
            }
            .into());
        }
    };
    de.end().map_err(|_| NOT_AN_OBJECT)?;
    if let Some(problem) = raw.problem {
        return Err(problem.into());
    }
    raw.finish()
}

#[derive(Default)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Strings<false>>,
    exp: Option<NumericDate>,
    iat: Option<NumericDate>,
    nbf: Option<NumericDate>,
    jti: Option<String>,
    client_id: Option<String>,
    scopes: Option<Strings<true>>,
    extra: Map<String, Value>,
    /// The first claim found repeated.
    problem: Option<ErrorKind>,
}

impl RawClaims {
    fn finish(self) -> Result<Claims> {
        fn required<T>(value: Option<T>, name: &'static str) -> Result<T> {
            value.ok_or_else(|| ErrorKind::MissingClaim(name).into())
        }
        Ok(Claims {
            iss: required(self.iss, "iss")?,
            sub: required(self.sub, "sub")?,
            aud: required(self.aud, "aud")?.0,
            exp: required(self.exp, "exp")?.0,
            iat: required(self.iat, "iat")?.0,
            nbf: self.nbf.map(|d| d.0),
            jti: required(self.jti, "jti")?,
            client_id: required(self.client_id, "client_id")?,
            scopes: self.scopes.map(|s| s.0).unwrap_or_default(),
            extra: self.extra,
        })
    }
}

/// A claim name, matched without allocating for the registered ones.
enum Key {
    Iss,
    Sub,
    Aud,
    Exp,
    Iat,
    Nbf,
    Jti,
    ClientId,
    Scope,
    Other(String),
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "iss" => Key::Iss,
                    "sub" => Key::Sub,
                    "aud" => Key::Aud,
                    "exp" => Key::Exp,
                    "iat" => Key::Iat,
                    "nbf" => Key::Nbf,
                    "jti" => Key::Jti,
                    "client_id" => Key::ClientId,
                    "scope" => Key::Scope,
                    other => Key::Other(other.to_owned()),
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct ClaimsVisitor<'a> {
    /// The registered claim being read, to name it if its type is wrong.
    current: &'a Cell<Option<&'static str>>,
}

impl ClaimsVisitor<'_> {
    /// Reads the value of registered claim `name` into `slot`; a repeat is
    /// recorded as a problem (and the value skipped).
    fn read<'de, M, T>(
        &self,
        map: &mut M,
        slot: &mut Option<T>,
        name: &'static str,
        problem: &mut Option<ErrorKind>,
    ) -> Result<(), M::Error>
    where
        M: MapAccess<'de>,
        T: de::Deserialize<'de>,
    {
        if slot.is_some() {
            problem.get_or_insert(ErrorKind::InvalidClaim(name));
            map.next_value::<IgnoredAny>()?;
            return Ok(());
        }
        self.current.set(Some(name));
        *slot = Some(map.next_value::<T>()?);
        self.current.set(None);
        Ok(())
    }
}

impl<'de> Visitor<'de> for ClaimsVisitor<'_> {
    type Value = RawClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawClaims, M::Error> {
        let mut raw = RawClaims::default();
        let problem = &mut raw.problem;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Iss => self.read(&mut map, &mut raw.iss, "iss", problem)?,
                Key::Sub => self.read(&mut map, &mut raw.sub, "sub", problem)?,
                Key::Jti => self.read(&mut map, &mut raw.jti, "jti", problem)?,
                Key::ClientId => self.read(&mut map, &mut raw.client_id, "client_id", problem)?,
                Key::Aud => self.read(&mut map, &mut raw.aud, "aud", problem)?,
                Key::Scope => self.read(&mut map, &mut raw.scopes, "scope", problem)?,
                Key::Exp => self.read(&mut map, &mut raw.exp, "exp", problem)?,
                Key::Iat => self.read(&mut map, &mut raw.iat, "iat", problem)?,
                Key::Nbf => self.read(&mut map, &mut raw.nbf, "nbf", problem)?,
                Key::Other(name) => {
                    let value = map.next_value::<Value>()?;
                    if raw.extra.insert(name, value).is_some() {
                        problem.get_or_insert(ErrorKind::Malformed("a claim appears twice"));
                    }
                }
            }
        }
        Ok(raw)
    }
}

/// `aud` (RFC 7519 §4.1.3): a string or an array of strings. `scope` (with
/// `SPLIT`, RFC 9068 §2.2.3): a space-separated string, or an array of strings.
struct Strings<const SPLIT: bool>(Vec<String>);

impl<'de, const SPLIT: bool> de::Deserialize<'de> for Strings<SPLIT> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringsVisitor<const SPLIT: bool>;
        impl<'de, const SPLIT: bool> Visitor<'de> for StringsVisitor<SPLIT> {
            type Value = Strings<SPLIT>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Strings(if SPLIT {
                    v.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                } else {
                    vec![v.to_owned()]
                }))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut strings = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(s) = seq.next_element::<String>()? {
                    strings.push(s);
                }
                Ok(Strings(strings))
            }
        }
        deserializer.deserialize_any(StringsVisitor::<SPLIT>)
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds; fractions are
/// truncated toward the past. Strings, booleans, null are refused.
struct NumericDate(i64);

impl<'de> de::Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DateVisitor;
        impl Visitor<'_> for DateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                i64::try_from(v)
                    .map(NumericDate)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            #[allow(clippy::cast_possible_truncation)] // range checked just before
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                let n = v.floor();
                if (-9.0e15..=9.0e15).contains(&n) {
                    Ok(NumericDate(n as i64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
        }
        deserializer.deserialize_any(DateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Claims> {
        from_json(json.as_bytes())
    }

    const GOOD: &str = r#"{"iss":"https://i","sub":"c","aud":"https://a","exp":2000000000,"iat":1000000000,"jti":"j","client_id":"c","scope":"read  write","x":{"y":1}}"#;

    fn kind(json: &str) -> ErrorKind {
        parse(json).map(|_| ()).unwrap_err().into_kind()
    }

    #[test]
    fn registered_claims_are_typed_and_others_kept() {
        let claims = parse(GOOD).unwrap();
        assert_eq!(claims.issuer(), "https://i");
        assert_eq!(claims.audiences(), ["https://a"]);
        assert_eq!(claims.expires_at(), 2_000_000_000);
        assert_eq!(claims.scopes(), ["read", "write"]);
        assert_eq!(claims.extra()["x"]["y"], 1);
        assert!(claims.require_all_scopes(&["read", "write"]).is_ok());
        assert!(claims.require_all_scopes(&["read", "admin"]).is_err());
        assert!(claims.require_any_scope(&["admin", "write"]).is_ok());
        assert!(claims.require_any_scope(&["admin"]).is_err());
        assert!(claims.require_any_scope(&[]).is_ok());
    }

    #[test]
    fn arrays_are_accepted_for_aud_and_scope() {
        let claims = parse(
            &GOOD
                .replace(r#""aud":"https://a""#, r#""aud":["x","https://a"]"#)
                .replace(r#""scope":"read  write""#, r#""scope":["a","b"]"#),
        )
        .unwrap();
        assert_eq!(claims.audiences(), ["x", "https://a"]);
        assert_eq!(claims.scopes(), ["a", "b"]);
    }

    #[test]
    fn a_wrongly_typed_registered_claim_is_a_rejection_not_a_skip() {
        assert_eq!(
            kind(&GOOD.replace("2000000000", r#""2000000000""#)),
            ErrorKind::InvalidClaim("exp")
        );
        assert_eq!(
            kind(&GOOD.replace("1000000000", "null")),
            ErrorKind::InvalidClaim("iat")
        );
        assert_eq!(
            kind(&GOOD.replace(r#""https://i""#, "7")),
            ErrorKind::InvalidClaim("iss")
        );
        assert_eq!(
            kind(&GOOD.replace(r#""https://a""#, r#"["x",1]"#)),
            ErrorKind::InvalidClaim("aud")
        );
        assert_eq!(
            kind(&GOOD.replace(r#""j""#, r#"{"a":1}"#)),
            ErrorKind::InvalidClaim("jti")
        );
        assert_eq!(
            kind(&GOOD.replace(r#""read  write""#, "true")),
            ErrorKind::InvalidClaim("scope")
        );
        assert_eq!(
            kind(&GOOD.replace(r#""x":"#, r#""nbf":"soon","z":"#)),
            ErrorKind::InvalidClaim("nbf")
        );
    }

    #[test]
    fn missing_or_repeated_claims_are_refused() {
        assert_eq!(
            kind(&GOOD.replace(r#""exp":2000000000,"#, "")),
            ErrorKind::MissingClaim("exp")
        );
        assert_eq!(
            kind(&GOOD.replace(r#""jti":"j","#, "")),
            ErrorKind::MissingClaim("jti")
        );
        assert_eq!(
            kind(&GOOD.replace(r#""sub":"c","#, r#""exp":1,"sub":"c","#)),
            ErrorKind::InvalidClaim("exp")
        );
        assert!(matches!(
            kind(&GOOD.replace(r#""x":"#, r#""x":1,"x":"#)),
            ErrorKind::Malformed(_)
        ));
    }

    #[test]
    fn fractional_dates_are_truncated_and_junk_is_malformed() {
        let claims = parse(&GOOD.replace("2000000000", "2000000000.9")).unwrap();
        assert_eq!(claims.expires_at(), 2_000_000_000);
        assert_eq!(
            kind(&GOOD.replace("2000000000", "1e300")),
            ErrorKind::InvalidClaim("exp")
        );
        assert!(matches!(kind("[1,2]"), ErrorKind::Malformed(_)));
        assert!(matches!(kind("{"), ErrorKind::Malformed(_)));
        assert!(matches!(
            kind(&format!("{GOOD} x")),
            ErrorKind::Malformed(_)
        ));
    }
}
