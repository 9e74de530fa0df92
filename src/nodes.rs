//! What makes nodes pull through the mirror, from the same config
//! (`replicant mirror-config --format FORMAT`): containers-registries.conf
//! for CRI-O, podman and skopeo; containerd's `hosts.toml` files; k3s's
//! `registries.yaml`; OpenShift's `ImageDigestMirrorSet` and
//! `ImageTagMirrorSet`. Pure: the config in, text out, and the images a
//! format cannot express, each with why.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::{Config, ImageConfig};
use crate::model::pattern::Depth;
use crate::model::{Endpoint, Registry};

/// The formats `mirror-config` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    RegistriesConf,
    Containerd,
    K3s,
    Idms,
    Itms,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &["registries.conf", "containerd", "k3s", "idms", "itms"];

    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "registries.conf" => Format::RegistriesConf,
            "containerd" => Format::Containerd,
            "k3s" => Format::K3s,
            "idms" => Format::Idms,
            "itms" => Format::Itms,
            _ => return None,
        })
    }
}

/// An image the format leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    pub image: String,
    pub why: String,
    /// A registry-to-registry image the format could not express (as
    /// opposed to one that is not for nodes at all, a layout).
    pub unexpressed: bool,
}

/// What `mirror-config` writes: text for standard output, files (relative
/// paths, for `--output DIR`), and the images left out.
#[derive(Debug, Default)]
pub struct Written {
    pub text: String,
    pub files: Vec<(String, String)>,
    pub left: Vec<Left>,
}

/// One source (a repository, or a pattern's namespace) and where it is
/// mirrored.
#[derive(Debug, Clone)]
struct Mapping {
    images: Vec<String>,
    source: Side,
    mirrors: Vec<Side>,
}

/// A repository, or a namespace of a pattern (then `depth` says how deep).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Side {
    registry: Registry,
    path: String,
    depth: Option<Depth>,
    /// Nodes reach it over plain HTTP (`tls: false`, or a loopback
    /// registry without `tls: true`).
    plain: bool,
    /// `insecure: true`: HTTPS without verifying its certificate.
    unverified: bool,
}

impl Side {
    /// The host as nodes name it (`docker.io` for Docker Hub).
    fn host(&self) -> &str {
        if self.registry.is_docker_hub() {
            "docker.io"
        } else {
            &self.registry.host
        }
    }

    /// `host/path` as nodes name it.
    fn name(&self) -> String {
        match self.path.is_empty() {
            true => self.host().to_string(),
            false => format!("{}/{}", self.host(), self.path),
        }
    }

    /// The URL of the registry itself.
    fn url(&self) -> String {
        let scheme = if self.plain { "http" } else { "https" };
        let host = if self.registry.is_docker_hub() {
            "registry-1.docker.io"
        } else {
            &self.registry.host
        };
        format!("{scheme}://{host}")
    }

    fn insecure(&self) -> bool {
        self.plain || self.unverified
    }
}

/// Writes the config's node mirror configuration in `format`.
pub fn write(config: &Config, format: Format) -> Written {
    let (mappings, mut left) = mappings(config);
    let mut out = match format {
        Format::RegistriesConf => registries_conf(&mappings),
        Format::Containerd => containerd(&mappings),
        Format::K3s => k3s(&mappings),
        Format::Idms => openshift(&mappings, "ImageDigestMirrorSet", "imageDigestMirrors"),
        Format::Itms => openshift(&mappings, "ImageTagMirrorSet", "imageTagMirrors"),
    };
    left.append(&mut out.left);
    out.left = left;
    out
}

