//! What a run did, per image and in total: rendered as text for people or
//! JSON for machines, and turned into the exit code.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::ImageConfig;
use crate::copy::Totals;
use crate::error::Category;
use crate::progress::human_bytes;

/// What happened to one tag.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Copied,
    Replaced,
    /// Already in the destination (and the same, with replace-tag).
    Present,
    Failed,
    NotStarted,
    /// Docker schema 1: left alone.
    Unsupported,
    /// Not of a platform asked for (`platforms:`); the record says why.
    Skipped,
    WouldCopy,
    WouldReplace,
    /// Gone upstream and deleted by `prune`.
    Deleted,
    WouldDelete,
    /// Gone upstream, but `prune` left it (see the record's `error`).
    NotDeleted,
    /// Chosen, but younger than `min-age` (or of unknown age): not copied
    /// this time (the record's `error` says how old).
    Held,
}

/// One tag of an image in the run report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TagRecord {
    pub tag: String,
    pub action: Action,
    /// The manifest digest copied (the destination then holds the same).
    pub source_digest: Option<String>,
    pub destination_digest: Option<String>,
    /// Blob bytes this tag's copy moved (blobs it shared with another copy
    /// count for the copy that moved them).
    pub bytes: u64,
    pub duration_seconds: f64,
    pub error_category: Option<Category>,
    pub error: Option<String>,
}

impl TagRecord {
    pub fn new(tag: &str, action: Action) -> TagRecord {
        TagRecord {
            tag: tag.to_string(),
            action,
            source_digest: None,
            destination_digest: None,
            bytes: 0,
            duration_seconds: 0.0,
            error_category: None,
            error: None,
        }
    }
}

/// The versioned run report that `--report PATH` writes; its schema is
/// `docs/report.schema.json`. Adding a field keeps the version; changing or
/// removing one raises it.
#[derive(Debug, Serialize)]
pub struct ReportFile<'a> {
    pub schema_version: u32,
    pub replicant_version: &'static str,
    pub started: String,
    pub finished: String,
    pub duration_seconds: f64,
    pub exit_code: u8,
    /// Why the configuration could not be used (exit code 2).
    pub config_problems: &'a [crate::config::Problem],
    #[serde(flatten)]
    pub run: &'a RunReport,
}

pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Writes `bytes` to `path` so that a reader sees the old file or the
/// whole new one: a temporary file beside it, synced, then renamed. The
/// temporary file has an unpredictable name and is created exclusively
/// (`O_EXCL`), so a symbolic link planted where it would go is never
/// followed; the rename replaces a link at `path` itself rather than
/// writing through it. Readable by all (0644), like the file a shell would
/// write: node-exporter's textfile collector often runs as another user.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // on failure the temporary file is removed when dropped
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TagFailure {
    pub tag: String,
    /// What kind of thing failed (auth, not-found, network, ...).
    pub category: Category,
    pub error: String,
}

/// A registry that failed as a whole (unreachable, or out of pull budget),
/// with the images that could not be copied because of it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RegistryTrouble {
    pub registry: String,
    pub category: Category,
    /// The first failure, or when to retry.
    pub cause: String,
    /// Image names, in file order.
    pub images: Vec<String>,
}

/// One image of the run. What happened to each tag is recorded once, in
/// `tags` ([`ImageReport::record`]); the lists by outcome (`copied`,
/// `failed`, ...) are read from it, and the JSON report shows both.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageReport {
    pub name: String,
    pub source: String,
    pub destination: String,
    /// The image was not processed at all: the run stopped first.
    pub stopped: bool,
    /// A failure of the whole image (listing or planning).
    pub error: Option<String>,
    /// What kind of thing failed, with `error`.
    pub error_category: Option<Category>,
    /// Not a failure, but wrong every night until someone looks: the image
    /// selects no tags from a source that has some, and why.
    pub attention: Option<String>,
    /// Signatures, SBOMs and attestations copied with the image
    /// (`referrers`; in a dry run: that would be): their tags, or digests
    /// with the tag they are about.
    pub referrers: Vec<String>,
    /// Why `prune` did not delete what is gone upstream: a guard-rail, or
    /// a tag left because deleting it would delete more.
    pub prune_held: Vec<String>,
    /// Every tag considered, with what happened to it.
    pub tags: Vec<TagRecord>,
    /// Tags both sides have whose source moved to another manifest
    /// (`replace-tag`, `detect-changes`).
    pub moved: Vec<MovedTag>,
    /// How far behind its source the destination is after the run (none
    /// when the image could not be planned).
    pub freshness: Option<Freshness>,
}

