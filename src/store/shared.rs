//! A source that several images of one run read (an entry with several
//! destinations, or entries that share a source): its tag list, its
//! manifest lookups and manifests, and its referrers are read once for
//! all of them, and each image sees the same answers. Blobs are not kept
//! here: the copy engine reads each from the source once and the other
//! destinations get it from one that has it (`copy/blobs.rs`).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{Blob, BlobBody, Deletions, Result, Store};
use crate::error::StoreError;
use crate::model::referrers::Referrer;
use crate::model::{Digest, FetchedManifest, ManifestHead};
use crate::once::OnceMap;

/// Manifests kept for the images that share a source, in bytes; past it
/// the oldest are forgotten (and read again if asked for again).
const MANIFEST_BYTES: usize = 16 * 1024 * 1024;

pub struct Shared {
    inner: Arc<dyn Store>,
    tags: OnceMap<Option<Vec<String>>, StoreError>,
    heads: OnceMap<Option<ManifestHead>, StoreError>,
    manifests: OnceMap<FetchedManifest, StoreError>,
    referrers: OnceMap<Option<Vec<Referrer>>, StoreError>,
}

impl Shared {
    pub fn new(inner: Arc<dyn Store>) -> Shared {
        Shared {
            inner,
            tags: OnceMap::default(),
            heads: OnceMap::default(),
            manifests: OnceMap::with_budget(MANIFEST_BYTES, |m| m.bytes.len()),
            referrers: OnceMap::default(),
        }
    }
}

impl Store for Shared {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn mount_domain(&self) -> Option<&str> {
        self.inner.mount_domain()
    }
    fn mount_name(&self) -> &str {
        self.inner.mount_name()
    }
    fn limiter(&self) -> Arc<crate::limit::Limiter> {
        self.inner.limiter()
    }
    fn prepare_to_write(&self) -> BoxFuture<'_, Result<()>> {
        self.inner.prepare_to_write()
    }
    fn list_tags(&self) -> BoxFuture<'_, Result<Option<Vec<String>>>> {
        Box::pin(self.tags.get_or_try_init(String::new(), || self.inner.list_tags()))
    }
    fn head_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<ManifestHead>>> {
        Box::pin(
            self.heads
                .get_or_try_init(reference.to_string(), || self.inner.head_manifest(reference)),
        )
    }
    fn get_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<FetchedManifest>> {
        Box::pin(
            self.manifests
                .get_or_try_init(reference.to_string(), || self.inner.get_manifest(reference)),
        )
    }
    fn put_manifest<'a>(&'a self, reference: &'a str, m: &'a FetchedManifest) -> BoxFuture<'a, Result<()>> {
        self.inner.put_manifest(reference, m)
    }
    fn has_blob<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>> {
        self.inner.has_blob(digest)
    }
    fn get_blob<'a>(&'a self, digest: &'a Digest, offset: u64, size: Option<u64>) -> BoxFuture<'a, Result<Blob>> {
        self.inner.get_blob(digest, offset, size)
    }
    fn mount_blob<'a>(&'a self, digest: &'a Digest, from: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.inner.mount_blob(digest, from)
    }
    fn put_blob<'a>(&'a self, digest: &'a Digest, len: Option<u64>, body: BlobBody) -> BoxFuture<'a, Result<()>> {
        self.inner.put_blob(digest, len, body)
    }
    fn put_blob_rest<'a>(
        &'a self,
        digest: &'a Digest,
        len: u64,
        from: u64,
        body: BlobBody,
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.put_blob_rest(digest, len, from, body)
    }
    fn referrers<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<Option<Vec<Referrer>>>> {
        Box::pin(
            self.referrers
                .get_or_try_init(digest.to_string(), || self.inner.referrers(digest)),
        )
    }
    fn deletes_tags_alone(&self) -> bool {
        self.inner.deletes_tags_alone()
    }
    fn delete_tags<'a>(&'a self, tags: &'a [String], keep: &'a [Digest]) -> BoxFuture<'a, Deletions> {
        self.inner.delete_tags(tags, keep)
    }
    fn flush(&self) -> BoxFuture<'_, Vec<(String, StoreError)>> {
        self.inner.flush()
    }
}
