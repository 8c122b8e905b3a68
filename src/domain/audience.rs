use std::fmt;
use std::sync::Arc;

use super::ParseError;

/// A resource server identifier: an absolute URI without a fragment
/// (RFC 8707 §2), at most 512 characters of visible ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Audience(Arc<str>);

impl Audience {
    pub const MAX_LEN: usize = 512;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError("resource is empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(ParseError("resource is longer than 512 characters"));
        }
        if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ParseError("resource has characters outside visible ASCII"));
        }
        if s.contains('#') {
            return Err(ParseError("resource must not have a fragment"));
        }
        // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(ParseError("resource must be an absolute URI"));
        };
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok || rest.is_empty() {
            return Err(ParseError("resource must be an absolute URI"));
        }
        Ok(Self(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when both hold the very same string (not only equal ones).
    pub fn shares_with(&self, other: &Audience) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn absolute_uris_are_audiences() {
        for ok in [
            "https://api.example.com",
            "urn:bench:api",
            "https://x/y?z=1",
        ] {
            assert!(Audience::parse(ok).is_ok(), "{ok} rejected");
        }
    }

    #[test]
    fn relative_fragmented_and_spaced_values_are_not() {
        for bad in [
            "",
            "api",
            "/path",
            "https://x/#frag",
            "1http://x",
            "https:",
            "a b:c",
        ] {
            assert!(Audience::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = Audience::parse(&s);
        }
    }
}
