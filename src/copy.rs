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
use crate::manifest::{Descriptor, Manifest, ManifestError, media_type_of};
use crate::reference::{Registry, Repository};
use crate::registry::{Client, ErrorKind, FetchedManifest, Mount, RegistryError};

/// Blobs of one manifest copied at once.
const BLOB_CONCURRENCY: usize = 4;
/// Indexes nested deeper than this are refused (a loop or an attack).
const MAX_DEPTH: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
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
/// (a blob is in repository X) saves requests for the next.
pub struct Engine {
    client: Arc<Client>,
    pub stats: Stats,
    /// Blobs known to be in a destination repository.
    present: Mutex<HashSet<(Repository, Digest)>>,
    /// Per registry, a repository known to hold a blob: a mount source.
    holders: Mutex<HashMap<(Registry, Digest), Repository>>,
}

impl Engine {
    pub fn new(client: Arc<Client>) -> Engine {
        Engine {
            client,
            stats: Stats::default(),
            present: Mutex::new(HashSet::new()),
            holders: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Copies `src:tag` to `dst:tag`.
    pub async fn copy_tag(&self, src: &Repository, dst: &Repository, tag: &str) -> Result<Outcome, CopyError> {
        let (top, manifest) = self.fetch(src, tag).await?;
        match manifest {
            Manifest::Schema1 => {
                tracing::warn!(source = %src, tag, "Docker schema 1 manifest: not supported, tag skipped");
                return Ok(Outcome::SkippedSchema1);
            }
            m => self.copy_contents(src, dst, m, 0).await?,
        }
        self.client.put_manifest(dst, tag, &top).await?;
        tracing::info!(source = %src, destination = %dst, tag, digest = %top.digest, "copied");
        Ok(Outcome::Copied)
    }

    /// Fetches and reads a source manifest; its media type is settled here,
    /// so it is pushed exactly as it was served.
    async fn fetch(&self, src: &Repository, reference: &str) -> Result<(FetchedManifest, Manifest), CopyError> {
        let mut fetched = self.client.get_manifest(src, reference).await?;
        fetched.media_type = media_type_of(&fetched.media_type, &fetched.bytes);
        let manifest = Manifest::parse(&fetched.media_type, &fetched.bytes).map_err(|source| CopyError::Manifest {
            context: format!("{src}: manifest {reference}"),
            source,
        })?;
        Ok((fetched, manifest))
    }

    /// Copies everything a manifest refers to (not the manifest itself).
    fn copy_contents<'a>(
        &'a self,
        src: &'a Repository,
        dst: &'a Repository,
        manifest: Manifest,
        depth: usize,
    ) -> BoxFuture<'a, Result<(), CopyError>> {
        Box::pin(async move {
            match manifest {
                Manifest::Schema1 => Err(CopyError::Invalid(format!(
                    "{src}: an index refers to a Docker schema 1 manifest, which is not supported"
                ))),
                Manifest::Image { blobs, foreign } => {
                    if foreign > 0 {
                        tracing::debug!(source = %src, foreign, "non-distributable layers are not copied");
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
                            "{src}: indexes nested more than {MAX_DEPTH} deep"
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
    /// holds, so a present manifest means a complete subtree.
    async fn copy_child(
        &self,
        src: &Repository,
        dst: &Repository,
        digest: &Digest,
        depth: usize,
    ) -> Result<(), CopyError> {
        if self.client.head_manifest(dst, digest.as_str(), true).await?.is_some() {
            return Ok(());
        }
        let (child, manifest) = self.fetch(src, digest.as_str()).await?;
        self.copy_contents(src, dst, manifest, depth).await?;
        self.client.put_manifest(dst, digest.as_str(), &child).await?;
        Ok(())
    }

    async fn copy_blob(
        &self,
        src: &Repository,
        dst: &Repository,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        let key = (dst.clone(), digest.clone());
        if lock(&self.present).contains(&key) {
            return Ok(());
        }
        if self.client.blob_exists(dst, digest, true).await? {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            self.remember(dst, digest);
            return Ok(());
        }
        let location = match self.mount_source(src, dst, digest) {
            Some(from) => match self.client.mount_blob(dst, digest, &from).await? {
                Mount::Mounted => {
                    tracing::debug!(destination = %dst, %digest, from = %from, "blob mounted");
                    self.stats.mounted.fetch_add(1, Ordering::Relaxed);
                    self.remember(dst, digest);
                    return Ok(());
                }
                Mount::Upload(location) => location,
            },
            None => self.client.start_upload(dst).await?,
        };
        let resp = self.client.get_blob(src, digest).await?;
        let ctx = format!("{src}: blob {digest}");
        let size = match (desc.size, resp.content_length()) {
            (0, served) => served,
            (declared, Some(served)) if served != declared => {
                return Err(RegistryError::new(
                    ctx,
                    ErrorKind::Protocol(format!("served {served} bytes where the manifest declares {declared}")),
                )
                .into());
            }
            (declared, _) => Some(declared),
        };
        let failure = Arc::new(Mutex::new(None));
        let body = verified(resp.bytes_stream(), digest.clone(), size, failure.clone());
        let uploaded = self
            .client
            .upload_blob(dst, location, digest, size, reqwest::Body::wrap_stream(body))
            .await;
        // A verification failure inside the stream is the real cause.
        if let Some(kind) = lock(&failure).take() {
            return Err(RegistryError::new(ctx, kind).into());
        }
        uploaded?;
        self.stats.transferred.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(size.unwrap_or(desc.size), Ordering::Relaxed);
        tracing::debug!(destination = %dst, %digest, bytes = size.unwrap_or(desc.size), "blob transferred");
        self.remember(dst, digest);
        Ok(())
    }

    /// A repository of the destination registry that holds the blob: the
    /// source itself when it lives there, or one this run copied it into.
    fn mount_source(&self, src: &Repository, dst: &Repository, digest: &Digest) -> Option<Repository> {
        if src.registry == dst.registry && src != dst {
            return Some(src.clone());
        }
        lock(&self.holders)
            .get(&(dst.registry.clone(), digest.clone()))
            .filter(|r| *r != dst)
            .cloned()
    }

    fn remember(&self, dst: &Repository, digest: &Digest) {
        lock(&self.present).insert((dst.clone(), digest.clone()));
        lock(&self.holders)
            .entry((dst.registry.clone(), digest.clone()))
            .or_insert_with(|| dst.clone());
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
    inner: impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Send + Unpin + 'static,
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
        let inner = stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c))));
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
