//! Checking the located YAML tree by hand, collecting every problem with
//! its line, column, image and key (serde's derive would stop at the first).

use std::collections::BTreeMap;
use std::path::Path;

use serde_saphyr::Spanned;

use super::keys::{self, Id, Key, Opt, Reg, Section};
use super::node::Node;
use super::vars::FromEnv;
use super::{
    AuthChoice, BackupTag, CopyOptions, ImageConfig, PatternSpec, Problem, RegistryOptions, ReplaceTag, problem_at,
};
use crate::model::pattern::RepoPattern;
use crate::model::{Endpoint, Platform, Repository};
use crate::select::{Filters, Mode, Pattern, Range};

/// What the top level sets for every image that does not set it itself.
#[derive(Default)]
struct Defaults {
    mode: Mode,
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    options: CopyOptions,
}

/// An image entry while its keys are read: what they set, and where the
/// keys are that later checks and warnings point at.
#[derive(Default)]
struct Draft<'n> {
    source: Option<Endpoint>,
    /// Each destination as written (one, or a list).
    destinations: Vec<Target<'n>>,
    /// `destination` is a list of more than one: each is an image of its
    /// own, named `KEY -> DESTINATION`.
    fanned: bool,
    mode: Mode,
    filters: Filters,
    replace_tag: ReplaceTag,
    options: CopyOptions,
    tags: Vec<String>,
    digests: Vec<crate::model::Digest>,
    /// `source` / `destination` written as repository patterns.
    source_pattern: Option<RepoPattern>,
    exclude_repositories: Vec<Pattern>,
    exclude_repositories_key: Option<&'n Spanned<Node>>,
    source_node: Option<&'n Spanned<Node>>,
    /// The entry sets its own `mode`.
    own_mode: bool,
    seen_source: bool,
    seen_destination: bool,
    prune_max_key: Option<&'n Spanned<Node>>,
    artifact_types_key: Option<&'n Spanned<Node>>,
    media_types_node: Option<&'n Spanned<Node>>,
    /// Filter keys set, which some modes ignore.
    filter_keys: Vec<(&'n Spanned<Node>, &'static str)>,
}

/// One destination of an image as written: its endpoint (a pattern's
/// prefix, for a pattern), its pattern, and where it is.
struct Target<'n> {
    endpoint: Option<Endpoint>,
    pattern: Option<RepoPattern>,
    node: &'n Spanned<Node>,
}

pub(super) struct Validator<'a> {
    pub path: &'a Path,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    /// The values that came from variables, with the text they were
    /// written as.
    pub from_env: FromEnv,
}

