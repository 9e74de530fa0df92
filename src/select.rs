//! Pure tag selection: mode + filters + tag lists -> the tags to consider.
//!
//! No I/O here. Which of the selected tags are then copied, skipped or
//! replaced depends on the destination and is decided by the caller.

use std::collections::BTreeSet;
use std::fmt;

use crate::version::Version;

/// Which source tags a run mirrors (README: Configuration, modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Highest,
    Higher,
    Semver,
    All,
}

impl Mode {
    pub const NAMES: [&'static str; 4] = ["highest", "higher", "semver", "all"];

    /// Exact, lower-case names only.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "highest" => Some(Mode::Highest),
            "higher" => Some(Mode::Higher),
            "semver" => Some(Mode::Semver),
            "all" => Some(Mode::All),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Highest => "highest",
            Mode::Higher => "higher",
            Mode::Semver => "semver",
            Mode::All => "all",
        })
    }
}

/// The filters `compatibility` and `pinned-major` (README: Configuration);
/// ignored by [`Mode::All`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Keep only versions whose PRERELEASE is exactly this; `None` keeps only
    /// versions without PRERELEASE.
    pub compatibility: Option<String>,
    /// Keep only versions with this MAJOR.
    pub pinned_major: Option<u64>,
}

impl Filters {
    /// Whether a version passes the filters.
    pub fn accepts(&self, v: &Version) -> bool {
        let pre_ok = match &self.compatibility {
            Some(c) => v.prerelease() == c,
            None => v.prerelease().is_empty(),
        };
        pre_ok && self.pinned_major.is_none_or(|m| v.semver.major == m)
    }

    /// The tags of `tags` that are versions passing the filters, ascending.
    pub fn qualifying<'a>(&self, tags: impl IntoIterator<Item = &'a String>) -> Vec<Version> {
        let mut out: Vec<Version> = tags
            .into_iter()
            .filter_map(|t| {
                let v = Version::parse(t);
                if v.is_none() {
                    tracing::debug!(tag = %t, "not a version, ignored by semver modes");
                }
                v
            })
            .filter(|v| self.accepts(v))
            .collect();
        out.sort();
        // a registry lists each tag once, but a list may repeat one
        out.dedup_by(|a, b| a.tag == b.tag);
        out
    }
}

/// The source tags that `mode` selects, in a deterministic order: by version
/// for the semver modes, lexicographically for `all`.
pub fn select(mode: Mode, filters: &Filters, source: &[String], destination: &[String]) -> Vec<String> {
    match mode {
        Mode::All => {
            let set: BTreeSet<&String> = source.iter().collect();
            set.into_iter().cloned().collect()
        }
        Mode::Semver => filters.qualifying(source).into_iter().map(|v| v.tag).collect(),
        Mode::Highest => highest(filters.qualifying(source)),
        Mode::Higher => {
            let src = filters.qualifying(source);
            match filters.qualifying(destination).pop() {
                None => highest(src),
                Some(top) => src
                    .into_iter()
                    .filter(|v| v.semver > top.semver)
                    .map(|v| v.tag)
                    .collect(),
            }
        }
    }
}

