//! YAML configuration file -> validated [`Config`], with line/column
//! diagnostics for every problem at once (SPEC §1).
//!
//! The file is first read into a tree of located [`Node`]s and then checked
//! by hand: serde's derive stops at the first error, and an operator fixing a
//! config wants to see all of them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::model::{Endpoint, Repository};
use crate::select::{Filters, Mode};

/// One image entry of a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// The key under `images:`; used in logs and reports.
    pub name: String,
    pub source: Endpoint,
    pub destination: Endpoint,
    pub mode: Mode,
    pub filters: Filters,
    pub replace_tag: bool,
}

/// How to connect to one registry (a `registries:` entry). Paths are
/// resolved against the config file's folder and checked to exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Extra CA certificates (PEM) trusted for this registry.
    pub ca_file: Option<PathBuf>,
    /// TLS without certificate verification (a warning is logged).
    pub insecure: bool,
    /// Client certificate and key (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Force HTTPS (`true`) or plain HTTP (`false`); by default loopback
    /// registries use plain HTTP unless one of the TLS settings is given.
    pub tls: Option<bool>,
}

impl RegistryOptions {
    /// Whether this registry is spoken to over HTTPS.
    pub fn uses_tls(&self, loopback: bool) -> bool {
        self.tls
            .unwrap_or(!loopback || self.insecure || self.ca_file.is_some() || self.cert_file.is_some())
    }
}

/// A valid configuration: images in file order.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub images: Vec<ImageConfig>,
    /// Connection settings per registry host (`registries:`).
    pub registries: BTreeMap<String, RegistryOptions>,
    /// Things worth telling the operator that do not stop the run.
    pub warnings: Vec<Problem>,
}

/// One thing wrong (or worth a warning) in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the whole file.
    pub line: u64,
    pub column: u64,
    pub image: Option<String>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if let Some(image) = &self.image {
            write!(f, "image \"{image}\": ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "key \"{key}\": ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why the configuration cannot be used. Every variant means exit 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(p) => p,
        }
    }
}

const TOP_KEYS: &[&str] = &["mode", "images", "registries"];
const REGISTRY_KEYS: &[&str] = &["ca-file", "insecure", "cert-file", "key-file", "tls"];
const IMAGE_KEYS: &[&str] = &[
    "source",
    "destination",
    "mode",
    "compatibility",
    "replace-tag",
    "pinned-major",
];

/// Reads and validates the configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let whole_file = |message: String| ConfigError::Invalid(vec![problem_at(path, 0, 0, None, None, message)]);
    let text = std::fs::read_to_string(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            _ => format!("cannot read the file: {e}"),
        };
        whole_file(why)
    })?;
    parse(path, &text)
}

