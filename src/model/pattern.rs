//! Repository patterns: a `source` ending in `/*` (the repositories
//! directly under a path) or `/**` (at any depth), and the `destination`
//! ending the same way that the matched part is appended to.

use std::fmt;

use super::reference::{ReferenceError, Registry, Repository};

/// How deep below its prefix a pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `/*`: one path component.
    One,
    /// `/**`: one or more.
    Any,
}

/// `registry/prefix/*` or `registry/prefix/**` (the prefix may be empty:
/// the whole registry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPattern {
    pub registry: Registry,
    /// The path before the wildcard, without its `/`; empty for the whole
    /// registry.
    pub prefix: String,
    pub depth: Depth,
}

impl RepoPattern {
    /// `None` when `s` is no pattern (it does not end in `/*` or `/**`).
    pub fn parse(s: &str) -> Option<Result<RepoPattern, ReferenceError>> {
        let s = s.trim();
        let (rest, depth) = match (s.strip_suffix("/**"), s.strip_suffix("/*")) {
            (Some(rest), _) => (rest, Depth::Any),
            (None, Some(rest)) => (rest, Depth::One),
            (None, None) => return None,
        };
        let host_only = !rest.contains('/') && (rest.contains(['.', ':']) || rest == "localhost");
        Some(if host_only {
            // the whole registry: parsed with a stand-in path, then dropped
            Repository::parse(&format!("{rest}/x")).map(|r| RepoPattern {
                registry: r.registry,
                prefix: String::new(),
                depth,
            })
        } else {
            Repository::parse(rest).map(|r| RepoPattern {
                registry: r.registry,
                prefix: r.path,
                depth,
            })
        })
    }

    /// The part of the repository `name` (a path of this registry) below
    /// the prefix, when the pattern matches it.
    pub fn matched<'a>(&self, name: &'a str) -> Option<&'a str> {
        let rest = if self.prefix.is_empty() {
            name
        } else {
            name.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?
        };
        let fits = match self.depth {
            Depth::One => !rest.contains('/'),
            Depth::Any => true,
        };
        (!rest.is_empty() && fits).then_some(rest)
    }

    /// The repository that `matched` (another pattern's matched part)
    /// maps to under this one.
    pub fn join(&self, matched: &str) -> Result<Repository, ReferenceError> {
        let path = if self.prefix.is_empty() {
            matched.to_string()
        } else {
            format!("{}/{matched}", self.prefix)
        };
        let repo = Repository::parse(&format!("{}/{path}", self.registry))?;
        // a one-part Docker Hub path would get `library/`: not this path
        if repo.path != path {
            return Err(ReferenceError::BadComponent(path));
        }
        Ok(repo)
    }
}

impl fmt::Display for RepoPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stars = match self.depth {
            Depth::One => "*",
            Depth::Any => "**",
        };
        match self.prefix.as_str() {
            "" => write!(f, "{}/{stars}", self.registry),
            p => write!(f, "{}/{p}/{stars}", self.registry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pat(s: &str) -> RepoPattern {
        RepoPattern::parse(s).expect("a pattern").expect("valid")
    }

    #[test]
    fn patterns_parse_and_match() {
        assert!(RepoPattern::parse("src.example/team/app").is_none());
        let one = pat("src.example/team/*");
        assert_eq!((one.prefix.as_str(), one.depth), ("team", Depth::One));
        assert_eq!(one.matched("team/a"), Some("a"));
        assert_eq!(one.matched("team/a/b"), None);
        assert_eq!(one.matched("teams/a"), None);
        assert_eq!(one.matched("team"), None);
        let any = pat("src.example/team/**");
        assert_eq!(any.matched("team/a/b"), Some("a/b"));
        assert_eq!(any.to_string(), "src.example/team/**");
        let root = pat("127.0.0.1:5000/**");
        assert_eq!((root.prefix.as_str(), root.matched("x/y")), ("", Some("x/y")));
        let dst = pat("dst.example/mirror/team/**");
        assert_eq!(dst.join("a/b").unwrap().to_string(), "dst.example/mirror/team/a/b");
        assert!(RepoPattern::parse("src.example/Team/*").unwrap().is_err());
        // Docker Hub: a pattern parses (validation refuses it: no catalog)
        assert!(pat("docker.io/team/*").registry.is_docker_hub());
    }

    proptest! {
        /// No repository outside the pattern is ever mapped, and two
        /// repositories never map to one.
        #[test]
        fn mapping_stays_inside_and_is_injective(
            names in proptest::collection::vec("[a-c]{1,2}(/[a-c]{1,2}){0,3}", 1..20),
            any in any::<bool>(),
        ) {
            let stars = if any { "**" } else { "*" };
            let src = pat(&format!("src.example/a/{stars}"));
            let dst = pat(&format!("dst.example/m/{stars}"));
            let mut mapped = std::collections::HashMap::new();
            for name in &names {
                if let Some(rest) = src.matched(name) {
                    prop_assert!(name.starts_with("a/"));
                    prop_assert!(any || !rest.contains('/'));
                    let to = dst.join(rest).unwrap();
                    prop_assert!(to.path.starts_with("m/"));
                    if let Some(other) = mapped.insert(to.path.clone(), name.clone()) {
                        prop_assert_eq!(&other, name);
                    }
                } else {
                    prop_assert!(!name.starts_with("a/") || (!any && name[2..].contains('/')));
                }
            }
        }
    }
}
