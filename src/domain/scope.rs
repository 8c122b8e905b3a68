use std::fmt;
use std::sync::Arc;

use super::ParseError;

/// One scope token, RFC 6749 §3.3: `1*( %x21 / %x23-5B / %x5D-7E )`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl Scope {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError("scope token is empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(ParseError("scope token is longer than 128 characters"));
        }
        let allowed = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
        if !s.bytes().all(allowed) {
            return Err(ParseError(
                "scope token has a character RFC 6749 section 3.3 does not allow",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A non-empty list of distinct scopes in the order first given, kept as
/// the space-delimited string of RFC 6749 §3.3: what tokens and responses
/// carry, ready to copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeSet(Arc<str>);

impl ScopeSet {
    pub const MAX_SCOPES: usize = 64;

    /// Parses the `scope` syntax strictly: tokens separated by single spaces.
    /// Repeated tokens are kept once.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError("scope is empty"));
        }
        let mut scopes: Vec<&str> = Vec::new();
        for token in s.split(' ') {
            if token.is_empty() {
                return Err(ParseError(
                    "scope tokens must be separated by single spaces",
                ));
            }
            let scope = Scope::parse(token)?;
            if !scopes.contains(&scope.as_str()) {
                if scopes.len() == Self::MAX_SCOPES {
                    return Err(ParseError("more than 64 scopes"));
                }
                scopes.push(token);
            }
        }
        Ok(Self(scopes.join(" ").into()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ')
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// True when every scope of `self` is in `other`.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.iter().all(|s| other.contains(s))
    }

    /// The scopes separated by single spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when both hold the very same string (not only equal ones).
    pub fn shares_with(&self, other: &ScopeSet) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotes_backslashes_spaces_and_controls_are_not_scope_characters() {
        for bad in ["a\"b", "a\\b", "a\tb", "é", "\u{7f}"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Scope::parse("read:all/x[1]~").is_ok());
    }

    #[test]
    fn scope_sets_need_single_spaces_and_drop_repeats() {
        assert!(ScopeSet::parse("").is_err());
        assert!(ScopeSet::parse(" read").is_err());
        assert!(ScopeSet::parse("read  write").is_err());
        assert!(ScopeSet::parse("read ").is_err());
        let set = ScopeSet::parse("read write read").unwrap();
        assert_eq!(set.to_string(), "read write");
    }

    #[test]
    fn subset_checks_every_scope() {
        let registered = ScopeSet::parse("a b c").unwrap();
        assert!(ScopeSet::parse("c a").unwrap().is_subset_of(&registered));
        assert!(!ScopeSet::parse("a d").unwrap().is_subset_of(&registered));
    }

    #[test]
    fn more_than_64_distinct_scopes_are_rejected() {
        let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        assert!(ScopeSet::parse(&many.join(" ")).is_err());
        assert!(ScopeSet::parse(&many[..64].join(" ")).is_ok());
    }

    proptest! {
        #[test]
        fn display_round_trips(tokens in proptest::collection::vec("[!#-\\[\\]-~]{1,20}", 1..10)) {
            let set = ScopeSet::parse(&tokens.join(" ")).unwrap();
            let again = ScopeSet::parse(&set.to_string()).unwrap();
            prop_assert_eq!(set, again);
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = ScopeSet::parse(&s);
        }
    }
}
