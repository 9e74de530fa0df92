//! Pure tag selection: mode + filters + tag lists -> the tags to consider.
//!
//! No I/O here. Which of the selected tags are then copied, skipped or
//! replaced depends on the destination and is decided by the caller.

use std::collections::BTreeSet;
use std::fmt;

use crate::version::Version;

mod pattern;
pub mod prune;
mod range;

pub use pattern::Pattern;
pub use range::Range;

/// Which source tags a run mirrors (README: Configuration, modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Highest,
    Higher,
    Semver,
    All,
    /// No mode: only an entry's `tags` and `digests` (an entry that lists
    /// them and sets no `mode` of its own); not a name the file may give.
    Listed,
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
            Mode::Listed => "listed",
        })
    }
}

/// What narrows the tags an image mirrors (docs/configuration.md):
/// `include`/`exclude` apply to every mode, before it; `compatibility`,
/// `pinned-major`, `versions` and `keep` only to the semver modes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Keep only versions whose PRERELEASE is exactly this; `None` keeps only
    /// versions without PRERELEASE.
    pub compatibility: Option<String>,
    /// Keep only versions with this MAJOR.
    pub pinned_major: Option<u64>,
    /// A tag must match one of these, when any is given.
    pub include: Vec<Pattern>,
    /// A tag that matches one of these is never selected.
    pub exclude: Vec<Pattern>,
    /// Keep only versions in this range.
    pub versions: Option<Range>,
    /// `semver` and `higher`: only the N highest selected versions.
    pub keep: Option<usize>,
}

