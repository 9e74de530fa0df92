//! Where images live: a registry repository or an OCI image layout. The copy
//! engine talks to both through [`Store`] and never knows which it has.

mod layout;
mod registry;
mod shared;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

pub use layout::Layout;
pub use registry::RegistryStore;
pub use shared::Shared;

use crate::error::StoreError;
use crate::model::referrers::Referrer;
use crate::model::{Digest, Endpoint, FetchedManifest, ManifestHead};
use crate::registry::Client;

pub type Result<T> = std::result::Result<T, StoreError>;

/// A blob's bytes as they stream.
pub type BlobBody = BoxStream<'static, std::result::Result<Bytes, std::io::Error>>;

/// A blob being read: its bytes from `start` on, and how many those are
/// when the store knows.
pub struct Blob {
    pub body: BlobBody,
    pub len: Option<u64>,
    /// Where in the blob the body starts: the offset asked for, or 0 when
    /// the store sent the whole blob instead (a server that ignores ranges).
    pub start: u64,
}

/// What became of a tag a prune asked to delete, when nothing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Left in place, and why (deleting it would delete more than it).
    Left(String),
}

/// Each tag a prune asked to delete, with its outcome.
pub type Deletions = Vec<(String, Result<Deletion>)>;

/// One repository of images: tags, manifests, blobs.
pub trait Store: Send + Sync {
    /// For messages: `registry/repository` or `oci:PATH`.
    fn name(&self) -> String;
    /// "repository" or "layout", for messages.
    fn kind(&self) -> &'static str;
    /// Stores in the same domain (a registry host) can mount each other's
    /// blobs, naming the source by [`Store::mount_name`].
    fn mount_domain(&self) -> Option<&str> {
        None
    }
    fn mount_name(&self) -> &str {
        ""
    }
    /// How many blob transfers this store takes at once: the adaptive
    /// limit of the registry behind it, or a layout's fixed one.
    fn limiter(&self) -> Arc<crate::limit::Limiter>;
    /// Makes the destination ready for its first write where the registry
    /// needs that (an ECR repository with `create-repositories: true`).
    fn prepare_to_write(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// All tags; `None` when the repository or layout does not exist.
    fn list_tags(&self) -> BoxFuture<'_, Result<Option<Vec<String>>>>;
    /// `None` when the tag or digest is absent; any failure is an error.
    fn head_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<ManifestHead>>>;
    fn get_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<FetchedManifest>>;
    /// Stores the manifest's bytes verbatim under a tag or its digest.
    fn put_manifest<'a>(&'a self, reference: &'a str, m: &'a FetchedManifest) -> BoxFuture<'a, Result<()>>;
    fn has_blob<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>>;
    /// Reads a blob from `offset` on (0: all of it); `size`, when known,
    /// is the blob's whole size, to check a partial answer against.
    fn get_blob<'a>(&'a self, digest: &'a Digest, offset: u64, size: Option<u64>) -> BoxFuture<'a, Result<Blob>>;
    /// Makes a blob of `from` (same domain) appear here without moving it;
    /// `false` when that was not possible and the blob must be copied.
    fn mount_blob<'a>(&'a self, _digest: &'a Digest, _from: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async { Ok(false) })
    }
    /// Stores a blob from a stream; nothing becomes visible unless the whole
    /// content arrived and matched `digest`.
    fn put_blob<'a>(&'a self, digest: &'a Digest, len: Option<u64>, body: BlobBody) -> BoxFuture<'a, Result<()>>;
    /// Sends the rest of a blob whose upload broke with
    /// `StoreError::resume_at` set: `body` holds its bytes from `from` on,
    /// into the session that holds the ones before. Only a store that sets
    /// `resume_at` is asked.
    fn put_blob_rest<'a>(
        &'a self,
        digest: &'a Digest,
        _len: u64,
        from: u64,
        _body: BlobBody,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let why = format!(
                "{}: no upload of blob {digest} to go on with from byte {from}",
                self.name()
            );
            Err(StoreError::new(
                why,
                crate::error::ErrorKind::Protocol("not resumable here".into()),
            ))
        })
    }
    /// The referrers of a manifest, through the OCI 1.1 referrers API;
    /// `None` where there is no such API (a layout; Distribution 2.8).
    fn referrers<'a>(&'a self, _digest: &'a Digest) -> BoxFuture<'a, Result<Option<Vec<Referrer>>>> {
        Box::pin(async { Ok(None) })
    }
    /// Whether deleting a tag here is known to delete only that tag (a
    /// layout). A registry's answer to a DELETE does not say whether it
    /// took the manifest, and every other tag on it, along (Distribution,
    /// Harbor do), so for a registry this is `false` and a prune leaves a
    /// tag whose manifest a staying tag needs.
    fn deletes_tags_alone(&self) -> bool {
        false
    }
    /// Deletes tags (prune). Only the tags go: what they pointed at stays
    /// wherever another tag, or a manifest of `keep` (pinned by digest,
    /// with its index's children), still needs it.
    fn delete_tags<'a>(&'a self, tags: &'a [String], keep: &'a [Digest]) -> BoxFuture<'a, Deletions>;
    /// Makes every tag written so far visible, for stores that write tags
    /// in batches (layouts); returns the tags that could not be, with why.
    /// Called once at the end of a run.
    fn flush(&self) -> BoxFuture<'_, Vec<(String, StoreError)>> {
        Box::pin(async { Vec::new() })
    }
}

