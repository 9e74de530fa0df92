//! Every key of the configuration file, in one table: its name, where it
//! may appear, how its value is read and what a wrong value is told. The
//! validator dispatches on it, the "unknown key" message lists its names
//! (and finds the "did you mean"), and the docs test checks the reference
//! against it. A key is added here, with its variant of [`Id`]; the
//! compiler then asks for its handling where it is read, and
//! `config::tests::every_key_of_the_table_is_read_where_it_may_appear`
//! fails until it is.

/// The part of the file a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The top level of the file.
    Top,
    /// An entry under `images:`.
    Image,
    /// An entry under `registries:`.
    Registry,
}

/// Which key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    Source,
    Destination,
    Mode,
    Compatibility,
    ReplaceTag,
    PinnedMajor,
    Include,
    Exclude,
    Versions,
    Keep,
    Tags,
    Digests,
    ExcludeRepositories,
    Images,
    Registries,
    /// A key of `CopyOptions`: in an image, and at the top level as the
    /// default of every image.
    Option(Opt),
    /// A key of a `registries:` entry.
    Registry(Reg),
}

/// The keys of `CopyOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Prune,
    PruneMax,
    Platforms,
    LayoutMediaTypes,
    Referrers,
    ArtifactTypes,
    DetectChanges,
    BackupTag,
    MinAge,
    MinAgeUnknown,
}

/// The keys of a `registries:` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    CaFile,
    Insecure,
    CertFile,
    KeyFile,
    Tls,
    Auth,
    Region,
    RegistryId,
    CreateRepositories,
    AwsProfile,
    GoogleCredentials,
}

/// How a key's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// `true` or `false`.
    Bool,
    /// A whole number from `min` to `max`.
    Count { min: i128, max: i128 },
    /// By the validator's own reader for this key (names, lists, paths),
    /// which checks what `expected` says.
    Own,
}

/// One key of the table.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub id: Id,
    /// Where it may appear.
    pub sections: &'static [Section],
    pub value: Value,
    /// What a valid value is, as a wrong one is told ("expected ...,
    /// found a list").
    pub expected: &'static str,
}

const TOP: &[Section] = &[Section::Top];
const IMAGE: &[Section] = &[Section::Image];
const BOTH: &[Section] = &[Section::Top, Section::Image];
const REGISTRY: &[Section] = &[Section::Registry];

const BOOL: &str = "true or false";
const FILE: &str = "a file path";

