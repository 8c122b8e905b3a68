use std::fmt;
use std::sync::Arc;

use super::ParseError;

/// A client identifier: 1 to 128 visible ASCII characters (RFC 6749 Appendix A
/// allows VSCHAR; we leave out the space so ids survive shell and log use).
/// Shared, not copied, when cloned: the client maps key by it and the
/// client holds it too.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError("client_id is empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(ParseError("client_id is longer than 128 characters"));
        }
        if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ParseError("client_id has characters outside visible ASCII"));
        }
        Ok(Self(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_long_and_non_ascii_ids_are_rejected() {
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse(&"a".repeat(129)).is_err());
        assert!(ClientId::parse("a b").is_err());
        assert!(ClientId::parse("café").is_err());
        assert!(ClientId::parse("a\nb").is_err());
    }

    #[test]
    fn generated_style_ids_are_accepted() {
        let id = ClientId::parse("Zx-_09azAZ").unwrap();
        assert_eq!(id.as_str(), "Zx-_09azAZ");
    }

    proptest! {
        #[test]
        fn any_visible_ascii_string_up_to_128_round_trips(s in "[!-~]{1,128}") {
            let id = ClientId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = ClientId::parse(&s);
        }
    }
}
