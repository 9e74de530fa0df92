//! Planning one image: list tags on both sides, select, and compare the
//! selected tags that both sides have (with `replace-tag`). Reads only.

use futures_util::{StreamExt, TryStreamExt, stream};
use std::collections::HashSet;

use crate::config::ImageConfig;
use crate::error::{Category, StoreError};
use crate::select::{select, why_nothing_qualifies};
use crate::store::Store;

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
}

impl PlanError {
    pub fn category(&self) -> Category {
        match self {
            PlanError::Store(e) => e.category(),
            PlanError::SourceMissing { .. } | PlanError::Vanished { .. } => Category::NotFound,
        }
    }

    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            PlanError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Tags compared at once per image with `replace-tag` (each comparison is
/// a HEAD on each side, at once; the registries' limits bound the rest).
const COMPARE_AT_ONCE: usize = 16;

/// Lists tags on both sides (at once: one round trip, not two) and decides
/// what to copy and replace.
pub async fn plan(image: &ImageConfig, src: &dyn Store, dst: &dyn Store) -> Result<Plan, PlanError> {
    let (source_tags, dest_tags) = futures_util::join!(src.list_tags(), dst.list_tags());
    let source_tags = source_tags?.ok_or_else(|| PlanError::SourceMissing {
        store: src.name(),
        kind: src.kind(),
    })?;
    // A destination that does not exist yet is empty: writing creates it.
    let dest_tags = dest_tags?;
    let new_destination = dest_tags.is_none();
    let dest_tags = dest_tags.unwrap_or_default();
    let selected = select(image.mode, &image.filters, &source_tags, &dest_tags);
    tracing::debug!(image = %image.name, selected = selected.len(), "selected tags [{}]", selected.join(", "));
    let in_dest: HashSet<&String> = dest_tags.iter().collect();
    let mut plan = Plan {
        new_destination,
        ..Plan::default()
    };
    if selected.is_empty() {
        plan.nothing_qualifies = why_nothing_qualifies(image.mode, &image.filters, &source_tags);
    }
    let (absent, both): (Vec<String>, Vec<String>) = selected.into_iter().partition(|t| !in_dest.contains(t));
    plan.copy = absent;
    if image.replace_tag {
        // compared at once, kept in selection order
        let compared: Vec<(String, bool)> = stream::iter(both)
            .map(|tag| async move { differs(src, dst, &tag).await.map(|d| (tag, d)) })
            .buffered(COMPARE_AT_ONCE)
            .try_collect()
            .await?;
        for (tag, differ) in compared {
            if differ {
                plan.replace.push(tag)
            } else {
                plan.present.push(tag)
            }
        }
    } else {
        plan.present = both;
    }
    Ok(plan)
}

/// Whether the tag's manifest digest differs between source and
/// destination, by HEAD (which Docker Hub does not count as a pull).
async fn differs(src: &dyn Store, dst: &dyn Store, tag: &str) -> Result<bool, PlanError> {
    let (a, b) = futures_util::join!(digest_of(src, tag), digest_of(dst, tag));
    Ok(a? != b?)
}

async fn digest_of(store: &dyn Store, tag: &str) -> Result<crate::model::Digest, PlanError> {
    let head = store.head_manifest(tag).await?.ok_or_else(|| PlanError::Vanished {
        store: store.name(),
        tag: tag.to_string(),
    })?;
    Ok(match head.digest {
        Some(d) => d,
        // Without Docker-Content-Digest, the bytes tell.
        None => store.get_manifest(tag).await?.digest,
    })
}
