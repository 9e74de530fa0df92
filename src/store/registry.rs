//! A registry repository as a [`Store`], over the shared [`Client`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use url::Url;

use super::{Blob, BlobBody, DeleteMode, Deletion, Deletions, Result, Store};
use crate::model::{Digest, FetchedManifest, ManifestHead, Repository};
use crate::registry::{Client, Delete, Mount};

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

    /// Deletes tags: by name where the registry can; else by digest, which
    /// deletes the manifest with every tag on it, so only a manifest that
    /// no staying tag points at (directly, or as a child of its index).
    async fn delete(&self, tags: &[String]) -> Deletions {
        let mut out = Vec::new();
        let mut by_digest = Vec::new();
        for tag in tags {
            match self.client.delete_manifest(&self.repo, tag).await {
                Ok(Delete::Done | Delete::Absent) => out.push((tag.clone(), Ok(Deletion::Deleted))),
                Ok(Delete::NotByTag) => by_digest.push(tag.clone()),
                Err(e) => out.push((tag.clone(), Err(e))),
            }
        }
        if by_digest.is_empty() {
            return out;
        }
        let sorted = async {
            let listed = self.client.list_tags(&self.repo).await?.unwrap_or_default();
            let staying = listed.into_iter().filter(|t| !by_digest.contains(t)).collect();
            super::deletable(self, by_digest.clone(), staying, Vec::new()).await
        };
        let (delete, leave) = match sorted.await {
            Ok(sorted) => sorted,
            Err(e) => {
                out.extend(by_digest.into_iter().map(|t| (t, Err(e.clone()))));
                return out;
            }
        };
        out.extend(leave.into_iter().map(|(t, why)| (t, Ok(Deletion::Left(why)))));
        for (tag, digest) in delete {
            let outcome = match digest {
                Some(d) => self.client.delete_manifest(&self.repo, d.as_str()).await,
                None => Ok(Delete::Absent),
            };
            out.push((tag, outcome.map(|_| Deletion::Deleted)));
        }
        out
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

    fn referrers<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<Option<Vec<serde_json::Value>>>> {
        Box::pin(self.client.referrers(&self.repo, digest))
    }

    fn delete_mode<'a>(&'a self, absent: &'a str) -> BoxFuture<'a, Result<DeleteMode>> {
        Box::pin(async move {
            Ok(match self.client.delete_manifest(&self.repo, absent).await? {
                Delete::NotByTag => DeleteMode::WithManifest,
                Delete::Done | Delete::Absent => DeleteMode::TagAlone,
            })
        })
    }

    fn delete_tags<'a>(&'a self, tags: &'a [String]) -> BoxFuture<'a, Deletions> {
        Box::pin(self.delete(tags))
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