impl Validator<'_> {
    fn report(&mut self, at: &Spanned<Node>, image: Option<&str>, key: Option<&str>, message: String) {
        let message = self.unprinted(at, message);
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

    /// A warning about `key` of `image`, where `at` is.
    fn warn(&mut self, at: &Spanned<Node>, image: Option<&str>, key: &str, message: &str) {
        let message = self.unprinted(at, message.into());
        let p = problem_at(
            self.path,
            at.referenced.line(),
            at.referenced.column(),
            image,
            Some(key),
            message,
        );
        self.warnings.push(p);
    }

    /// The text a value from a variable was written as, if it was.
    fn written_as(&self, at: &Spanned<Node>) -> Option<&String> {
        self.from_env.get(&(at.referenced.line(), at.referenced.column()))
    }

    /// `message` about the value at `at`, which never shows a value that
    /// came from the environment (it may be a secret): the text it was
    /// written as stands in its place.
    fn unprinted(&self, at: &Spanned<Node>, message: String) -> String {
        match (self.written_as(at), &at.value) {
            (Some(written), Node::Str(value)) => {
                let message = if value.is_empty() {
                    message
                } else {
                    message.replace(value.as_str(), written)
                };
                format!("{message} (a value from the environment, not shown)")
            }
            _ => message,
        }
    }

    pub(super) fn root(&mut self, root: &Spanned<Node>) -> (Vec<ImageConfig>, BTreeMap<String, RegistryOptions>) {
        let Node::Map(entries) = &root.value else {
            self.report(
                root,
                None,
                None,
                format!("expected a mapping with \"images:\", found {}", root.value.kind()),
            );
            return Default::default();
        };
        let mut defaults = Defaults::default();
        let mut images_node = None;
        let mut registries = BTreeMap::new();
        for (k, val) in entries {
            let Some(key) = key_text(k).and_then(|t| keys::find(Section::Top, t)) else {
                self.unknown_key(k, None, Section::Top);
                continue;
            };
            match key.id {
                Id::Mode => {
                    if let Some(m) = self.mode(val, None) {
                        defaults.mode = m;
                    }
                }
                Id::Include | Id::Exclude => {
                    let list = self.patterns(val, None, key);
                    *pick(key.id, &mut defaults.include, &mut defaults.exclude) = list;
                }
                Id::Option(which) => self.option(which, key, val, None, &mut defaults.options),
                Id::Images => images_node = Some((k, val)),
                Id::Registries => registries = self.registries(key, val),
                // the image's and the registries' own keys are not found here
                _ => self.unknown_key(k, None, Section::Top),
            }
        }
        (self.images(root, images_node, &defaults), registries)
    }

    /// `registries:` — host -> connection settings.
    fn registries(&mut self, spec: &Key, val: &Spanned<Node>) -> BTreeMap<String, RegistryOptions> {
        let entries = match &val.value {
            Node::Map(e) => e,
            Node::Null => return BTreeMap::new(),
            _ => {
                self.wrong_value(spec, val, None, "registries");
                return BTreeMap::new();
            }
        };
        let mut out = BTreeMap::new();
        for (k, v) in entries {
            if let Some((host, o)) = self.registry(k, v) {
                out.insert(host, o);
            }
        }
        out
    }

    /// One `registries:` entry: its host and settings, or nothing when the
    /// host is not one (reported).
    fn registry(&mut self, k: &Spanned<Node>, v: &Spanned<Node>) -> Option<(String, RegistryOptions)> {
        let Some(host) = key_text(k) else {
            self.report(
                k,
                None,
                Some("registries"),
                format!("a registry must be a host name, found {}", k.value.kind()),
            );
            return None;
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
                return None;
            }
        };
        let mut o = RegistryOptions::default();
        let settings = match &v.value {
            Node::Map(e) => e.as_slice(),
            Node::Null => &[],
            other => {
                self.report(
                    v,
                    None,
                    Some(&format!("registries.{host}.")),
                    format!("expected a mapping of settings, found {}", other.kind()),
                );
                return None;
            }
        };
        for (sk, sv) in settings {
            match key_text(sk).and_then(|t| keys::find(Section::Registry, t)) {
                Some(
                    spec @ Key {
                        id: Id::Registry(which),
                        ..
                    },
                ) => self.registry_key(host, *which, spec, sv, &mut o),
                _ => self.unknown_key(sk, None, Section::Registry),
            }
        }
        self.registry_checks(k, host, &registry, &o);
        Some((registry.host, o))
    }

    /// One key of a `registries:` entry, into `o`.
    fn registry_key(&mut self, host: &str, which: Reg, spec: &Key, sv: &Spanned<Node>, o: &mut RegistryOptions) {
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let label = format!("registries.{host}.{}", spec.name);
        let expected = format!("expected {}", spec.expected);
        match which {
            Reg::Insecure | Reg::Tls | Reg::CreateRepositories => {
                let Some(b) = self.boolean(spec, sv, None, &label) else {
                    return;
                };
                match which {
                    Reg::Insecure => o.insecure = b,
                    Reg::Tls => o.tls = Some(b),
                    _ => o.create_repositories = b,
                }
            }
            Reg::Auth => match &sv.value {
                Node::Str(a) => match AuthChoice::parse(a) {
                    Some(choice) => o.auth = Some(choice),
                    None => self.report(
                        sv,
                        None,
                        Some(&label),
                        format!(
                            "unknown auth \"{a}\"; expected one of: {}",
                            AuthChoice::NAMES.join(", ")
                        ),
                    ),
                },
                other => self.report(
                    sv,
                    None,
                    Some(&label),
                    format!(
                        "expected one of {}, found {}",
                        AuthChoice::NAMES.join(", "),
                        other.kind()
                    ),
                ),
            },
            Reg::Region => match &sv.value {
                Node::Str(r) if is_aws_region(r) => o.region = Some(r.clone()),
                _ => self.report(sv, None, Some(&label), expected.clone()),
            },
            Reg::RegistryId => match &sv.value {
                Node::Str(r) if r.len() == 12 && r.bytes().all(|b| b.is_ascii_digit()) => {
                    o.registry_id = Some(r.clone())
                }
                Node::Int(n) if (100_000_000_000..1_000_000_000_000).contains(n) => o.registry_id = Some(n.to_string()),
                _ => self.report(sv, None, Some(&label), expected.clone()),
            },
            Reg::AwsProfile => match &sv.value {
                Node::Str(p) if is_profile_name(p) => o.aws_profile = Some(p.clone()),
                _ => self.report(sv, None, Some(&label), expected.clone()),
            },
            Reg::CaFile | Reg::CertFile | Reg::KeyFile | Reg::GoogleCredentials => match &sv.value {
                Node::Str(p) => {
                    let path = base.join(p);
                    if !path.is_file() {
                        self.report(
                            sv,
                            None,
                            Some(&label),
                            format!("{} is not a readable file", path.display()),
                        );
                    } else if let Some(why) = not_pem(which, &path) {
                        // found with every other problem, where it is written
                        self.report(sv, None, Some(&label), format!("{}: {why}", path.display()));
                    }
                    match which {
                        Reg::CaFile => o.ca_file = Some(path),
                        Reg::GoogleCredentials => o.google_credentials = Some(path),
                        Reg::CertFile => o.cert_file = Some(path),
                        _ => o.key_file = Some(path),
                    }
                }
                _ => self.wrong_value(spec, sv, None, &label),
            },
        }
    }

    /// What a `registries:` entry's settings say together: keys that go
    /// in pairs, keys that do nothing for this registry, and warnings.
    fn registry_checks(
        &mut self,
        k: &Spanned<Node>,
        host: &str,
        registry: &crate::model::Registry,
        o: &RegistryOptions,
    ) {
        if o.cert_file.is_some() != o.key_file.is_some() {
            self.report(
                k,
                None,
                Some(&format!("registries.{host}.cert-file")),
                "cert-file and key-file go together".into(),
            );
        }
        // the cloud whose credentials this registry gets
        let cloud = o
            .auth
            .or_else(|| crate::model::cloud::recognise(&registry.host).map(AuthChoice::of));
        let is_ecr = cloud == Some(AuthChoice::Ecr);
        let is_aws = is_ecr || cloud == Some(AuthChoice::EcrPublic);
        let is_google = cloud == Some(AuthChoice::Google);
        let mut ignored = Vec::new();
        if !is_ecr && (o.region.is_some() || o.registry_id.is_some() || o.create_repositories) {
            ignored.push("region, registry-id and create-repositories apply only to ECR registries (auth: ecr, or an ECR host name)");
        }
        if !is_aws && o.aws_profile.is_some() {
            ignored.push("aws-profile applies only to ECR and ECR Public registries");
        }
        if !is_google && o.google_credentials.is_some() {
            ignored.push("google-credentials applies only to Google registries (auth: google, or a Google host name)");
        }
        for why in ignored {
            let warning = problem_at(
                self.path,
                k.referenced.line(),
                k.referenced.column(),
                None,
                Some(&format!("registries.{host}")),
                format!("{why}: ignored here"),
            );
            self.warnings.push(warning);
        }
        if o.insecure {
            let warning = problem_at(
                self.path,
                k.referenced.line(),
                k.referenced.column(),
                None,
                Some(&format!("registries.{host}.insecure")),
                "TLS certificates of this registry are not verified".into(),
            );
            self.warnings.push(warning);
        }
    }

    fn images(
        &mut self,
        root: &Spanned<Node>,
        images_node: Option<(&Spanned<Node>, &Spanned<Node>)>,
        defaults: &Defaults,
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
        let images: Vec<(&Spanned<Node>, ImageConfig)> = list
            .iter()
            .flat_map(|(k, val)| self.image(k, val, defaults).into_iter().map(move |image| (k, image)))
            .collect();
        self.shared_destinations(&images);
        images.into_iter().map(|(_, image)| image).collect()
    }

    /// Images that write one destination where any of them prunes: each
    /// would take the other's tags for tags gone upstream and delete them,
    /// every pass, so such a config is refused (every pair named).
    fn shared_destinations(&mut self, images: &[(&Spanned<Node>, ImageConfig)]) {
        let mut by_destination: BTreeMap<String, Vec<&(&Spanned<Node>, ImageConfig)>> = BTreeMap::new();
        for entry in images {
            by_destination
                .entry(same_place(&entry.1.destination))
                .or_default()
                .push(entry);
        }
        for sharing in by_destination.values().filter(|s| s.len() > 1) {
            let Some(pruning) = sharing.iter().find(|(_, i)| i.options.prune) else {
                continue;
            };
            for (k, image) in sharing.iter().filter(|(_, i)| i.name != pruning.1.name) {
                let (other, line) = (&pruning.1.name, pruning.0.referenced.line());
                let message = format!(
                    "writes the same destination {} as image {other:?} (line {line}), which has prune: true; \
                     a prune would take the other image's tags for tags gone upstream and delete them. \
                     Give each image its own destination, or turn prune off for all images of it",
                    image.destination
                );
                self.report(k, Some(&image.name), Some("destination"), message);
            }
        }
    }

    /// An image entry: one image per destination.
    fn image(&mut self, k: &Spanned<Node>, val: &Spanned<Node>, defaults: &Defaults) -> Vec<ImageConfig> {
        let Some(name) = key_text(k) else {
            self.report(
                k,
                None,
                None,
                format!(
                    "an image name must be a string, found {}: YAML reads yes, no, on, off, y, n, true, false, null \
                     and numbers as such; quote the name (\"yes\":)",
                    k.value.kind()
                ),
            );
            return Vec::new();
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
                return Vec::new();
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
                return Vec::new();
            }
        };
        let before = self.problems.len();
        let mut draft = Draft {
            mode: defaults.mode,
            // an image's own include/exclude replace the top level's
            filters: Filters {
                include: defaults.include.clone(),
                exclude: defaults.exclude.clone(),
                ..Filters::default()
            },
            options: defaults.options.clone(),
            ..Draft::default()
        };
        for (key, v) in entries {
            match key_text(key).and_then(|t| keys::find(Section::Image, t)) {
                Some(spec) => self.image_key(&mut draft, name, key, spec, v),
                None => self.unknown_key(key, name, Section::Image),
            }
        }
        // listed tags or digests and no mode of its own: only those
        let listed = !draft.tags.is_empty() || !draft.digests.is_empty();
        if listed && !draft.own_mode {
            draft.mode = Mode::Listed;
        }
        self.image_checks(k, name, &mut draft);
        if self.problems.len() > before {
            return Vec::new();
        }
        self.image_warnings(k, name, &draft);
        let (Some(name), Some(source)) = (name, draft.source) else {
            return Vec::new();
        };
        let fanned = draft.fanned;
        let exclude = draft.exclude_repositories;
        draft
            .destinations
            .into_iter()
            .filter_map(|target| {
                let destination = target.endpoint?;
                let mut options = draft.options.clone();
                // `layout-media-types` is for the layouts of a list
                options.oci_media_types &= matches!(destination, Endpoint::Layout(_));
                Some(ImageConfig {
                    name: match fanned {
                        true => format!("{name} -> {destination}"),
                        false => name.to_string(),
                    },
                    entry: name.to_string(),
                    source: source.clone(),
                    destination,
                    mode: draft.mode,
                    filters: draft.filters.clone(),
                    replace_tag: draft.replace_tag,
                    tags: draft.tags.clone(),
                    digests: draft.digests.clone(),
                    options,
                    pattern: match (&draft.source_pattern, target.pattern) {
                        (Some(source), Some(destination)) => Some(PatternSpec {
                            source: source.clone(),
                            destination,
                            exclude: exclude.clone(),
                        }),
                        _ => None,
                    },
                    pattern_failure: None,
                })
            })
            .collect()
    }

    /// One key of an image entry, into the draft.
    fn image_key<'n>(
        &mut self,
        draft: &mut Draft<'n>,
        name: Option<&str>,
        key: &'n Spanned<Node>,
        spec: &Key,
        v: &'n Spanned<Node>,
    ) {
        match spec.id {
            Id::Source => {
                draft.seen_source = true;
                draft.source_node = Some(v);
                (draft.source, draft.source_pattern) = self.side(v, name, spec);
            }
            Id::Destination => {
                draft.seen_destination = true;
                self.destinations(v, name, spec, draft);
            }
            Id::ExcludeRepositories => {
                draft.exclude_repositories = self.patterns(v, name, spec);
                draft.exclude_repositories_key = Some(key);
            }
            Id::Mode => {
                draft.own_mode = true;
                if let Some(m) = self.mode(v, name) {
                    draft.mode = m;
                }
            }
            Id::Tags => draft.tags = self.tags(v, name, spec),
            Id::Digests => draft.digests = self.digests(v, name, spec),
            Id::Compatibility => match &v.value {
                Node::Str(s) if !s.trim().is_empty() => {
                    draft.filters.compatibility = Some(s.clone());
                    draft.filter_keys.push((key, spec.name));
                }
                Node::Null => {}
                _ => self.wrong_value(spec, v, name, spec.name),
            },
            Id::ReplaceTag => match &v.value {
                Node::Str(s) if s == "except-versions" => draft.replace_tag = ReplaceTag::ExceptVersions,
                _ => {
                    if let Some(b) = self.boolean(spec, v, name, spec.name) {
                        draft.replace_tag = if b { ReplaceTag::Yes } else { ReplaceTag::No };
                    }
                }
            },
            Id::Include | Id::Exclude => {
                let list = self.patterns(v, name, spec);
                *pick(spec.id, &mut draft.filters.include, &mut draft.filters.exclude) = list;
            }
            Id::Option(which) => {
                match which {
                    Opt::PruneMax => draft.prune_max_key = Some(key),
                    Opt::ArtifactTypes => draft.artifact_types_key = Some(key),
                    Opt::LayoutMediaTypes => draft.media_types_node = Some(v),
                    Opt::Prune
                    | Opt::Platforms
                    | Opt::Referrers
                    | Opt::DetectChanges
                    | Opt::BackupTag
                    | Opt::MinAge
                    | Opt::MinAgeUnknown => {}
                }
                self.option(which, spec, v, name, &mut draft.options)
            }
            Id::Versions => match &v.value {
                Node::Str(text) => match Range::parse(text) {
                    Ok(r) => {
                        draft.filters.versions = Some(r);
                        draft.filter_keys.push((key, spec.name));
                    }
                    Err(why) => self.report(v, name, Some(spec.name), why.to_string()),
                },
                _ => self.wrong_value(spec, v, name, spec.name),
            },
            Id::Keep => {
                if let Some(n) = self.count(spec, v, name, spec.name) {
                    draft.filters.keep = Some(usize::try_from(n).unwrap_or(usize::MAX));
                    draft.filter_keys.push((key, spec.name));
                }
            }
            Id::PinnedMajor => {
                if let Some(n) = self.count(spec, v, name, spec.name) {
                    draft.filters.pinned_major = u64::try_from(n).ok();
                    draft.filter_keys.push((key, spec.name));
                }
            }
            // the top level's and the registries' own keys are not found here
            Id::Images | Id::Registries | Id::Registry(_) => self.unknown_key(key, name, Section::Image),
        }
    }

    /// What an image's keys say together: a source and a destination,
    /// not the same, media types only for a layout.
    fn image_checks(&mut self, k: &Spanned<Node>, name: Option<&str>, draft: &mut Draft) {
        for (which, seen) in [("source", draft.seen_source), ("destination", draft.seen_destination)] {
            if !seen {
                self.report(
                    k,
                    name,
                    Some(which),
                    "missing; every image needs a source and a destination repository".into(),
                );
            }
        }
        self.pattern_checks(name, draft);
        for target in &draft.destinations {
            if let (Some(s), Some(d)) = (&draft.source, &target.endpoint)
                && s == d
            {
                self.report(
                    target.node,
                    name,
                    Some("destination"),
                    format!("\"{d}\" is the source itself: an image cannot be mirrored onto itself"),
                );
            }
        }
        let layouts = draft
            .destinations
            .iter()
            .any(|t| matches!(t.endpoint, Some(Endpoint::Layout(_))));
        if let (Some(node), Some(d)) = (
            draft.media_types_node,
            draft.destinations.first().and_then(|t| t.endpoint.as_ref()),
        ) && draft.options.oci_media_types
            && !layouts
        {
            self.report(
                node,
                name,
                Some("layout-media-types"),
                format!(
                    "applies only to a layout destination (oci:PATH); \"{d}\" is a registry, whose copies are exact"
                ),
            );
        }
        if !layouts {
            // a top-level default means: for the images written to layouts
            draft.options.oci_media_types = false;
        }
    }

    /// `destination`: one, or a list of several (each an image of its
    /// own), none twice.
    fn destinations<'n>(&mut self, v: &'n Spanned<Node>, name: Option<&str>, spec: &Key, draft: &mut Draft<'n>) {
        let items: Vec<&Spanned<Node>> = match &v.value {
            Node::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        if items.is_empty() {
            self.report(v, name, Some(spec.name), "lists no destination".into());
        }
        draft.fanned = items.len() > 1;
        for node in items {
            let (endpoint, pattern) = self.side(node, name, spec);
            let twice = endpoint.as_ref().and_then(|e| {
                draft
                    .destinations
                    .iter()
                    .find(|t| t.endpoint.as_ref().is_some_and(|o| same_place(o) == same_place(e)))
            });
            if let Some(first) = twice {
                let line = first.node.referenced.line();
                let message = format!("is listed twice (line {line}): each destination is written once");
                self.report(node, name, Some(spec.name), message);
            }
            draft.destinations.push(Target {
                endpoint,
                pattern,
                node,
            });
        }
    }

    /// A pattern on one side needs one ending the same way on the other,
    /// and a source registry with a catalog (Docker Hub has none).
    fn pattern_checks(&mut self, name: Option<&str>, draft: &Draft) {
        let Some(src_node) = draft.source_node else {
            return;
        };
        if draft.destinations.is_empty() {
            return;
        }
        for target in &draft.destinations {
            let dst_node = target.node;
            match (&draft.source_pattern, &target.pattern) {
                (Some(s), Some(d)) if s.depth != d.depth => self.report(
                    dst_node,
                    name,
                    Some("destination"),
                    format!("must end as the source does (\"{s}\"): the matched part is appended to it"),
                ),
                (Some(s), None) if target.endpoint.is_some() => self.report(
                    dst_node,
                    name,
                    Some("destination"),
                    format!("must end in /* or /** as the source does (\"{s}\"): the matched part is appended to it"),
                ),
                (None, Some(d)) if draft.source.is_some() => self.report(
                    dst_node,
                    name,
                    Some("destination"),
                    format!("\"{d}\" is a pattern, but the source is one repository"),
                ),
                _ => {}
            }
        }
        if let Some(s) = &draft.source_pattern
            && s.registry.is_docker_hub()
        {
            self.report(
                src_node,
                name,
                Some("source"),
                "Docker Hub offers no catalog: a repository pattern cannot be listed there (list the repositories as images)".into(),
            );
        }
    }

    /// Keys a valid image sets that do nothing for it, and what it cannot
    /// do as asked.
    fn image_warnings(&mut self, k: &Spanned<Node>, name: Option<&str>, draft: &Draft) {
        for (key, which) in &draft.filter_keys {
            let why = match (draft.mode, *which) {
                (Mode::All, _) => "ignored with mode \"all\", which copies every tag (include and exclude apply to it)",
                (Mode::Listed, _) => {
                    "ignored: this image sets no mode, so it copies only its \"tags\" and \"digests\" \
                     (a mode of its own selects more tags)"
                }
                (Mode::Highest, "keep") => "ignored with mode \"highest\", which copies one tag",
                _ => continue,
            };
            self.warn(key, name, which, why);
        }
        if let Some(key) = draft
            .exclude_repositories_key
            .filter(|_| draft.source_pattern.is_none())
        {
            let why = "ignored: the source is one repository, not a pattern ending in /* or /**";
            self.warn(key, name, "exclude-repositories", why);
        }
        let options = &draft.options;
        if let Some(key) = draft.prune_max_key.filter(|_| !options.prune) {
            let why = "ignored: prune is off for this image (\"prune: true\" turns it on)";
            self.warn(key, name, "prune-max", why);
        }
        if let Some(key) = draft.artifact_types_key.filter(|_| !options.referrers) {
            let why = "ignored: referrers are not copied for this image (\"referrers: true\" turns that on)";
            self.warn(key, name, "artifact-types", why);
        }
        if options.referrers && !options.platforms.is_empty() {
            let why = "signatures of the source's index do not verify the index of only these platforms that this \
                       image writes (its digest differs); signatures of the platform images do, and are copied";
            self.warn(k, name, "platforms", why);
        }
    }

    /// A key of [`CopyOptions`], at the top level (`image` is `None`) or
    /// in an image.
    fn option(&mut self, which: Opt, spec: &Key, v: &Spanned<Node>, image: Option<&str>, options: &mut CopyOptions) {
        let key = spec.name;
        match which {
            Opt::Prune => {
                if let Some(b) = self.boolean(spec, v, image, key) {
                    options.prune = b;
                }
            }
            Opt::PruneMax => {
                if let Some(n) = self.count(spec, v, image, key) {
                    options.prune_max = usize::try_from(n).unwrap_or(usize::MAX);
                }
            }
            Opt::Platforms => options.platforms = self.platforms(v, image, spec),
            Opt::Referrers => {
                if let Some(b) = self.boolean(spec, v, image, key) {
                    options.referrers = b;
                }
            }
            Opt::ArtifactTypes => options.artifact_types = self.media_types(v, image, spec),
            Opt::DetectChanges => {
                if let Some(b) = self.boolean(spec, v, image, key) {
                    options.detect_changes = b;
                }
            }
            Opt::MinAge => match &v.value {
                Node::Str(t) => match super::parse_age(t) {
                    Ok(age) => options.min_age = Some(age).filter(|a| !a.is_zero()),
                    Err(why) => self.report(v, image, Some(key), format!("\"{t}\" {why}")),
                },
                Node::Null => options.min_age = None,
                _ => self.wrong_value(spec, v, image, key),
            },
            Opt::MinAgeUnknown => match &v.value {
                Node::Str(t) if t == "allow" || t == "hold" => options.min_age_unknown_allowed = t == "allow",
                _ => self.wrong_value(spec, v, image, key),
            },
            Opt::BackupTag => match &v.value {
                Node::Str(t) => match BackupTag::parse(t) {
                    Ok(b) => options.backup_tag = Some(b),
                    Err(why) => self.report(v, image, Some(key), format!("\"{t}\" {why}")),
                },
                Node::Null => options.backup_tag = None,
                _ => self.wrong_value(spec, v, image, key),
            },
            Opt::LayoutMediaTypes => match &v.value {
                Node::Str(t) if t == "oci" || t == "verbatim" => options.oci_media_types = t == "oci",
                _ => self.wrong_value(spec, v, image, key),
            },
        }
    }

    /// Reports that `v` is not what `spec` takes ("expected ..., found
    /// ..."), under `label`.
    fn wrong_value(&mut self, spec: &Key, v: &Spanned<Node>, image: Option<&str>, label: &str) {
        let message = format!("expected {}, found {}", spec.expected, v.value.kind());
        self.report(v, image, Some(label), message);
    }

    /// A [`Value::Bool`](keys::Value::Bool) key's value; a wrong one is
    /// reported under `label`.
    fn boolean(&mut self, spec: &Key, v: &Spanned<Node>, image: Option<&str>, label: &str) -> Option<bool> {
        match &v.value {
            Node::Bool(b) => Some(*b),
            // a variable's value is text: read as the YAML it stands for
            Node::Str(s) if self.written_as(v).is_some() && (s == "true" || s == "false") => Some(s == "true"),
            _ => {
                self.wrong_value(spec, v, image, label);
                None
            }
        }
    }

    /// A [`Value::Count`](keys::Value::Count) key's value (within its
    /// bounds); a wrong one is reported under `label`.
    fn count(&mut self, spec: &Key, v: &Spanned<Node>, image: Option<&str>, label: &str) -> Option<i128> {
        let (min, max) = match spec.value {
            keys::Value::Count { min, max } => (min, max),
            _ => (1, i128::MAX),
        };
        let from_env = || match &v.value {
            Node::Str(s) if self.written_as(v).is_some() => s.parse::<i128>().ok(),
            _ => None,
        };
        match &v.value {
            Node::Int(i) if (min..=max).contains(i) => Some(*i),
            Node::Str(_) if from_env().is_some_and(|i| (min..=max).contains(&i)) => from_env(),
            _ => {
                self.wrong_value(spec, v, image, label);
                None
            }
        }
    }

    /// `source` or `destination`: its endpoint (a pattern's prefix, for a
    /// pattern), and the pattern when it is one.
    fn side(&mut self, v: &Spanned<Node>, image: Option<&str>, spec: &Key) -> (Option<Endpoint>, Option<RepoPattern>) {
        match self.repo_pattern(v, image, spec) {
            Some(p) => (p.as_ref().map(prefix_endpoint), p),
            None => (self.endpoint(v, image, spec), None),
        }
    }

    /// `source`/`destination` written as a repository pattern: `None` when
    /// it is not one, `Some(None)` when it is a wrong one (reported).
    fn repo_pattern(&mut self, v: &Spanned<Node>, image: Option<&str>, spec: &Key) -> Option<Option<RepoPattern>> {
        let Node::Str(s) = &v.value else { return None };
        match RepoPattern::parse(s)? {
            Ok(p) => Some(Some(p)),
            Err(e) => {
                self.report(v, image, Some(spec.name), format!("\"{s}\" {e}"));
                Some(None)
            }
        }
    }

    fn endpoint(&mut self, v: &Spanned<Node>, image: Option<&str>, spec: &Key) -> Option<Endpoint> {
        let key = spec.name;
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
            _ => {
                self.wrong_value(spec, v, image, key);
                None
            }
        }
    }

    /// The items of a list, or the one string standing for a list of one
    /// (nothing for an empty value); anything else is reported as not
    /// being the `expected` list.
    fn items<'n>(
        &mut self,
        v: &'n Spanned<Node>,
        image: Option<&str>,
        key: &str,
        expected: &str,
    ) -> Vec<&'n Spanned<Node>> {
        match &v.value {
            Node::Seq(items) => items.iter().collect(),
            Node::Str(_) => vec![v],
            Node::Null => Vec::new(),
            other => {
                self.report(
                    v,
                    image,
                    Some(key),
                    format!("expected {expected}, found {}", other.kind()),
                );
                Vec::new()
            }
        }
    }

    /// `include` / `exclude`: a list of regular expressions (or one), each
    /// checked where it is written.
    fn patterns(&mut self, v: &Spanned<Node>, image: Option<&str>, spec: &Key) -> Vec<Pattern> {
        let key = spec.name;
        let items = self.items(v, image, key, spec.expected);
        let mut out = Vec::new();
        for item in items {
            match &item.value {
                Node::Str(text) => match Pattern::parse(text) {
                    Ok(p) => out.push(p),
                    Err(why) => self.report(item, image, Some(key), why.to_string()),
                },
                other => self.report(
                    item,
                    image,
                    Some(key),
                    format!(
                        "expected a regular expression in quotes (YAML reads 1.20 as the number 1.2), found {}",
                        other.kind()
                    ),
                ),
            }
        }
        out
    }

    /// `tags`: tags as the Distribution grammar has them, in quotes where
    /// YAML would read a number; each once.
    fn tags(&mut self, v: &Spanned<Node>, image: Option<&str>, spec: &Key) -> Vec<String> {
        let key = spec.name;
        let mut out: Vec<String> = Vec::new();
        for item in self.items(v, image, key, spec.expected) {
            match &item.value {
                Node::Str(t) if crate::model::is_valid_tag(t) => {
                    if !out.contains(t) {
                        out.push(t.clone());
                    }
                }
                Node::Str(t) => self.report(
                    item,
                    image,
                    Some(key),
                    format!("\"{t}\" is not a tag (letters, digits, _ . and -, at most 128, not starting with . or -)"),
                ),
                other => self.report(
                    item,
                    image,
                    Some(key),
                    format!(
                        "expected a tag in quotes (YAML reads 1.20 as the number 1.2), found {}",
                        other.kind()
                    ),
                ),
            }
        }
        out
    }

    /// `digests`: manifest digests (`sha256:` and 64 hex digits), each once.
    fn digests(&mut self, v: &Spanned<Node>, image: Option<&str>, spec: &Key) -> Vec<crate::model::Digest> {
        let key = spec.name;
        let mut out: Vec<crate::model::Digest> = Vec::new();
        for item in self.items(v, image, key, spec.expected) {
            match &item.value {
                Node::Str(d) => match crate::model::Digest::parse(d) {
                    Ok(d) if !out.contains(&d) => out.push(d),
                    Ok(_) => {}
                    Err(why) => self.report(item, image, Some(key), why.to_string()),
                },
                _ => self.wrong_value(spec, item, image, key),
            }
        }
        out
    }

    /// A list of media types (`type/subtype`, as `artifact-types` takes).
    fn media_types(&mut self, v: &Spanned<Node>, image: Option<&str>, spec: &Key) -> Vec<String> {
        let key = spec.name;
        let items = self.items(v, image, key, spec.expected);
        let mut out = Vec::new();
        for item in items {
            let valid = |t: &str| {
                let mut parts = t.split('/');
                let ok = |p: Option<&str>| {
                    p.is_some_and(|p| {
                        !p.is_empty()
                            && p.len() <= 127
                            && p.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
                    })
                };
                ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
            };
            match &item.value {
                Node::Str(t) if valid(t) => out.push(t.clone()),
                Node::Str(t) => {
                    let message = format!("\"{t}\" is not a media type such as application/spdx+json");
                    self.report(item, image, Some(key), message)
                }
                other => self.report(
                    item,
                    image,
                    Some(key),
                    format!(
                        "expected an artifact type such as application/spdx+json, found {}",
                        other.kind()
                    ),
                ),
            }
        }
        out
    }

    /// `platforms`: a list of `os/architecture[/variant]`.
    fn platforms(&mut self, v: &Spanned<Node>, image: Option<&str>, spec: &Key) -> Vec<Platform> {
        let key = Some(spec.name);
        let items = self.items(v, image, spec.name, spec.expected);
        let mut out: Vec<Platform> = Vec::new();
        for item in items {
            match &item.value {
                Node::Str(text) => match Platform::parse(text) {
                    Ok(p) if !out.contains(&p) => out.push(p),
                    Ok(_) => {}
                    Err(why) => self.report(item, image, key, why.to_string()),
                },
                other => self.report(
                    item,
                    image,
                    key,
                    format!("expected a platform such as linux/amd64, found {}", other.kind()),
                ),
            }
        }
        out
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

    /// A key `section` does not have: its message says which it has, or
    /// the one it was probably meant to be.
    fn unknown_key(&mut self, k: &Spanned<Node>, image: Option<&str>, section: Section) {
        let known = keys::names(section);
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
        // the first Go versions (and their Helm chart's example) named them so
        let renamed = match text {
            "upstream" => Some("source"),
            "downstream" => Some("destination"),
            _ => None,
        };
        if let Some(new) = renamed.filter(|n| known.contains(n)) {
            message.push_str(&format!(" (its name in early Go versions): write \"{new}\" instead"));
        } else if let Some(close) = known
            .iter()
            .filter(|c| crate::model::edit_distance(text, c) <= 2)
            .min_by_key(|c| crate::model::edit_distance(text, c))
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

/// The list a key `include` or `exclude` sets.
/// An endpoint as one place: a registry repository by its normalised
/// name, a layout by its path with `.` and `..` taken out.
/// Why a TLS file (`ca-file`, `cert-file`, `key-file`) is not the PEM it
/// must be; `None` when it is, or is no TLS file. Read up to 1 MiB.
fn not_pem(which: Reg, path: &Path) -> Option<String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    if !matches!(which, Reg::CaFile | Reg::CertFile | Reg::KeyFile) {
        return None;
    }
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.len() > 1024 * 1024 => return Some("is larger than 1 MiB: not a PEM file".into()),
        _ => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return Some(format!("cannot be read: {e}")),
        },
    };
    let certificates = || {
        CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .is_ok_and(|c| !c.is_empty())
    };
    match which {
        Reg::KeyFile => PrivateKeyDer::from_pem_slice(&bytes)
            .is_err()
            .then(|| "holds no PEM private key".into()),
        _ => (!certificates()).then(|| "holds no PEM certificate".into()),
    }
}

