//! Copy one image: blobs, then child manifests by digest, then the top
//! manifest by tag — so a destination tag never points at an incomplete
//! image. Bytes are copied verbatim and verified while they stream.
//!
//! One [`Engine`] serves every copy of a run, many at once. What one copy
//! learns or does is shared with the others: a source manifest is fetched
//! once per digest, a blob is checked and moved once per destination (copies
//! that need it meanwhile wait for that one transfer), and a blob that landed
//! in one repository of a registry is mounted into the others.

mod once;
mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::digest::Digest;
use crate::error::{ErrorKind, StoreError};
use crate::manifest::{Descriptor, Manifest, ManifestError, media_type_of};
use crate::store::{BlobBody, FetchedManifest, Store};
use once::OnceMap;
pub use verify::verified;

/// Blobs of one manifest, and children of one index, copied at once.
const FAN_OUT: usize = 4;
/// Indexes nested deeper than this are refused (a loop or an attack).
const MAX_DEPTH: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Registry(#[from] StoreError),
    #[error("{context}: {source}")]
    Manifest { context: String, source: ManifestError },
    #[error("{0}")]
    Invalid(String),
}

/// How a tag copy ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Copied,
    /// Docker schema 1: not supported, left alone.
    SkippedSchema1,
}

/// Blob totals for the run.
#[derive(Debug, Default)]
pub struct Stats {
    pub bytes: AtomicU64,
    pub transferred: AtomicU64,
    pub mounted: AtomicU64,
    pub skipped: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub bytes_moved: u64,
    pub blobs_transferred: u64,
    pub blobs_mounted: u64,
    pub blobs_skipped: u64,
}

impl Stats {
    pub fn totals(&self) -> Totals {
        Totals {
            bytes_moved: self.bytes.load(Ordering::Relaxed),
            blobs_transferred: self.transferred.load(Ordering::Relaxed),
            blobs_mounted: self.mounted.load(Ordering::Relaxed),
            blobs_skipped: self.skipped.load(Ordering::Relaxed),
        }
    }
}

/// The copy engine shared by every copy of a run.
pub struct Engine {
    pub stats: Stats,
    /// Blob transfers at once per registry (or layout).
    transfers_per_domain: usize,
    /// Further attempts of a failed blob transfer.
    retries: u32,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Source manifests by (store, digest): fetched once per run.
    manifests: OnceMap<FetchedManifest>,
    /// Blobs and child manifests known present in a destination store.
    present: OnceMap<()>,
    /// Per (registry, blob): the repository it was first put in this run,
    /// for the others to mount from.
    holders: OnceMap<String>,
    /// Destinations that did not exist when the run planned them: they hold
    /// no blob and no manifest, so asking for each one is a wasted request.
    new_destinations: Mutex<HashSet<String>>,
}

