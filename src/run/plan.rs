//! Planning one image: list tags on both sides, select, and compare the
//! selected tags that both sides have (with `replace-tag`). Reads only.

use futures_util::{StreamExt, TryStreamExt, stream};
use std::collections::HashSet;

use crate::config::{ImageConfig, ReplaceTag};
use crate::error::{Category, StoreError};
use crate::model::Digest;
use crate::model::referrers::referrer_tag;
use crate::select::prune::gone_upstream;
use crate::select::{Mode, select, why_nothing_qualifies};
use crate::store::{Store, deletable, digest_of};

/// What to do with one image: decided before anything is written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub copy: Vec<String>,
    pub replace: Vec<String>,
    /// Selected, already in the destination (and identical, with replace-tag).
    pub present: Vec<String>,
    /// The destination does not exist yet (its tag list was "not found").
    pub new_destination: bool,
    /// The source has tags but none qualifies: why (see
    /// [`why_nothing_qualifies`]).
    pub nothing_qualifies: Option<String>,
    /// With `referrers`: the source's tags that are about another manifest
    /// (`sha256-<hex>`, cosign's `.sig`, `.att`, `.sbom`), copied with it
    /// rather than as tags of their own.
    pub referrer_tags: Vec<String>,
    /// With `prune`: destination tags gone upstream, to delete.
    pub prune: Vec<String>,
    /// With `prune`: tags gone upstream that stay, and why.
    pub prune_left: Vec<(String, String)>,
    /// With `prune`: why this pass deletes nothing (a guard-rail held).
    pub prune_refused: Option<String>,
    /// Tags of the entry's `tags` that the source does not have: each
    /// fails.
    pub missing: Vec<String>,
    /// With `replace-tag` or `detect-changes`: tags both sides have whose
    /// source moved to another manifest.
    pub moved: Vec<Moved>,
    /// With `min-age`: versions the mode chose that are too young (or of
    /// unknown age), not copied this time.
    pub held: Vec<super::age::Held>,
    /// The highest version of the source that the image's filters admit,
    /// and of the destination before this run (freshness).
    pub newest_source: Option<String>,
    pub newest_destination: Option<String>,
}

/// A tag both sides have whose source now names another manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub tag: String,
    /// What the destination's tag names (what the tag was).
    pub from: Digest,
    /// What the source's names now.
    pub to: Digest,
    /// This run overwrites it (`replace-tag`).
    pub replaced: bool,
}

/// Why an image could not be planned.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{store}: source {kind} not found")]
    SourceMissing { store: String, kind: &'static str },
    #[error("{store}: tag {tag} vanished while planning")]
    Vanished { store: String, tag: String },
    /// A repository pattern found no repositories (see `run::expand`).
    #[error("{0}")]
    Pattern(String),
}

