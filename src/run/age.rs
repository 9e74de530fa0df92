//! Release cooldown (`min-age`): a version the destination lacks is
//! eligible only once its image is old enough, by the time it states
//! itself (`model::created`). Only those candidates cost requests: the
//! manifest, and for an image without the annotation its config (for an
//! index: each child of the platforms asked for, the newest counting).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::config::ImageConfig;
use crate::error::StoreError;
use crate::model::created::{annotated, children_for, config_created, config_digest};
use crate::report::human_age;
use crate::select::select;
use crate::store::{MAX_CONFIG_BYTES, SmallBlob, Store, read_small_blob};

/// Missing tags whose age is asked after a run, at most, per image.
pub const MAX_ASKED: usize = 4;

/// The age of the oldest image among `tags` (at most [`MAX_ASKED`]) that
/// states when it was made; `None` when none does or the source does not
/// answer.
pub async fn oldest(src: &dyn Store, tags: &[String], image: &ImageConfig) -> Option<u64> {
    let now = SystemTime::now();
    let made: Vec<Option<u64>> = stream::iter(tags.iter().take(MAX_ASKED))
        .map(|t| async move { created_at(src, t, image).await.ok().flatten() })
        .buffered(AT_ONCE)
        .collect()
        .await;
    made.into_iter().flatten().min().map(|at| {
        now.duration_since(UNIX_EPOCH)
            .map_or(0, |n| n.as_secs().saturating_sub(at))
    })
}

/// Candidates whose age is looked up at once.
const AT_ONCE: usize = 16;
/// Children of one index looked at for its age, at most.
const MAX_CHILDREN: usize = 64;

/// A version held back by `min-age`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub tag: String,
    /// Its age, when it states when it was made.
    pub age: Option<Duration>,
    pub why: String,
}

/// `selected` with the versions too young (or of unknown age) taken out,
/// and the mode's choice made again without them (so `highest` picks the
/// highest version old enough), until every tag it picks is old enough.
pub async fn cooled(
    image: &ImageConfig,
    src: &dyn Store,
    source_tags: &[String],
    dest_tags: &[String],
    mut selected: Vec<String>,
    min_age: Duration,
) -> Result<(Vec<String>, Vec<Held>), StoreError> {
    let in_dest: HashSet<&String> = dest_tags.iter().collect();
    let now = SystemTime::now();
    let mut created: HashMap<String, Option<u64>> = HashMap::new();
    let mut held: Vec<Held> = Vec::new();
    let mut out: HashSet<String> = HashSet::new();
    loop {
        let unknown: Vec<String> = selected
            .iter()
            .filter(|t| !in_dest.contains(t) && !created.contains_key(*t))
            .cloned()
            .collect();
        let found: Vec<(String, Option<u64>)> = stream::iter(unknown)
            .map(|tag| async move { created_at(src, &tag, image).await.map(|t| (tag, t)) })
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        created.extend(found);
        let young: Vec<Held> = selected
            .iter()
            .filter(|t| !in_dest.contains(t))
            .filter_map(|t| hold(t, created[t], now, min_age, image.options.min_age_unknown_allowed))
            .collect();
        if young.is_empty() {
            return Ok((selected, held));
        }
        out.extend(young.iter().map(|h| h.tag.clone()));
        held.extend(young);
        let pool: Vec<String> = source_tags.iter().filter(|t| !out.contains(*t)).cloned().collect();
        selected = select(image.mode, &image.filters, &pool, dest_tags);
    }
}

/// Why a tag made at `created` is held, if it is.
fn hold(tag: &str, created: Option<u64>, now: SystemTime, min_age: Duration, allow_unknown: bool) -> Option<Held> {
    let min = human_age(min_age.as_secs());
    let Some(at) = created else {
        return (!allow_unknown).then(|| Held {
            tag: tag.to_string(),
            age: None,
            why: format!(
                "states no creation time (none, or before 2000 as reproducible builds write): held by min-age {min} \
                 (min-age-unknown: allow lets such images through)"
            ),
        });
    };
    let age = now
        .duration_since(UNIX_EPOCH + Duration::from_secs(at))
        .unwrap_or(Duration::ZERO);
    (age < min_age).then(|| Held {
        tag: tag.to_string(),
        age: Some(age),
        why: format!("{} old, younger than min-age {min}: held", human_age(age.as_secs())),
    })
}

/// When the image of `reference` was made, as it states (`None`: it does
/// not, or not believably).
async fn created_at(src: &dyn Store, reference: &str, image: &ImageConfig) -> Result<Option<u64>, StoreError> {
    let m = src.get_manifest(reference).await?;
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&m.bytes) else {
        return Ok(None);
    };
    if let Some(t) = annotated(&doc) {
        return Ok(Some(t));
    }
    if doc.get("manifests").is_none() {
        return config_time(src, &doc).await;
    }
    let mut newest = None;
    for child in children_for(&doc, &image.options.platforms)
        .into_iter()
        .take(MAX_CHILDREN)
    {
        let m = src.get_manifest(child.as_str()).await?;
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&m.bytes) else {
            continue;
        };
        let t = match annotated(&doc) {
            Some(t) => Some(t),
            None => config_time(src, &doc).await?,
        };
        newest = newest.max(t);
    }
    Ok(newest)
}

/// The `created` of an image manifest's config.
async fn config_time(src: &dyn Store, doc: &serde_json::Value) -> Result<Option<u64>, StoreError> {
    let Some(config) = config_digest(doc) else {
        return Ok(None);
    };
    Ok(match read_small_blob(src, &config, MAX_CONFIG_BYTES).await? {
        SmallBlob::Read(bytes) => serde_json::from_slice(&bytes).ok().as_ref().and_then(config_created),
        SmallBlob::TooLarge | SmallBlob::Mismatch => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn young_unknown_and_old_enough() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = Duration::from_secs(86_400);
        let made = |ago: u64| Some(1_800_000_000 - ago);
        let young = hold("1.3.0", made(5 * 3600), now, 3 * day, false).unwrap();
        assert_eq!(young.age, Some(Duration::from_secs(5 * 3600)));
        assert_eq!(young.why, "5h old, younger than min-age 3d: held");
        assert_eq!(hold("1.2.0", made(4 * 86_400), now, 3 * day, false), None);
        let unknown = hold("1.1.0", None, now, 3 * day, false).unwrap();
        assert!(unknown.why.contains("min-age-unknown: allow"), "{}", unknown.why);
        assert_eq!(hold("1.1.0", None, now, 3 * day, true), None);
        // made in the future (a skewed clock): age 0, held
        assert!(hold("2.0.0", Some(1_900_000_000), now, day, false).is_some());
        assert_eq!(human_age(2 * 86_400 + 3 * 3600), "2d 3h");
    }
}