impl Engine {
    /// `transfers_per_domain`: blob transfers at once per registry;
    /// `retries`: further attempts of a failed blob transfer.
    pub fn new(transfers_per_domain: usize, retries: u32) -> Engine {
        Engine {
            stats: Stats::default(),
            transfers_per_domain: transfers_per_domain.max(1),
            retries,
            slots: Mutex::new(HashMap::new()),
            manifests: OnceMap::default(),
            present: OnceMap::default(),
            holders: OnceMap::default(),
            new_destinations: Mutex::new(HashSet::new()),
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

    /// Copies `src:tag` to `dst:tag`.
    pub async fn copy_tag(&self, src: &dyn Store, dst: &dyn Store, tag: &str) -> Result<Outcome, CopyError> {
        let (top, manifest) = self.fetch(src, tag).await?;
        if manifest == Manifest::Schema1 {
            tracing::warn!(source = %src.name(), tag, "Docker schema 1 manifest: not supported, tag skipped");
            return Ok(Outcome::SkippedSchema1);
        }
        self.copy_contents(src, dst, manifest, 0).await?;
        dst.put_manifest(tag, &top).await?;
        tracing::debug!(source = %src.name(), destination = %dst.name(), tag, digest = %top.digest, "copied");
        Ok(Outcome::Copied)
    }

    /// Fetches and reads a source manifest. A tag is resolved by HEAD
    /// (Docker Hub does not count it as a pull) and the manifest is then
    /// fetched by digest at most once per run, so aliases (`latest` =
    /// `2.1.0`) cost no second GET. The media type is settled here, so the
    /// bytes are pushed exactly as they were served.
    async fn fetch(&self, src: &dyn Store, reference: &str) -> Result<(FetchedManifest, Manifest), CopyError> {
        let digest = match Digest::parse(reference) {
            Ok(d) => Some(d),
            Err(_) => src.head_manifest(reference).await?.and_then(|h| h.digest),
        };
        let fetched = match &digest {
            Some(d) => {
                let key = format!("{}@{d}", src.name());
                self.manifests
                    .get_or_try_init(key, || fetch_verbatim(src, d.as_str()))
                    .await?
            }
            // no digest from the HEAD: fetch by tag (the GET verifies it)
            None => fetch_verbatim(src, reference).await?,
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
        depth: usize,
    ) -> BoxFuture<'a, Result<(), CopyError>> {
        Box::pin(async move {
            match manifest {
                Manifest::Schema1 => Err(CopyError::Invalid(format!(
                    "{}: an index refers to a Docker schema 1 manifest, which is not supported",
                    src.name()
                ))),
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
                        return Err(CopyError::Invalid(format!(
                            "{}: indexes nested more than {MAX_DEPTH} deep",
                            src.name()
                        )));
                    }
                    stream::iter(children)
                        .map(|(digest, _)| async move { self.copy_child(src, dst, &digest, depth + 1).await })
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
        depth: usize,
    ) -> Result<(), CopyError> {
        let key = format!("{}@{digest}", dst.name());
        self.present
            .get_or_try_init(key, || async {
                if !self.is_new(dst) && dst.head_manifest(digest.as_str()).await?.is_some() {
                    return Ok(());
                }
                let (child, manifest) = self.fetch(src, digest.as_str()).await?;
                self.copy_contents(src, dst, manifest, depth).await?;
                dst.put_manifest(digest.as_str(), &child).await?;
                Ok::<(), CopyError>(())
            })
            .await
    }

    /// Makes a blob present in `dst`, checking and moving it at most once
    /// per destination per run.
    async fn copy_blob(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        let key = format!("{}@{digest}", dst.name());
        self.present
            .get_or_try_init(key, || async {
                if !self.is_new(dst) && dst.has_blob(digest).await? {
                    self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                    self.holders_offer(dst, digest);
                    return Ok(());
                }
                self.place_blob(src, dst, digest, desc).await
            })
            .await
    }

    /// Mounts the blob from a repository of the same registry when one has
    /// it (the source itself, or one this run put it in, waiting for a
    /// transfer in flight), else transfers it.
    async fn place_blob(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        let Some(domain) = dst.mount_domain() else {
            return self.transfer(src, dst, digest, desc).await;
        };
        if src.mount_domain() == Some(domain)
            && src.mount_name() != dst.mount_name()
            && self.mount(src.mount_name(), dst, digest).await?
        {
            return Ok(());
        }
        let key = format!("{domain}@{digest}");
        let holder = self
            .holders
            .get_or_try_init(key, || async {
                self.transfer(src, dst, digest, desc).await?;
                Ok::<String, CopyError>(dst.mount_name().to_string())
            })
            .await?;
        if holder == dst.mount_name() || self.mount(&holder, dst, digest).await? {
            return Ok(());
        }
        self.transfer(src, dst, digest, desc).await
    }

    async fn mount(&self, from: &str, dst: &dyn Store, digest: &Digest) -> Result<bool, CopyError> {
        let mounted = dst.mount_blob(digest, from).await?;
        if mounted {
            tracing::debug!(destination = %dst.name(), %digest, from, "blob mounted");
            self.stats.mounted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(mounted)
    }

    /// Records that `dst` holds a blob, if no repository of its registry
    /// was recorded yet.
    fn holders_offer(&self, dst: &dyn Store, digest: &Digest) {
        if let Some(domain) = dst.mount_domain() {
            self.holders
                .set_if_empty(format!("{domain}@{digest}"), dst.mount_name().to_string());
        }
    }

    /// Streams the blob from `src` into `dst`, verified on the way. A failed
    /// transfer starts again from scratch (a new download, a new upload
    /// session): nothing of a broken attempt is ever committed.
    async fn transfer(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        let _slots = self.slots(src, dst).await;
        let mut attempt = 0;
        loop {
            match self.transfer_once(src, dst, digest, desc).await {
                Err(CopyError::Registry(e)) if attempt < self.retries && e.is_retryable() => {
                    let wait = e.retry_after.unwrap_or_else(|| crate::registry::backoff(attempt));
                    attempt += 1;
                    tracing::debug!("{e}; blob transfer attempt {attempt} of {} in {wait:?}", self.retries);
                    tokio::time::sleep(wait).await;
                }
                result => return result,
            }
        }
    }

    async fn transfer_once(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        let blob = src.get_blob(digest).await?;
        let ctx = format!("{}: blob {digest}", src.name());
        let size = match (desc.size, blob.len) {
            (0, served) => served,
            (declared, Some(served)) if served != declared => {
                let why = format!("served {served} bytes where the manifest declares {declared}");
                return Err(StoreError::new(ctx, ErrorKind::Protocol(why)).into());
            }
            (declared, _) => Some(declared),
        };
        let failure = Arc::new(Mutex::new(None));
        let body: BlobBody = Box::pin(verified(blob.body, digest.clone(), size, failure.clone()));
        let stored = dst.put_blob(digest, size, body).await;
        // A verification failure inside the stream is the real cause.
        if let Some(kind) = failure.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(StoreError::new(ctx, kind).into());
        }
        stored?;
        let bytes = size.unwrap_or(desc.size);
        self.stats.transferred.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        tracing::debug!(destination = %dst.name(), %digest, bytes, "blob transferred");
        Ok(())
    }

    /// A transfer slot on each side's registry, taken in a fixed order so
    /// that transfers waiting for slots can never wait for each other.
    async fn slots(&self, src: &dyn Store, dst: &dyn Store) -> Vec<OwnedSemaphorePermit> {
        let mut domains: Vec<String> = [src, dst]
            .iter()
            .map(|s| s.mount_domain().map(str::to_string).unwrap_or_else(|| s.name()))
            .collect();
        domains.sort();
        domains.dedup();
        let mut permits = Vec::with_capacity(domains.len());
        for d in domains {
            let sem = {
                let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                slots
                    .entry(d)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.transfers_per_domain)))
                    .clone()
            };
            // never closed, so acquiring cannot fail
            if let Ok(p) = sem.acquire_owned().await {
                permits.push(p);
            }
        }
        permits
    }
}

async fn fetch_verbatim(src: &dyn Store, reference: &str) -> Result<FetchedManifest, CopyError> {
    let mut fetched = src.get_manifest(reference).await?;
    fetched.media_type = media_type_of(&fetched.media_type, &fetched.bytes);
    Ok(fetched)
}