/// The largest image config read whole (platforms, creation time).
pub const MAX_CONFIG_BYTES: usize = 8 * 1024 * 1024;

/// A small blob read whole (an image config), when it is no larger than
/// the limit and matches its digest.
pub enum SmallBlob {
    Read(Vec<u8>),
    TooLarge,
    Mismatch,
}

/// Reads a small blob whole (an image config), at most `limit` bytes, and
/// checks it against its digest.
pub async fn read_small_blob(store: &dyn Store, digest: &Digest, limit: usize) -> Result<SmallBlob> {
    use futures_util::StreamExt as _;
    let mut blob = store.get_blob(digest, 0, None).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = blob.body.next().await {
        let chunk = chunk.map_err(|e| {
            let kind = crate::error::ErrorKind::Network(crate::error::Cause::new(e.to_string(), e));
            StoreError::new(format!("{}: config {digest}", store.name()), kind)
        })?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            return Ok(SmallBlob::TooLarge);
        }
    }
    Ok(match digest.matches(&bytes) {
        true => SmallBlob::Read(bytes),
        false => SmallBlob::Mismatch,
    })
}

/// Lookups at once when reading many manifests of one store.
const LOOKUPS_AT_ONCE: usize = 16;

/// The manifests that `tags` of `store` need, each with the first tag that
/// needs it (`tag 1.2`, or `tag 1.2 (in its index)` for an index's child).
/// Fail-closed, since a prune decides on it: a listed tag whose manifest
/// is not found, or cannot be read, is an error, never "needs nothing".
pub async fn manifests_needed(store: &dyn Store, tags: Vec<String>) -> Result<HashMap<Digest, String>> {
    use crate::model::manifest::Manifest;
    use futures_util::{StreamExt, stream};
    let found: Vec<Result<Vec<(Digest, String)>>> = stream::iter(tags)
        .map(|tag| async move {
            let m = store.get_manifest(&tag).await.map_err(|mut e| {
                e.context = format!("what tag {tag} needs cannot be known: {}", e.context);
                e
            })?;
            let mut needs = vec![(m.digest.clone(), format!("tag {tag}"))];
            match Manifest::parse(&m.media_type, &m.bytes) {
                Ok(Manifest::Index { children }) => needs.extend(
                    children
                        .into_iter()
                        .map(|(d, _)| (d, format!("tag {tag} (in its index)"))),
                ),
                Ok(Manifest::Image { .. } | Manifest::Schema1) => {}
                Err(e) => {
                    let ctx = format!("{}: what tag {tag} needs cannot be known", store.name());
                    return Err(StoreError::new(
                        ctx,
                        crate::error::ErrorKind::Protocol(crate::error::Cause::new(e.to_string(), e)),
                    ));
                }
            }
            Ok(needs)
        })
        .buffered(LOOKUPS_AT_ONCE)
        .collect()
        .await;
    let mut needed = HashMap::new();
    for list in found {
        for (digest, by) in list? {
            needed.entry(digest).or_insert(by);
        }
    }
    Ok(needed)
}