fn same_place(e: &Endpoint) -> String {
    match e {
        Endpoint::Registry(repo) => format!("registry {repo}"),
        Endpoint::Layout(path) => {
            let mut out = std::path::PathBuf::new();
            for c in path.components() {
                match c {
                    std::path::Component::CurDir => {}
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    other => out.push(other),
                }
            }
            format!("layout {}", out.display())
        }
    }
}

fn pick<'a>(which: Id, include: &'a mut Vec<Pattern>, exclude: &'a mut Vec<Pattern>) -> &'a mut Vec<Pattern> {
    if which == Id::Include { include } else { exclude }
}

fn key_text(k: &Spanned<Node>) -> Option<&str> {
    match &k.value {
        Node::Str(s) => Some(s),
        _ => None,
    }
}

/// An AWS region name as the SDKs write them (`us-east-1`, `cn-north-1`,
/// `us-gov-west-1`, `eu-isoe-west-1`).
fn is_aws_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// A profile name as the AWS config files allow it.
fn is_profile_name(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 128
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+' | b'/'))
}

/// The endpoint a pattern's entry stands at until the run expands it: its
/// prefix (empty for a whole registry).
fn prefix_endpoint(p: &RepoPattern) -> Endpoint {
    Endpoint::Registry(Repository {
        registry: p.registry.clone(),
        path: p.prefix.clone(),
    })
}