/// How far behind its source an image's destination is after a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Freshness {
    /// Tags the image selects that the destination still lacks: failed,
    /// held by `min-age`, not run (in a dry run: to copy).
    pub missing: usize,
    /// The highest version at the source that the filters admit.
    pub newest_source: Option<String>,
    /// The highest such version in the destination now.
    pub newest_mirrored: Option<String>,
    /// How old the oldest missing tag's image is (by the time it states),
    /// when that is known.
    pub oldest_missing_age_seconds: Option<u64>,
    /// Missing tags whose age the plan did not learn (asked after the
    /// copies).
    #[serde(skip)]
    pub unaged: Vec<String>,
}

impl Freshness {
    /// One line for a person: how far behind, and since when.
    pub fn said(&self) -> String {
        let newest = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        let oldest = match self.oldest_missing_age_seconds {
            Some(s) => format!("; the oldest missing was made {} ago", human_age(s)),
            None => String::new(),
        };
        format!(
            "behind: {} missing; newest version upstream {}, mirrored {}{oldest}",
            self.missing,
            newest(&self.newest_source),
            newest(&self.newest_mirrored)
        )
    }

    /// Whether the destination's newest version is lower than the
    /// source's (or it has none).
    pub fn behind(&self) -> bool {
        let version = |t: &Option<String>| t.as_deref().and_then(crate::version::Version::parse);
        match (version(&self.newest_source), version(&self.newest_mirrored)) {
            (Some(s), Some(m)) => s.semver > m.semver,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

impl ImageReport {
    /// The tags the image selects that the destination still lacks.
    pub fn missing(&self) -> Vec<&str> {
        self.with(&[Action::Failed, Action::Held, Action::NotStarted, Action::WouldCopy])
    }
}

/// A tag whose source moved to another manifest than the destination's.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MovedTag {
    pub tag: String,
    /// The destination's manifest digest (what the tag was).
    pub from: String,
    /// The source's (what it is now).
    pub to: String,
    /// Overwritten by this run (in a dry run: would be).
    pub replaced: bool,
    /// A full version (`MAJOR.MINOR.PATCH`): it should never move.
    pub version: bool,
}

impl MovedTag {
    /// One line for a person: which tag, from what to what, and what was
    /// done about it.
    pub fn said(&self, dry_run: bool) -> String {
        let done = match (self.replaced, dry_run) {
            (true, false) => "replaced",
            (true, true) => "would be replaced",
            (false, _) if self.version => "left as it was: a release tag should never move, check upstream",
            (false, _) => "left as it was",
        };
        format!(
            "moved upstream: {} from {} to {} ({done})",
            self.tag, self.from, self.to
        )
    }
}

/// An age as a person reads it: `5h`, `2d 3h`, `40m`, `12s`.
pub fn human_age(seconds: u64) -> String {
    match (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, _) => format!("{h}h"),
        (days, 0, _) => format!("{days}d"),
        (days, h, _) => format!("{days}d {h}h"),
    }
}

/// The JSON form of an [`ImageReport`]: its fields, and the lists by
/// outcome read from its records.
#[derive(Serialize)]
struct ImageReportJson<'a> {
    name: &'a str,
    source: &'a str,
    destination: &'a str,
    copied: Vec<&'a str>,
    replaced: Vec<&'a str>,
    present: Vec<&'a str>,
    unsupported: Vec<&'a str>,
    skipped: Vec<&'a str>,
    failed: Vec<TagFailure>,
    not_started: Vec<&'a str>,
    stopped: bool,
    error: &'a Option<String>,
    error_category: Option<Category>,
    attention: &'a Option<String>,
    deleted: Vec<&'a str>,
    held: Vec<&'a str>,
    referrers: &'a [String],
    prune_held: &'a [String],
    tags: &'a [TagRecord],
    moved: &'a [MovedTag],
    freshness: &'a Option<Freshness>,
}

