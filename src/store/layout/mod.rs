//! An OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`) as a [`Store`]. Tags are the
//! `org.opencontainers.image.ref.name` annotations of `index.json`.
//!
//! Every file-system call runs on tokio's blocking pool ([`files`] holds
//! them), so a slow disk or a stuck file never stalls the async workers, and
//! a stop signal is always heard. A lock file keeps a second writing process
//! out.

mod files;

use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::io::AsyncWriteExt;

use super::{Blob, BlobBody, Deletion, Deletions, Result, Store};
use crate::error::{ErrorKind, StoreError};
use crate::model::{Digest, FetchedManifest, ManifestHead, is_valid_tag};
use files::{Files, TMP_DIR, TagEntry, place};

pub struct Layout {
    files: Files,
    /// Blob transfers at once (`--max-connections`).
    limiter: Arc<crate::limit::Limiter>,
    /// The lock file, held from the first write until the process ends.
    lock: Arc<Mutex<Option<File>>>,
    /// Serialises read-modify-write of `index.json` within this process.
    index: tokio::sync::Mutex<()>,
    /// Tags whose trees are complete, not yet in `index.json`, and when it
    /// was last written: tags go in by batches (see [`Store::flush`]).
    pending: Mutex<(Vec<TagEntry>, Instant)>,
}

/// `index.json` is written when this many tags wait, or when the last
/// write is this old, and at the end of the run.
const BATCH_TAGS: usize = 256;
const BATCH_AGE: Duration = Duration::from_secs(1);

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    files: &Files,
    work: impl FnOnce(Files) -> Result<T> + Send + 'static,
) -> Result<T> {
    let owned = files.clone();
    tokio::task::spawn_blocking(move || work(owned)).await.map_err(|e| {
        files.error(
            "file system task",
            ErrorKind::Io(crate::error::Cause::new(e.to_string(), e)),
        )
    })?
}

