//! `referrers: true`: signatures, SBOMs and attestations copied with the
//! images they are about, after the images (a referrer is copied only when
//! what it is about is in the destination).
//!
//! Two ways to find them at the source:
//! - tags about another manifest, read from the tag list the plan already
//!   has: the tag schema's `sha256-<hex>` index and cosign's `.sig`, `.att`,
//!   `.sbom`. Each is compared by HEAD on both sides (they change as
//!   signatures are added) and copied exactly when it differs;
//! - the OCI 1.1 referrers API, where the source offers it: asked for each
//!   selected tag's manifest. A destination without the API gets the
//!   referrers listed in its tag schema index (`sha256-<hex>`), merged with
//!   what that index lists already.

use std::collections::HashSet;

use futures_util::{StreamExt, stream};

use super::{CopyError, Engine, manifest_error};
use crate::model::manifest::OCI_INDEX;
use crate::model::referrers::{
    Referrer, admitted, describe, descriptors, may_be_admitted, merged_index, referrer_tag, schema_tag, target,
};
use crate::model::rewrite::{annotated, provenance};
use crate::model::{Digest, FetchedManifest};
use crate::store::{Store, digest_of};

/// Referrer tags and subjects looked at once per image.
const AT_ONCE: usize = 8;

/// What the referrers step did for one image.
#[derive(Debug, Default)]
pub struct Referred {
    /// Referrers copied (in a dry run: that would be): tags, or digests
    /// with the tag they are about.
    pub copied: Vec<String>,
    pub failed: Vec<(String, CopyError)>,
}

/// The tags of one image whose referrers are copied.
pub struct Subjects<'a> {
    /// Selected tags this pass copies (or, in a dry run, would copy).
    pub arriving: Vec<&'a String>,
    /// Selected tags the destination has already.
    pub present: &'a [String],
    /// The source's tags about another manifest (the tag schema, cosign's).
    pub referrer_tags: &'a [String],
    /// `artifact-types`: only referrers of these types (empty: all).
    pub artifact_types: &'a [String],
    /// The shape of the image's copies: which manifests arrive under their
    /// source digests (a dry run counts those as there).
    pub shape: &'a super::Shape,
}

/// Copies the referrers of an image's selected tags (see the module docs).
/// `dry_run`: looks, says what it would copy, writes nothing.
pub async fn copy_referrers(
    engine: &Engine,
    src: &dyn Store,
    dst: &dyn Store,
    subjects: &Subjects<'_>,
    dry_run: bool,
) -> Referred {
    let types = subjects.artifact_types;
    let mut out = Referred::default();
    // in a dry run, what this pass would copy is not there yet: counted
    // as there, each manifest the copies write under its source digest
    let mut arriving = HashSet::new();
    if dry_run {
        let kept: Vec<Result<Vec<Digest>, CopyError>> = stream::iter(&subjects.arriving)
            .map(|tag| engine.kept_manifests(src, tag, subjects.shape))
            .buffered(AT_ONCE)
            .collect()
            .await;
        arriving.extend(kept.into_iter().flat_map(Result::unwrap_or_default));
    }
    // what the destination has of what the tags are about, asked once per
    // manifest (a signature and an SBOM of one image: one question)
    let referrer_tags = subjects.referrer_tags;
    let selected: Vec<&String> = subjects.arriving.iter().copied().chain(subjects.present).collect();
    let mut subjects: Vec<Digest> = referrer_tags
        .iter()
        .filter_map(|t| referrer_tag(t).map(|r| r.subject))
        .collect();
    subjects.sort();
    subjects.dedup();
    let arriving = &arriving;
    let found: Vec<(Digest, Result<bool, CopyError>)> = stream::iter(subjects)
        .map(|s| async move {
            let r = has(dst, &s, arriving).await;
            (s, r)
        })
        .buffered(AT_ONCE)
        .collect()
        .await;
    let mut present = HashSet::new();
    for (subject, r) in found {
        match r {
            Ok(true) => {
                present.insert(subject);
            }
            Ok(false) => {}
            Err(e) => out.failed.push((format!("referrers of {subject}"), e)),
        }
    }
    let present = &present;
    let by_tags: Vec<(String, Result<bool, CopyError>)> = stream::iter(referrer_tags)
        .map(|tag| async move {
            let r = by_tag(engine, src, dst, tag, types, present, dry_run).await;
            (tag.clone(), r)
        })
        .buffered(AT_ONCE)
        .collect()
        .await;
    for (tag, r) in by_tags {
        match r {
            Ok(true) => out.copied.push(tag),
            Ok(false) => {}
            Err(e) => out.failed.push((tag, e)),
        }
    }
    by_api(engine, src, dst, &selected, types, arriving, dry_run, &mut out).await;
    out
}

