//! A registry repository as a [`Store`], over the shared [`Client`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use url::Url;

use super::{Blob, BlobBody, Deletion, Deletions, Result, Store};
use crate::error::{ErrorKind, StoreError};
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

    /// Deletes tags, decided again now that the copies are done
    /// (fail-closed: if the listing or what a staying tag needs cannot be
    /// read, nothing is deleted): a tag whose manifest a staying tag needs
    /// is left; the others go by name where the registry can, else by the
    /// digest the check found, which takes the manifest with every tag on
    /// it. A 404 to a DELETE is not a deletion. The manifests of `keep`
    /// stay as a staying tag's do (one that cannot be read: nothing is
    /// deleted).
    async fn delete(&self, tags: &[String], keep: &[Digest]) -> Deletions {
        let sorted = async {
            let listed = self.client.list_tags(&self.repo).await?.ok_or_else(|| {
                let ctx = format!("{}: list tags", self.repo);
                StoreError::new(
                    ctx,
                    ErrorKind::Protocol("the repository is not found any more: nothing deleted".into()),
                )
            })?;
            let staying = listed
                .into_iter()
                .filter(|t| !tags.contains(t))
                .chain(keep.iter().map(|d| d.to_string()))
                .collect();
            super::deletable(self, tags.to_vec(), staying, Vec::new()).await
        };
        let (delete, leave) = match sorted.await {
            Ok(sorted) => sorted,
            Err(e) => return tags.iter().map(|t| (t.clone(), Err(e.clone()))).collect(),
        };
        let mut out: Deletions = leave.into_iter().map(|(t, why)| (t, Ok(Deletion::Left(why)))).collect();
        // manifests deleted by digest took every tag on them along
        let mut gone_with_manifest = std::collections::HashSet::new();
        for (tag, digest) in delete {
            if gone_with_manifest.contains(&digest) {
                out.push((tag, Ok(Deletion::Deleted)));
                continue;
            }
            let outcome = match self.client.delete_manifest(&self.repo, &tag).await {
                Ok(Delete::Done) => Ok(Deletion::Deleted),
                Ok(Delete::NotByTag) => match self.client.delete_manifest(&self.repo, digest.as_str()).await {
                    Ok(Delete::Done) => {
                        gone_with_manifest.insert(digest.clone());
                        Ok(Deletion::Deleted)
                    }
                    Ok(_) => Err(self.not_deleted(digest.as_str())),
                    Err(e) => Err(e),
                },
                Ok(Delete::Absent) => Err(self.not_deleted(&tag)),
                Err(e) => Err(e),
            };
            out.push((tag, outcome));
        }
        out
    }

    /// A DELETE answered 404 for what was just found here.
    fn not_deleted(&self, reference: &str) -> StoreError {
        let ctx = format!("{}: DELETE manifest {reference}", self.repo);
        let why = "the registry answered 404 Not Found for what it had just listed: not deleted";
        StoreError::new(ctx, ErrorKind::Protocol(why.into()))
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

    fn limiter(&self) -> std::sync::Arc<crate::limit::Limiter> {
        self.client.limiter(&self.repo.registry)
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

    fn get_blob<'a>(&'a self, digest: &'a Digest, offset: u64, size: Option<u64>) -> BoxFuture<'a, Result<Blob>> {
        Box::pin(async move {
            let (resp, start) = self.client.get_blob(&self.repo, digest, offset, size).await?;
            let len = resp.content_length();
            let body = Box::pin(resp.bytes_stream().map_err(std::io::Error::other));
            Ok(Blob { body, len, start })
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

    fn referrers<'a>(
        &'a self,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<Option<Vec<crate::model::referrers::Referrer>>>> {
        Box::pin(self.client.referrers(&self.repo, digest))
    }

    fn delete_tags<'a>(&'a self, tags: &'a [String], keep: &'a [Digest]) -> BoxFuture<'a, Deletions> {
        Box::pin(self.delete(tags, keep))
    }

    fn put_blob_rest<'a>(
        &'a self,
        digest: &'a Digest,
        len: u64,
        from: u64,
        body: BlobBody,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.client.upload_rest(&self.repo, digest, len, from, body))
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
