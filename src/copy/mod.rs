//! Copy one image: blobs, then child manifests by digest, then the top
//! manifest by tag — so a destination tag never points at an incomplete
//! image. Bytes are copied verbatim and verified while they stream.
//!
//! One [`Engine`] serves every copy of a run, many at once. What one copy
//! learns or does is shared with the others: a source manifest is fetched
//! once per digest, a blob is checked and moved once per destination (copies
//! that need it meanwhile wait for that one transfer), and a blob that landed
//! in one repository of a registry is mounted into the others.

mod blobs;

pub mod referrers;
mod reshape;
mod resume;
#[cfg(test)]
mod tests;
mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use crate::error::{Category, StoreError};
use crate::lock;
use crate::model::manifest::{Manifest, ManifestError, media_type_of};
use crate::model::{Digest, FetchedManifest};
use crate::once::OnceMap;
use crate::store::Store;
pub use reshape::Shape;
pub use verify::MinRate;

/// Blobs of one manifest, and children of one index, copied at once.
const FAN_OUT: usize = 4;
/// Source manifests kept for aliases and shared children, in bytes: a
/// registry serving many large manifests cannot make memory grow past it.
const MANIFEST_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Indexes nested deeper than this are refused (a loop or an attack).
const MAX_DEPTH: usize = 4;

/// Why a copy failed. Cloneable: copies waiting on one transfer all get
/// its outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CopyError {
    /// Reading or writing a store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A manifest could not be read.
    #[error("{context}: {source}")]
    Manifest {
        context: String,
        #[source]
        source: ManifestError,
    },
    /// An index lists a Docker schema 1 manifest.
    #[error("{store}: index child {digest} is a Docker schema 1 manifest, which is not supported")]
    Schema1Child { store: String, digest: Digest },
    /// Indexes nested deeper than the limit (a loop or an attack).
    #[error("{store}: indexes nested more than {limit} deep")]
    TooDeep { store: String, limit: usize },
    /// A referrers list names a manifest that is not about its subject.
    #[error(
        "{store}: {digest} is listed among the referrers of {subject}, but its manifest names {named} as its \
         subject: not copied"
    )]
    NotAReferrer {
        store: String,
        digest: Digest,
        subject: Digest,
        named: String,
    },
}

/// Turns a manifest's reading error into a [`CopyError`] that says which
/// store and which manifest (`what`: a tag, a digest).
pub fn manifest_error(store: &dyn Store, what: &str) -> impl Fn(ManifestError) -> CopyError + use<> {
    let context = format!("{}: manifest {what}", store.name());
    move |source| CopyError::Manifest {
        context: context.clone(),
        source,
    }
}

impl CopyError {
    pub fn category(&self) -> Category {
        match self {
            CopyError::Store(e) => e.category(),
            CopyError::Manifest { .. }
            | CopyError::Schema1Child { .. }
            | CopyError::TooDeep { .. }
            | CopyError::NotAReferrer { .. } => Category::Protocol,
        }
    }

    /// The store error inside, if that is what failed.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            CopyError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// How a tag copy ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Copied; the manifest digest, the same on both sides.
    Copied(Digest),
    /// Copied as asked, into a manifest of its own (platforms, OCI media
    /// types): the source's digest and the one written.
    Rewritten { source: Digest, written: Digest },
    /// Docker schema 1: not supported, left alone.
    SkippedSchema1,
    /// None of the platforms asked for: why.
    SkippedPlatform(String),
}

/// Blob totals for the run.
#[derive(Debug, Default)]
pub struct Stats {
    pub bytes: AtomicU64,
    pub transferred: AtomicU64,
    pub mounted: AtomicU64,
    /// Bytes of the blobs mounted (their declared sizes).
    pub mounted_bytes: AtomicU64,
    pub skipped: AtomicU64,
    /// Bytes of the blobs found already present (declared sizes).
    pub skipped_bytes: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub bytes_moved: u64,
    pub blobs_transferred: u64,
    pub blobs_mounted: u64,
    pub blobs_skipped: u64,
    /// Declared sizes of the blobs mounted and found already present.
    pub bytes_mounted: u64,
    pub bytes_skipped: u64,
}