/// Why no tag of a source that has tags qualifies for a semver mode: which
/// rule removed them, and for a `compatibility` that matches nothing the
/// nearest value that would. None when some tag qualifies (an empty
/// selection is then the destination being up to date), for `all`, and for
/// a source without tags.
pub fn why_nothing_qualifies(mode: Mode, filters: &Filters, source: &[String]) -> Option<String> {
    if mode == Mode::All || source.is_empty() || !filters.qualifying(source).is_empty() {
        return None;
    }
    let n = source.len();
    let tags = if n == 1 { "tag" } else { "tags" };
    let versions: Vec<Version> = source.iter().filter_map(|t| Version::parse(t)).collect();
    if versions.is_empty() {
        return Some(format!(
            "none of the source's {n} {tags} is a version (such as {}); `mode: all` mirrors tags that are not versions",
            some(source.iter().map(String::as_str))
        ));
    }
    let compatibles: BTreeSet<&str> = versions
        .iter()
        .map(Version::prerelease)
        .filter(|p| !p.is_empty())
        .collect();
    let matching: Vec<&Version> = match &filters.compatibility {
        Some(c) => versions.iter().filter(|v| v.prerelease() == c).collect(),
        None => versions.iter().filter(|v| v.prerelease().is_empty()).collect(),
    };
    if matching.is_empty() {
        return Some(match &filters.compatibility {
            Some(c) => {
                let mut why = format!(
                    "compatibility \"{c}\" matches none of the source's {n} {tags} ({} versions)",
                    versions.len()
                );
                let nearest = compatibles
                    .iter()
                    .min_by_key(|p| crate::model::edit_distance(c, p))
                    .filter(|p| crate::model::edit_distance(c, p) <= 2.max(c.chars().count() / 3));
                match nearest {
                    Some(p) => why.push_str(&format!("; did you mean \"{p}\"?")),
                    None if compatibles.is_empty() => {
                        why.push_str("; none of its versions has a pre-release: remove compatibility")
                    }
                    None => why.push_str(&format!("; its versions have {}", some(compatibles.iter().copied()))),
                }
                why
            }
            None => format!(
                "all {} versions among the source's {n} {tags} have a pre-release (such as {}); \
                 set compatibility to one of {}",
                versions.len(),
                some(versions.iter().map(|v| v.tag.as_str())),
                some(compatibles.iter().copied())
            ),
        });
    }
    let majors: BTreeSet<u64> = matching.iter().map(|v| v.semver.major).collect();
    match filters.pinned_major {
        Some(m) => Some(format!(
            "pinned-major {m} matches none of the source's {} qualifying versions: their majors are {}",
            matching.len(),
            some(majors.iter().map(|m| m.to_string()))
        )),
        None => Some(format!("none of the source's {n} {tags} qualifies")),
    }
}

/// Up to five items, quoted, then how many more.
fn some<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let all: Vec<String> = items.into_iter().map(|s| format!("\"{}\"", s.as_ref())).collect();
    match all.len() {
        0..=5 => all.join(", "),
        n => format!("{} and {} more", all[..5].join(", "), n - 5),
    }
}