/// The registry-to-registry images of the config, one mapping per source
/// (its destinations together, in file order), and the images that are
/// not for nodes (layouts).
fn mappings(config: &Config) -> (Vec<Mapping>, Vec<Left>) {
    let mut mappings: Vec<Mapping> = Vec::new();
    let mut left = Vec::new();
    for image in &config.images {
        let Some((source, mirror)) = sides(config, image) else {
            left.push(Left {
                image: image.name.clone(),
                why: "a layout (oci:PATH) is not a registry nodes pull from".into(),
                unexpressed: false,
            });
            continue;
        };
        match mappings.iter_mut().find(|m| m.source == source) {
            Some(m) => {
                if !m.mirrors.contains(&mirror) {
                    m.mirrors.push(mirror);
                }
                m.images.push(image.name.clone());
            }
            None => mappings.push(Mapping {
                images: vec![image.name.clone()],
                source,
                mirrors: vec![mirror],
            }),
        }
    }
    (mappings, left)
}

/// The source and destination of a registry-to-registry image.
fn sides(config: &Config, image: &ImageConfig) -> Option<(Side, Side)> {
    let side = |registry: &Registry, path: &str, depth: Option<Depth>| {
        let options = config.registries.get(&registry.host);
        let tls = options.and_then(|o| o.tls);
        Side {
            registry: registry.clone(),
            path: path.to_string(),
            depth,
            plain: tls == Some(false) || (tls.is_none() && registry.is_loopback()),
            unverified: options.is_some_and(|o| o.insecure),
        }
    };
    if let Some(p) = &image.pattern {
        let (s, d) = (&p.source, &p.destination);
        return Some((
            side(&s.registry, &s.prefix, Some(s.depth)),
            side(&d.registry, &d.prefix, Some(d.depth)),
        ));
    }
    match (&image.source, &image.destination) {
        (Endpoint::Registry(s), Endpoint::Registry(d)) => {
            Some((side(&s.registry, &s.path, None), side(&d.registry, &d.path, None)))
        }
        _ => None,
    }
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// containers-registries.conf v2: a `[[registry]]` per source repository
/// (or namespace: a prefix matches every repository below it), its
/// destinations as mirrors, tried in order before the source.
fn registries_conf(mappings: &[Mapping]) -> Written {
    let mut text = String::from(
        "# containers-registries.conf v2 (CRI-O, podman, skopeo, buildah), made by\n\
         # `replicant mirror-config --format registries.conf`: a drop-in for\n\
         # /etc/containers/registries.conf.d/. Pulls try the mirrors first.\n",
    );
    for m in mappings {
        let _ = write!(
            text,
            "\n# {}\n[[registry]]\nprefix = {}\nlocation = {}\n",
            m.images.join(", "),
            quoted(&m.source.name()),
            quoted(&m.source.name())
        );
        if m.source.insecure() {
            text.push_str("insecure = true\n");
        }
        for mirror in &m.mirrors {
            let _ = writeln!(text, "\n[[registry.mirror]]\nlocation = {}", quoted(&mirror.name()));
            if mirror.insecure() {
                text.push_str("insecure = true\n");
            }
        }
    }
    Written {
        text,
        ..Written::default()
    }
}

/// The path a destination adds in front of the source's repository path
/// (`mirror` for `team/app` -> `mirror/team/app`), when it only adds one.
fn added_prefix(source: &str, mirror: &str) -> Option<String> {
    if source.is_empty() {
        return Some(mirror.to_string());
    }
    if mirror == source {
        return Some(String::new());
    }
    mirror.strip_suffix(&format!("/{source}")).map(str::to_string)
}

/// A mirror host of containerd's: its host, the path prefix it adds, and
/// how it is reached.
type HostMirror = (String, String, Side);

/// A k3s rewrite: a regular expression and what it becomes.
type Rewrite = (String, String);

/// containerd: a `hosts.toml` per source host (`DIR/<host>/hosts.toml`).
/// Its mirrors are hosts, so a destination must keep the source's path
/// below one prefix (`src/team/app` -> `dst/mirror/team/app`), the same
/// for every image of that source host and destination host.
fn containerd(mappings: &[Mapping]) -> Written {
    let mut written = Written::default();
    // per source host: its server URL and, per destination host, the
    // prefix (and URL) the first image fixed
    let mut hosts: BTreeMap<String, (String, Vec<HostMirror>)> = BTreeMap::new();
    for m in mappings {
        let (_, mirrors) = hosts
            .entry(m.source.host().to_string())
            .or_insert_with(|| (m.source.url(), Vec::new()));
        for mirror in &m.mirrors {
            let Some(prefix) = added_prefix(&m.source.path, &mirror.path) else {
                written.left.push(Left {
                    image: m.images.join(", "),
                    why: format!(
                        "{} -> {}: containerd mirrors a whole host, so the destination must keep the source's \
                         path below one prefix (such as mirror/{} for {}); use registries.conf, k3s or idms for this one",
                        m.source.name(),
                        mirror.name(),
                        m.source.path,
                        m.source.path
                    ),
                    unexpressed: true,
                });
                continue;
            };
            match mirrors.iter().find(|(host, _, _)| *host == mirror.registry.host) {
                Some((_, fixed, _)) if *fixed == prefix => {}
                Some((_, fixed, _)) => written.left.push(Left {
                    image: m.images.join(", "),
                    why: format!(
                        "{} -> {}: another image of {} already mirrors it to {} below \"{fixed}\", and containerd \
                         takes one path prefix per mirror host",
                        m.source.name(),
                        mirror.name(),
                        m.source.host(),
                        mirror.host()
                    ),
                    unexpressed: true,
                }),
                None => mirrors.push((mirror.registry.host.clone(), prefix, mirror.clone())),
            }
        }
    }
    for (host, (server, mirrors)) in hosts.iter().filter(|(_, (_, m))| !m.is_empty()) {
        let mut toml = format!(
            "# containerd's hosts.toml for {host}, made by `replicant mirror-config --format containerd`\n\
             # (config_path = the folder holding this one's folder). Pulls try the mirrors first.\n\
             server = {}\n",
            quoted(server)
        );
        for (_, prefix, mirror) in mirrors {
            let url = match prefix.is_empty() {
                true => mirror.url(),
                false => format!("{}/v2/{prefix}", mirror.url()),
            };
            let _ = write!(
                toml,
                "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                quoted(&url)
            );
            if !prefix.is_empty() {
                toml.push_str("  override_path = true\n");
            }
            if mirror.unverified && !mirror.plain {
                toml.push_str("  skip_verify = true\n");
            }
        }
        written.files.push((format!("{host}/hosts.toml"), toml));
    }
    written
}

/// A path as a whole-string regular expression of k3s's `rewrite`.
fn rewrite_rule(source: &Side, mirror: &Side) -> (String, String) {
    let escaped = regex::escape(&source.path);
    match source.depth {
        None => (format!("^{escaped}$"), mirror.path.clone()),
        Some(depth) => {
            let rest = if depth == Depth::One { "([^/]+)" } else { "(.+)" };
            let from = match source.path.is_empty() {
                true => format!("^{rest}$"),
                false => format!("^{escaped}/{rest}$"),
            };
            let to = match mirror.path.is_empty() {
                true => "$1".to_string(),
                false => format!("{}/$1", mirror.path),
            };
            (from, to)
        }
    }
}

/// k3s `registries.yaml`: per source host, its destinations as endpoints,
/// and a `rewrite` per repository or namespace. A rewrite applies to every
/// endpoint of a host, so the destinations of one source host must agree
/// on where each repository goes.
fn k3s(mappings: &[Mapping]) -> Written {
    let mut written = Written::default();
    // per source host: endpoints (in order) and rewrites (in order)
    let mut hosts: Vec<(String, Vec<Side>, Vec<Rewrite>)> = Vec::new();
    for m in mappings {
        let at = match hosts.iter().position(|(h, _, _)| h == m.source.host()) {
            Some(at) => at,
            None => {
                hosts.push((m.source.host().to_string(), Vec::new(), Vec::new()));
                hosts.len() - 1
            }
        };
        let (_, endpoints, rewrites) = &mut hosts[at];
        let rules: Vec<(String, String)> = m.mirrors.iter().map(|mirror| rewrite_rule(&m.source, mirror)).collect();
        let first = rules[0].clone();
        if rules.iter().any(|r| *r != first) || rewrites.iter().any(|(f, t)| *f == first.0 && *t != first.1) {
            written.left.push(Left {
                image: m.images.join(", "),
                why: format!(
                    "{}: its destinations keep it under different paths, and a k3s rewrite applies to every \
                     endpoint of {}",
                    m.source.name(),
                    m.source.host()
                ),
                unexpressed: true,
            });
            continue;
        }
        // none needed where every destination keeps the source's path
        if m.mirrors.iter().any(|x| x.path != m.source.path) && !rewrites.contains(&first) {
            rewrites.push(first);
        }
        for mirror in &m.mirrors {
            if !endpoints.iter().any(|e| e.registry == mirror.registry) {
                endpoints.push(mirror.clone());
            }
        }
    }
    let mut text = String::from(
        "# k3s/RKE2 /etc/rancher/k3s/registries.yaml, made by `replicant mirror-config --format k3s`.\n\
         # Pulls try the endpoints first, with each repository rewritten to where it is mirrored.\n\
         mirrors:\n",
    );
    let mut unverified: Vec<&Side> = Vec::new();
    for (host, endpoints, rewrites) in &hosts {
        let _ = writeln!(text, "  {}:\n    endpoint:", quoted(host));
        for e in endpoints {
            let _ = writeln!(text, "      - {}", quoted(&e.url()));
            if e.unverified && !e.plain && !unverified.iter().any(|u| u.registry == e.registry) {
                unverified.push(e);
            }
        }
        if !rewrites.is_empty() {
            text.push_str("    rewrite:\n");
            for (from, to) in rewrites {
                let _ = writeln!(text, "      {}: {}", quoted(from), quoted(to));
            }
        }
    }
    if !unverified.is_empty() {
        text.push_str("configs:\n");
        for e in unverified {
            let _ = writeln!(
                text,
                "  {}:\n    tls:\n      insecure_skip_verify: true",
                quoted(&e.registry.host)
            );
        }
    }
    written.text = text;
    written
}

/// OpenShift's `ImageDigestMirrorSet` / `ImageTagMirrorSet`: a source
/// repository or namespace and its mirrors.
fn openshift(mappings: &[Mapping], kind: &str, list: &str) -> Written {
    let mut text = format!(
        "# Made by `replicant mirror-config`; apply with `oc apply -f`. Mirrors served over plain HTTP\n\
         # or unverified TLS also need the cluster's image.config insecureRegistries.\n\
         apiVersion: config.openshift.io/v1\nkind: {kind}\nmetadata:\n  name: replicant\nspec:\n  {list}:\n"
    );
    for m in mappings {
        let _ = writeln!(text, "    - source: {}\n      mirrors:", m.source.name());
        for mirror in &m.mirrors {
            let _ = writeln!(text, "        - {}", mirror.name());
        }
    }
    Written {
        text,
        ..Written::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        crate::config::parse(std::path::Path::new("c.yaml"), yaml).unwrap()
    }

    const CONFIG: &str = "images:\n  nginx:\n    source: nginx\n    destination: [eu.example/mirror/library/nginx, 127.0.0.1:5000/mirror/library/nginx]\n  \
         team:\n    source: src.example/team/**\n    destination: eu.example/mirror/team/**\n  \
         odd:\n    source: src.example/odd/app\n    destination: eu.example/elsewhere\n  \
         air:\n    source: src.example/air\n    destination: oci:out\n";

    #[test]
    fn registries_conf_names_each_source_with_its_mirrors() {
        let w = write(&config(CONFIG), Format::RegistriesConf);
        assert!(
            w.text.contains(
                "prefix = \"docker.io/library/nginx\"\nlocation = \"docker.io/library/nginx\"\n\n[[registry.mirror]]\n\
                 location = \"eu.example/mirror/library/nginx\"\n\n[[registry.mirror]]\nlocation = \
                 \"127.0.0.1:5000/mirror/library/nginx\"\ninsecure = true\n"
            ),
            "{}",
            w.text
        );
        assert!(w.text.contains("prefix = \"src.example/team\""), "{}", w.text);
        assert_eq!(w.left.len(), 1);
        assert!(!w.left[0].unexpressed, "a layout is not an error: {:?}", w.left);
    }

    #[test]
    fn containerd_takes_what_keeps_its_path_below_one_prefix() {
        let w = write(&config(CONFIG), Format::Containerd);
        let files: BTreeMap<&str, &str> = w.files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        let hub = files["docker.io/hosts.toml"];
        assert!(hub.contains("server = \"https://registry-1.docker.io\""), "{hub}");
        assert!(
            hub.contains("[host.\"https://eu.example/v2/mirror\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true"),
            "{hub}"
        );
        assert!(hub.contains("[host.\"http://127.0.0.1:5000/v2/mirror\"]"), "{hub}");
        let src = files["src.example/hosts.toml"];
        assert!(src.contains("[host.\"https://eu.example/v2/mirror\"]"), "{src}");
        let unexpressed: Vec<&Left> = w.left.iter().filter(|l| l.unexpressed).collect();
        assert_eq!(unexpressed.len(), 1, "{:?}", w.left);
        assert_eq!(unexpressed[0].image, "odd");
    }

    #[test]
    fn containerd_takes_one_prefix_per_mirror_host() {
        let two = config(
            "images:\n  a:\n    source: s.io/a\n    destination: d.io/x/a\n  b:\n    source: s.io/b\n    destination: d.io/y/b\n",
        );
        let w = write(&two, Format::Containerd);
        assert_eq!(w.files.len(), 1);
        assert!(w.files[0].1.contains("[host.\"https://d.io/v2/x\"]"), "{:?}", w.files);
        assert_eq!(w.left.len(), 1, "{:?}", w.left);
        assert!(w.left[0].unexpressed && w.left[0].image == "b", "{:?}", w.left);
        assert!(w.left[0].why.contains("below \"x\""), "{:?}", w.left);
    }

    #[test]
    fn k3s_rewrites_each_repository_and_namespace() {
        let w = write(&config(CONFIG), Format::K3s);
        assert!(w.text.contains("  \"docker.io\":\n    endpoint:\n      - \"https://eu.example\"\n      - \"http://127.0.0.1:5000\"\n    rewrite:\n      \"^library/nginx$\": \"mirror/library/nginx\"\n"), "{}", w.text);
        assert!(w.text.contains("\"^team/(.+)$\": \"mirror/team/$1\""), "{}", w.text);
        assert!(w.text.contains("\"^odd/app$\": \"elsewhere\""), "{}", w.text);
        assert!(w.left.iter().all(|l| !l.unexpressed), "{:?}", w.left);
        let split = config("images:\n  a:\n    source: s.io/a\n    destination: [d.io/x/a, e.io/y/a]\n");
        let w = write(&split, Format::K3s);
        assert!(
            w.left
                .iter()
                .any(|l| l.unexpressed && l.image == "a -> d.io/x/a, a -> e.io/y/a"),
            "{:?}",
            w.left
        );
    }

    #[test]
    fn openshift_sets_list_sources_and_namespaces() {
        let w = write(&config(CONFIG), Format::Idms);
        assert!(w.text.contains("kind: ImageDigestMirrorSet\n"), "{}", w.text);
        assert!(
            w.text.contains("    - source: docker.io/library/nginx\n      mirrors:\n        - eu.example/mirror/library/nginx\n        - 127.0.0.1:5000/mirror/library/nginx\n"),
            "{}",
            w.text
        );
        assert!(w.text.contains("    - source: src.example/team\n"), "{}", w.text);
        let w = write(&config(CONFIG), Format::Itms);
        assert!(w.text.contains("kind: ImageTagMirrorSet\n") && w.text.contains("  imageTagMirrors:\n"));
    }
}
