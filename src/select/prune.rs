//! Which destination tags a prune would delete: the pure rule, with its
//! guard-rails (the deleting itself is the caller's business).

use std::collections::HashSet;

use super::{Filters, Mode};
use crate::model::referrers::referrer_tag;
use crate::version::Version;

/// Why a prune deletes nothing this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The source lists no tags: more likely a broken upstream than an
    /// image whose every tag was deleted.
    EmptySource,
    /// More tags are gone upstream than `prune-max` allows at once.
    TooMany { gone: Vec<String>, max: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::EmptySource => f.write_str("prune refused: the source lists no tags"),
            Refusal::TooMany { gone, max } => write!(
                f,
                "prune refused: {} tags are gone upstream, more than prune-max {max} ({}); \
                 raise prune-max to delete them",
                gone.len(),
                gone.join(", ")
            ),
        }
    }
}

/// The destination tags gone from the source that this image's rules could
/// have written (a tag the filters or the mode would never select was put
/// there by someone else, and stays), versions first in order; or why
/// none may be deleted. A tag about another manifest (a signature, SBOM or
/// attestation tag, or a referrers tag-schema index, which replicant itself
/// writes where the destination has no referrers API) is never one: those
/// are absent upstream by nature, and go only with what they are about.
pub fn gone_upstream(
    mode: Mode,
    filters: &Filters,
    source: &[String],
    destination: &[String],
    max: usize,
) -> Result<Vec<String>, Refusal> {
    if source.is_empty() {
        return Err(Refusal::EmptySource);
    }
    let ours = |tag: &str| match mode {
        Mode::All => filters.admits(tag),
        // listed tags are never pruned: nothing else is this image's
        Mode::Listed => false,
        _ => filters.admits(tag) && Version::parse(tag).is_some_and(|v| filters.accepts(&v)),
    };
    let upstream: HashSet<&String> = source.iter().collect();
    let mut seen = HashSet::new();
    let mut gone: Vec<String> = destination
        .iter()
        .filter(|t| !upstream.contains(t) && referrer_tag(t).is_none() && ours(t) && seen.insert(*t))
        .cloned()
        .collect();
    // versions in order, then the other tags by name
    gone.sort_by_cached_key(|t| {
        let v = Version::parse(t);
        (v.is_none(), v, t.clone())
    });
    if gone.len() > max {
        return Err(Refusal::TooMany { gone, max });
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::Pattern;
    use proptest::prelude::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_tags_gone_upstream_that_the_rules_could_have_written() {
        let f = Filters {
            exclude: vec![Pattern::parse("keep-.*").unwrap()],
            ..Filters::default()
        };
        let src = tags(&["1.1.0", "1.2.0", "latest"]);
        let dst = tags(&["1.0.0", "1.1.0", "1.2.0", "0.9.0-rc1", "keep-me", "edge", "latest"]);
        // semver: 1.0.0 is gone; the pre-release, keep-me and edge were never ours
        assert_eq!(gone_upstream(Mode::Semver, &f, &src, &dst, 5), Ok(tags(&["1.0.0"])));
        // all: every tag the filters admit
        assert_eq!(
            gone_upstream(Mode::All, &f, &src, &dst, 5),
            Ok(tags(&["0.9.0-rc1", "1.0.0", "edge"]))
        );
    }

    #[test]
    fn tags_about_other_manifests_are_never_pruned_alone() {
        let hex = "ab".repeat(32);
        let dst = tags(&[&format!("sha256-{hex}"), &format!("sha256-{hex}.sig"), "old"]);
        let src = tags(&["new"]);
        assert_eq!(
            gone_upstream(Mode::All, &Filters::default(), &src, &dst, 5),
            Ok(tags(&["old"]))
        );
    }

    #[test]
    fn guard_rails_refuse() {
        let none = Filters::default();
        let dst = tags(&["1.0.0", "1.1.0", "1.2.0"]);
        assert_eq!(
            gone_upstream(Mode::Semver, &none, &[], &dst, 5),
            Err(Refusal::EmptySource)
        );
        let refusal = gone_upstream(Mode::Semver, &none, &tags(&["2.0.0"]), &dst, 2).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "prune refused: 3 tags are gone upstream, more than prune-max 2 (1.0.0, 1.1.0, 1.2.0); raise prune-max to delete them"
        );
        assert_eq!(
            gone_upstream(Mode::Semver, &none, &tags(&["2.0.0"]), &dst, 3).map(|g| g.len()),
            Ok(3)
        );
    }

    proptest! {
        #[test]
        fn never_a_tag_the_source_still_has_or_the_rules_reject(
            src in proptest::collection::vec("v?[0-3](\\.[0-3]){0,2}|[a-z]{1,4}", 0..10),
            dst in proptest::collection::vec("v?[0-3](\\.[0-3]){0,2}|[a-z]{1,4}|sha256-[a]{64}(\\.sig|\\.att)?", 0..10),
            all in any::<bool>(),
            max in 0usize..12,
        ) {
            let f = Filters { exclude: vec![Pattern::parse("[a-c].*").unwrap()], ..Filters::default() };
            let mode = if all { Mode::All } else { Mode::Semver };
            match gone_upstream(mode, &f, &src, &dst, max) {
                Ok(gone) => {
                    prop_assert!(gone.len() <= max);
                    for t in &gone {
                        prop_assert!(!src.contains(t) && dst.contains(t) && f.admits(t));
                        prop_assert!(referrer_tag(t).is_none(), "a referrer tag alone: {}", t);
                    }
                }
                Err(Refusal::EmptySource) => prop_assert!(src.is_empty()),
                Err(Refusal::TooMany { gone, .. }) => prop_assert!(gone.len() > max),
            }
        }
    }

    #[test]
    fn an_entry_of_listed_tags_selects_and_prunes_nothing_else() {
        let f = Filters::default();
        let (src, dst) = (tags(&["1.0.0", "stable"]), tags(&["0.9.0", "1.0.0", "old"]));
        assert_eq!(gone_upstream(Mode::Listed, &f, &src, &dst, 5), Ok(Vec::new()));
        assert!(crate::select::select(Mode::Listed, &f, &src, &dst).is_empty());
        assert_eq!(crate::select::why_nothing_qualifies(Mode::Listed, &f, &src), None);
    }
}