impl PlanError {
    pub fn category(&self) -> Category {
        match self {
            PlanError::Store(e) => e.category(),
            PlanError::SourceMissing { .. } | PlanError::Vanished { .. } | PlanError::Pattern(_) => Category::NotFound,
        }
    }

    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            PlanError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Tags looked up at once per image: `replace-tag` comparisons (a HEAD on
/// each side) and what a prune's copies bring; the registries' limits bound
/// the rest.
const COMPARE_AT_ONCE: usize = 16;

/// Lists tags on both sides (at once: one round trip, not two) and decides
/// what to copy and replace.
pub async fn plan(image: &ImageConfig, src: &dyn Store, dst: &dyn Store) -> Result<Plan, PlanError> {
    if let Some(why) = &image.pattern_failure {
        return Err(PlanError::Pattern(why.clone()));
    }
    let (source_tags, dest_tags) = futures_util::join!(src.list_tags(), dst.list_tags());
    let source_tags = source_tags?.ok_or_else(|| PlanError::SourceMissing {
        store: src.name(),
        kind: src.kind(),
    })?;
    // A destination that does not exist yet is empty: writing creates it.
    let dest_tags = dest_tags?;
    let new_destination = dest_tags.is_none();
    let dest_tags = dest_tags.unwrap_or_default();
    let mut selected = select(image.mode, &image.filters, &source_tags, &dest_tags);
    // release cooldown: the mode chooses again among versions old enough
    let mut held = Vec::new();
    if let Some(min_age) = image.options.min_age {
        (selected, held) = super::age::cooled(image, src, &source_tags, &dest_tags, selected, min_age).await?;
    }
    // listed tags besides, in the order written; one the source lacks fails
    let mut missing = Vec::new();
    for tag in &image.tags {
        if !source_tags.contains(tag) {
            missing.push(tag.clone());
        } else if !selected.contains(tag) {
            selected.push(tag.clone());
        }
    }
    let mut referrer_tags = Vec::new();
    if image.options.referrers {
        selected.retain(|t| referrer_tag(t).is_none());
        referrer_tags = source_tags
            .iter()
            .filter(|t| referrer_tag(t).is_some())
            .cloned()
            .collect();
        referrer_tags.sort();
    }
    tracing::debug!(image = %image.name, selected = selected.len(), "selected tags [{}]", selected.join(", "));
    let in_dest: HashSet<&String> = dest_tags.iter().collect();
    let newest = |tags: &[String]| image.filters.qualifying(tags).pop().map(|v| v.tag);
    let mut plan = Plan {
        new_destination,
        referrer_tags,
        missing,
        held,
        newest_source: newest(&source_tags),
        newest_destination: newest(&dest_tags),
        ..Plan::default()
    };
    if selected.is_empty() && image.mode != Mode::Listed {
        plan.nothing_qualifies = why_nothing_qualifies(image.mode, &image.filters, &source_tags);
    }
    let (absent, both): (Vec<String>, Vec<String>) = selected.into_iter().partition(|t| !in_dest.contains(t));
    plan.copy = absent;
    if image.replace_tag != ReplaceTag::No || image.options.detect_changes {
        // compared at once, kept in selection order
        let compared: Vec<(String, Option<(Digest, Digest)>)> = stream::iter(both)
            .map(|tag| async move { moved(image, src, dst, &tag).await.map(|d| (tag, d)) })
            .buffered(COMPARE_AT_ONCE)
            .try_collect()
            .await?;
        for (tag, change) in compared {
            let Some((from, to)) = change else {
                plan.present.push(tag);
                continue;
            };
            let replaced = image.replace_tag.replaces(&tag);
            match replaced {
                true => plan.replace.push(tag.clone()),
                false => plan.present.push(tag.clone()),
            }
            plan.moved.push(Moved {
                tag,
                from,
                to,
                replaced,
            });
        }
    } else {
        plan.present = both;
    }
    // pinned digests: copied where the destination does not have them
    // (a digest names its content: one there is the same)
    let pinned: Vec<(String, bool)> = stream::iter(&image.digests)
        .map(|d| async move {
            let there = !new_destination && dst.head_manifest(d.as_str()).await?.is_some();
            Ok::<_, StoreError>((d.to_string(), there))
        })
        .buffered(COMPARE_AT_ONCE)
        .try_collect()
        .await?;
    for (digest, there) in pinned {
        if there {
            plan.present.push(digest);
        } else {
            plan.copy.push(digest);
        }
    }
    if image.options.prune && !new_destination {
        let max = image.options.prune_max;
        // a listed tag is never pruned, not even counted
        // nor is a backup of a replaced tag
        let backup = image.options.backup_tag.as_ref();
        let candidates: Vec<String> = dest_tags
            .iter()
            .filter(|t| !image.tags.contains(t) && !backup.is_some_and(|b| b.made(t)))
            .cloned()
            .collect();
        match gone_upstream(image.mode, &image.filters, &source_tags, &candidates, max) {
            Ok(gone) if gone.is_empty() => {}
            Ok(gone) => match plan_prune(src, dst, gone, &dest_tags, &plan, &image.digests).await {
                Ok((delete, leave)) => {
                    plan.prune = delete;
                    plan.prune_left = leave;
                }
                Err(e) => {
                    plan.prune_refused = Some(format!("prune refused: could not check what it would delete: {e}"))
                }
            },
            Err(refusal) => plan.prune_refused = Some(refusal.to_string()),
        }
    }
    Ok(plan)
}

/// Which of the `gone` tags to delete, and which to leave (with why): on a
/// store that may delete a tag only with its manifest (any registry), a tag
/// is left when a staying tag, or a tag this run copies, needs that
/// manifest. Decided while planning, with reads only, so `--dry-run` shows
/// what the run deletes (the run decides again, after its copies, and
/// deletes no more than this).
async fn plan_prune(
    src: &dyn Store,
    dst: &dyn Store,
    gone: Vec<String>,
    dest_tags: &[String],
    plan: &Plan,
    pinned: &[Digest],
) -> Result<(Vec<String>, Vec<(String, String)>), StoreError> {
    if dst.deletes_tags_alone() {
        return Ok((gone, Vec::new()));
    }
    // pinned digests stay as staying tags do (those the destination has;
    // the others arrive with this run's copies)
    let staying = dest_tags
        .iter()
        .filter(|t| !gone.contains(t))
        .cloned()
        .chain(
            plan.present
                .iter()
                .filter(|p| pinned.iter().any(|d| d.as_str() == p.as_str()))
                .cloned(),
        )
        .collect();
    let arriving = arriving(src, plan.copy.iter().chain(&plan.replace)).await?;
    let (delete, leave) = deletable(dst, gone, staying, arriving).await?;
    Ok((delete.into_iter().map(|(tag, _)| tag).collect(), leave))
}

/// The manifests the tags this run copies bring along, each with who needs
/// it: their own, and the children of those that are indexes (one GET at
/// the source per index; a HEAD tells which are).
async fn arriving<'a>(
    src: &dyn Store,
    tags: impl Iterator<Item = &'a String>,
) -> Result<Vec<(crate::model::Digest, String)>, StoreError> {
    use crate::model::manifest::{DOCKER_LIST, Manifest, OCI_INDEX};
    // one tag's manifest and, for an index, its children
    let needs = |tag: &'a String| async move {
        let Some(head) = src.head_manifest(tag).await? else {
            return Ok(Vec::new());
        };
        let by = format!("tag {tag} (copied by this run)");
        if let (Some(d), false) = (
            &head.digest,
            matches!(head.media_type.as_str(), "" | OCI_INDEX | DOCKER_LIST),
        ) {
            return Ok(vec![(d.clone(), by)]);
        }
        let m = src.get_manifest(tag).await?;
        let mut needed = vec![(m.digest.clone(), by)];
        if let Ok(Manifest::Index { children }) = Manifest::parse(&m.media_type, &m.bytes) {
            let by = format!("tag {tag} (copied by this run, in its index)");
            needed.extend(children.into_iter().map(|(c, _)| (c, by.clone())));
        }
        Ok::<_, StoreError>(needed)
    };
    let found: Vec<_> = stream::iter(tags)
        .map(needs)
        .buffered(COMPARE_AT_ONCE)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Whether the tag's source moved away from what the destination's names,
/// by HEAD (which Docker Hub does not count as a pull): the destination's
/// digest and the source's when it did. A destination manifest rewritten
/// as the image asks (`platforms`, `layout-media-types`) is the same when
/// it was made from the source's digest, for the platforms asked for now:
/// one GET of it, on the destination only.
async fn moved(
    image: &ImageConfig,
    src: &dyn Store,
    dst: &dyn Store,
    tag: &str,
) -> Result<Option<(Digest, Digest)>, PlanError> {
    let (a, b) = futures_util::join!(existing_digest(src, tag), existing_digest(dst, tag));
    let (a, b) = (a?, b?);
    let shape = super::shape(image);
    let differ = match a == b || shape.is_exact() {
        true => a != b,
        false => !shape.made_from(&a, &dst.get_manifest(b.as_str()).await?.bytes),
    };
    Ok(differ.then_some((b, a)))
}

async fn existing_digest(store: &dyn Store, tag: &str) -> Result<crate::model::Digest, PlanError> {
    digest_of(store, tag).await?.ok_or_else(|| PlanError::Vanished {
        store: store.name(),
        tag: tag.to_string(),
    })
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod prune_tests;