impl Serialize for ImageReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ImageReportJson {
            name: &self.name,
            source: &self.source,
            destination: &self.destination,
            copied: self.copied(),
            replaced: self.replaced(),
            present: self.present(),
            unsupported: self.unsupported(),
            skipped: self.skipped(),
            failed: self.failed(),
            not_started: self.not_started(),
            stopped: self.stopped,
            error: &self.error,
            error_category: self.error_category,
            attention: &self.attention,
            deleted: self.deleted(),
            held: self.held().into_iter().map(|(t, _)| t).collect(),
            referrers: &self.referrers,
            prune_held: &self.prune_held,
            tags: &self.tags,
            moved: &self.moved,
            freshness: &self.freshness,
        }
        .serialize(serializer)
    }
}

impl ImageReport {
    pub fn new(image: &ImageConfig) -> ImageReport {
        ImageReport {
            name: image.name.clone(),
            source: image.source.to_string(),
            destination: image.destination.to_string(),
            stopped: false,
            error: None,
            error_category: None,
            attention: None,
            referrers: Vec::new(),
            prune_held: Vec::new(),
            tags: Vec::new(),
            moved: Vec::new(),
            freshness: None,
        }
    }

    /// What happened to one tag: its one record.
    pub fn record(&mut self, rec: TagRecord) {
        self.tags.push(rec);
    }

    /// The tags whose outcome is one of `actions`, in record order.
    fn with(&self, actions: &[Action]) -> Vec<&str> {
        self.tags
            .iter()
            .filter(|t| actions.contains(&t.action))
            .map(|t| t.tag.as_str())
            .collect()
    }

    /// Tags copied (in a dry run: that would be copied).
    pub fn copied(&self) -> Vec<&str> {
        self.with(&[Action::Copied, Action::WouldCopy])
    }

    /// Versions held back by `min-age`, with why.
    pub fn held(&self) -> Vec<(&str, &str)> {
        self.tags
            .iter()
            .filter(|t| t.action == Action::Held)
            .map(|t| (t.tag.as_str(), t.error.as_deref().unwrap_or("")))
            .collect()
    }

    /// Tags overwritten because the source changed (dry run: would be).
    pub fn replaced(&self) -> Vec<&str> {
        self.with(&[Action::Replaced, Action::WouldReplace])
    }

    /// Selected tags already in the destination, left alone.
    pub fn present(&self) -> Vec<&str> {
        self.with(&[Action::Present])
    }

    /// Tags not copied because their manifest format is unsupported.
    pub fn unsupported(&self) -> Vec<&str> {
        self.with(&[Action::Unsupported])
    }

    /// Tags not copied because they have none of the platforms asked for.
    pub fn skipped(&self) -> Vec<&str> {
        self.with(&[Action::Skipped])
    }

    /// Planned tags not started because the run stopped first.
    pub fn not_started(&self) -> Vec<&str> {
        self.with(&[Action::NotStarted])
    }

    /// Tags deleted because they are gone upstream (`prune`; in a dry
    /// run: that would be).
    pub fn deleted(&self) -> Vec<&str> {
        self.with(&[Action::Deleted, Action::WouldDelete])
    }

    /// The tags that failed, with why.
    pub fn failed(&self) -> Vec<TagFailure> {
        self.tags
            .iter()
            .filter(|t| t.action == Action::Failed)
            .map(|t| TagFailure {
                tag: t.tag.clone(),
                category: t.error_category.unwrap_or(Category::Protocol),
                error: t.error.clone().unwrap_or_default(),
            })
            .collect()
    }

    pub fn is_failed(&self) -> bool {
        self.error.is_some() || self.tags.iter().any(|t| t.action == Action::Failed)
    }