/// The single highest version; among aliases the preferred tag (the maximum
/// of [`Version`]'s order).
fn highest(sorted: Vec<Version>) -> Vec<String> {
    sorted.into_iter().next_back().map(|v| v.tag).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_empty_selection_says_which_rule_removed_the_tags() {
        let src = tags(&["1.0.0-alpine", "1.1.0-alpine", "1.1.0-slim", "1.1.0", "2.0.0", "latest"]);
        let compat = |c: &str| Filters {
            compatibility: Some(c.into()),
            pinned_major: None,
        };
        assert_eq!(
            why_nothing_qualifies(Mode::Highest, &compat("alpnie"), &src).unwrap(),
            "compatibility \"alpnie\" matches none of the source's 6 tags (5 versions); did you mean \"alpine\"?"
        );
        assert_eq!(
            why_nothing_qualifies(Mode::Semver, &compat("bookworm"), &src).unwrap(),
            "compatibility \"bookworm\" matches none of the source's 6 tags (5 versions); its versions have \"alpine\", \"slim\""
        );
        let pinned = Filters {
            compatibility: None,
            pinned_major: Some(9),
        };
        assert_eq!(
            why_nothing_qualifies(Mode::Higher, &pinned, &src).unwrap(),
            "pinned-major 9 matches none of the source's 2 qualifying versions: their majors are \"1\", \"2\""
        );
        assert_eq!(
            why_nothing_qualifies(Mode::Highest, &none(), &tags(&["latest", "edge"])).unwrap(),
            "none of the source's 2 tags is a version (such as \"latest\", \"edge\"); `mode: all` mirrors tags that are not versions"
        );
        assert_eq!(
            why_nothing_qualifies(Mode::Highest, &none(), &tags(&["1.0-rc1", "1.1-rc1"])).unwrap(),
            "all 2 versions among the source's 2 tags have a pre-release (such as \"1.0-rc1\", \"1.1-rc1\"); set compatibility to one of \"rc1\""
        );
        // something qualifies (an up-to-date `higher` selects nothing, rightly)
        assert_eq!(why_nothing_qualifies(Mode::Higher, &none(), &src), None);
        assert_eq!(why_nothing_qualifies(Mode::All, &compat("x"), &src), None);
        assert_eq!(why_nothing_qualifies(Mode::Highest, &none(), &[]), None);
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn none() -> Filters {
        Filters::default()
    }

    const SOURCE: &[&str] = &[
        "latest",
        "1.0.0",
        "1.1.0",
        "1.2",
        "1.2.0",
        "v1.2.0",
        "2.0.0-rc1",
        "2.0.0-alpine",
        "1.9.0-alpine",
        "2.0.0",
        "20210101",
        "V3.0.0",
        "3.0.0.1",
        "2.1.0_x",
    ];

    #[test]
    fn highest_picks_one_preferred_tag() {
        assert_eq!(select(Mode::Highest, &none(), &tags(SOURCE), &[]), tags(&["2.0.0"]));
        let aliases = tags(&["1.2", "v1.2.0", "1.2.0", "1.1"]);
        assert_eq!(select(Mode::Highest, &none(), &aliases, &[]), tags(&["1.2.0"]));
        // more components written beats the missing `v`
        let aliases = tags(&["v1.2.0", "1.2"]);
        assert_eq!(select(Mode::Highest, &none(), &aliases, &[]), tags(&["v1.2.0"]));
        let aliases = tags(&["v1.2.0", "v1.2"]);
        assert_eq!(select(Mode::Highest, &none(), &aliases, &[]), tags(&["v1.2.0"]));
    }

    #[test]
    fn highest_of_nothing_is_nothing() {
        assert!(select(Mode::Highest, &none(), &tags(&["latest", "20210101"]), &[]).is_empty());
    }

    #[test]
    fn compatibility_is_an_exact_prerelease_match() {
        let f = Filters {
            compatibility: Some("alpine".into()),
            pinned_major: None,
        };
        let src = tags(&[
            "1.2.3-alpine",
            "1.2.4-alpine3.18",
            "1.2.5-alpine.1",
            "1.3.0",
            "1.1.0-alpine",
        ]);
        assert_eq!(
            select(Mode::Semver, &f, &src, &[]),
            tags(&["1.1.0-alpine", "1.2.3-alpine"])
        );
        assert_eq!(select(Mode::Highest, &f, &src, &[]), tags(&["1.2.3-alpine"]));
    }

    #[test]
    fn without_compatibility_only_plain_versions_qualify() {
        let src = tags(&["1.0.0-rc1", "1.0.0-beta.1", "1.0.0-slim", "0.9.0"]);
        assert_eq!(select(Mode::Semver, &none(), &src, &[]), tags(&["0.9.0"]));
    }

    #[test]
    fn pinned_major_keeps_one_major() {
        let f = Filters {
            compatibility: None,
            pinned_major: Some(1),
        };
        assert_eq!(select(Mode::Highest, &f, &tags(SOURCE), &[]), tags(&["1.2.0"]));
        let f0 = Filters {
            compatibility: None,
            pinned_major: Some(0),
        };
        assert_eq!(select(Mode::Semver, &f0, &tags(&["0.1", "1.0"]), &[]), tags(&["0.1"]));
    }

    #[test]
    fn semver_mode_copies_every_qualifying_tag_in_version_order() {
        assert_eq!(
            select(Mode::Semver, &none(), &tags(SOURCE), &[]),
            tags(&["1.0.0", "1.1.0", "1.2", "v1.2.0", "1.2.0", "2.0.0"])
        );
    }

    #[test]
    fn higher_copies_strictly_greater_versions() {
        let dst = tags(&["1.1.0", "latest"]);
        assert_eq!(
            select(Mode::Higher, &none(), &tags(SOURCE), &dst),
            tags(&["1.2", "v1.2.0", "1.2.0", "2.0.0"])
        );
        // an equal version under another alias is not "strictly greater"
        let dst = tags(&["1.2"]);
        assert_eq!(select(Mode::Higher, &none(), &tags(SOURCE), &dst), tags(&["2.0.0"]));
    }

    #[test]
    fn higher_seeds_an_empty_destination_with_the_highest() {
        // deliberate difference from the original, which copied nothing
        assert_eq!(select(Mode::Higher, &none(), &tags(SOURCE), &[]), tags(&["2.0.0"]));
        // a destination with only non-qualifying tags counts as having none
        let dst = tags(&["latest", "9.0.0-rc1"]);
        assert_eq!(select(Mode::Higher, &none(), &tags(SOURCE), &dst), tags(&["2.0.0"]));
    }

    #[test]
    fn higher_respects_filters_on_both_sides() {
        let f = Filters {
            compatibility: None,
            pinned_major: Some(1),
        };
        let dst = tags(&["2.0.0", "1.1.0"]);
        assert_eq!(
            select(Mode::Higher, &f, &tags(SOURCE), &dst),
            tags(&["1.2", "v1.2.0", "1.2.0"])
        );
    }

    #[test]
    fn all_copies_every_tag_and_ignores_filters() {
        let f = Filters {
            compatibility: Some("alpine".into()),
            pinned_major: Some(7),
        };
        let mut expected = tags(SOURCE);
        expected.sort();
        assert_eq!(select(Mode::All, &f, &tags(SOURCE), &[]), expected);
    }

    #[test]
    fn mode_names_are_exact_and_lower_case() {
        for name in Mode::NAMES {
            assert_eq!(Mode::parse(name).map(|m| m.to_string()).as_deref(), Some(name));
        }
        assert_eq!(Mode::parse("Highest"), None);
        assert_eq!(Mode::parse(" all"), None);
    }

    fn mode_strategy() -> impl Strategy<Value = Mode> {
        prop_oneof![
            Just(Mode::Highest),
            Just(Mode::Higher),
            Just(Mode::Semver),
            Just(Mode::All)
        ]
    }

    fn tag_list() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            prop_oneof!["v?[0-3](\\.[0-3]){0,2}(-(alpine|rc1|slim))?", "[a-z]{1,6}"],
            0..12,
        )
    }

    proptest! {
        #[test]
        fn selection_never_returns_a_rejected_or_unknown_tag(
            mode in mode_strategy(),
            compat in proptest::option::of(prop_oneof![Just("alpine".to_string()), Just("slim".to_string())]),
            major in proptest::option::of(0u64..4),
            src in tag_list(),
            dst in tag_list(),
        ) {
            let f = Filters { compatibility: compat, pinned_major: major };
            let out = select(mode, &f, &src, &dst);
            for t in &out {
                prop_assert!(src.contains(t), "{} not in source", t);
                if mode != Mode::All {
                    let v = Version::parse(t);
                    prop_assert!(v.as_ref().is_some_and(|v| f.accepts(v)), "{} rejected by filters", t);
                }
            }
            if mode == Mode::Highest {
                prop_assert!(out.len() <= 1);
            }
            if mode == Mode::Higher && let Some(top) = f.qualifying(&dst).pop() {
                for t in &out {
                    prop_assert!(Version::parse(t).unwrap().semver > top.semver);
                }
            }
            // no duplicates, deterministic
            let set: BTreeSet<&String> = out.iter().collect();
            prop_assert_eq!(set.len(), out.len());
            prop_assert_eq!(out, select(mode, &f, &src, &dst));
        }
    }
}
