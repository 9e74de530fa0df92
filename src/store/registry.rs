//! A registry repository as a [`Store`], over the shared [`Client`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use url::Url;

use super::{Blob, BlobBody, Result, Store};
use crate::model::{Digest, FetchedManifest, ManifestHead, Repository};
use crate::registry::{Client, Mount};

pub struct RegistryStore {
    client: Arc<Client>,
    repo: Repository,
    /// Destinations ask for push rights up front (one token for the run).
    write: bool,
    /// Upload sessions opened by refused mounts, used by the next upload.
    pending: Mutex<HashMap<Digest, Url>>,
}

impl RegistryStore {
    pub fn new(client: Arc<Client>, repo: Repository, write: bool) -> RegistryStore {
        RegistryStore {
            client,
            repo,
            write,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Url>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for RegistryStore {
    fn name(&self) -> String {
        self.repo.to_string()
    }

    fn kind(&self) -> &'static str {
        "repository"
    }

    fn mount_domain(&self) -> Option<&str> {
        Some(&self.repo.registry.host)
    }

    fn mount_name(&self) -> &str {
        &self.repo.path
    }

    fn limiter(&self) -> Option<std::sync::Arc<crate::registry::Limiter>> {
        Some(self.client.limiter(&self.repo.registry))
    }

    fn prepare_to_write(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.client.prepare_repository(&self.repo))
    }

    fn list_tags(&self) -> BoxFuture<'_, Result<Option<Vec<String>>>> {
        Box::pin(self.client.list_tags(&self.repo))
    }

    fn head_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<ManifestHead>>> {
        Box::pin(self.client.head_manifest(&self.repo, reference, self.write))
    }

    fn get_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<FetchedManifest>> {
        Box::pin(self.client.get_manifest(&self.repo, reference))
    }

    fn put_manifest<'a>(&'a self, reference: &'a str, m: &'a FetchedManifest) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.client.put_manifest(&self.repo, reference, m))
    }

    fn has_blob<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.client.blob_exists(&self.repo, digest, self.write))
    }

    fn get_blob<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<Blob>> {
        Box::pin(async move {
            let resp = self.client.get_blob(&self.repo, digest).await?;
            let len = resp.content_length();
            let body = Box::pin(resp.bytes_stream().map_err(std::io::Error::other));
            Ok(Blob { body, len })
        })
    }

    fn mount_blob<'a>(&'a self, digest: &'a Digest, from: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let from = Repository {
                registry: self.repo.registry.clone(),
                path: from.to_string(),
            };
            match self.client.mount_blob(&self.repo, digest, &from).await? {
                Mount::Mounted => Ok(true),
                Mount::Upload(session) => {
                    self.pending().insert(digest.clone(), session);
                    Ok(false)
                }
            }
        })
    }

    fn put_blob<'a>(&'a self, digest: &'a Digest, len: Option<u64>, body: BlobBody) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let session = self.pending().remove(digest);
            let location = match session {
                Some(url) => url,
                None => self.client.start_upload(&self.repo).await?,
            };
            self.client.upload_blob(&self.repo, location, digest, len, body).await
        })
    }
}
