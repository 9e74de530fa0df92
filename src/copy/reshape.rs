//! Copies that are not byte-for-byte, on request: an index reduced to some
//! platforms (`platforms:`), Docker manifests written to a layout as their
//! OCI equivalents (`layout-media-types: oci`). Blobs are still copied
//! verbatim and verified; only manifests change, and the top one records
//! the source digest it was made from ([`rewrite::SOURCE_DIGEST`]).

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{CopyError, Engine, FAN_OUT, MAX_DEPTH, Outcome, manifest_error};
use crate::model::manifest::{Manifest, ManifestError, OCI_INDEX, OCI_MANIFEST};
use crate::model::platform::{Platform, joined};
use crate::model::rewrite::{self, Filtered, NewChild, is_docker};
use crate::model::{Digest, FetchedManifest};
use crate::store::{MAX_CONFIG_BYTES, SmallBlob, Store, read_small_blob};

/// How a copy may differ from its source; the default is an exact copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Only these platforms of a multi-platform image (empty: all).
    pub platforms: Vec<Platform>,
    /// Docker manifests and lists become OCI manifests and indexes.
    pub oci: bool,
}

impl Shape {
    pub fn is_exact(&self) -> bool {
        self.platforms.is_empty() && !self.oci
    }

    /// Whether `written`, the destination's manifest of a tag, is what a
    /// copy in this shape makes of the source manifest `source`: made from
    /// that digest, for these platforms (read from the annotations the
    /// rewrite leaves).
    pub fn made_from(&self, source: &Digest, written: &[u8]) -> bool {
        let (made_from, platforms) = rewrite::provenance(written);
        let expected = (!self.platforms.is_empty()).then(|| joined(&self.platforms));
        made_from.as_deref() == Some(source.as_str()) && (platforms.is_none() || platforms == expected)
    }
}

/// Where a copy in a shape starts ([`Engine::start`]).
enum Start {
    /// Docker schema 1: not copied.
    Schema1,
    /// None of the platforms asked for: why.
    Skipped(String),
    /// The source's manifest, and the document the copy writes from: the
    /// same, or (`reduced`) the index with only the platforms asked for.
    From {
        top: FetchedManifest,
        doc: FetchedManifest,
        manifest: Manifest,
        reduced: bool,
    },
}

impl Engine {
    /// The source manifests of `tag` that a copy in `shape` writes under
    /// their own digests, so that referrers about them follow: the whole
    /// tree of an exact copy; of a reduced index, the platform images it
    /// keeps (not the index, whose digest changes); none that a rewrite to
    /// OCI media types changes. What a dry run counts as arriving.
    pub async fn kept_manifests(&self, src: &dyn Store, tag: &str, shape: &Shape) -> Result<Vec<Digest>, CopyError> {
        let mut kept = Vec::new();
        let Start::From {
            doc, manifest, reduced, ..
        } = self.start(src, tag, shape).await?
        else {
            return Ok(kept);
        };
        match (reduced, manifest) {
            (true, Manifest::Index { children }) => {
                for (digest, desc) in children {
                    let (child, parsed) = self.fetch(src, digest.as_str(), &desc.media_type).await?;
                    self.unchanged(src, &child, parsed, shape.oci, 1, &mut kept).await?;
                }
            }
            (_, manifest) => {
                self.unchanged(src, &doc, manifest, shape.oci, 0, &mut kept).await?;
            }
        }
        Ok(kept)
    }

