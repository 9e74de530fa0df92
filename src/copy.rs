//! Copy one image: blobs, then child manifests by digest, then the top
//! manifest by tag — so a destination tag never points at an incomplete
//! image. Bytes are copied verbatim and verified while they stream.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{ErrorKind, StoreError};
use crate::manifest::{Descriptor, Manifest, ManifestError, media_type_of};
use crate::store::{BlobBody, FetchedManifest, Store};

/// Blobs of one manifest copied at once.
const BLOB_CONCURRENCY: usize = 4;
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

/// The copy engine: shared by every copy of a run, so what one copy learnt
/// (a blob is in repository X) saves requests for the next. It talks to
/// [`Store`]s and does not know whether they are registries or layouts.
#[derive(Default)]
pub struct Engine {
    pub stats: Stats,
    /// Blobs known to be in a destination (by store name).
    present: Mutex<HashSet<(String, Digest)>>,
    /// Per mount domain (registry), a store known to hold a blob.
    holders: Mutex<HashMap<(String, Digest), String>>,
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Copies `src:tag` to `dst:tag`.
    pub async fn copy_tag(&self, src: &dyn Store, dst: &dyn Store, tag: &str) -> Result<Outcome, CopyError> {
        let (top, manifest) = self.fetch(src, tag).await?;
        match manifest {
            Manifest::Schema1 => {
                tracing::warn!(source = %src.name(), tag, "Docker schema 1 manifest: not supported, tag skipped");
                return Ok(Outcome::SkippedSchema1);
            }
            m => self.copy_contents(src, dst, m, 0).await?,
        }
        dst.put_manifest(tag, &top).await?;
        tracing::info!(source = %src.name(), destination = %dst.name(), tag, digest = %top.digest, "copied");
        Ok(Outcome::Copied)
    }