    /// How the image went, as the summary shows it: `FAILED`, `not run`,
    /// `partly run`, `needs attention` or `ok` (only `ok` is a success).
    pub fn status(&self) -> &'static str {
        if self.is_failed() {
            "FAILED"
        } else if self.stopped || !self.not_started().is_empty() {
            if self.copied().is_empty() && self.replaced().is_empty() {
                "not run"
            } else {
                "partly run"
            }
        } else if self.attention.is_some() || !self.prune_held.is_empty() {
            "needs attention"
        } else {
            "ok"
        }
    }

    /// One log line for the image's outcome (emitted in file order). Counts
    /// are numbers (typed in JSON logs); the tags are in the message.
    pub fn log(&self, dry_run: bool) {
        let name = &self.name;
        if let Some(e) = &self.error {
            tracing::error!(image = %name, "{e}");
        }
        for f in self.failed() {
            tracing::error!(image = %name, tag = %f.tag, "{}", f.error);
        }
        for t in self.tags.iter().filter(|t| t.action == Action::Skipped) {
            tracing::warn!(image = %name, tag = %t.tag, "skipped: {}", t.error.as_deref().unwrap_or_default());
        }
        for why in &self.prune_held {
            tracing::warn!(image = %name, "{why}");
        }
        if self.stopped {
            tracing::warn!(image = %name, "not processed: the run stopped early");
        } else if self.error.is_none() {
            let (copy, replace, delete) = match dry_run {
                true => ("would copy", "would replace", "would delete"),
                false => ("copied", "replaced", "deleted"),
            };
            let mut said = Vec::new();
            for (what, tags) in [
                (copy, self.copied()),
                (replace, self.replaced()),
                (delete, self.deleted()),
            ] {
                if !tags.is_empty() {
                    said.push(format!("{what} {}", tags.join(", ")));
                }
            }
            let present = self.present().len();
            if present > 0 {
                said.push(format!("{present} already present"));
            }
            if said.is_empty() {
                said.push("nothing to do".into());
            }
            tracing::info!(
                image = %name,
                copied = self.copied().len(),
                replaced = self.replaced().len(),
                present,
                deleted = self.deleted().len(),
                failed = self.failed().len(),
                not_started = self.not_started().len(),
                "{}: {}",
                if dry_run { "planned" } else { "done" },
                said.join("; ")
            );
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RunReport {
    pub dry_run: bool,
    pub images: Vec<ImageReport>,
    pub totals: Totals,
    /// `--exit-on-error` stopped the run before every image was processed.
    pub stopped_early: bool,
    /// A signal (SIGTERM, SIGINT) stopped the run.
    pub interrupted: bool,
    /// Registries that failed as a whole: unreachable, or out of pull
    /// budget.
    pub registries: Vec<RegistryTrouble>,
    /// The shard this run was (`--shard`, Indexed Jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardReport>,
    /// `--check`: how the destinations differ from what the config asks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

/// What `--check` found: every difference between what the config asks
/// for and what the destinations hold.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Nothing would be copied, replaced or deleted (and nothing failed).
    pub complete: bool,
    pub differences: Vec<Difference>,
}

/// One thing a run would change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Difference {
    pub image: String,
    /// A tag, a pinned digest, or a referrer.
    pub tag: String,
    /// What a run would do: `copy`, `replace` or `delete`.
    pub action: &'static str,
    /// What is wrong at the destination, in words.
    pub missing: &'static str,
}

/// Which share of the config a sharded run had.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ShardReport {
    pub index: u32,
    pub count: u32,
    /// Images of this shard.
    pub images: usize,
    /// Images in the config.
    pub of: usize,
}

impl RunReport {
    /// 0 when every image succeeded, 1 when any failed (or, with
    /// `--check`, when the mirror is not complete).
    pub fn exit_code(&self) -> i32 {
        let incomplete = self.check.as_ref().is_some_and(|c| !c.complete);
        if incomplete || self.images.iter().any(ImageReport::is_failed) {
            1
        } else {
            0
        }
    }