impl Stats {
    pub fn totals(&self) -> Totals {
        Totals {
            bytes_moved: self.bytes.load(Ordering::Relaxed),
            blobs_transferred: self.transferred.load(Ordering::Relaxed),
            blobs_mounted: self.mounted.load(Ordering::Relaxed),
            blobs_skipped: self.skipped.load(Ordering::Relaxed),
            bytes_mounted: self.mounted_bytes.load(Ordering::Relaxed),
            bytes_skipped: self.skipped_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Sources read by several destinations, and those destinations.
#[derive(Default)]
struct Fanned {
    sources: HashSet<String>,
    destinations: HashMap<String, Arc<dyn Store>>,
}

/// The copy engine shared by every copy of a run.
pub struct Engine {
    pub stats: Stats,
    /// Restarts of a blob transfer whose body broke mid-way.
    restarts: u32,
    /// Blobs arriving slower than this are cut off (and restarted).
    min_rate: Option<MinRate>,
    /// Source manifests by (store, digest): fetched once per run.
    manifests: OnceMap<FetchedManifest, CopyError>,
    /// Blobs (`blob:` keys) and child manifests with their whole subtree
    /// (`manifest:` keys) known present in a destination store. The two
    /// never share a key: a blob whose bytes happen to be a manifest says
    /// nothing about that manifest's children.
    present: OnceMap<(), CopyError>,
    /// Per (registry, blob): the repository it was first put in this run,
    /// for the others to mount from.
    holders: OnceMap<String, CopyError>,
    /// Sources several destinations read this run, and those
    /// destinations by name: a blob goes from such a source into one of
    /// them and from there into the others (`copy/blobs.rs`).
    fanned: Mutex<Fanned>,
    /// Per (fanned source, blob): the destination that holds it this run,
    /// to read it from instead of the source.
    relays: OnceMap<String, CopyError>,
    /// Per (destination, manifest digest): writing that manifest (by tag or
    /// digest) excludes writing an index that lists it. Distribution 2.8
    /// rewrites a manifest's revision link on every PUT of it and reads the
    /// links of an index's children while checking the index; done at once,
    /// the index is refused (`DIGEST_INVALID`, `MANIFEST_BLOB_UNKNOWN`).
    manifest_locks: Mutex<HashMap<String, Arc<tokio::sync::RwLock<()>>>>,
    /// Destinations that did not exist when the run planned them: they hold
    /// no blob and no manifest, so asking for each one is a wasted request.
    new_destinations: Mutex<HashSet<String>>,
    /// Room, in KiB, for the buffers of the blob streams in flight
    /// ([`crate::defaults::STREAM_MEMORY`]).
    stream_memory: tokio::sync::Semaphore,
}

impl Engine {
    /// `restarts`: how often a blob transfer whose body broke mid-way (or
    /// failed verification) starts again (`--retries`). How many
    /// transfers go at once is each store's limiter's business, within
    /// the room their buffers have ([`crate::defaults::STREAM_MEMORY`]).
    pub fn new(restarts: u32) -> Engine {
        Engine {
            stats: Stats::default(),
            restarts,
            min_rate: None,
            manifests: OnceMap::with_budget(MANIFEST_CACHE_BYTES, |m| m.bytes.len()),
            present: OnceMap::default(),
            holders: OnceMap::default(),
            fanned: Mutex::default(),
            relays: OnceMap::default(),
            manifest_locks: Mutex::new(HashMap::new()),
            new_destinations: Mutex::new(HashSet::new()),
            stream_memory: tokio::sync::Semaphore::new((crate::defaults::STREAM_MEMORY / 1024) as usize),
        }
    }

    /// Writes a manifest under a tag or its digest, never while its own
    /// digest or one of its `children` is being written (see
    /// `manifest_locks`). Locks are taken in digest order, so two writers
    /// can never wait for each other.
    async fn put_manifest(
        &self,
        dst: &dyn Store,
        reference: &str,
        m: &FetchedManifest,
        children: &[Digest],
    ) -> Result<(), CopyError> {
        let mut wanted: Vec<(&Digest, bool)> = children.iter().map(|c| (c, false)).collect();
        wanted.push((&m.digest, true));
        wanted.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()).then(b.1.cmp(&a.1)));
        wanted.dedup_by(|a, b| a.0 == b.0);
        let (mut writing, mut reading) = (Vec::new(), Vec::new());
        for (digest, write) in wanted {
            let lock = {
                let mut locks = self.manifest_locks.lock().unwrap_or_else(|p| p.into_inner());
                locks.entry(format!("{}@{digest}", dst.name())).or_default().clone()
            };
            if write {
                writing.push(lock.write_owned().await);
            } else {
                reading.push(lock.read_owned().await);
            }
        }
        dst.put_manifest(reference, m).await?;
        drop((writing, reading));
        Ok(())
    }

    /// Cuts off blob transfers slower than `min` (see [`MinRate`]).
    pub fn with_min_rate(mut self, min: MinRate) -> Engine {
        self.min_rate = (min.bytes_per_second > 0).then_some(min);
        self
    }

    /// Tells the engine that `destinations` all read `src`: what they
    /// need of it is read from it once (a blob is then read from a
    /// destination that has it).
    pub fn fan_out(&self, src: &dyn Store, destinations: &[Arc<dyn Store>]) {
        let mut fanned = lock(&self.fanned);
        fanned.sources.insert(src.name());
        for d in destinations {
            fanned.destinations.insert(d.name(), d.clone());
        }
    }

    /// Tells the engine that `dst` did not exist when planned (its tag list
    /// answered "not found"), so existence checks there can be skipped.
    pub fn destination_is_new(&self, dst: &dyn Store) {
        self.new_destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dst.name());
    }

