//! Tag text -> [`Version`], and the order between versions.
//!
//! Registry tags are Masterminds-style versions (`v1.2`, `2`, `1.2.3-alpine`),
//! not strict SemVer, so a small regex parses them into a `semver::Version`
//! (missing parts are 0) and `semver` supplies the precedence rules.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;

/// Tags whose MAJOR is above this are date stamps (`20210101`), not versions.
pub const MAX_MAJOR: u64 = 1024;

static VERSION_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(v)?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")
        .expect("static regex is valid")
});

/// A tag that denotes a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// The version the tag denotes (missing parts filled with 0).
    pub semver: semver::Version,
    /// The tag exactly as written in the registry.
    pub tag: String,
    /// How many of MAJOR, MINOR, PATCH were written (1 to 3).
    pub components: u8,
    /// Whether the tag starts with `v`.
    pub has_v: bool,
}

impl Version {
    /// Parses a tag; `None` when the tag is not a version (README: Configuration, "a tag counts as a version").
    pub fn parse(tag: &str) -> Option<Version> {
        let caps = VERSION_RE.captures(tag)?;
        let number = |i: usize| -> Option<Option<u64>> {
            match caps.get(i) {
                None => Some(None),
                Some(m) => m.as_str().parse::<u64>().ok().map(Some),
            }
        };
        let major = number(2)??;
        if major > MAX_MAJOR {
            return None;
        }
        let minor = number(3)?;
        let patch = number(4)?;
        let pre = match caps.get(5) {
            None => semver::Prerelease::EMPTY,
            // `semver` rejects numeric identifiers with leading zeros, as SemVer does.
            Some(m) => semver::Prerelease::new(m.as_str()).ok()?,
        };
        let components = 1 + u8::from(minor.is_some()) + u8::from(patch.is_some());
        let mut semver = semver::Version::new(major, minor.unwrap_or(0), patch.unwrap_or(0));
        semver.pre = pre;
        Some(Version {
            semver,
            tag: tag.to_string(),
            components,
            has_v: caps.get(1).is_some(),
        })
    }

    /// The PRERELEASE part, empty when there is none.
    pub fn prerelease(&self) -> &str {
        self.semver.pre.as_str()
    }

    /// Among tags that denote the same version, the preferred one compares
    /// `Less`: more components written, then no `v`, then lexicographically
    /// smallest.
    pub fn preference(&self, other: &Version) -> Ordering {
        other
            .components
            .cmp(&self.components)
            .then(self.has_v.cmp(&other.has_v))
            .then_with(|| self.tag.cmp(&other.tag))
    }
}

impl Ord for Version {
    /// SemVer precedence; equal versions are ordered so that the preferred
    /// tag comes *last*, which makes "the maximum" the tag to pick.
    fn cmp(&self, other: &Self) -> Ordering {
        self.semver.cmp(&other.semver).then_with(|| other.preference(self))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(tag: &str) -> Version {
        Version::parse(tag).unwrap_or_else(|| panic!("{tag} should parse"))
    }

    #[test]
    fn parses_partial_versions_with_zero_fill() {
        assert_eq!(v("1.2").semver, semver::Version::new(1, 2, 0));
        assert_eq!(v("1").semver, semver::Version::new(1, 0, 0));
        assert_eq!(v("v1.2.3").semver, semver::Version::new(1, 2, 3));
        assert_eq!(v("1.2.3-alpine").prerelease(), "alpine");
        assert_eq!(v("1.2.3-rc.1").prerelease(), "rc.1");
        assert_eq!(v("1024.0.0").semver.major, 1024);
    }

    #[test]
    fn rejects_non_versions() {
        for tag in [
            "latest",
            "V1.2.3",
            "1.2.3.4",
            "1.2.3_x",
            "20210101",
            "1025",
            "1.0.0-rc.01",
            "99999999999999999999999",
            "1.99999999999999999999999",
            "",
            "v",
            "1.2.3-",
            "1.2.3-a..b",
            "1.2.3+build",
            "1.2.",
            ".1",
        ] {
            assert!(Version::parse(tag).is_none(), "{tag} must not be a version");
        }
    }

    #[test]
    fn precedence_follows_semver() {
        assert!(v("1.2.3-alpha") < v("1.2.3"));
        assert!(v("1.2.3-alpha") < v("1.2.3-beta"));
        assert!(v("1.10.0") > v("1.9.9"));
        assert!(v("2") > v("1.99.99"));
    }

    #[test]
    fn preference_between_aliases() {
        // more components first
        assert!(v("1.2.0") > v("1.2"));
        assert!(v("1.2") > v("1"));
        // then no `v`
        assert!(v("1.2.0") > v("v1.2.0"));
        // the maximum of a set of aliases is the preferred tag
        let tags = ["1.2", "v1.2.0", "1.2.0", "v1.2"];
        let best = tags.iter().map(|t| v(t)).max().unwrap();
        assert_eq!(best.tag, "1.2.0");
    }

    fn tag_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "v?[0-9]{1,4}(\\.[0-9]{1,3}){0,3}(-[0-9A-Za-z.-]{1,8})?",
            "[0-9A-Za-z._-]{1,12}",
        ]
    }

    proptest! {
        #[test]
        fn ordering_is_total_and_consistent(a in tag_strategy(), b in tag_strategy(), c in tag_strategy()) {
            let (Some(a), Some(b), Some(c)) = (Version::parse(&a), Version::parse(&b), Version::parse(&c)) else {
                return Ok(());
            };
            // antisymmetric, and equal only for the same tag
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a.tag == b.tag);
            // transitive
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
        }

        #[test]
        fn parse_never_panics_and_respects_limits(tag in "\\PC{0,20}") {
            if let Some(ver) = Version::parse(&tag) {
                prop_assert!(ver.semver.major <= MAX_MAJOR);
                prop_assert!(ver.semver.build.is_empty());
                prop_assert_eq!(ver.tag, tag);
            }
        }
    }
}