impl Filters {
    /// Whether a tag passes `include` and `exclude`.
    pub fn admits(&self, tag: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(tag)))
            && !self.exclude.iter().any(|p| p.matches(tag))
    }

    /// Whether a version passes `compatibility`, `pinned-major` and
    /// `versions` (its tag is [`Filters::admits`]'s business).
    pub fn accepts(&self, v: &Version) -> bool {
        let pre_ok = match &self.compatibility {
            Some(c) => v.prerelease() == c,
            None => v.prerelease().is_empty(),
        };
        pre_ok
            && self.pinned_major.is_none_or(|m| v.semver.major == m)
            && self.versions.as_ref().is_none_or(|r| r.contains(&v.semver))
    }

    /// The tags of `tags` that pass `include`/`exclude` and are versions
    /// passing the filters, ascending.
    pub fn qualifying<'a>(&self, tags: impl IntoIterator<Item = &'a String>) -> Vec<Version> {
        let mut out: Vec<Version> = tags
            .into_iter()
            .filter(|t| self.admits(t))
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
/// for the semver modes, lexicographically for `all`. `include`/`exclude`
/// apply first, on both sides (so `higher` compares with the highest
/// destination tag the filters let through); `keep` last.
pub fn select(mode: Mode, filters: &Filters, source: &[String], destination: &[String]) -> Vec<String> {
    match mode {
        Mode::Listed => Vec::new(),
        Mode::All => {
            let set: BTreeSet<&String> = source.iter().filter(|t| filters.admits(t)).collect();
            set.into_iter().cloned().collect()
        }
        Mode::Semver => keep_highest(filters.qualifying(source), filters.keep),
        Mode::Highest => highest(filters.qualifying(source)),
        Mode::Higher => {
            let src = filters.qualifying(source);
            match filters.qualifying(destination).pop() {
                None => highest(src),
                Some(top) => {
                    let newer = src.into_iter().filter(|v| v.semver > top.semver).collect();
                    keep_highest(newer, filters.keep)
                }
            }
        }
    }
}

/// The tags of the `keep` highest distinct versions of `sorted` (all of
/// every such version's tags: `1.2` and `1.2.0` are one version), ascending.
fn keep_highest(sorted: Vec<Version>, keep: Option<usize>) -> Vec<String> {
    let Some(n) = keep else {
        return sorted.into_iter().map(|v| v.tag).collect();
    };
    let mut distinct: Vec<&semver::Version> = sorted.iter().map(|v| &v.semver).collect();
    distinct.dedup();
    let floor = match distinct.len().checked_sub(n) {
        Some(i) if n > 0 => distinct[i].clone(),
        Some(_) => return Vec::new(),
        None => return sorted.into_iter().map(|v| v.tag).collect(),
    };
    sorted
        .into_iter()
        .filter(|v| v.semver >= floor)
        .map(|v| v.tag)
        .collect()
}

/// Why no tag of a source that has tags is selected, when a rule removed
/// them all: `include`/`exclude` (any mode), then for the semver modes which
/// rule, and for a `compatibility` that matches nothing the nearest value
/// that would. None when some tag qualifies (an empty selection is then the
/// destination being up to date, or `keep` and `higher` agreeing), and for
/// a source without tags.
pub fn why_nothing_qualifies(mode: Mode, filters: &Filters, source: &[String]) -> Option<String> {
    if source.is_empty() {
        return None;
    }
    let word = |n: usize| if n == 1 { "tag" } else { "tags" };
    let admitted: Vec<&String> = source.iter().filter(|t| filters.admits(t)).collect();
    if admitted.is_empty() {
        let keys = match (filters.include.is_empty(), filters.exclude.is_empty()) {
            (false, false) => "include and exclude let",
            (false, true) => "include lets",
            _ => "exclude lets",
        };
        let n = source.len();
        return Some(format!(
            "{keys} none of the source's {n} {} through (such as {})",
            word(n),
            some(source.iter().map(String::as_str))
        ));
    }
    if mode == Mode::All || mode == Mode::Listed || !filters.qualifying(source).is_empty() {
        return None;
    }
    let n = admitted.len();
    let tags = word(n);
    // "the source's 6 tags", or "the 4 tags include/exclude let through"
    let of = if n == source.len() {
        format!("the source's {n} {tags}")
    } else {
        format!("the {n} {tags} include/exclude let through")
    };
    let versions: Vec<Version> = admitted.iter().filter_map(|t| Version::parse(t)).collect();
    if versions.is_empty() {
        return Some(format!(
            "none of {of} is a version (such as {}); `mode: all` mirrors tags that are not versions",
            some(admitted.iter().map(|s| s.as_str()))
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
                    "compatibility \"{c}\" matches none of {of} ({} versions)",
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
                "all {} versions among {of} have a pre-release (such as {}); \
                 set compatibility to one of {}",
                versions.len(),
                some(versions.iter().map(|v| v.tag.as_str())),
                some(compatibles.iter().copied())
            ),
        });
    }
    let pinned: Vec<&Version> = matching
        .iter()
        .copied()
        .filter(|v| filters.pinned_major.is_none_or(|m| v.semver.major == m))
        .collect();
    if let Some(m) = filters.pinned_major
        && pinned.is_empty()
    {
        let majors: BTreeSet<u64> = matching.iter().map(|v| v.semver.major).collect();
        return Some(format!(
            "pinned-major {m} matches none of the source's {} qualifying versions: their majors are {}",
            matching.len(),
            some(majors.iter().map(|m| m.to_string()))
        ));
    }
    match (&filters.versions, pinned.iter().min(), pinned.iter().max()) {
        (Some(range), Some(low), Some(high)) => Some(format!(
            "versions \"{range}\" matches none of the source's {} qualifying versions: they go from {} to {}",
            pinned.len(),
            low.tag,
            high.tag
        )),
        _ => Some(format!("none of {of} qualifies")),
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
            ..Filters::default()
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
            ..Filters::default()
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
            ..Filters::default()
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
            ..Filters::default()
        };
        assert_eq!(select(Mode::Highest, &f, &tags(SOURCE), &[]), tags(&["1.2.0"]));
        let f0 = Filters {
            compatibility: None,
            pinned_major: Some(0),
            ..Filters::default()
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
            ..Filters::default()
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
            ..Filters::default()
        };
        let mut expected = tags(SOURCE);
        expected.sort();
        assert_eq!(select(Mode::All, &f, &tags(SOURCE), &[]), expected);
    }

    fn patterns(list: &[&str]) -> Vec<Pattern> {
        list.iter().map(|p| Pattern::parse(p).unwrap()).collect()
    }

    #[test]
    fn include_and_exclude_come_before_every_mode() {
        let f = Filters {
            include: patterns(&[r"1\..*", "latest"]),
            exclude: patterns(&[r".*\.0\.0"]),
            ..Filters::default()
        };
        let mut all = select(Mode::All, &f, &tags(SOURCE), &[]);
        all.sort();
        assert_eq!(all, tags(&["1.1.0", "1.2", "1.2.0", "1.9.0-alpine", "latest"]));
        assert_eq!(select(Mode::Highest, &f, &tags(SOURCE), &[]), tags(&["1.2.0"]));
        assert_eq!(
            select(Mode::Semver, &f, &tags(SOURCE), &[]),
            tags(&["1.1.0", "1.2", "1.2.0"])
        );
        // `higher` compares with the highest destination tag the filters
        // let through: an excluded 2.0.0 there does not hide 1.2
        let dst = tags(&["2.0.0", "1.1.0"]);
        assert_eq!(select(Mode::Higher, &f, &tags(SOURCE), &dst), tags(&["1.2", "1.2.0"]));
    }

    #[test]
    fn versions_narrow_the_semver_modes() {
        let f = Filters {
            versions: Some(Range::parse(">=1.1, <2").unwrap()),
            ..Filters::default()
        };
        assert_eq!(
            select(Mode::Semver, &f, &tags(SOURCE), &[]),
            tags(&["1.1.0", "1.2", "v1.2.0", "1.2.0"])
        );
        assert_eq!(select(Mode::Highest, &f, &tags(SOURCE), &[]), tags(&["1.2.0"]));
        let alpine = Filters {
            compatibility: Some("alpine".into()),
            versions: Some(Range::parse("^1").unwrap()),
            ..Filters::default()
        };
        assert_eq!(
            select(Mode::Semver, &alpine, &tags(SOURCE), &[]),
            tags(&["1.9.0-alpine"])
        );
    }

    #[test]
    fn keep_copies_the_highest_n_versions_with_all_their_tags() {
        let keep = |n| Filters {
            keep: Some(n),
            ..Filters::default()
        };
        assert_eq!(
            select(Mode::Semver, &keep(2), &tags(SOURCE), &[]),
            tags(&["1.2", "v1.2.0", "1.2.0", "2.0.0"])
        );
        assert_eq!(select(Mode::Semver, &keep(1), &tags(SOURCE), &[]), tags(&["2.0.0"]));
        assert_eq!(select(Mode::Semver, &keep(10), &tags(SOURCE), &[]).len(), 6);
        // `higher`: of the versions above the destination's highest
        let dst = tags(&["1.0.0"]);
        assert_eq!(select(Mode::Higher, &keep(1), &tags(SOURCE), &dst), tags(&["2.0.0"]));
    }

    #[test]
    fn an_empty_selection_names_the_new_rules() {
        let src = tags(&["1.0.0", "1.1.0", "2.0.0", "latest"]);
        let f = Filters {
            include: patterns(&["3\\..*"]),
            ..Filters::default()
        };
        assert_eq!(
            why_nothing_qualifies(Mode::All, &f, &src).unwrap(),
            "include lets none of the source's 4 tags through (such as \"1.0.0\", \"1.1.0\", \"2.0.0\", \"latest\")"
        );
        let f = Filters {
            exclude: patterns(&[".*\\..*"]),
            ..Filters::default()
        };
        assert_eq!(
            why_nothing_qualifies(Mode::Highest, &f, &src).unwrap(),
            "none of the 1 tag include/exclude let through is a version (such as \"latest\"); `mode: all` mirrors tags that are not versions"
        );
        let f = Filters {
            versions: Some(Range::parse(">=3").unwrap()),
            ..Filters::default()
        };
        assert_eq!(
            why_nothing_qualifies(Mode::Semver, &f, &src).unwrap(),
            "versions \">=3\" matches none of the source's 3 qualifying versions: they go from 1.0.0 to 2.0.0"
        );
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
            let f = Filters { compatibility: compat, pinned_major: major, ..Filters::default() };
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

        #[test]
        fn filters_never_let_an_excluded_tag_through_and_keep_bounds_versions(
            mode in mode_strategy(),
            include in proptest::collection::vec(prop_oneof![Just("1.*"), Just("v.*"), Just("[a-z]+"), Just(".*-alpine")], 0..3),
            exclude in proptest::collection::vec(prop_oneof![Just("2.*"), Just(".*\\.0"), Just("latest"), Just("v?1\\.1.*")], 0..3),
            keep in proptest::option::of(1usize..4),
            src in tag_list(),
            dst in tag_list(),
        ) {
            let f = Filters {
                include: patterns(&include),
                exclude: patterns(&exclude),
                keep,
                ..Filters::default()
            };
            let out = select(mode, &f, &src, &dst);
            for t in &out {
                prop_assert!(src.contains(t));
                prop_assert!(!f.exclude.iter().any(|p| p.matches(t)), "{} is excluded", t);
                prop_assert!(f.include.is_empty() || f.include.iter().any(|p| p.matches(t)), "{} is not included", t);
            }
            if let (Some(n), Mode::Semver | Mode::Higher) = (keep, mode) {
                let versions: BTreeSet<semver::Version> =
                    out.iter().map(|t| Version::parse(t).unwrap().semver).collect();
                prop_assert!(versions.len() <= n, "{} versions kept, keep {}", versions.len(), n);
                // and they are the highest ones selected without keep
                let unkept = select(mode, &Filters { keep: None, ..f.clone() }, &src, &dst);
                let all: BTreeSet<semver::Version> =
                    unkept.iter().map(|t| Version::parse(t).unwrap().semver).collect();
                let top: BTreeSet<semver::Version> = all.into_iter().rev().take(n).collect();
                prop_assert_eq!(versions, top);
            }
        }
    }
}
