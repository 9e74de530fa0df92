//! YAML configuration file -> validated [`Config`], with line/column
//! diagnostics for every problem at once.
//!
//! The file is first read into a tree of located [`Node`]s and then checked
//! by hand: serde's derive stops at the first error, and an operator fixing a
//! config wants to see all of them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use crate::model::Endpoint;
use crate::select::{Filters, Mode};

pub mod keys;
mod node;
#[cfg(test)]
mod tests;
mod validate;
mod vars;

use node::Node;
use validate::Validator;

/// One image entry of a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// Its name in logs, reports and metrics: the key under `images:`
    /// (`KEY/<matched part>` for a repository pattern's), followed by
    /// ` -> DESTINATION` when the entry lists several destinations.
    pub name: String,
    /// The name without the destination: what `--shard` hashes, so that
    /// every destination of one source is in the same shard (which reads
    /// the source once for all of them).
    pub entry: String,
    pub source: Endpoint,
    pub destination: Endpoint,
    pub mode: Mode,
    pub filters: Filters,
    /// `replace-tag`: which moved tags are overwritten.
    pub replace_tag: ReplaceTag,
    /// `tags`: copied besides what the mode selects (failed when the
    /// source lacks one); never pruned.
    pub tags: Vec<String>,
    /// `digests`: manifests copied by digest, with no tag; never pruned.
    pub digests: Vec<crate::model::Digest>,
    /// What else the image's copy does: platforms, referrers, prune.
    pub options: CopyOptions,
    /// A repository pattern (`source` ending in `/*` or `/**`): the entry
    /// stands for every repository it matches, found in the source's
    /// catalog when the run starts (`source` and `destination` are then
    /// the patterns' prefixes).
    pub pattern: Option<PatternSpec>,
    /// Why a pattern's repositories could not be found (set when the run
    /// expands it): the entry fails with this.
    pub pattern_failure: Option<String>,
}

/// The two sides of a repository pattern, and what it leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSpec {
    pub source: crate::model::pattern::RepoPattern,
    pub destination: crate::model::pattern::RepoPattern,
    /// `exclude-repositories`: whole-path regexes on the matched part.
    pub exclude: Vec<crate::select::Pattern>,
}

impl PatternSpec {
    /// The source and destination repository of a catalog name, when the
    /// pattern takes it (matched, not excluded, and valid at the
    /// destination), with the matched part.
    pub fn map(&self, name: &str) -> Option<(String, crate::model::Repository, crate::model::Repository)> {
        let rest = self.source.matched(name)?;
        if self.exclude.iter().any(|p| p.matches(rest)) {
            return None;
        }
        // the catalog's name is the source repository's path itself
        let from = crate::model::Repository {
            registry: self.source.registry.clone(),
            path: name.to_string(),
        };
        let to = self.destination.join(rest).ok()?;
        Some((rest.to_string(), from, to))
    }
}

pub use crate::defaults::PRUNE_MAX as DEFAULT_PRUNE_MAX;

/// `replace-tag`: what happens to a destination tag whose source moved to
/// another manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplaceTag {
    /// Left as it is (`false`, the default).
    #[default]
    No,
    /// Overwritten (`true`).
    Yes,
    /// Overwritten unless it is a full version (`MAJOR.MINOR.PATCH`, with
    /// or without a pre-release), which should never move: that one is
    /// reported and left (`except-versions`).
    ExceptVersions,
}

impl ReplaceTag {
    /// Whether a moved `tag` is overwritten.
    pub fn replaces(self, tag: &str) -> bool {
        match self {
            ReplaceTag::No => false,
            ReplaceTag::Yes => true,
            ReplaceTag::ExceptVersions => !is_full_version(tag),
        }
    }
}

/// A tag naming one release exactly: `MAJOR.MINOR.PATCH`, with or without
/// a `v` and a pre-release. Floating tags (`latest`, `1.27`, `1`) move by
/// design; one of these moving is a red flag.
pub fn is_full_version(tag: &str) -> bool {
    crate::version::Version::parse(tag).is_some_and(|v| v.components == 3)
}

/// What an image's copy does beyond choosing tags; every key can also be
/// set at the top level, as the default of images that do not set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// `platforms`: copy only these platforms of a multi-platform image
    /// (empty: all).
    pub platforms: Vec<crate::model::Platform>,
    /// `layout-media-types: oci`: a layout destination gets Docker
    /// manifests as their OCI equivalents.
    pub oci_media_types: bool,
    /// `referrers`: copy signatures, SBOMs and attestations with the image.
    pub referrers: bool,
    /// `artifact-types`: only referrers of these artifact types (empty: all).
    pub artifact_types: Vec<String>,
    /// `prune`: delete destination tags gone upstream.
    pub prune: bool,
    /// `prune-max`: more tags gone than this and the prune is refused.
    pub prune_max: usize,
    /// `detect-changes`: compare the tags both sides have (HEADs) and
    /// report those that moved upstream, also without `replace-tag`.
    pub detect_changes: bool,
    /// `backup-tag`: before a moved tag is overwritten, its old manifest
    /// is kept under this tag (`{tag}`, `{date}`); never pruned.
    pub backup_tag: Option<BackupTag>,
    /// `min-age`: a version the destination lacks is eligible only once
    /// its image is this old (release cooldown).
    pub min_age: Option<std::time::Duration>,
    /// `min-age-unknown: allow`: an image that states no usable creation
    /// time is eligible anyway (else it is held).
    pub min_age_unknown_allowed: bool,
}

/// Why a `min-age` value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgeError {
    #[error("needs a whole number and a unit: s, m, h or d (\"72h\", \"3d\")")]
    Unit,
    #[error("needs a whole number before its unit (\"72h\", \"3d\")")]
    Number,
    #[error("is longer than ten years")]
    TooLong,
}