/// Whether the destination has (or, in a dry run, will have) `subject`.
async fn has(dst: &dyn Store, subject: &Digest, arriving: &HashSet<Digest>) -> Result<bool, CopyError> {
    Ok(arriving.contains(subject) || dst.head_manifest(subject.as_str()).await?.is_some())
}

/// One tag about another manifest; `true` when it was (would be) copied.
async fn by_tag(
    engine: &Engine,
    src: &dyn Store,
    dst: &dyn Store,
    tag: &str,
    types: &[String],
    present: &HashSet<Digest>,
    dry_run: bool,
) -> Result<bool, CopyError> {
    let Some(about) = referrer_tag(tag) else {
        return Ok(false);
    };
    // only what is about a manifest the destination has
    if !present.contains(&about.subject) {
        return Ok(false);
    }
    if let Some(t) = about.artifact_type
        && !types.is_empty()
        && !types.iter().any(|x| x == t)
    {
        return Ok(false);
    }
    let (a, b) = futures_util::join!(digest_of(src, tag), digest_of(dst, tag));
    let (Some(a), b) = (a?, b?) else {
        return Ok(false);
    };
    if b.as_ref() == Some(&a) {
        return Ok(false);
    }
    if about.artifact_type.is_some() || types.is_empty() {
        if !dry_run {
            engine.copy_tag(src, dst, tag).await?;
        }
        return Ok(true);
    }
    // a tag schema index, narrowed to the artifact types asked for: the
    // destination's records what it was made from
    if let Some(b) = b
        && provenance(&dst.get_manifest(b.as_str()).await?.bytes).0.as_deref() == Some(a.as_str())
    {
        return Ok(false);
    }
    let index = src.get_manifest(a.as_str()).await?;
    let all = descriptors(&index.bytes).map_err(manifest_error(src, tag))?;
    // filtered on each referrer's own manifest, not on what the index says
    let mut checks = Vec::new();
    for listed in all.iter().filter(|d| may_be_admitted(d, types)) {
        checks.extend(checked(engine, (src, dst), listed, &about.subject, types).await?);
    }
    if checks.is_empty() || dry_run {
        return Ok(!checks.is_empty());
    }
    if checks.len() == all.len() && checks.iter().zip(&all).all(|(c, listed)| c.own == *listed) {
        engine.copy_tag(src, dst, tag).await?;
        return Ok(true);
    }
    for c in checks.iter().filter(|c| !c.held) {
        if let Some((digest, media_type)) = target(&c.own) {
            engine.copy_manifest(src, dst, &digest, &media_type).await?;
        }
    }
    let keep: Vec<Referrer> = checks.into_iter().map(|c| c.own).collect();
    let made = merged_index(None, &keep)
        .map_err(manifest_error(src, tag))?
        .unwrap_or_default();
    let made = FetchedManifest::made(made, OCI_INDEX);
    let made = annotated(&made, OCI_INDEX, &a, None).map_err(manifest_error(src, tag))?;
    engine.put_made(dst, tag, &made).await?;
    Ok(true)
}

/// A referrer, checked against its own manifest.
struct Checked {
    /// As its own manifest describes it.
    own: Referrer,
    /// The destination has it already.
    held: bool,
}

/// A referrer as its own manifest describes it (digest, size, media type,
/// `artifactType`), once that manifest is found to name `subject` as its
/// subject; `None` when its own type is not one of `types`. What a peer's
/// list says of it is only where to look. A referrer the destination
/// already has is read there (no pull at the source on a pass that changes
/// nothing).
async fn checked(
    engine: &Engine,
    (src, dst): (&dyn Store, &dyn Store),
    listed: &Referrer,
    subject: &Digest,
    types: &[String],
) -> Result<Option<Checked>, CopyError> {
    let Some((digest, media_type)) = target(listed) else {
        let bad = crate::model::manifest::ManifestError::Json(format!(
            "a referrer of {subject} is listed without a valid digest"
        ));
        return Err(manifest_error(src, subject.as_str())(bad));
    };
    let held = dst.head_manifest(digest.as_str()).await?.is_some();
    let m = match held {
        true => dst.get_manifest(digest.as_str()).await?,
        false => engine.source_manifest(src, &digest, &media_type).await?,
    };
    let (own, about) = describe(&m).map_err(manifest_error(src, digest.as_str()))?;
    if about.as_ref() != Some(subject) {
        return Err(CopyError::NotAReferrer {
            store: src.name(),
            digest,
            subject: subject.clone(),
            named: about.map_or("no manifest".into(), |d| d.to_string()),
        });
    }
    Ok(admitted(&own, types).then_some(Checked { own, held }))
}

