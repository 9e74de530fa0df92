//! `include` / `exclude`: regular expressions matched against the whole tag.

use std::fmt;

/// Longest pattern accepted, and the most memory its compiled form may take:
/// a config is the operator's own, but a typo should not cost minutes.
const MAX_TEXT: usize = 1024;
const MAX_COMPILED: usize = 1 << 20;

/// Why a text is not a usable tag pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("an empty pattern matches no tag; remove it, or write \".*\" for every tag")]
    Empty,
    #[error("a pattern of {0} characters is too long (at most {MAX_TEXT})")]
    TooLong(usize),
    /// What is wrong, and where (from the regex parser).
    #[error("invalid regular expression \"{text}\": {why}")]
    Invalid { text: String, why: String },
}

/// One tag pattern, anchored at both ends: `1\.2.*` matches `1.2.3`, not
/// `v1.2.3` (write `v?1\.2.*` for both).
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    re: regex::Regex,
}

impl Pattern {
    /// Compiles a pattern; the error says what is wrong and where, in words
    /// a config file can show next to its line and column.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > MAX_TEXT {
            return Err(PatternError::TooLong(text.len()));
        }
        let invalid = |why: String| PatternError::Invalid {
            text: text.to_string(),
            why,
        };
        if let Err(e) = regex_syntax::Parser::new().parse(text) {
            let (kind, span) = match &e {
                regex_syntax::Error::Parse(p) => (p.kind().to_string(), *p.span()),
                regex_syntax::Error::Translate(t) => (t.kind().to_string(), *t.span()),
                other => return Err(invalid(other.to_string())),
            };
            return Err(invalid(format!("{kind} (at character {})", span.start.column)));
        }
        let re = regex::RegexBuilder::new(&format!("^(?:{text})$"))
            .size_limit(MAX_COMPILED)
            .build()
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => invalid("too large once compiled; simplify it".into()),
                other => invalid(other.to_string()),
            })?;
        Ok(Pattern {
            text: text.to_string(),
            re,
        })
    }

    /// Whether the whole tag matches.
    pub fn matches(&self, tag: &str) -> bool {
        self.re.is_match(tag)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_matches_the_whole_tag() {
        let p = Pattern::parse(r"1\.2.*").unwrap();
        assert!(p.matches("1.2"));
        assert!(p.matches("1.2.3-alpine"));
        assert!(!p.matches("v1.2.3"), "anchored at the start");
        let p = Pattern::parse("alpine|slim").unwrap();
        assert!(p.matches("slim"));
        assert!(!p.matches("1.2-alpine"), "anchored at the end, alternatives included");
    }

    #[test]
    fn an_invalid_pattern_says_what_and_where() {
        assert_eq!(
            Pattern::parse("1.(2").unwrap_err().to_string(),
            "invalid regular expression \"1.(2\": unclosed group (at character 3)"
        );
        assert_eq!(
            Pattern::parse("*-rc").unwrap_err().to_string(),
            "invalid regular expression \"*-rc\": repetition operator missing expression (at character 1)"
        );
        assert!(Pattern::parse("").unwrap_err().to_string().contains("empty pattern"));
        assert!(
            Pattern::parse(&"a".repeat(2000))
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
        assert!(
            Pattern::parse(r"\w{1000}\w{1000}")
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }
}