/// `min-age`: a whole number and a unit, `s`, `m`, `h` or `d` (`72h`,
/// `3d`), up to ten years.
pub fn parse_age(text: &str) -> Result<std::time::Duration, AgeError> {
    let text = text.trim();
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(AgeError::Unit),
    };
    let n: u64 = number.parse().map_err(|_| AgeError::Number)?;
    match n.checked_mul(seconds) {
        Some(s) if s <= 3650 * 86_400 => Ok(std::time::Duration::from_secs(s)),
        _ => Err(AgeError::TooLong),
    }
}

/// Why a `backup-tag` template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupTagError {
    #[error("must contain {{tag}}, or every replaced tag would be kept under one name")]
    NoTag,
    #[error("knows only the placeholders {{tag}} and {{date}}")]
    Placeholder,
    #[error("does not make a valid tag (\"{0}\" for tag 1.2.3)")]
    NotATag(String),
}

/// `backup-tag`: a template of `{tag}` (the tag replaced), `{date}` (UTC,
/// `YYYYMMDD`) and the characters of a tag; with the pattern of the tags
/// it makes, compiled once.
#[derive(Debug, Clone)]
pub struct BackupTag {
    template: String,
    made: regex::Regex,
}

impl PartialEq for BackupTag {
    fn eq(&self, other: &Self) -> bool {
        self.template == other.template
    }
}

impl Eq for BackupTag {}

impl std::fmt::Display for BackupTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.template)
    }
}

impl BackupTag {
    /// The template, when it names `{tag}`, uses no other placeholder, and
    /// makes a valid tag.
    pub fn parse(template: &str) -> Result<BackupTag, BackupTagError> {
        let sample = template.replace("{tag}", "1.2.3").replace("{date}", "20260101");
        if !template.contains("{tag}") {
            return Err(BackupTagError::NoTag);
        }
        if sample.contains('{') || sample.contains('}') {
            return Err(BackupTagError::Placeholder);
        }
        if !crate::model::is_valid_tag(&sample) {
            return Err(BackupTagError::NotATag(sample));
        }
        // the literal parts escaped, the placeholders as what they stand for
        let pattern = regex::escape(template)
            .replace(&regex::escape("{tag}"), ".+")
            .replace(&regex::escape("{date}"), "[0-9]{8}");
        let made = regex::Regex::new(&format!("^{pattern}$")).map_err(|_| BackupTagError::Placeholder)?;
        Ok(BackupTag {
            template: template.to_string(),
            made,
        })
    }

    /// The backup tag of `tag` on `date` (`YYYYMMDD`); `None` when it
    /// would be too long for a tag.
    pub fn render(&self, tag: &str, date: &str) -> Option<String> {
        let name = self.template.replace("{tag}", tag).replace("{date}", date);
        crate::model::is_valid_tag(&name).then_some(name)
    }

    /// Whether `tag` is one this template makes (a prune leaves it).
    pub fn made(&self, tag: &str) -> bool {
        self.made.is_match(tag)
    }
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platforms: Vec::new(),
            oci_media_types: false,
            referrers: false,
            artifact_types: Vec::new(),
            prune: false,
            prune_max: DEFAULT_PRUNE_MAX,
            detect_changes: false,
            backup_tag: None,
            min_age: None,
            min_age_unknown_allowed: false,
        }
    }
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
    /// Where credentials come from (`auth:`); by default the Docker config,
    /// then the cloud the host name belongs to, then anonymous.
    pub auth: Option<AuthChoice>,
    /// AWS region for `auth: ecr` when the host name does not tell it.
    pub region: Option<String>,
    /// AWS account (registry id) for `auth: ecr` when the host does not tell it.
    pub registry_id: Option<String>,
    /// Create missing ECR repositories before the first push.
    pub create_repositories: bool,
    /// The AWS profile for this registry's ECR token (`aws-profile:`);
    /// by default the SDK's (`AWS_PROFILE`, else `default`).
    pub aws_profile: Option<String>,
    /// A Google credentials file for this registry (`google-credentials:`),
    /// instead of `GOOGLE_APPLICATION_CREDENTIALS` and the other sources.
    pub google_credentials: Option<PathBuf>,
}

pub use crate::model::cloud::AuthChoice;

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// Validates configuration text; `path` is used in messages only. Its
/// variables are read from the process's environment.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    parse_with(path, text, &|name| {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    })
}

/// [`parse`], with the variables read from `env`.
pub fn parse_with(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
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
    let mut root: Spanned<Node> = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        let message = format!("YAML syntax error: {}", syntax_message(&e.to_string()));
        ConfigError::Invalid(vec![problem_at(path, line, column, None, None, message)])
    })?;
    // variables first: a value that cannot be expanded would only make
    // more problems further on
    let (mut from_env, mut failed) = (vars::FromEnv::new(), Vec::new());
    vars::expand_tree(&mut root, env, &mut from_env, &mut failed);
    if !failed.is_empty() {
        let problems = failed
            .into_iter()
            .map(|((line, column), e)| problem_at(path, line, column, None, None, e.to_string()))
            .collect();
        return Err(ConfigError::Invalid(problems));
    }
    let mut v = Validator {
        path,
        problems: Vec::new(),
        warnings: Vec::new(),
        from_env,
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

/// The parser's own words without what the location prefix already says
/// (its "error: " and "line L column C: ").
fn syntax_message(s: &str) -> &str {
    let s = first_line(s).trim();
    let s = s.strip_prefix("error: ").unwrap_or(s);
    match s.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, rest))
            if position
                .split(' ')
                .all(|w| w == "column" || w.bytes().all(|b| b.is_ascii_digit())) =>
        {
            rest
        }
        _ => s,
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