/// The table, in the order the "known keys" lists give them.
pub const KEYS: &[Key] = &[
    key("source", Id::Source, IMAGE, Value::Own, "a repository name"),
    key(
        "destination",
        Id::Destination,
        IMAGE,
        Value::Own,
        "a repository name, or a list of them",
    ),
    key("mode", Id::Mode, BOTH, Value::Own, "one of the modes"),
    key(
        "compatibility",
        Id::Compatibility,
        IMAGE,
        Value::Own,
        "a non-empty string such as \"alpine\"",
    ),
    key(
        "replace-tag",
        Id::ReplaceTag,
        IMAGE,
        Value::Own,
        "true, false or \"except-versions\"",
    ),
    key(
        "pinned-major",
        Id::PinnedMajor,
        IMAGE,
        Value::Count {
            min: 0,
            max: u64::MAX as i128,
        },
        "a non-negative integer",
    ),
    key(
        "include",
        Id::Include,
        BOTH,
        Value::Own,
        "a list of regular expressions matched against the whole tag",
    ),
    key(
        "exclude",
        Id::Exclude,
        BOTH,
        Value::Own,
        "a list of regular expressions matched against the whole tag",
    ),
    key(
        "versions",
        Id::Versions,
        IMAGE,
        Value::Own,
        "a range in quotes, such as \">=1.20, <2\"",
    ),
    key(
        "keep",
        Id::Keep,
        IMAGE,
        Value::Count { min: 1, max: i128::MAX },
        "how many versions to keep, 1 or more",
    ),
    key(
        "tags",
        Id::Tags,
        IMAGE,
        Value::Own,
        "a list of tags such as [\"1.27.3\", stable]",
    ),
    key(
        "digests",
        Id::Digests,
        IMAGE,
        Value::Own,
        "a list of digests such as [sha256:<64 hex digits>]",
    ),
    key(
        "exclude-repositories",
        Id::ExcludeRepositories,
        IMAGE,
        Value::Own,
        "a list of regular expressions on the repository path below the pattern",
    ),
    key(
        "images",
        Id::Images,
        TOP,
        Value::Own,
        "a mapping of image names to entries",
    ),
    key(
        "registries",
        Id::Registries,
        TOP,
        Value::Own,
        "a mapping of registry hosts to settings",
    ),
    key("prune", Id::Option(Opt::Prune), BOTH, Value::Bool, BOOL),
    key(
        "prune-max",
        Id::Option(Opt::PruneMax),
        BOTH,
        Value::Count { min: 1, max: i128::MAX },
        "how many tags one pass may delete at most, 1 or more",
    ),
    key(
        "platforms",
        Id::Option(Opt::Platforms),
        BOTH,
        Value::Own,
        "a list of platforms such as [linux/amd64, linux/arm64]",
    ),
    key(
        "layout-media-types",
        Id::Option(Opt::LayoutMediaTypes),
        BOTH,
        Value::Own,
        "\"verbatim\" (exact copies, the default) or \"oci\" (Docker media types made OCI)",
    ),
    key("referrers", Id::Option(Opt::Referrers), BOTH, Value::Bool, BOOL),
    key(
        "artifact-types",
        Id::Option(Opt::ArtifactTypes),
        BOTH,
        Value::Own,
        "a list of artifact types such as [application/spdx+json]",
    ),
    key(
        "detect-changes",
        Id::Option(Opt::DetectChanges),
        BOTH,
        Value::Bool,
        BOOL,
    ),
    key(
        "backup-tag",
        Id::Option(Opt::BackupTag),
        BOTH,
        Value::Own,
        "a tag template such as \"{tag}-replaced-{date}\"",
    ),
    key(
        "min-age",
        Id::Option(Opt::MinAge),
        BOTH,
        Value::Own,
        "an age such as \"72h\" or \"3d\" (units s, m, h, d)",
    ),
    key(
        "min-age-unknown",
        Id::Option(Opt::MinAgeUnknown),
        BOTH,
        Value::Own,
        "\"hold\" (the default) or \"allow\"",
    ),
    key("ca-file", Id::Registry(Reg::CaFile), REGISTRY, Value::Own, FILE),
    key("insecure", Id::Registry(Reg::Insecure), REGISTRY, Value::Bool, BOOL),
    key("cert-file", Id::Registry(Reg::CertFile), REGISTRY, Value::Own, FILE),
    key("key-file", Id::Registry(Reg::KeyFile), REGISTRY, Value::Own, FILE),
    key("tls", Id::Registry(Reg::Tls), REGISTRY, Value::Bool, BOOL),
    key(
        "auth",
        Id::Registry(Reg::Auth),
        REGISTRY,
        Value::Own,
        "one of the credential sources",
    ),
    key(
        "region",
        Id::Registry(Reg::Region),
        REGISTRY,
        Value::Own,
        "an AWS region such as us-east-1",
    ),
    key(
        "registry-id",
        Id::Registry(Reg::RegistryId),
        REGISTRY,
        Value::Own,
        "a 12-digit AWS account id (quote it to keep leading zeros)",
    ),
    key(
        "create-repositories",
        Id::Registry(Reg::CreateRepositories),
        REGISTRY,
        Value::Bool,
        BOOL,
    ),
    key(
        "aws-profile",
        Id::Registry(Reg::AwsProfile),
        REGISTRY,
        Value::Own,
        "the name of a profile in the AWS config files",
    ),
    key(
        "google-credentials",
        Id::Registry(Reg::GoogleCredentials),
        REGISTRY,
        Value::Own,
        FILE,
    ),
];

const fn key(name: &'static str, id: Id, sections: &'static [Section], value: Value, expected: &'static str) -> Key {
    Key {
        name,
        id,
        sections,
        value,
        expected,
    }
}

impl Key {
    pub fn appears_in(&self, section: Section) -> bool {
        self.sections.contains(&section)
    }
}

/// The key `name` of `section`, if there is one.
pub fn find(section: Section, name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name && k.appears_in(section))
}

/// The names of `section`'s keys, in table order.
pub fn names(section: Section) -> Vec<&'static str> {
    KEYS.iter().filter(|k| k.appears_in(section)).map(|k| k.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_section_and_every_id_has_one_key() {
        for section in [Section::Top, Section::Image, Section::Registry] {
            let mut names = names(section);
            let all = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), all, "{section:?}: a name twice");
        }
        for (i, k) in KEYS.iter().enumerate() {
            assert!(KEYS[i + 1..].iter().all(|o| o.id != k.id), "{}: its id twice", k.name);
        }
    }
}
