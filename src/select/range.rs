//! `versions:` — a range of versions, in the syntax Cargo uses (and npm's
//! comparators share): comparators separated by commas, all of which must
//! hold (`>=1.20, <2`, `~1.25`, `^2.1`, `1.2.*`, `=1.25.3`).
//!
//! A range compares MAJOR.MINOR.PATCH only: which pre-release a tag may
//! carry is `compatibility`'s business, so `1.25.3-alpine` is in `>=1.20`
//! exactly when `1.25.3` is.

use std::fmt;

/// Longest range text accepted.
const MAX_TEXT: usize = 512;

/// Why a text is not a usable range.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error("is empty; write a range such as \">=1.20, <2\"")]
    Empty,
    #[error("a range of {0} characters is too long (at most {MAX_TEXT})")]
    TooLong(usize),
    #[error(
        "\"||\" (either of two ranges) is not supported: every comparator must hold; \
         mirror the other range in an image entry of its own, or widen this one"
    )]
    Either,
    #[error("hyphen ranges (\"A - B\") are not supported; write \">=A, <=B\"")]
    Hyphen,
    #[error("\"{text}\" is not a range such as \">=1.20, <2\": {source}")]
    Syntax { text: String, source: semver::Error },
    #[error(
        "\"{0}\": a range compares MAJOR.MINOR.PATCH only; which pre-release a tag \
         may carry is chosen by compatibility"
    )]
    PreRelease(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    text: String,
    req: semver::VersionReq,
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RangeError::Empty);
        }
        if text.len() > MAX_TEXT {
            return Err(RangeError::TooLong(text.len()));
        }
        if text.contains("||") {
            return Err(RangeError::Either);
        }
        if text.contains(" - ") {
            return Err(RangeError::Hyphen);
        }
        // semver's own words say what is wrong ("expected comma after ...")
        let req = semver::VersionReq::parse(text).map_err(|source| RangeError::Syntax {
            text: text.to_string(),
            source,
        })?;
        if req.comparators.iter().any(|c| !c.pre.is_empty()) {
            return Err(RangeError::PreRelease(text.to_string()));
        }
        Ok(Range {
            text: text.to_string(),
            req,
        })
    }

    /// Whether the version's MAJOR.MINOR.PATCH is in the range.
    pub fn contains(&self, v: &semver::Version) -> bool {
        self.req.matches(&semver::Version::new(v.major, v.minor, v.patch))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> semver::Version {
        crate::version::Version::parse(s).unwrap().semver
    }

    #[test]
    fn the_operators_people_know() {
        let r = Range::parse(">=1.20, <2").unwrap();
        assert!(r.contains(&v("1.20")));
        assert!(r.contains(&v("1.27.3")));
        assert!(!r.contains(&v("1.19.9")));
        assert!(!r.contains(&v("2.0.0")));
        let tilde = Range::parse("~1.25").unwrap();
        assert!(tilde.contains(&v("1.25.4")) && !tilde.contains(&v("1.26.0")));
        let caret = Range::parse("^2.1").unwrap();
        assert!(caret.contains(&v("2.9.0")) && !caret.contains(&v("3.0.0")) && !caret.contains(&v("2.0.9")));
        let star = Range::parse("1.2.*").unwrap();
        assert!(star.contains(&v("1.2.7")) && !star.contains(&v("1.3.0")));
    }

    #[test]
    fn a_pre_release_is_compared_by_its_numbers() {
        let r = Range::parse(">=1.20, <2").unwrap();
        assert!(r.contains(&v("1.25.3-alpine")));
        assert!(!r.contains(&v("2.0.0-alpine")));
    }

    #[test]
    fn what_is_not_a_range_is_named() {
        assert!(Range::parse("").unwrap_err().to_string().contains("is empty"));
        assert!(Range::parse(">=1 || <0.5").unwrap_err().to_string().contains("\"||\""));
        assert!(Range::parse("1.2 - 1.4").unwrap_err().to_string().contains(">=A, <=B"));
        assert!(
            Range::parse(">=1.2 <2")
                .unwrap_err()
                .to_string()
                .contains("expected comma")
        );
        assert!(
            Range::parse(">=1.2.0-rc.1")
                .unwrap_err()
                .to_string()
                .contains("compatibility")
        );
        assert!(
            Range::parse("latest")
                .unwrap_err()
                .to_string()
                .contains("is not a range")
        );
    }

    // ---- a reference: every comparator as a half-open interval of
    // (MAJOR, MINOR, PATCH), written from Cargo's documentation ----

    type V = (u64, u64, u64);

    /// `[lo, hi)`; `hi` None is unbounded.
    fn interval(op: &str, major: u64, minor: Option<u64>, patch: Option<u64>) -> (V, Option<V>) {
        let lo = (major, minor.unwrap_or(0), patch.unwrap_or(0));
        // the next value past what was written: 1 -> 2.0.0, 1.2 -> 1.3.0, 1.2.3 -> 1.2.4
        let past = match (minor, patch) {
            (None, _) => (major + 1, 0, 0),
            (Some(m), None) => (major, m + 1, 0),
            (Some(m), Some(p)) => (major, m, p + 1),
        };
        match op {
            "=" | "*" => (lo, Some(past)),
            ">" => (past, None),
            ">=" => (lo, None),
            "<" => ((0, 0, 0), Some(lo)),
            "<=" => ((0, 0, 0), Some(past)),
            "~" => match minor {
                None => (lo, Some((major + 1, 0, 0))),
                Some(m) => (lo, Some((major, m + 1, 0))),
            },
            "^" | "" => {
                let hi = match (major, minor, patch) {
                    (0, None, _) => (1, 0, 0),
                    (0, Some(0), None) => (0, 1, 0),
                    (0, Some(0), Some(p)) => (0, 0, p + 1),
                    (0, Some(m), _) => (0, m + 1, 0),
                    (n, _, _) => (n + 1, 0, 0),
                };
                (lo, Some(hi))
            }
            _ => unreachable!("{op}"),
        }
    }

    fn comparator() -> impl Strategy<Value = (String, (V, Option<V>))> {
        let op = prop_oneof![
            Just(""),
            Just("="),
            Just(">"),
            Just(">="),
            Just("<"),
            Just("<="),
            Just("~"),
            Just("^"),
            Just("*")
        ];
        (
            op,
            0u64..4,
            proptest::option::of(0u64..4),
            proptest::option::of(0u64..4),
        )
            .prop_map(|(op, major, minor, patch)| {
                let patch = minor.and(patch);
                if op == "*" {
                    // a wildcard in place of what is not written: 1.* or 1.2.*
                    let (minor, patch) = (minor, None);
                    let text = match minor {
                        None => format!("{major}.*"),
                        Some(m) => format!("{major}.{m}.*"),
                    };
                    return (text, interval("*", major, minor, patch));
                }
                let mut text = format!("{op}{major}");
                if let Some(m) = minor {
                    text.push_str(&format!(".{m}"));
                }
                if let Some(p) = patch {
                    text.push_str(&format!(".{p}"));
                }
                (text, interval(op, major, minor, patch))
            })
    }

    proptest! {
        #[test]
        fn ranges_agree_with_the_reference(
            comparators in proptest::collection::vec(comparator(), 1..4),
            versions in proptest::collection::vec((0u64..5, 0u64..5, 0u64..5), 1..20),
        ) {
            let text = comparators.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(", ");
            let range = Range::parse(&text).unwrap();
            for (a, b, c) in versions {
                let expected = comparators
                    .iter()
                    .all(|(_, (lo, hi))| (a, b, c) >= *lo && hi.is_none_or(|hi| (a, b, c) < hi));
                prop_assert_eq!(
                    range.contains(&semver::Version::new(a, b, c)),
                    expected,
                    "{} on {}.{}.{}", text, a, b, c
                );
            }
        }
    }
}