    /// Collects the manifests of `m`'s tree that a copy writes unchanged
    /// (with `oci`, a Docker manifest changes, and so does every index
    /// above one); whether `m` itself is one of them.
    fn unchanged<'a>(
        &'a self,
        src: &'a dyn Store,
        m: &'a FetchedManifest,
        manifest: Manifest,
        oci: bool,
        depth: usize,
        kept: &'a mut Vec<Digest>,
    ) -> BoxFuture<'a, Result<bool, CopyError>> {
        Box::pin(async move {
            let mut same = !(oci && is_docker(&m.media_type));
            if let Manifest::Index { children } = manifest {
                if depth >= MAX_DEPTH {
                    return Ok(false);
                }
                for (digest, desc) in children {
                    let (child, parsed) = self.fetch(src, digest.as_str(), &desc.media_type).await?;
                    same &= self.unchanged(src, &child, parsed, oci, depth + 1, kept).await?;
                }
            }
            if same {
                kept.push(m.digest.clone());
            }
            Ok(same)
        })
    }

    /// Where a copy of `tag` in `shape` starts: the source's manifest and
    /// the document it writes from (reduced to the platforms asked for),
    /// or why there is nothing to copy.
    async fn start(&self, src: &dyn Store, tag: &str, shape: &Shape) -> Result<Start, CopyError> {
        let (top, manifest) = self.fetch(src, tag, "").await?;
        let bad = manifest_error(src, tag);
        let wanted = joined(&shape.platforms);
        let (doc, manifest, reduced) = match &manifest {
            Manifest::Schema1 => return Ok(Start::Schema1),
            _ if shape.platforms.is_empty() => (top.clone(), manifest, false),
            Manifest::Index { .. } => match rewrite::filter_index(&top.bytes, &shape.platforms).map_err(&bad)? {
                Filtered::All => (top.clone(), manifest, false),
                Filtered::Nothing { offered } => {
                    let has = match offered.is_empty() {
                        true => "no platform stated".to_string(),
                        false => offered.join(", "),
                    };
                    let why = format!("has none of the platforms asked for ({wanted}), only {has}");
                    return Ok(Start::Skipped(why));
                }
                Filtered::Some(bytes) => {
                    let m = FetchedManifest::made(bytes, &top.media_type);
                    let parsed = Manifest::parse(&m.media_type, &m.bytes).map_err(&bad)?;
                    (m, parsed, true)
                }
            },
            Manifest::Image { .. } => match self.platform_of(src, &top).await? {
                Some(p) if shape.platforms.iter().any(|w| w.admits(&p)) => (top.clone(), manifest, false),
                found => {
                    let found = found.map_or("a platform it does not state".to_string(), |p| p.to_string());
                    let why = format!("is a single-platform image for {found}, not one asked for ({wanted})");
                    return Ok(Start::Skipped(why));
                }
            },
        };
        Ok(Start::From {
            top,
            doc,
            manifest,
            reduced,
        })
    }

    /// Copies `src:tag` to `dst:tag` in the given shape (see [`Shape`]).
    pub async fn copy_tag_shaped(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        tag: &str,
        shape: &Shape,
    ) -> Result<Outcome, CopyError> {
        // a pinned digest names its bytes: copied exactly, whatever the shape
        if shape.is_exact() || Digest::parse(tag).is_ok() {
            return self.copy_tag(src, dst, tag).await;
        }
        let (top, doc, manifest, reduced) = match self.start(src, tag, shape).await? {
            Start::Schema1 => {
                tracing::warn!(source = %src.name(), tag, "Docker schema 1 manifest: not supported, tag skipped");
                return Ok(Outcome::SkippedSchema1);
            }
            Start::Skipped(why) => return Ok(Outcome::SkippedPlatform(why)),
            Start::From {
                top,
                doc,
                manifest,
                reduced,
            } => (top, doc, manifest, reduced),
        };
        let bad = manifest_error(src, tag);
        let wanted = joined(&shape.platforms);
        let written = self.convert_tree(src, dst, doc, manifest, shape.oci, 0).await?;
        if written.digest == top.digest {
            self.put_made(dst, tag, &written).await?;
            return Ok(Outcome::Copied(top.digest));
        }
        let platforms = reduced.then_some(wanted);
        let written =
            rewrite::annotated(&written, &written.media_type, &top.digest, platforms.as_deref()).map_err(&bad)?;
        self.put_made(dst, tag, &written).await?;
        tracing::debug!(source = %src.name(), destination = %dst.name(), tag, digest = %written.digest, from = %top.digest, "copied, rewritten");
        Ok(Outcome::Rewritten {
            source: top.digest,
            written: written.digest,
        })
    }

    /// Copies everything `m` refers to; with `oci`, Docker manifests below
    /// it are written as their OCI equivalents (by their new digests)
    /// first. Returns the manifest to write for `m`: itself when nothing
    /// in it changed.
    fn convert_tree<'a>(
        &'a self,
        src: &'a dyn Store,
        dst: &'a dyn Store,
        m: FetchedManifest,
        manifest: Manifest,
        oci: bool,
        depth: usize,
    ) -> BoxFuture<'a, Result<FetchedManifest, CopyError>> {
        Box::pin(async move {
            let bad = manifest_error(src, m.digest.as_str());
            let children = match manifest {
                Manifest::Index { children } if oci => children,
                other => {
                    let docker_image = oci && matches!(other, Manifest::Image { .. }) && is_docker(&m.media_type);
                    self.copy_contents(src, dst, other, &m.digest, depth).await?;
                    if !docker_image {
                        return Ok(m);
                    }
                    let bytes = rewrite::to_oci(&m.bytes, &HashMap::new()).map_err(&bad)?;
                    return Ok(FetchedManifest::made(bytes, OCI_MANIFEST));
                }
            };
            if depth >= MAX_DEPTH {
                return Err(CopyError::TooDeep {
                    store: src.name(),
                    limit: MAX_DEPTH,
                });
            }
            let rewritten: Vec<Option<(Digest, NewChild)>> = stream::iter(children)
                .map(|(digest, desc)| async move {
                    if !is_docker(&desc.media_type) {
                        self.copy_child(src, dst, &digest, &desc.media_type, depth + 1).await?;
                        return Ok(None);
                    }
                    let (child, parsed) = self.fetch(src, digest.as_str(), &desc.media_type).await?;
                    let new = self.convert_tree(src, dst, child, parsed, true, depth + 1).await?;
                    self.put_made(dst, new.digest.as_str(), &new).await?;
                    let new = NewChild {
                        size: new.bytes.len(),
                        digest: new.digest,
                        media_type: new.media_type,
                    };
                    Ok::<_, CopyError>(Some((digest, new)))
                })
                .buffer_unordered(FAN_OUT)
                .try_collect()
                .await?;
            let map: HashMap<Digest, NewChild> = rewritten.into_iter().flatten().collect();
            if map.is_empty() && !is_docker(&m.media_type) {
                return Ok(m);
            }
            let bytes = rewrite::to_oci(&m.bytes, &map).map_err(&bad)?;
            Ok(FetchedManifest::made(bytes, OCI_INDEX))
        })
    }

    /// The platform a single-platform image's config states (`None` when
    /// it states none or cannot be read as JSON).
    async fn platform_of(&self, src: &dyn Store, m: &FetchedManifest) -> Result<Option<Platform>, CopyError> {
        let bad = manifest_error(src, m.digest.as_str());
        let doc: serde_json::Value =
            serde_json::from_slice(&m.bytes).map_err(|e| bad(ManifestError::Json(e.to_string())))?;
        let Some(config) = doc
            .pointer("/config/digest")
            .and_then(serde_json::Value::as_str)
            .and_then(|d| Digest::parse(d).ok())
        else {
            return Ok(None);
        };
        let bytes = match read_small_blob(src, &config, MAX_CONFIG_BYTES).await? {
            SmallBlob::Read(bytes) => bytes,
            SmallBlob::TooLarge => {
                let why = format!("its config {config} is larger than {MAX_CONFIG_BYTES} bytes");
                return Err(bad(ManifestError::Json(why)));
            }
            SmallBlob::Mismatch => {
                let why = format!("its config does not match its digest {config}");
                return Err(bad(ManifestError::Json(why)));
            }
        };
        Ok(serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|c| Platform::of_json(&c)))
    }
}