    /// What a dry run found to change, as `--check` tells it.
    pub fn differences(&self) -> Check {
        let mut differences = Vec::new();
        for i in &self.images {
            let referrers = i.referrers.iter().map(String::as_str).collect();
            for (tags, action, missing) in [
                (i.copied(), "copy", "missing at the destination"),
                (
                    i.replaced(),
                    "replace",
                    "at the destination with another digest than the source's",
                ),
                (i.deleted(), "delete", "gone upstream, still at the destination"),
                (referrers, "copy", "referrer missing at the destination"),
            ] {
                differences.extend(tags.into_iter().map(|tag| Difference {
                    image: i.name.clone(),
                    tag: tag.to_string(),
                    action,
                    missing,
                }));
            }
        }
        Check {
            complete: differences.is_empty() && !self.images.iter().any(ImageReport::is_failed),
            differences,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"cannot render report: {e}\"}}"))
    }

    pub fn to_text(&self) -> String {
        let (copy_word, replace_word, delete_word, referrers_word) = if self.dry_run {
            ("would copy", "would replace", "would delete", "referrers to copy")
        } else {
            ("copied", "replaced", "deleted", "referrers copied")
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "replicant summary{}{}",
            match &self.shard {
                Some(s) => format!(" of shard {}/{} ({} of {} images)", s.index, s.count, s.images, s.of),
                None => String::new(),
            },
            if self.dry_run {
                " (dry run: nothing was written)"
            } else {
                ""
            }
        );
        for i in &self.images {
            let status = i.status();
            let _ = writeln!(out, "  {} [{status}] {} -> {}", i.name, i.source, i.destination);
            if let Some(e) = &i.error {
                match i.error_category {
                    Some(c) => writeln!(out, "    error ({c}): {e}"),
                    None => writeln!(out, "    error: {e}"),
                }
                .ok();
            }
            let referrers: Vec<&str> = i.referrers.iter().map(String::as_str).collect();
            for (label, tags) in [
                (copy_word, i.copied()),
                (replace_word, i.replaced()),
                ("already present", i.present()),
                ("skipped, schema 1", i.unsupported()),
                ("skipped, none of the platforms asked for", i.skipped()),
                (delete_word, i.deleted()),
                (referrers_word, referrers),
            ] {
                if !tags.is_empty() {
                    let _ = writeln!(out, "    {label} ({}): {}", tags.len(), tags.join(", "));
                }
            }
            let held = i.held();
            if !held.is_empty() {
                let said: Vec<String> = held.iter().map(|(t, why)| format!("{t} ({why})")).collect();
                let _ = writeln!(out, "    held ({}): {}", held.len(), said.join("; "));
            }
            for f in i.failed() {
                let _ = writeln!(out, "    failed {} ({}): {}", f.tag, f.category, f.error);
            }
            let not_started = i.not_started();
            if !not_started.is_empty() {
                let _ = writeln!(
                    out,
                    "    not started ({}): {}",
                    not_started.len(),
                    not_started.join(", ")
                );
            }
            if i.stopped {
                let _ = writeln!(out, "    not processed: the run stopped early");
            }
            if let Some(why) = &i.attention {
                let _ = writeln!(out, "    {why}");
            }
            for why in &i.prune_held {
                let _ = writeln!(out, "    {why}");
            }
            for m in &i.moved {
                let _ = writeln!(out, "    {}", m.said(self.dry_run));
            }
            if let Some(f) = i.freshness.as_ref().filter(|f| f.missing > 0 || f.behind()) {
                let _ = writeln!(out, "    {}", f.said());
            }
            // every record but a tag prune left says something above
            let nothing = i.tags.iter().all(|t| t.action == Action::NotDeleted);
            if i.error.is_none()
                && i.attention.is_none()
                && !i.stopped
                && nothing
                && i.prune_held.is_empty()
                && i.referrers.is_empty()
            {
                let _ = writeln!(out, "    no tags selected");
            }
        }
        let sum = |f: fn(&ImageReport) -> usize| self.images.iter().map(f).sum::<usize>();
        let failed_images: Vec<&str> = self
            .images
            .iter()
            .filter(|i| i.is_failed())
            .map(|i| i.name.as_str())
            .collect();
        let (copied_word, replaced_word, deleted_word) = match self.dry_run {
            true => ("to copy", "to replace", "to delete"),
            false => ("copied", "replaced", "deleted"),
        };
        let deleted = match sum(|i| i.deleted().len()) {
            0 => String::new(),
            n => format!(", {n} {deleted_word}"),
        };
        let _ = writeln!(
            out,
            "totals: {} images, {} failed{}; tags: {} {copied_word}, {} {replaced_word}, {} already present{deleted}, {} failed",
            self.images.len(),
            failed_images.len(),
            if failed_images.is_empty() {
                String::new()
            } else {
                format!(" ({})", failed_images.join(", "))
            },
            sum(|i| i.copied().len()),
            sum(|i| i.replaced().len()),
            sum(|i| i.present().len()),
            sum(|i| i.failed().len()),
        );
        let t = &self.totals;
        let _ = writeln!(
            out,
            "blobs: {} transferred ({}), {} mounted ({}), {} already present ({})",
            t.blobs_transferred,
            human_bytes(t.bytes_moved),
            t.blobs_mounted,
            human_bytes(t.bytes_mounted),
            t.blobs_skipped,
            human_bytes(t.bytes_skipped)
        );
        let attention: Vec<&str> = self
            .images
            .iter()
            .filter(|i| i.attention.is_some())
            .map(|i| i.name.as_str())
            .collect();
        if !attention.is_empty() {
            let _ = writeln!(
                out,
                "needs attention: {} (selects no tags; --fail-on-empty makes this a failure)",
                attention.join(", ")
            );
        }
        let held: Vec<&str> = self
            .images
            .iter()
            .filter(|i| !i.prune_held.is_empty())
            .map(|i| i.name.as_str())
            .collect();
        if !held.is_empty() {
            let _ = writeln!(out, "needs attention: {} (prune held back; see above)", held.join(", "));
        }
        if self.stopped_early {
            let _ = writeln!(
                out,
                "stopped at the first error (--exit-on-error); later images were not processed"
            );
        }
        for t in &self.registries {
            let what = match t.category {
                Category::Unreachable => format!("registry {} unreachable: {}", t.registry, t.cause),
                _ => format!("{}: {}", t.registry, t.cause),
            };
            let _ = writeln!(out, "{what}; images {} not copied", t.images.join(", "));
        }
        if self.interrupted {
            let _ = writeln!(
                out,
                "interrupted by a signal: work not started is listed above; run again to complete it"
            );
        }
        if let Some(check) = &self.check {
            for d in &check.differences {
                let _ = writeln!(
                    out,
                    "check: {} {}: {} (a run would {} it)",
                    d.image, d.tag, d.missing, d.action
                );
            }
            let _ = match (check.complete, check.differences.len()) {
                (true, _) => writeln!(
                    out,
                    "check: complete, the destinations hold everything the config asks for"
                ),
                (false, 0) => writeln!(out, "check: not complete: an image failed (see above)"),
                (false, n) => writeln!(out, "check: not complete: {n} differences"),
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_files_never_write_through_a_planted_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("report.json");
        // where a predictable temporary name would be, and the target itself
        for planted in [
            format!(".report.json.{}.tmp", std::process::id()),
            ".report.json.1.tmp".into(),
            "report.json".into(),
        ] {
            std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
        }
        write_atomically(&path, b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o044, 0o044, "readable by the collector: {mode:o}");
        // nothing else is left beside it: the victim, the link and the three planted names
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    fn image(name: &str) -> ImageReport {
        ImageReport {
            name: name.into(),
            source: "s/a".into(),
            destination: "d/a".into(),
            stopped: false,
            error: None,
            error_category: None,
            attention: None,
            referrers: vec![],
            prune_held: vec![],
            tags: vec![],
            moved: vec![],
            freshness: None,
        }
    }

    #[test]
    fn exit_code_and_text_name_failed_images() {
        let mut ok = image("good");
        ok.record(TagRecord::new("1.0", Action::Copied));
        ok.record(TagRecord::new("1.1", Action::Copied));
        let mut bad = image("bad");
        bad.error = Some("s/b: source repository not found".into());
        bad.error_category = Some(Category::NotFound);
        let mut failed = TagRecord::new("2.0", Action::Failed);
        failed.error_category = Some(Category::Network);
        failed.error = Some("s/b: GET blob: HTTP 503".into());
        bad.record(failed);
        let r = RunReport {
            images: vec![ok.clone(), bad],
            totals: Totals {
                bytes_moved: 3 * 1024 * 1024,
                blobs_transferred: 2,
                ..Totals::default()
            },
            ..RunReport::default()
        };
        assert_eq!(r.exit_code(), 1);
        let text = r.to_text();
        assert!(text.contains("good [ok] s/a -> d/a"), "{text}");
        assert!(text.contains("copied (2): 1.0, 1.1"), "{text}");
        assert!(text.contains("bad [FAILED]"), "{text}");
        assert!(
            text.contains("    error (not-found): s/b: source repository not found"),
            "{text}"
        );
        assert!(
            text.contains("    failed 2.0 (network): s/b: GET blob: HTTP 503"),
            "{text}"
        );
        assert!(text.contains("1 failed (bad)"), "{text}");
        assert!(text.contains("2 transferred (3.0 MiB)"), "{text}");
        let mut r = r;
        r.registries.push(RegistryTrouble {
            registry: "r.io".into(),
            category: Category::Unreachable,
            cause: "r.io: GET /v2/: network error: connection refused".into(),
            images: vec!["a".into(), "b".into()],
        });
        let text = r.to_text();
        assert!(
            text.contains(
                "registry r.io unreachable: r.io: GET /v2/: network error: connection refused; images a, b not copied"
            ),
            "{text}"
        );
        let r = RunReport {
            images: vec![ok],
            ..RunReport::default()
        };
        assert_eq!(r.exit_code(), 0);
    }
}