/// Validates configuration text; `path` is used in messages only.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let is_blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if is_blank {
        return Err(ConfigError::Invalid(vec![problem_at(
            path,
            0,
            0,
            None,
            None,
            "the file is empty; it needs an \"images:\" section".into(),
        )]));
    }
    let root: Spanned<Node> = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        let message = format!("YAML syntax error: {}", first_line(&e.to_string()));
        ConfigError::Invalid(vec![problem_at(path, line, column, None, None, message)])
    })?;
    let mut v = Validator {
        path,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let (images, registries) = v.root(&root);
    if v.problems.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            images,
            registries,
            warnings: v.warnings,
        })
    } else {
        v.problems.sort_by_key(|p| (p.line, p.column));
        Err(ConfigError::Invalid(v.problems))
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn problem_at(path: &Path, line: u64, column: u64, image: Option<&str>, key: Option<&str>, message: String) -> Problem {
    Problem {
        file: path.to_path_buf(),
        line,
        column,
        image: image.map(str::to_string),
        key: key.map(str::to_string),
        message,
    }
}

struct Validator<'a> {
    path: &'a Path,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Validator<'_> {
    fn report(&mut self, at: &Spanned<Node>, image: Option<&str>, key: Option<&str>, message: String) {
        let p = problem_at(
            self.path,
            at.referenced.line(),
            at.referenced.column(),
            image,
            key,
            message,
        );
        self.problems.push(p);
    }

    fn root(&mut self, root: &Spanned<Node>) -> (Vec<ImageConfig>, BTreeMap<String, RegistryOptions>) {
        let Node::Map(entries) = &root.value else {
            self.report(
                root,
                None,
                None,
                format!("expected a mapping with \"images:\", found {}", root.value.kind()),
            );
            return Default::default();
        };
        let mut mode = Mode::default();
        let mut images_node = None;
        let mut registries = BTreeMap::new();
        for (k, val) in entries {
            match key_text(k) {
                Some("mode") => {
                    if let Some(m) = self.mode(val, None) {
                        mode = m;
                    }
                }
                Some("images") => images_node = Some((k, val)),
                Some("registries") => registries = self.registries(val),
                _ => self.unknown_key(k, None, TOP_KEYS),
            }
        }
        (self.images(root, images_node, mode), registries)
    }

    /// `registries:` — host -> connection settings.
    fn registries(&mut self, val: &Spanned<Node>) -> BTreeMap<String, RegistryOptions> {
        let mut out = BTreeMap::new();
        let entries = match &val.value {
            Node::Map(e) => e,
            Node::Null => return out,
            other => {
                let message = format!(
                    "expected a mapping of registry hosts to settings, found {}",
                    other.kind()
                );
                self.report(val, None, Some("registries"), message);
                return out;
            }
        };
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        for (k, v) in entries {
            let Some(host) = key_text(k) else {
                self.report(
                    k,
                    None,
                    Some("registries"),
                    format!("a registry must be a host name, found {}", k.value.kind()),
                );
                continue;
            };
            let registry = match Repository::parse(&format!("{host}/x")) {
                Ok(r) if host.contains(['.', ':']) || host == "localhost" => r.registry,
                _ => {
                    self.report(
                        k,
                        None,
                        Some("registries"),
                        format!("\"{host}\" is not a registry host such as registry.example.com:5000"),
                    );
                    continue;
                }
            };
            let key = |name: &str| format!("registries.{host}.{name}");
            let mut o = RegistryOptions::default();
            let settings = match &v.value {
                Node::Map(e) => e.as_slice(),
                Node::Null => &[],
                other => {
                    self.report(
                        v,
                        None,
                        Some(&key("")),
                        format!("expected a mapping of settings, found {}", other.kind()),
                    );
                    continue;
                }
            };
            for (sk, sv) in settings {
                let name = key_text(sk).unwrap_or_default();
                match (name, &sv.value) {
                    ("insecure", Node::Bool(b)) => o.insecure = *b,
                    ("tls", Node::Bool(b)) => o.tls = Some(*b),
                    ("insecure" | "tls", other) => self.report(
                        sv,
                        None,
                        Some(&key(name)),
                        format!("expected true or false, found {}", other.kind()),
                    ),
                    ("ca-file" | "cert-file" | "key-file", Node::Str(p)) => {
                        let path = base.join(p);
                        if !path.is_file() {
                            self.report(
                                sv,
                                None,
                                Some(&key(name)),
                                format!("{} is not a readable file", path.display()),
                            );
                        }
                        match name {
                            "ca-file" => o.ca_file = Some(path),
                            "cert-file" => o.cert_file = Some(path),
                            _ => o.key_file = Some(path),
                        }
                    }
                    ("ca-file" | "cert-file" | "key-file", other) => self.report(
                        sv,
                        None,
                        Some(&key(name)),
                        format!("expected a file path, found {}", other.kind()),
                    ),
                    _ => self.unknown_key(sk, None, REGISTRY_KEYS),
                }
            }
            if o.cert_file.is_some() != o.key_file.is_some() {
                self.report(
                    k,
                    None,
                    Some(&key("cert-file")),
                    "cert-file and key-file go together".into(),
                );
            }
            if o.insecure {
                let warning = problem_at(
                    self.path,
                    k.referenced.line(),
                    k.referenced.column(),
                    None,
                    Some(&key("insecure")),
                    "TLS certificates of this registry are not verified".into(),
                );
                self.warnings.push(warning);
            }
            out.insert(registry.host, o);
        }
        out
    }

    fn images(
        &mut self,
        root: &Spanned<Node>,
        images_node: Option<(&Spanned<Node>, &Spanned<Node>)>,
        mode: Mode,
    ) -> Vec<ImageConfig> {
        let Some((images_key, images)) = images_node else {
            self.report(
                root,
                None,
                Some("images"),
                "missing; the file must list the images to mirror".into(),
            );
            return Vec::new();
        };
        let Node::Map(list) = &images.value else {
            let at = if matches!(images.value, Node::Null) {
                images_key
            } else {
                images
            };
            self.report(
                at,
                None,
                Some("images"),
                format!(
                    "expected a mapping of image names to entries, found {}",
                    images.value.kind()
                ),
            );
            return Vec::new();
        };
        if list.is_empty() {
            self.report(images_key, None, Some("images"), "lists no images".into());
        }
        list.iter().filter_map(|(k, val)| self.image(k, val, mode)).collect()
    }

    fn image(&mut self, k: &Spanned<Node>, val: &Spanned<Node>, default_mode: Mode) -> Option<ImageConfig> {
        let Some(name) = key_text(k) else {
            self.report(
                k,
                None,
                None,
                format!("an image name must be a string, found {}", k.value.kind()),
            );
            return None;
        };
        let name = Some(name);
        let entries = match &val.value {
            Node::Map(e) if !e.is_empty() => e,
            Node::Map(_) | Node::Null => {
                self.report(
                    k,
                    name,
                    None,
                    "empty entry; it needs \"source\" and \"destination\"".into(),
                );
                return None;
            }
            other => {
                self.report(
                    val,
                    name,
                    None,
                    format!(
                        "expected a mapping with \"source\" and \"destination\", found {}",
                        other.kind()
                    ),
                );
                return None;
            }
        };
        let before = self.problems.len();
        let (mut source, mut destination, mut mode) = (None, None, default_mode);
        let mut filters = Filters::default();
        let mut replace_tag = false;
        let mut filter_keys = Vec::new();
        let mut seen_source = false;
        let mut seen_destination = false;
        for (key, v) in entries {
            match key_text(key) {
                Some(which @ ("source" | "destination")) => {
                    let repo = self.endpoint(v, name, which);
                    if which == "source" {
                        seen_source = true;
                        source = repo;
                    } else {
                        seen_destination = true;
                        destination = repo;
                    }
                }
                Some("mode") => {
                    if let Some(m) = self.mode(v, name) {
                        mode = m;
                    }
                }
                Some("compatibility") => match &v.value {
                    Node::Str(s) if !s.trim().is_empty() => {
                        filters.compatibility = Some(s.clone());
                        filter_keys.push((key, "compatibility"));
                    }
                    Node::Null => {}
                    other => self.report(
                        v,
                        name,
                        Some("compatibility"),
                        format!("expected a non-empty string such as \"alpine\", found {}", other.kind()),
                    ),
                },
                Some("replace-tag") => match &v.value {
                    Node::Bool(b) => replace_tag = *b,
                    other => self.report(
                        v,
                        name,
                        Some("replace-tag"),
                        format!("expected true or false, found {}", other.kind()),
                    ),
                },
                Some("pinned-major") => match &v.value {
                    Node::Int(i) if *i >= 0 && u64::try_from(*i).is_ok() => {
                        filters.pinned_major = u64::try_from(*i).ok();
                        filter_keys.push((key, "pinned-major"));
                    }
                    other => self.report(
                        v,
                        name,
                        Some("pinned-major"),
                        format!("expected a non-negative integer, found {}", other.kind()),
                    ),
                },
                _ => self.unknown_key(key, name, IMAGE_KEYS),
            }
        }
        for (which, seen) in [("source", seen_source), ("destination", seen_destination)] {
            if !seen {
                self.report(
                    k,
                    name,
                    Some(which),
                    "missing; every image needs a source and a destination repository".into(),
                );
            }
        }
        if self.problems.len() > before {
            return None;
        }
        if mode == Mode::All {
            for (key, which) in filter_keys {
                let p = problem_at(
                    self.path,
                    key.referenced.line(),
                    key.referenced.column(),
                    name,
                    Some(which),
                    "ignored with mode \"all\", which copies every tag".into(),
                );
                self.warnings.push(p);
            }
        }
        Some(ImageConfig {
            name: name?.to_string(),
            source: source?,
            destination: destination?,
            mode,
            filters,
            replace_tag,
        })
    }

    fn endpoint(&mut self, v: &Spanned<Node>, image: Option<&str>, key: &str) -> Option<Endpoint> {
        let base = self.path.parent().unwrap_or(Path::new("."));
        match &v.value {
            Node::Str(s) => match Endpoint::parse(s, base) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.report(v, image, Some(key), format!("\"{s}\" {e}"));
                    None
                }
            },
            Node::Null => {
                self.report(
                    v,
                    image,
                    Some(key),
                    "is empty; it needs a repository such as docker.io/library/alpine".into(),
                );
                None
            }
            other => {
                self.report(
                    v,
                    image,
                    Some(key),
                    format!("expected a repository name, found {}", other.kind()),
                );
                None
            }
        }
    }

    fn mode(&mut self, v: &Spanned<Node>, image: Option<&str>) -> Option<Mode> {
        let found = match &v.value {
            Node::Str(s) => match Mode::parse(s) {
                Some(m) => return Some(m),
                None => format!("\"{s}\""),
            },
            other => other.kind().to_string(),
        };
        self.report(
            v,
            image,
            Some("mode"),
            format!("unknown mode {found}; expected one of {}", Mode::NAMES.join(", ")),
        );
        None
    }

    fn unknown_key(&mut self, k: &Spanned<Node>, image: Option<&str>, known: &[&str]) {
        let Some(text) = key_text(k) else {
            self.report(
                k,
                image,
                None,
                format!("keys must be strings, found {}", k.value.kind()),
            );
            return;
        };
        let mut message = format!("unknown key \"{text}\"");
        if let Some(close) = known
            .iter()
            .filter(|c| edit_distance(text, c) <= 2)
            .min_by_key(|c| edit_distance(text, c))
        {
            message.push_str(&format!("; did you mean \"{close}\"?"));
        } else {
            message.push_str(&format!("; known keys are {}", known.join(", ")));
        }
        let p = problem_at(
            self.path,
            k.referenced.line(),
            k.referenced.column(),
            image,
            None,
            message,
        );
        self.problems.push(p);
    }
}

