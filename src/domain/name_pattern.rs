use super::ParseError;

/// What `client list --name` matches: client names containing the pattern,
/// ignoring ASCII case; `*` stands for any run of characters, and a pattern
/// with a `*` must match the whole name (`orders*`: names starting with
/// "orders"). Every other character, `%` and `_` included, is literal.
///
/// Held as a SQL LIKE pattern with `\` as its escape character, so both
/// backends match alike: bind it to `lower(name) LIKE ? ESCAPE '\'` (on
/// PostgreSQL under the "C" collation, whose `lower` folds ASCII only, as
/// SQLite's does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    like: String,
}

impl NamePattern {
    /// As long as a name may be.
    pub const MAX_LEN: usize = 200;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() {
            return Err(ParseError("the name pattern is empty"));
        }
        if s.len() > Self::MAX_LEN {
            return Err(ParseError("the name pattern is longer than 200 bytes"));
        }
        if s.chars().any(char::is_control) {
            return Err(ParseError("the name pattern has control characters"));
        }
        let mut like = String::with_capacity(s.len() + 2);
        let whole_name = s.contains('*');
        if !whole_name {
            like.push('%');
        }
        for c in s.chars() {
            match c {
                '*' => like.push('%'),
                '%' | '_' | '\\' => {
                    like.push('\\');
                    like.push(c);
                }
                c => like.push(c.to_ascii_lowercase()),
            }
        }
        if !whole_name {
            like.push('%');
        }
        Ok(Self { like })
    }

    /// The LIKE pattern, lowercased (ASCII), escaped with `\`.
    pub fn like_pattern(&self) -> &str {
        &self.like
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn like(s: &str) -> String {
        NamePattern::parse(s).unwrap().like_pattern().to_owned()
    }

    #[test]
    fn a_pattern_without_a_star_matches_anywhere_in_the_name() {
        assert_eq!(like("orders"), "%orders%");
    }

    #[test]
    fn stars_match_any_characters_and_anchor_the_pattern_to_the_whole_name() {
        assert_eq!(like("orders*"), "orders%");
        assert_eq!(like("*-prod"), "%-prod");
        assert_eq!(like("a*b*c"), "a%b%c");
        assert_eq!(like("*"), "%");
    }

    #[test]
    fn like_wildcards_and_the_escape_character_are_literal() {
        assert_eq!(like("100%"), r"%100\%%");
        assert_eq!(like("a_b"), r"%a\_b%");
        assert_eq!(like(r"a\b"), r"%a\\b%");
        assert_eq!(like(r"\%_*"), r"\\\%\_%");
    }

    #[test]
    fn ascii_case_is_folded_and_other_letters_are_kept() {
        assert_eq!(like("Orders-API"), "%orders-api%");
        assert_eq!(like("École"), "%École%");
    }

    #[test]
    fn empty_long_and_control_patterns_are_rejected() {
        assert!(NamePattern::parse("").is_err());
        assert!(NamePattern::parse(&"a".repeat(201)).is_err());
        assert!(NamePattern::parse(&"a".repeat(200)).is_ok());
        assert!(NamePattern::parse("a\nb").is_err());
        assert!(NamePattern::parse("a\0b").is_err());
    }

    proptest! {
        #[test]
        fn no_unescaped_underscore_or_percent_comes_from_the_input(s in "[^*]{1,50}") {
            let Ok(pattern) = NamePattern::parse(&s) else { return Ok(()) };
            let like = pattern.like_pattern();
            // Between the two added '%', every '%', '_' and '\' is escaped.
            let inner = &like[1..like.len() - 1];
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => prop_assert!(matches!(chars.next(), Some('%' | '_' | '\\'))),
                    c => prop_assert!(c != '%' && c != '_'),
                }
            }
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = NamePattern::parse(&s);
        }
    }
}
