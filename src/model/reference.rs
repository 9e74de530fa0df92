//! Registry and repository naming, with Docker Hub's rules.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

static PATH_COMPONENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("static regex is valid"));
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
        .expect("static regex is valid")
});

/// A registry, identified by host and optional port (`host[:port]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registry {
    pub host: String,
}

impl Registry {
    pub fn new(host: &str) -> Registry {
        let host = match host {
            "docker.io" | "index.docker.io" => DOCKER_HUB,
            h => h,
        };
        Registry { host: host.to_string() }
    }

    /// The host name without the port.
    pub fn hostname(&self) -> &str {
        if let Some(rest) = self.host.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        self.host.split(':').next().unwrap_or(&self.host)
    }

    /// Loopback registries (`localhost`, 127.0.0.0/8, `[::1]`). The transport
    /// speaks plain HTTP to these unless the `registries:` section says `tls`.
    pub fn is_loopback(&self) -> bool {
        let name = self.hostname();
        name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    pub fn is_docker_hub(&self) -> bool {
        self.host == DOCKER_HUB
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)
    }
}

/// A repository in a registry: `registry/path`, no tag, no digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    pub registry: Registry,
    pub path: String,
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// Tags end up in URLs and file names: only the Distribution tag grammar
/// (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) is accepted.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Why a repository reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("is empty")]
    Empty,
    #[error("must name a repository, not a digest (remove \"@{0}\")")]
    HasDigest(String),
    #[error("must name a repository, not a tag (remove \":{0}\")")]
    HasTag(String),
    #[error("has no repository path after the registry \"{0}\"")]
    NoPath(String),
    #[error("has an invalid registry host \"{0}\"")]
    BadHost(String),
    #[error("has an invalid path component \"{0}\" (lower-case letters, digits and single separators . _ __ - only)")]
    BadComponent(String),
    #[error("is longer than 255 characters")]
    TooLong,
    #[error("names no directory after \"oci:\"")]
    EmptyLayoutPath,
    #[error(
        "is a URL: write the repository without {0}:// (loopback registries use plain HTTP automatically; \
         for another registry see `tls:` under `registries:`)"
    )]
    Url(String),
}

/// Where images are read from or written to: a registry repository, or an
/// OCI image layout directory written `oci:PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Registry(Repository),
    Layout(PathBuf),
}

impl Endpoint {
    /// Parses a `source:` or `destination:` value; a relative layout path is
    /// taken relative to `base` (the config file's folder).
    pub fn parse(s: &str, base: &Path) -> Result<Endpoint, ReferenceError> {
        match s.trim().strip_prefix("oci:") {
            Some(p) if p.trim().is_empty() => Err(ReferenceError::EmptyLayoutPath),
            Some(p) => Ok(Endpoint::Layout(normalised(&base.join(p.trim())))),
            None => Repository::parse(s).map(Endpoint::Registry),
        }
    }
}

/// `path` without `.` components and with each `..` taking back the
/// component before it, as written (no file-system access): a layout is
/// shown, and compared, the way the user would write it.
fn normalised(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::RootDir)) => {}
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Registry(r) => r.fmt(f),
            Endpoint::Layout(p) => write!(f, "oci:{}", p.display()),
        }
    }
}

