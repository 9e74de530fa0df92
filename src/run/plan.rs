//! Planning one image: list tags on both sides, select, and compare the
//! selected tags that both sides have (with `replace-tag`). Reads only.

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

/// Lists tags on both sides and decides what to copy and replace.
pub async fn plan(image: &ImageConfig, src: &dyn Store, dst: &dyn Store) -> Result<Plan, PlanError> {
    let source_tags = src.list_tags().await?.ok_or_else(|| PlanError::SourceMissing {
        store: src.name(),
        kind: src.kind(),
    })?;
    // A destination that does not exist yet is empty: writing creates it.
    let dest_tags = dst.list_tags().await?;
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
    for tag in selected {
        if !in_dest.contains(&tag) {
            plan.copy.push(tag);
        } else if image.replace_tag && differs(src, dst, &tag).await? {
            plan.replace.push(tag);
        } else {
            plan.present.push(tag);
        }
    }
    Ok(plan)
}

/// Whether the tag's manifest digest differs between source and
/// destination, by HEAD (which Docker Hub does not count as a pull).
async fn differs(src: &dyn Store, dst: &dyn Store, tag: &str) -> Result<bool, PlanError> {
    let mut digests = Vec::with_capacity(2);
    for store in [src, dst] {
        let head = store.head_manifest(tag).await?.ok_or_else(|| PlanError::Vanished {
            store: store.name(),
            tag: tag.to_string(),
        })?;
        let digest = match head.digest {
            Some(d) => d,
            // Without Docker-Content-Digest, the bytes tell.
            None => store.get_manifest(tag).await?.digest,
        };
        digests.push(digest);
    }
    Ok(digests[0] != digests[1])
}