impl Layout {
    /// The layout at `root`, taking `transfers` blob transfers at once.
    pub fn new(root: std::path::PathBuf, transfers: usize) -> Layout {
        Layout {
            limiter: crate::limit::Limiter::fixed(&format!("oci:{}", root.display()), transfers.max(1)),
            files: Files::new(root),
            lock: Arc::new(Mutex::new(None)),
            index: tokio::sync::Mutex::new(()),
            pending: Mutex::new((Vec::new(), Instant::now())),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, (Vec<TagEntry>, Instant)> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the waiting tags into `index.json` at once. On failure they
    /// wait again, for the next write (the one at the end reports them).
    async fn write_pending(&self) -> Result<()> {
        let _guard = self.index.lock().await;
        let batch = std::mem::take(&mut self.pending().0);
        if batch.is_empty() {
            return Ok(());
        }
        let tags = batch.clone();
        let written = blocking(&self.files, move |files| files.point_tags(&tags)).await;
        let mut pending = self.pending();
        match written {
            Ok(()) => pending.1 = Instant::now(),
            Err(_) => {
                let later = std::mem::take(&mut pending.0);
                pending.0 = batch;
                pending.0.extend(later);
            }
        }
        written
    }

    /// Takes the layout for writing on the first write (see
    /// [`Files::take_for_writing`]).
    async fn writable(&self) -> Result<()> {
        let lock = self.lock.clone();
        blocking(&self.files, move |files| {
            let mut held = lock.lock().unwrap_or_else(|p| p.into_inner());
            if held.is_none() {
                *held = Some(files.take_for_writing()?);
            }
            Ok(())
        })
        .await
    }

    /// Stores the manifest; a tag then waits for the next `index.json`
    /// write (its tree is complete: the copy engine writes tags last).
    async fn put_manifest_inner(&self, reference: &str, m: &FetchedManifest) -> Result<()> {
        self.writable().await?;
        let owned = m.clone();
        blocking(&self.files, move |files| files.write_manifest(&owned)).await?;
        if Digest::parse(reference).is_ok() {
            return Ok(());
        }
        if !is_valid_tag(reference) {
            return Err(self.files.invalid(format!("{reference:?} is not a valid tag")));
        }
        let due = {
            let mut pending = self.pending();
            pending.0.retain(|t| t.tag != reference);
            pending.0.push(TagEntry {
                tag: reference.to_string(),
                digest: m.digest.clone(),
                media_type: m.media_type.clone(),
                size: m.bytes.len(),
            });
            pending.0.len() >= BATCH_TAGS || pending.1.elapsed() >= BATCH_AGE
        };
        if due {
            // a failure here leaves the tags waiting; the final write reports it
            let _ = self.write_pending().await;
        }
        Ok(())
    }

    async fn put_blob_inner(&self, digest: &Digest, len: Option<u64>, mut body: BlobBody) -> Result<()> {
        self.writable().await?;
        let path = self.files.blob_path(digest);
        let check = digest.clone();
        if blocking(&self.files, move |files| files.has_blob(&check)).await? {
            return Ok(());
        }
        let files = &self.files;
        let tmp = files.tmp_path();
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| files.io("write", &tmp, e))?;
            let mut verifier = digest.verifier();
            while let Some(chunk) = body.next().await {
                let chunk: Bytes = chunk.map_err(|e| {
                    files.error(
                        format!("blob {digest}"),
                        ErrorKind::Io(crate::error::Cause::new(e.to_string(), e)),
                    )
                })?;
                verifier.update(&chunk);
                file.write_all(&chunk).await.map_err(|e| files.io("write", &tmp, e))?;
            }
            let written = verifier.len();
            if let Some(expected) = len.filter(|l| *l != written) {
                let why = format!("blob is {written} bytes, expected {expected}");
                return Err(files.error(format!("blob {digest}"), ErrorKind::Protocol(why.into())));
            }
            verifier.finish().map_err(|actual| {
                let expected = digest.to_string();
                let actual = actual.to_string();
                files.error(format!("blob {digest}"), ErrorKind::DigestMismatch { expected, actual })
            })?;
            file.sync_all().await.map_err(|e| files.io("write", &tmp, e))?;
            drop(file);
            let (from, to) = (tmp.clone(), path.clone());
            blocking(files, move |f| place(&from, &to).map_err(|e| f.io("write", &to, e))).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

impl Drop for Layout {
    /// A writer that finished leaves no temporary folder behind.
    fn drop(&mut self) {
        let held = self.lock.lock().map(|l| l.is_some()).unwrap_or(false);
        if held {
            let _ = std::fs::remove_dir_all(self.files.root.join(TMP_DIR));
        }
    }
}

impl Store for Layout {
    fn name(&self) -> String {
        format!("oci:{}", self.files.root.display())
    }

    fn limiter(&self) -> Arc<crate::limit::Limiter> {
        self.limiter.clone()
    }

    fn kind(&self) -> &'static str {
        "layout"
    }

    fn list_tags(&self) -> BoxFuture<'_, Result<Option<Vec<String>>>> {
        Box::pin(blocking(&self.files, |files| files.tags()))
    }

    fn head_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<ManifestHead>>> {
        let reference = reference.to_string();
        Box::pin(blocking(&self.files, move |files| {
            // by digest: present only with its whole tree
            if let Ok(digest) = Digest::parse(&reference) {
                let complete = files.manifest_complete(&digest, 0)?;
                return Ok(complete.then_some(ManifestHead {
                    digest: Some(digest),
                    media_type: String::new(),
                }));
            }
            Ok(files.resolve(&reference)?.map(|(digest, media_type)| ManifestHead {
                digest: Some(digest),
                media_type,
            }))
        }))
    }

    fn get_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<FetchedManifest>> {
        let reference = reference.to_string();
        Box::pin(blocking(&self.files, move |files| files.read_manifest(&reference)))
    }

    fn put_manifest<'a>(&'a self, reference: &'a str, m: &'a FetchedManifest) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.put_manifest_inner(reference, m))
    }

    fn has_blob<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>> {
        let digest = digest.clone();
        Box::pin(blocking(&self.files, move |files| files.has_blob(&digest)))
    }

    fn get_blob<'a>(&'a self, digest: &'a Digest, offset: u64, _: Option<u64>) -> BoxFuture<'a, Result<Blob>> {
        let path = self.files.blob_path(digest);
        let digest = digest.clone();
        Box::pin(async move {
            let opened = blocking(&self.files, move |files| {
                files.check_blob_dirs(&digest)?;
                let (mut file, len) = files
                    .open_regular(&path)?
                    .ok_or_else(|| files.invalid(format!("blob {digest} is missing ({})", path.display())))?;
                // an offset past the end: the whole file, which the reader skips
                let start = if offset > 0 && offset <= len {
                    use std::io::Seek;
                    file.seek(std::io::SeekFrom::Start(offset))
                        .map_err(|e| files.invalid(format!("blob {digest}: {e}")))?;
                    offset
                } else {
                    0
                };
                Ok((file, len, start))
            })
            .await?;
            let (file, len, start) = opened;
            let file = tokio::fs::File::from_std(file);
            let body = Box::pin(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
            Ok(Blob {
                body,
                len: Some(len - start),
                start,
            })
        })
    }

    fn put_blob<'a>(&'a self, digest: &'a Digest, len: Option<u64>, body: BlobBody) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.put_blob_inner(digest, len, body))
    }

    /// Deleting an `index.json` entry takes nothing else along.
    fn deletes_tags_alone(&self) -> bool {
        true
    }

    // a layout's tags go alone: no manifest goes with them (`keep` is
    // safe as it is)
    fn delete_tags<'a>(&'a self, tags: &'a [String], _keep: &'a [Digest]) -> BoxFuture<'a, Deletions> {
        Box::pin(async move {
            let pruned = async {
                self.writable().await?;
                let _guard = self.index.lock().await;
                let owned = tags.to_vec();
                blocking(&self.files, move |files| files.prune(&owned)).await
            }
            .await;
            match pruned {
                Ok(pruned) => {
                    tracing::debug!(layout = %self.files.root.display(), files = pruned.files, "unreferenced blobs deleted");
                    tags.iter()
                        .map(|t| {
                            let outcome = match pruned.removed.contains(t) {
                                true => Deletion::Deleted,
                                false => Deletion::Left("no longer in the layout's index.json".into()),
                            };
                            (t.clone(), Ok(outcome))
                        })
                        .collect()
                }
                Err(e) => tags.iter().map(|t| (t.clone(), Err(e.clone()))).collect(),
            }
        })
    }

    fn flush(&self) -> BoxFuture<'_, Vec<(String, StoreError)>> {
        Box::pin(async move {
            match self.write_pending().await {
                Ok(()) => Vec::new(),
                Err(e) => {
                    let lost = std::mem::take(&mut self.pending().0);
                    lost.into_iter().map(|t| (t.tag, e.clone())).collect()
                }
            }
        })
    }
}