impl Repository {
    /// Parses `[registry/]path` with Docker Hub's rules: no registry host
    /// means Docker Hub, `docker.io` and `index.docker.io` mean
    /// `registry-1.docker.io`, a one-part Docker Hub path gets `library/`.
    pub fn parse(s: &str) -> Result<Repository, ReferenceError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some((scheme, _)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(ReferenceError::Url(scheme.to_string()));
        }
        if let Some((_, digest)) = s.split_once('@') {
            return Err(ReferenceError::HasDigest(digest.to_string()));
        }
        let (host, path) = match s.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') => {
                (Some(first), rest)
            }
            _ => (None, s),
        };
        if let Some((_, tag)) = path.rsplit_once(':') {
            return Err(ReferenceError::HasTag(tag.to_string()));
        }
        let registry = match host {
            Some(h) if !HOST.is_match(h) => return Err(ReferenceError::BadHost(h.to_string())),
            Some(h) => Registry::new(h),
            None => Registry::new(DOCKER_HUB),
        };
        if path.is_empty() {
            return Err(ReferenceError::NoPath(registry.host));
        }
        for component in path.split('/') {
            if !PATH_COMPONENT.is_match(component) {
                return Err(ReferenceError::BadComponent(component.to_string()));
            }
        }
        if path.len() > 255 {
            return Err(ReferenceError::TooLong);
        }
        let path = if registry.is_docker_hub() && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(Repository { registry, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> Repository {
        Repository::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_url_says_to_drop_the_scheme() {
        let e = Repository::parse("http://127.0.0.1:5700/library/app").unwrap_err();
        assert_eq!(e, ReferenceError::Url("http".into()));
        assert_eq!(
            e.to_string(),
            "is a URL: write the repository without http:// (loopback registries use plain HTTP automatically; \
             for another registry see `tls:` under `registries:`)"
        );
        assert_eq!(
            Repository::parse("https://gcr.io/a/b").unwrap_err(),
            ReferenceError::Url("https".into())
        );
    }

    #[test]
    fn layout_paths_are_shown_as_written_normalised() {
        let base = Path::new("../cfg");
        let shown = |s: &str| Endpoint::parse(s, base).unwrap().to_string();
        assert_eq!(shown("oci:../layouts/./small"), "oci:../layouts/small");
        assert_eq!(shown("oci:/srv/../srv/x/"), "oci:/srv/x");
        assert_eq!(shown("oci:."), "oci:../cfg");
        assert_eq!(Endpoint::parse("oci:..", Path::new("")).unwrap().to_string(), "oci:..");
        assert_eq!(Endpoint::parse("oci:/../x", base).unwrap().to_string(), "oci:/x");
    }

    #[test]
    fn docker_hub_rules() {
        for s in [
            "alpine",
            "docker.io/alpine",
            "index.docker.io/library/alpine",
            "registry-1.docker.io/library/alpine",
        ] {
            let r = repo(s);
            assert_eq!(r.registry.host, DOCKER_HUB, "{s}");
            assert_eq!(r.path, "library/alpine", "{s}");
        }
        let r = repo("bitnami/redis");
        assert_eq!(
            (r.registry.host.as_str(), r.path.as_str()),
            (DOCKER_HUB, "bitnami/redis")
        );
        assert_eq!(r.to_string(), "registry-1.docker.io/bitnami/redis");
    }

    #[test]
    fn other_registries_keep_their_path() {
        let r = repo("gcr.io/private-repo/project/image");
        assert_eq!(
            (r.registry.host.as_str(), r.path.as_str()),
            ("gcr.io", "private-repo/project/image")
        );
        let r = repo("localhost:5000/alpine");
        assert_eq!(
            (r.registry.host.as_str(), r.path.as_str()),
            ("localhost:5000", "alpine")
        );
        assert!(r.registry.is_loopback());
        let r = repo("127.0.0.1:4000/a/b");
        assert!(r.registry.is_loopback());
        let r = repo("[::1]:4000/a");
        assert!(r.registry.is_loopback());
        assert_eq!(r.registry.hostname(), "::1");
        assert!(!repo("127.example.com/x").registry.is_loopback());
    }

    #[test]
    fn tag_grammar() {
        assert!(is_valid_tag("1.2.3-alpine"));
        assert!(is_valid_tag("latest"));
        assert!(is_valid_tag("_x"));
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-x",
            &"a".repeat(129),
            "a b",
            "sha256:abc",
        ] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn layouts_resolve_against_the_config_folder() {
        let base = Path::new("/etc/replicant");
        assert_eq!(
            Endpoint::parse("oci:mirror/app", base),
            Ok(Endpoint::Layout("/etc/replicant/mirror/app".into()))
        );
        assert_eq!(
            Endpoint::parse("oci:/srv/app", base),
            Ok(Endpoint::Layout("/srv/app".into()))
        );
        assert_eq!(Endpoint::parse("oci:", base), Err(ReferenceError::EmptyLayoutPath));
        assert!(matches!(Endpoint::parse("alpine", base), Ok(Endpoint::Registry(_))));
        assert_eq!(
            Endpoint::parse("oci:x", base).unwrap().to_string(),
            "oci:/etc/replicant/x"
        );
    }

    #[test]
    fn rejects_tags_digests_and_bad_names() {
        assert!(matches!(Repository::parse("alpine:3.18"), Err(ReferenceError::HasTag(t)) if t == "3.18"));
        assert!(matches!(
            Repository::parse("localhost:5000/a:1"),
            Err(ReferenceError::HasTag(_))
        ));
        assert!(matches!(
            Repository::parse("alpine@sha256:abc"),
            Err(ReferenceError::HasDigest(_))
        ));
        assert!(matches!(
            Repository::parse("Alpine"),
            Err(ReferenceError::BadComponent(_))
        ));
        assert!(matches!(Repository::parse("gcr.io/"), Err(ReferenceError::NoPath(_))));
        assert!(matches!(
            Repository::parse("a//b"),
            Err(ReferenceError::BadComponent(_))
        ));
        assert!(matches!(
            Repository::parse("a/../b"),
            Err(ReferenceError::BadComponent(_))
        ));
        assert!(matches!(
            Repository::parse("bad_host!.io/x"),
            Err(ReferenceError::BadHost(_))
        ));
        assert!(matches!(Repository::parse(""), Err(ReferenceError::Empty)));
    }
}