/// A tag's manifest digest (HEAD; the bytes when the store does not say);
/// `None` when the tag is absent.
pub async fn digest_of(store: &dyn Store, tag: &str) -> Result<Option<Digest>> {
    Ok(match store.head_manifest(tag).await? {
        None => None,
        Some(ManifestHead { digest: Some(d), .. }) => Some(d),
        Some(_) => Some(store.get_manifest(tag).await?.digest),
    })
}

/// Sorts tags to delete from a store that may delete a tag only with its
/// manifest: those whose manifest nothing else needs (with that manifest),
/// and those to leave (with why: needed, or no longer there). What is
/// needed: the manifests of the `staying` tags and of their indexes'
/// children, and `also` (digest, and who needs it). Any failure to find
/// out is an error: nothing may be deleted then.
pub async fn deletable(
    store: &dyn Store,
    gone: Vec<String>,
    staying: Vec<String>,
    also: Vec<(Digest, String)>,
) -> Result<(Vec<(String, Digest)>, Vec<(String, String)>)> {
    let mut needed = manifests_needed(store, staying).await?;
    for (digest, by) in also {
        needed.entry(digest).or_insert(by);
    }
    let (mut delete, mut leave) = (Vec::new(), Vec::new());
    // few (at most prune-max): one at a time
    for tag in gone {
        match digest_of(store, &tag).await? {
            Some(digest) if needed.contains_key(&digest) => {
                let by = &needed[&digest];
                let why =
                    format!("{by} needs its manifest {digest}, and a registry may delete a tag only with its manifest");
                leave.push((tag, why));
            }
            Some(digest) => delete.push((tag, digest)),
            None => leave.push((tag, "no longer in the destination".into())),
        }
    }
    Ok((delete, leave))
}

/// Opens stores for a run: one HTTP client for every registry, and one
/// handle per layout path, so that writers in one process share its lock.
pub struct Stores {
    client: Arc<Client>,
    layouts: Mutex<HashMap<PathBuf, Arc<Layout>>>,
    /// Blob transfers at once per layout (`--max-connections`).
    layout_transfers: usize,
}

impl Stores {
    pub fn new(client: Arc<Client>, layout_transfers: usize) -> Stores {
        Stores {
            client,
            layouts: Mutex::new(HashMap::new()),
            layout_transfers,
        }
    }

    /// The sources of a run's images, in their order: a source that
    /// several images read, and no image writes, is opened once and
    /// shared ([`Shared`]: its listings and manifests read once for all).
    pub fn open_sources(&self, sources: &[&Endpoint], written: &[&Endpoint]) -> Vec<Arc<dyn Store>> {
        let key = |e: &Endpoint| e.to_string();
        let written: std::collections::HashSet<String> = written.iter().map(|e| key(e)).collect();
        let mut readers: HashMap<String, usize> = HashMap::new();
        for s in sources {
            *readers.entry(key(s)).or_default() += 1;
        }
        let mut shared: HashMap<String, Arc<dyn Store>> = HashMap::new();
        sources
            .iter()
            .map(|s| match readers[&key(s)] > 1 && !written.contains(&key(s)) {
                true => shared
                    .entry(key(s))
                    .or_insert_with(|| Arc::new(Shared::new(self.open(s, false))))
                    .clone(),
                false => self.open(s, false),
            })
            .collect()
    }

    /// `write`: the store is a destination (registries ask for push rights).
    pub fn open(&self, endpoint: &Endpoint, write: bool) -> Arc<dyn Store> {
        match endpoint {
            Endpoint::Registry(repo) => Arc::new(RegistryStore::new(self.client.clone(), repo.clone(), write)),
            Endpoint::Layout(path) => {
                let mut layouts = self.layouts.lock().unwrap_or_else(|p| p.into_inner());
                layouts
                    .entry(path.clone())
                    .or_insert_with(|| Arc::new(Layout::new(path.clone(), self.layout_transfers)))
                    .clone()
            }
        }
    }
}