fn key_text(k: &Spanned<Node>) -> Option<&str> {
    match &k.value {
        Node::Str(s) => Some(s),
        _ => None,
    }
}

/// Levenshtein distance, for "did you mean" hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A YAML value that keeps the location of every node.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
}

impl Node {
    fn kind(&self) -> String {
        match self {
            Node::Null => "nothing (null)".into(),
            Node::Bool(b) => format!("the boolean {b}"),
            Node::Int(i) => format!("the number {i}"),
            Node::Float(x) => format!("the number {x}"),
            Node::Str(s) => format!("the string \"{s}\""),
            Node::Seq(_) => "a list".into(),
            Node::Map(_) => "a mapping".into(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Node, E> {
        Ok(Node::Int(i.into()))
    }
    fn visit_u64<E>(self, i: u64) -> Result<Node, E> {
        Ok(Node::Int(i.into()))
    }
    fn visit_i128<E>(self, i: i128) -> Result<Node, E> {
        Ok(Node::Int(i))
    }
    fn visit_u128<E: de::Error>(self, i: u128) -> Result<Node, E> {
        i128::try_from(i)
            .map(Node::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Node, E> {
        Ok(Node::Float(x))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node, E> {
        Ok(Node::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Node, E> {
        Ok(Node::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(Node::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry()? {
            out.push((k, v));
        }
        Ok(Node::Map(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Config {
        parse(Path::new("c.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(Path::new("c.yaml"), text) {
            Ok(c) => panic!("expected problems, got {c:?}"),
            Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_file_written_for_the_original_is_valid() {
        let c = ok(
            "mode: higher\nimages:\n  nginx:\n    source: docker.io/library/nginx\n    destination: localhost:5000/mirror/nginx\n    mode: semver\n    compatibility: alpine\n    replace-tag: true\n    pinned-major: 1\n  redis:\n    source: redis\n    destination: gcr.io/p/redis\n",
        );
        assert_eq!(c.images.len(), 2);
        let n = &c.images[0];
        assert_eq!(n.name, "nginx");
        assert_eq!(n.mode, Mode::Semver);
        assert_eq!(n.filters.compatibility.as_deref(), Some("alpine"));
        assert_eq!(n.filters.pinned_major, Some(1));
        assert!(n.replace_tag);
        let r = &c.images[1];
        assert_eq!((r.name.as_str(), r.mode, r.replace_tag), ("redis", Mode::Higher, false));
        assert_eq!(r.source.to_string(), "registry-1.docker.io/library/redis");
    }

    #[test]
    fn default_mode_is_highest_and_order_is_kept() {
        let c = ok(
            "images:\n  b:\n    source: a/b\n    destination: c.io/b\n  a:\n    source: a/a\n    destination: c.io/a\n",
        );
        assert_eq!(c.images.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(c.images[0].mode, Mode::Highest);
    }

    #[test]
    fn every_problem_is_reported_with_line_image_and_key() {
        let text = "mode: Highest\nimages:\n  one:\n    source: docker.io/x/y:1.0\n    destinaton: gcr.io/p/y\n    pinned-major: -1\n    replace-tag: maybe\n  two:\n  three:\n    source: \"\"\n    destination: q.io/a\n    mode: fastest\n    compatibility: 3\n";
        let p = problems(text);
        let expect = [
            "c.yaml:1:7: key \"mode\": unknown mode \"Highest\"",
            "c.yaml:3:3: image \"one\": key \"destination\": missing",
            "c.yaml:4:13: image \"one\": key \"source\": \"docker.io/x/y:1.0\" must name a repository, not a tag",
            "c.yaml:5:5: image \"one\": unknown key \"destinaton\"; did you mean \"destination\"?",
            "c.yaml:6:19: image \"one\": key \"pinned-major\": expected a non-negative integer, found the number -1",
            "c.yaml:7:18: image \"one\": key \"replace-tag\": expected true or false",
            "c.yaml:8:3: image \"two\": empty entry",
            "c.yaml:10:13: image \"three\": key \"source\": \"\" is empty",
            "c.yaml:12:11: image \"three\": key \"mode\": unknown mode \"fastest\"",
            "c.yaml:13:20: image \"three\": key \"compatibility\": expected a non-empty string",
        ];
        assert_eq!(p.len(), expect.len(), "{p:#?}");
        for (got, want) in p.iter().zip(expect) {
            assert!(got.starts_with(want), "got {got:?}, want prefix {want:?}");
        }
    }

    #[test]
    fn whole_file_problems() {
        assert!(problems("")[0].contains("the file is empty"));
        assert!(problems("# only a comment\n\n")[0].contains("the file is empty"));
        let syntax = problems("images:\n  a: [\n");
        assert!(
            syntax[0].starts_with("c.yaml:") && syntax[0].contains("YAML syntax error"),
            "{syntax:?}"
        );
        assert!(problems("mode: all\n")[0].contains("key \"images\": missing"));
        assert!(problems("images:\n")[0].contains("key \"images\""));
        assert!(problems("images: {}\n")[0].contains("lists no images"));
        assert!(problems("- a\n- b\n")[0].contains("expected a mapping"));
        assert!(
            problems("imgaes: {}\n")
                .iter()
                .any(|p| p.contains("did you mean \"images\""))
        );
        let missing = load(Path::new("/nonexistent/replicant.yaml")).unwrap_err();
        assert_eq!(missing.to_string(), "/nonexistent/replicant.yaml: file not found");
    }

    #[test]
    fn source_without_destination_and_wrong_types() {
        let p = problems("images:\n  a:\n    source: x/y\n  b:\n    source: 5\n    destination: [x]\n");
        assert!(p[0].contains("image \"a\": key \"destination\": missing"), "{p:?}");
        assert!(
            p[1].contains("image \"b\": key \"source\": expected a repository name, found the number 5"),
            "{p:?}"
        );
        assert!(
            p[2].contains("image \"b\": key \"destination\": expected a repository name, found a list"),
            "{p:?}"
        );
    }

    #[test]
    fn filters_with_mode_all_warn() {
        let c = ok("images:\n  a:\n    source: x/y\n    destination: q.io/y\n    mode: all\n    pinned-major: 2\n");
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0]
                .to_string()
                .contains("key \"pinned-major\": ignored with mode \"all\"")
        );
    }

    proptest::proptest! {
        /// Arbitrary text, and YAML-shaped text with random keys and values:
        /// always a Config or a list of located problems, never a panic.
        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = parse(Path::new("f.yaml"), &text);
        }

        #[test]
        fn yaml_shaped_input_never_panics(
            keys in proptest::collection::vec("(source|destination|mode|compatibility|replace-tag|pinned-major|[a-z-]{1,8})", 0..6),
            values in proptest::collection::vec("(\"\"|~|-?[0-9]{1,22}|true|[a-z0-9./:@-]{0,30}|\\[\\]|\\{\\})", 0..6),
        ) {
            let mut text = String::from("images:\n  a:\n");
            for (k, v) in keys.iter().zip(values.iter()) {
                text.push_str(&format!("    {k}: {v}\n"));
            }
            match parse(Path::new("f.yaml"), &text) {
                Ok(c) => proptest::prop_assert_eq!(c.images.len(), 1),
                Err(e) => proptest::prop_assert!(e.problems().iter().all(|p| p.line > 0 || p.message.contains("YAML"))),
            }
        }
    }

    #[test]
    fn registries_section_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "pem").unwrap();
        let cfg = dir.path().join("c.yaml");
        let text = "registries:\n  registry.example.com:5000:\n    ca-file: ca.pem\n  10.0.0.1:5000:\n    insecure: true\nimages:\n  a:\n    source: x/y\n    destination: registry.example.com:5000/y\n";
        let c = parse(&cfg, text).unwrap();
        let r = &c.registries["registry.example.com:5000"];
        assert_eq!(r.ca_file.as_deref(), Some(ca.as_path()));
        assert!(r.uses_tls(false));
        assert!(c.registries["10.0.0.1:5000"].insecure);
        assert!(c.warnings[0].to_string().contains("not verified"));
        let bad = "registries:\n  r.io:\n    ca-file: missing.pem\n    insecure: maybe\n    cert-file: ca.pem\n    colour: red\n  nohost:\n    tls: true\nimages:\n  a:\n    source: x/y\n    destination: q.io/y\n";
        let p: Vec<String> = parse(&cfg, bad)
            .unwrap_err()
            .problems()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert!(
            p.iter()
                .any(|m| m.contains("key \"registries.r.io.ca-file\"")
                    && m.contains("missing.pem is not a readable file")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("registries.r.io.insecure") && m.contains("expected true or false")),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|m| m.contains("cert-file and key-file go together")),
            "{p:#?}"
        );
        assert!(p.iter().any(|m| m.contains("unknown key \"colour\"")), "{p:#?}");
        assert!(
            p.iter().any(|m| m.contains("\"nohost\" is not a registry host")),
            "{p:#?}"
        );
        assert!(RegistryOptions::default().uses_tls(false) && !RegistryOptions::default().uses_tls(true));
    }

    #[test]
    fn did_you_mean_is_only_offered_when_close() {
        assert_eq!(edit_distance("replace_tag", "replace-tag"), 1);
        let p = problems("images:\n  a:\n    source: x/y\n    destination: q.io/y\n    colour: red\n");
        assert!(p[0].contains("known keys are"), "{p:?}");
    }
}