    /// Fetches and reads a source manifest; its media type is settled here,
    /// so it is pushed exactly as it was served.
    async fn fetch(&self, src: &dyn Store, reference: &str) -> Result<(FetchedManifest, Manifest), CopyError> {
        let mut fetched = src.get_manifest(reference).await?;
        fetched.media_type = media_type_of(&fetched.media_type, &fetched.bytes);
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
                        .buffer_unordered(BLOB_CONCURRENCY)
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
                    for (digest, _) in children {
                        self.copy_child(src, dst, &digest, depth + 1).await?;
                    }
                    Ok(())
                }
            }
        })
    }

    /// Copies a child manifest (and its contents) by digest, unless the
    /// destination has it: a registry only accepts a manifest whose blobs it
    /// holds, and this engine writes a manifest only after its contents, so a
    /// present manifest means a complete subtree.
    async fn copy_child(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        depth: usize,
    ) -> Result<(), CopyError> {
        if dst.head_manifest(digest.as_str()).await?.is_some() {
            return Ok(());
        }
        let (child, manifest) = self.fetch(src, digest.as_str()).await?;
        self.copy_contents(src, dst, manifest, depth).await?;
        dst.put_manifest(digest.as_str(), &child).await?;
        Ok(())
    }

    async fn copy_blob(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        let key = (dst.name(), digest.clone());
        if lock(&self.present).contains(&key) {
            return Ok(());
        }
        if dst.has_blob(digest).await? {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            self.remember(dst, digest);
            return Ok(());
        }
        if let Some(from) = self.mount_source(src, dst, digest)
            && dst.mount_blob(digest, &from).await?
        {
            tracing::debug!(destination = %dst.name(), %digest, from = %from, "blob mounted");
            self.stats.mounted.fetch_add(1, Ordering::Relaxed);
            self.remember(dst, digest);
            return Ok(());
        }
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
        if let Some(kind) = lock(&failure).take() {
            return Err(StoreError::new(ctx, kind).into());
        }
        stored?;
        let bytes = size.unwrap_or(desc.size);
        self.stats.transferred.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        tracing::debug!(destination = %dst.name(), %digest, bytes, "blob transferred");
        self.remember(dst, digest);
        Ok(())
    }

    /// A store of the destination's domain (registry) that holds the blob:
    /// the source itself when it lives there, or one this run copied it into.
    fn mount_source(&self, src: &dyn Store, dst: &dyn Store, digest: &Digest) -> Option<String> {
        let domain = dst.mount_domain()?;
        if src.mount_domain() == Some(domain) && src.mount_name() != dst.mount_name() {
            return Some(src.mount_name().to_string());
        }
        let holder = lock(&self.holders)
            .get(&(domain.to_string(), digest.clone()))
            .cloned()?;
        (holder != dst.mount_name()).then_some(holder)
    }

    fn remember(&self, dst: &dyn Store, digest: &Digest) {
        lock(&self.present).insert((dst.name(), digest.clone()));
        if let Some(domain) = dst.mount_domain() {
            lock(&self.holders)
                .entry((domain.to_string(), digest.clone()))
                .or_insert_with(|| dst.mount_name().to_string());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Passes a blob's bytes through while hashing them. The last chunk is only
/// released once the whole content matched its digest (and declared size),
/// so a corrupt blob never completes an upload: the body fails instead, and
/// `failure` records why.
fn verified(
    inner: BlobBody,
    digest: Digest,
    size: Option<u64>,
    failure: Arc<Mutex<Option<ErrorKind>>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    struct State<S> {
        inner: S,
        verifier: Option<crate::digest::Verifier>,
        digest: Digest,
        size: Option<u64>,
        failure: Arc<Mutex<Option<ErrorKind>>>,
    }
    fn fail<S>(st: &mut State<S>, kind: ErrorKind) -> std::io::Error {
        let msg = kind.to_string();
        *lock(&st.failure) = Some(kind);
        st.verifier = None;
        std::io::Error::other(msg)
    }
    fn check<S>(st: &mut State<S>) -> Result<(), std::io::Error> {
        let Some(v) = st.verifier.take() else { return Ok(()) };
        let len = v.len();
        if let Some(expected) = st.size.filter(|s| *s != len) {
            return Err(fail(
                st,
                ErrorKind::Protocol(format!("blob is {len} bytes, expected {expected}")),
            ));
        }
        v.finish().map_err(|actual| {
            fail(
                st,
                ErrorKind::DigestMismatch {
                    expected: st.digest.to_string(),
                    actual,
                },
            )
        })
    }
    let st = State {
        inner,
        verifier: Some(digest.verifier()),
        digest,
        size,
        failure,
    };
    stream::unfold((st, false), |(mut st, done)| async move {
        if done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                let Some(v) = st.verifier.as_mut() else {
                    // bytes after the content was complete
                    let e = fail(&mut st, ErrorKind::Protocol("blob is longer than declared".into()));
                    return Some((Err(e), (st, true)));
                };
                v.update(&chunk);
                let len = v.len();
                match st.size {
                    Some(expected) if len > expected => {
                        let e = fail(
                            &mut st,
                            ErrorKind::Protocol(format!("blob is longer than its {expected} bytes")),
                        );
                        Some((Err(e), (st, true)))
                    }
                    Some(expected) if len == expected => match check(&mut st) {
                        Ok(()) => Some((Ok(chunk), (st, false))),
                        Err(e) => Some((Err(e), (st, true))),
                    },
                    _ => Some((Ok(chunk), (st, false))),
                }
            }
            Some(Err(e)) => {
                let e = fail(&mut st, ErrorKind::Network(format!("reading the blob failed: {e}")));
                Some((Err(e), (st, true)))
            }
            None => match check(&mut st) {
                Ok(()) => None,
                Err(e) => Some((Err(e), (st, true))),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(
        chunks: Vec<&'static [u8]>,
        digest: Digest,
        size: Option<u64>,
    ) -> (Result<Vec<u8>, String>, Option<String>) {
        let failure = Arc::new(Mutex::new(None));
        let inner: BlobBody = Box::pin(stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))));
        let out: Result<Vec<Bytes>, _> = verified(inner, digest, size, failure.clone()).try_collect().await;
        let out = out.map(|v| v.concat()).map_err(|e| e.to_string());
        let recorded = lock(&failure).as_ref().map(|k| k.to_string());
        (out, recorded)
    }

    #[tokio::test]
    async fn passes_matching_content() {
        let d = Digest::sha256_of(b"hello world");
        let (out, f) = run(vec![b"hello ", b"world"], d.clone(), Some(11)).await;
        assert_eq!(out.unwrap(), b"hello world");
        assert!(f.is_none());
        let (out, _) = run(vec![b"hello ", b"world"], d, None).await;
        assert_eq!(out.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn withholds_the_last_chunk_of_corrupt_content() {
        let d = Digest::sha256_of(b"hello world");
        let (out, f) = run(vec![b"hello ", b"wOrld"], d.clone(), Some(11)).await;
        assert!(out.is_err());
        assert!(f.unwrap().contains("does not match its digest"));
        let (out, f) = run(vec![b"hello ", b"wor"], d.clone(), Some(11)).await;
        assert!(out.is_err());
        assert!(f.unwrap().contains("expected 11"));
        let (out, _) = run(vec![b"hello ", b"world!!"], d.clone(), Some(11)).await;
        assert!(out.is_err());
        let (out, _) = run(vec![b"hello ", b"wOrld"], d, None).await;
        assert!(out.is_err());
    }
}
