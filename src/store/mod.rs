//! Where images live: a registry repository or an OCI image layout. The copy
//! engine talks to both through [`Store`] and never knows which it has.

mod layout;
mod registry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

pub use layout::Layout;
pub use registry::RegistryStore;

use crate::error::StoreError;
use crate::model::{Digest, Endpoint, FetchedManifest, ManifestHead};
use crate::registry::Client;

pub type Result<T> = std::result::Result<T, StoreError>;

/// A blob's bytes as they stream.
pub type BlobBody = BoxStream<'static, std::result::Result<Bytes, std::io::Error>>;

/// A blob being read, with its length when the store knows it.
pub struct Blob {
    pub body: BlobBody,
    pub len: Option<u64>,
}

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
    /// The adaptive limit of the registry behind this store; `None` for a
    /// layout (the copy engine keeps a plain one per layout).
    fn limiter(&self) -> Option<Arc<crate::registry::Limiter>> {
        None
    }
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
    fn get_blob<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<Blob>>;
    /// Makes a blob of `from` (same domain) appear here without moving it;
    /// `false` when that was not possible and the blob must be copied.
    fn mount_blob<'a>(&'a self, _digest: &'a Digest, _from: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async { Ok(false) })
    }
    /// Stores a blob from a stream; nothing becomes visible unless the whole
    /// content arrived and matched `digest`.
    fn put_blob<'a>(&'a self, digest: &'a Digest, len: Option<u64>, body: BlobBody) -> BoxFuture<'a, Result<()>>;
    /// Makes every tag written so far visible, for stores that write tags
    /// in batches (layouts); returns the tags that could not be, with why.
    /// Called once at the end of a run.
    fn flush(&self) -> BoxFuture<'_, Vec<(String, StoreError)>> {
        Box::pin(async { Vec::new() })
    }
}

/// Opens stores for a run: one HTTP client for every registry, and one
/// handle per layout path, so that writers in one process share its lock.
pub struct Stores {
    client: Arc<Client>,
    layouts: Mutex<HashMap<PathBuf, Arc<Layout>>>,
}

impl Stores {
    pub fn new(client: Arc<Client>) -> Stores {
        Stores {
            client,
            layouts: Mutex::new(HashMap::new()),
        }
    }

    /// `write`: the store is a destination (registries ask for push rights).
    pub fn open(&self, endpoint: &Endpoint, write: bool) -> Arc<dyn Store> {
        match endpoint {
            Endpoint::Registry(repo) => Arc::new(RegistryStore::new(self.client.clone(), repo.clone(), write)),
            Endpoint::Layout(path) => {
                let mut layouts = self.layouts.lock().unwrap_or_else(|p| p.into_inner());
                layouts
                    .entry(path.clone())
                    .or_insert_with(|| Arc::new(Layout::new(path.clone())))
                    .clone()
            }
        }
    }
}