/// A manifest and the referrers of it to copy (as its referrers list
/// names them, pre-filtered on the types that list claims:
/// [`may_be_admitted`]).
type Listed = (Digest, Vec<Referrer>);

/// What asking the source about one selected tag told.
enum Lookup {
    /// No API answer: the source has none, or the tag vanished.
    Unanswered,
    /// Nothing to copy: no referrers, or not about a manifest the
    /// destination has.
    Nothing,
    Found(Listed),
}

/// Asks the source's referrers API about one selected tag's manifest.
async fn lookup(
    src: &dyn Store,
    dst: &dyn Store,
    tag: &str,
    types: &[String],
    arriving: &HashSet<Digest>,
) -> Result<Lookup, CopyError> {
    let Some(subject) = digest_of(src, tag).await? else {
        return Ok(Lookup::Unanswered);
    };
    let Some(list) = src.referrers(&subject).await? else {
        return Ok(Lookup::Unanswered);
    };
    if list.is_empty() || !has(dst, &subject, arriving).await? {
        return Ok(Lookup::Nothing);
    }
    let keep = list.into_iter().filter(|d| may_be_admitted(d, types)).collect();
    Ok(Lookup::Found((subject, keep)))
}

/// The referrers API at the source, asked for each selected tag's manifest.
#[allow(clippy::too_many_arguments)]
async fn by_api(
    engine: &Engine,
    src: &dyn Store,
    dst: &dyn Store,
    selected: &[&String],
    types: &[String],
    arriving: &HashSet<Digest>,
    dry_run: bool,
    out: &mut Referred,
) {
    // one question first: a source without the API costs one lookup
    let Some((first, rest)) = selected.split_first() else {
        return;
    };
    let first = (first.to_string(), lookup(src, dst, first, types, arriving).await);
    match first.1 {
        Ok(Lookup::Unanswered) => return,
        Err(e) => return out.failed.push((format!("referrers of {}", first.0), e)),
        Ok(_) => {}
    }
    let rest: Vec<(String, Result<Lookup, CopyError>)> = stream::iter(rest)
        .map(|tag| async move { (tag.to_string(), lookup(src, dst, tag, types, arriving).await) })
        .buffered(AT_ONCE)
        .collect()
        .await;
    let looked = std::iter::once(first).chain(rest);
    let mut dst_has_api = None;
    for (tag, found) in looked {
        let (subject, keep) = match found {
            Ok(Lookup::Found(found)) => found,
            Ok(Lookup::Nothing | Lookup::Unanswered) => continue,
            Err(e) => {
                out.failed.push((format!("referrers of {tag}"), e));
                continue;
            }
        };
        let copied = async {
            let mut copied = Vec::new();
            let mut kept = Vec::new();
            for listed in &keep {
                let Some(c) = checked(engine, (src, dst), listed, &subject, types).await? else {
                    continue;
                };
                if let Some((digest, media_type)) = target(&c.own).filter(|_| !c.held) {
                    if !dry_run {
                        engine.copy_manifest(src, dst, &digest, &media_type).await?;
                    }
                    copied.push(format!("{digest} (about {tag})"));
                }
                kept.push(c.own);
            }
            let keep = kept;
            if dry_run || keep.is_empty() {
                return Ok(copied);
            }
            if dst_has_api.is_none() {
                dst_has_api = Some(dst.referrers(&subject).await?.is_some());
            }
            if dst_has_api == Some(false)
                && let Some(tag) = schema_tag(&subject)
            {
                let existing = match dst.head_manifest(&tag).await? {
                    Some(_) => Some(dst.get_manifest(&tag).await?.bytes),
                    None => None,
                };
                let merged = merged_index(existing.as_deref(), &keep).map_err(manifest_error(dst, &tag))?;
                if let Some(bytes) = merged {
                    engine
                        .put_made(dst, &tag, &FetchedManifest::made(bytes, OCI_INDEX))
                        .await?;
                }
            }
            Ok::<_, CopyError>(copied)
        }
        .await;
        match copied {
            Ok(c) => out.copied.extend(c),
            Err(e) => out.failed.push((format!("referrers of {tag}"), e)),
        }
    }
}