    fn is_new(&self, dst: &dyn Store) -> bool {
        self.new_destinations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&dst.name())
    }

    /// Copies a manifest by digest with everything below it, unless the
    /// destination has it; `true` when it was copied now.
    pub async fn copy_manifest(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        media_type: &str,
    ) -> Result<bool, CopyError> {
        let key = format!("manifest:{}@{digest}", dst.name());
        if dst.head_manifest(digest.as_str()).await?.is_some() {
            self.present.set_if_empty(key, ());
            return Ok(false);
        }
        self.present
            .get_or_try_init(key, || self.write_child(src, dst, digest, media_type, 1))
            .await?;
        Ok(true)
    }

    /// Writes a manifest made here (a rewritten index or image, a referrers
    /// index) under a tag or its digest; what it lists must be in the
    /// destination already.
    pub async fn put_made(&self, dst: &dyn Store, tag: &str, m: &FetchedManifest) -> Result<(), CopyError> {
        let children = Manifest::parse(&m.media_type, &m.bytes)
            .map_err(manifest_error(dst, tag))?
            .children();
        self.put_manifest(dst, tag, m, &children).await
    }

    /// A source manifest by digest, verified and fetched at most once per
    /// run (the referrers step reads a referrer before it copies it).
    pub async fn source_manifest(
        &self,
        src: &dyn Store,
        digest: &Digest,
        hint: &str,
    ) -> Result<FetchedManifest, CopyError> {
        Ok(self.fetch(src, digest.as_str(), hint).await?.0)
    }

    /// Copies `src:tag` to `dst:tag`.
    pub async fn copy_tag(&self, src: &dyn Store, dst: &dyn Store, tag: &str) -> Result<Outcome, CopyError> {
        let (top, manifest) = self.fetch(src, tag, "").await?;
        if manifest == Manifest::Schema1 {
            tracing::warn!(source = %src.name(), tag, "Docker schema 1 manifest: not supported, tag skipped");
            return Ok(Outcome::SkippedSchema1);
        }
        let children = manifest.children();
        self.copy_contents(src, dst, manifest, &top.digest, 0).await?;
        self.put_manifest(dst, tag, &top, &children).await?;
        tracing::debug!(source = %src.name(), destination = %dst.name(), tag, digest = %top.digest, "copied");
        Ok(Outcome::Copied(top.digest))
    }

    /// Fetches and reads a source manifest. A tag is resolved by HEAD
    /// (Docker Hub does not count it as a pull) and the manifest is then
    /// fetched by digest at most once per run, so aliases (`latest` =
    /// `2.1.0`) cost no second GET. The media type is settled here, so the
    /// bytes are pushed exactly as they were served.
    /// `hint`: the media type of the descriptor that led here (an index
    /// child's), used when the store does not say.
    async fn fetch(
        &self,
        src: &dyn Store,
        reference: &str,
        hint: &str,
    ) -> Result<(FetchedManifest, Manifest), CopyError> {
        let (digest, hint) = match Digest::parse(reference) {
            Ok(d) => (Some(d), hint.to_string()),
            Err(_) => match src.head_manifest(reference).await? {
                Some(head) => (head.digest, head.media_type),
                None => (None, hint.to_string()),
            },
        };
        let fetched = match &digest {
            Some(d) => {
                let key = format!("{}@{d}", src.name());
                self.manifests
                    .get_or_try_init(key, || fetch_verbatim(src, d.as_str(), &hint))
                    .await?
            }
            // no digest from the HEAD: fetch by tag (the GET verifies it)
            None => fetch_verbatim(src, reference, &hint).await?,
        };
        let manifest = Manifest::parse(&fetched.media_type, &fetched.bytes).map_err(|source| CopyError::Manifest {
            context: format!("{}: manifest {reference}", src.name()),
            source,
        })?;
        Ok((fetched, manifest))
    }

    /// Copies everything a manifest refers to (not the manifest itself).
    fn copy_contents<'a>(
        &'a self,
        src: &'a dyn Store,
        dst: &'a dyn Store,
        manifest: Manifest,
        digest: &'a Digest,
        depth: usize,
    ) -> BoxFuture<'a, Result<(), CopyError>> {
        Box::pin(async move {
            match manifest {
                Manifest::Schema1 => Err(CopyError::Schema1Child {
                    store: src.name(),
                    digest: digest.clone(),
                }),
                Manifest::Image { blobs, foreign } => {
                    if foreign > 0 {
                        tracing::debug!(source = %src.name(), foreign, "non-distributable layers are not copied");
                    }
                    stream::iter(blobs)
                        .map(|(digest, desc)| async move { self.copy_blob(src, dst, &digest, &desc).await })
                        .buffer_unordered(FAN_OUT)
                        .try_collect::<Vec<()>>()
                        .await?;
                    Ok(())
                }
                Manifest::Index { children } => {
                    if depth >= MAX_DEPTH {
                        return Err(CopyError::TooDeep {
                            store: src.name(),
                            limit: MAX_DEPTH,
                        });
                    }
                    stream::iter(children)
                        .map(|(digest, desc)| async move {
                            self.copy_child(src, dst, &digest, &desc.media_type, depth + 1).await
                        })
                        .buffer_unordered(FAN_OUT)
                        .try_collect::<Vec<()>>()
                        .await?;
                    Ok(())
                }
            }
        })
    }

    /// Copies a child manifest (and its contents) by digest, once per
    /// destination, unless the destination has it: a registry only accepts a
    /// manifest whose blobs it holds, and this engine writes a manifest only
    /// after its contents, so a present manifest means a complete subtree.
    async fn copy_child(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        media_type: &str,
        depth: usize,
    ) -> Result<(), CopyError> {
        let key = format!("manifest:{}@{digest}", dst.name());
        self.present
            .get_or_try_init(key, || async {
                if !self.is_new(dst) && dst.head_manifest(digest.as_str()).await?.is_some() {
                    return Ok(());
                }
                self.write_child(src, dst, digest, media_type, depth).await
            })
            .await
    }

    /// Copies a child manifest the destination lacks: its contents, then
    /// itself by digest.
    async fn write_child(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        media_type: &str,
        depth: usize,
    ) -> Result<(), CopyError> {
        let (child, manifest) = self.fetch(src, digest.as_str(), media_type).await?;
        let children = manifest.children();
        self.copy_contents(src, dst, manifest, digest, depth).await?;
        self.put_manifest(dst, digest.as_str(), &child, &children).await
    }
}

async fn fetch_verbatim(src: &dyn Store, reference: &str, hint: &str) -> Result<FetchedManifest, CopyError> {
    let mut fetched = src.get_manifest(reference).await?;
    fetched.media_type = media_type_of(&fetched.media_type, hint, &fetched.bytes);
    Ok(fetched)
}
