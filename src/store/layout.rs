//! An OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`) as a [`Store`]. Tags are the
//! `org.opencontainers.image.ref.name` annotations of `index.json`.
//!
//! Writes are crash-safe: every file is written to `.replicant-tmp/`,
//! verified, synced and renamed into place, and `index.json` is replaced
//! (atomically) only after everything it names is on disk. A lock file keeps
//! a second writing process out.

use std::fs::{self, File, TryLockError};
use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{Blob, BlobBody, FetchedManifest, ManifestHead, Result, Store};
use crate::digest::Digest;
use crate::error::{ErrorKind, StoreError};
use crate::manifest::{MAX_MANIFEST_BYTES, media_type_of};
use crate::registry::is_valid_tag;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LOCK_FILE: &str = ".replicant.lock";
const TMP_DIR: &str = ".replicant-tmp";
const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

pub struct Layout {
    root: PathBuf,
    /// The lock file, held from the first write until the process ends.
    lock: Mutex<Option<File>>,
    /// Serialises read-modify-write of `index.json` within this process.
    index: tokio::sync::Mutex<()>,
}

/// One entry of `index.json`.
struct Entry {
    tag: Option<String>,
    digest: Digest,
    media_type: String,
}

impl Layout {
    pub fn new(root: PathBuf) -> Layout {
        Layout {
            root,
            lock: Mutex::new(None),
            index: tokio::sync::Mutex::new(()),
        }
    }

    fn error(&self, what: impl std::fmt::Display, kind: ErrorKind) -> StoreError {
        StoreError::new(format!("oci:{}: {what}", self.root.display()), kind)
    }

    fn invalid(&self, message: impl Into<String>) -> StoreError {
        self.error("read", ErrorKind::Layout(message.into()))
    }

    fn io(&self, what: &str, path: &Path, e: std::io::Error) -> StoreError {
        self.error(what, ErrorKind::Io(format!("{}: {e}", path.display())))
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        let (alg, hex) = d.as_str().split_once(':').unwrap_or(("sha256", d.as_str()));
        self.root.join("blobs").join(alg).join(hex)
    }

    /// `index.json`, or `None` when there is no layout yet (no directory, or
    /// an empty one).
    fn read_index(&self) -> Result<Option<Value>> {
        match fs::read_dir(&self.root) {
            Err(e) if e.kind() == IoKind::NotFound => return Ok(None),
            Err(e) if e.kind() == IoKind::NotADirectory => {
                return Err(self.invalid(format!("{} is not a directory", self.root.display())));
            }
            Err(e) => return Err(self.io("read", &self.root, e)),
            Ok(mut entries) => {
                if entries.next().is_none() {
                    return Ok(None);
                }
            }
        }
        if !self.root.join("oci-layout").is_file() {
            return Err(self.invalid(format!(
                "{} has no oci-layout file: not an OCI image layout",
                self.root.display()
            )));
        }
        let path = self.root.join("index.json");
        let len = fs::metadata(&path).map_err(|e| self.io("read", &path, e))?.len();
        if len > MAX_INDEX_BYTES {
            return Err(self.invalid(format!("{} is larger than {MAX_INDEX_BYTES} bytes", path.display())));
        }
        let text = fs::read(&path).map_err(|e| self.io("read", &path, e))?;
        let index: Value = serde_json::from_slice(&text)
            .map_err(|e| self.invalid(format!("{} is not valid JSON: {e}", path.display())))?;
        if !index.get("manifests").is_none_or(Value::is_array) {
            return Err(self.invalid(format!("{}: \"manifests\" is not a list", path.display())));
        }
        Ok(Some(index))
    }

    fn entries(&self, index: &Value) -> Result<Vec<Entry>> {
        let path = self.root.join("index.json");
        let list = index
            .get("manifests")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        list.iter()
            .map(|m| {
                let digest = m.get("digest").and_then(Value::as_str).unwrap_or_default();
                let digest = Digest::parse(digest).map_err(|e| self.invalid(format!("{}: {e}", path.display())))?;
                let tag = m
                    .get("annotations")
                    .and_then(|a| a.get(REF_NAME))
                    .and_then(Value::as_str);
                if let Some(t) = tag.filter(|t| !is_valid_tag(t)) {
                    return Err(self.invalid(format!("{}: \"{t}\" is not a valid tag", path.display())));
                }
                Ok(Entry {
                    tag: tag.map(str::to_string),
                    digest,
                    media_type: m
                        .get("mediaType")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                })
            })
            .collect()
    }

    /// A tag or digest -> (digest, media type from the index if known).
    fn resolve(&self, reference: &str) -> Result<Option<(Digest, String)>> {
        if let Ok(d) = Digest::parse(reference) {
            return Ok(self.blob_path(&d).is_file().then_some((d, String::new())));
        }
        let Some(index) = self.read_index()? else {
            return Ok(None);
        };
        let found = self
            .entries(&index)?
            .into_iter()
            .rev()
            .find(|e| e.tag.as_deref() == Some(reference));
        Ok(found.map(|e| (e.digest, e.media_type)))
    }

    /// Takes the layout for writing: creates it if missing, takes the lock,
    /// clears what a killed writer left in the temporary folder.
    fn writable(&self) -> Result<()> {
        let mut held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_some() {
            return Ok(());
        }
        if self.read_index()?.is_none() {
            self.create()?;
        }
        let lock_path = self.root.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.io("lock", &lock_path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(self.error(
                    "lock",
                    ErrorKind::Io(format!(
                        "another replicant process is writing this layout (it holds {}); try again when it has finished",
                        lock_path.display()
                    )),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(self.io("lock", &lock_path, e)),
        }
        let tmp = self.root.join(TMP_DIR);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| self.io("clean", &tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| self.io("create", &tmp, e))?;
        *held = Some(file);
        Ok(())
    }

    /// Creates an empty layout in one step: the skeleton (`oci-layout`,
    /// `index.json`, `blobs/`) is built beside it and renamed into place, so
    /// no reader ever sees half a layout. An empty directory is replaced.
    fn create(&self) -> Result<()> {
        let name = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let staging = self
            .root
            .with_file_name(format!(".{name}.replicant-new-{}-{n}", std::process::id()));
        let empty =
            json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []});
        let build = || -> std::io::Result<()> {
            fs::create_dir_all(staging.join("blobs").join("sha256"))?;
            let index = empty.to_string();
            for (file, bytes) in [
                ("oci-layout", &br#"{"imageLayoutVersion":"1.0.0"}"#[..]),
                ("index.json", index.as_bytes()),
            ] {
                let mut f = File::create(staging.join(file))?;
                std::io::Write::write_all(&mut f, bytes)?;
                f.sync_all()?;
            }
            Ok(())
        };
        if let Some(parent) = self.root.parent() {
            fs::create_dir_all(parent).map_err(|e| self.io("create", parent, e))?;
        }
        build().map_err(|e| self.io("create", &staging, e))?;
        let placed = fs::rename(&staging, &self.root);
        let _ = fs::remove_dir_all(&staging);
        match placed {
            Ok(()) => {
                let parent = self.root.parent().unwrap_or(Path::new("."));
                let _ = File::open(parent).and_then(|d| d.sync_all());
                Ok(())
            }
            // another writer created it first: fine, it is a layout now
            Err(_) if self.root.join("oci-layout").is_file() => Ok(()),
            Err(e) => Err(self.io("create", &self.root, e)),
        }
    }

    fn tmp_path(&self) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root.join(TMP_DIR).join(format!("{}-{n}", std::process::id()))
    }

    /// Writes a small file: temporary file, fsync, rename, fsync the folder.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp_path();
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()?;
            place(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.io("write", path, e)
        })
    }

    async fn put_manifest_inner(&self, reference: &str, m: &FetchedManifest) -> Result<()> {
        self.writable()?;
        let path = self.blob_path(&m.digest);
        if !path.is_file() {
            self.write_atomic(&path, &m.bytes)?;
        }
        if Digest::parse(reference).is_ok() {
            return Ok(());
        }
        if !is_valid_tag(reference) {
            return Err(self.invalid(format!("\"{reference}\" is not a valid tag")));
        }
        let _guard = self.index.lock().await;
        let mut index = self
            .read_index()?
            .unwrap_or_else(|| json!({"schemaVersion": 2, "manifests": []}));
        let entry = json!({
            "mediaType": m.media_type,
            "digest": m.digest.as_str(),
            "size": m.bytes.len(),
            "annotations": { REF_NAME: reference },
        });
        if let Some(list) = index.get_mut("manifests").and_then(Value::as_array_mut) {
            list.retain(|e| {
                e.get("annotations")
                    .and_then(|a| a.get(REF_NAME))
                    .and_then(Value::as_str)
                    != Some(reference)
            });
            list.push(entry);
        } else {
            index["manifests"] = json!([entry]);
        }
        let text = serde_json::to_vec_pretty(&index).map_err(|e| self.invalid(e.to_string()))?;
        self.write_atomic(&self.root.join("index.json"), &text)
    }

    async fn put_blob_inner(&self, digest: &Digest, len: Option<u64>, mut body: BlobBody) -> Result<()> {
        self.writable()?;
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        let tmp = self.tmp_path();
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| self.io("write", &tmp, e))?;
            let mut verifier = digest.verifier();
            while let Some(chunk) = body.next().await {
                let chunk: Bytes =
                    chunk.map_err(|e| self.error(format!("blob {digest}"), ErrorKind::Io(e.to_string())))?;
                verifier.update(&chunk);
                file.write_all(&chunk).await.map_err(|e| self.io("write", &tmp, e))?;
            }
            let written = verifier.len();
            if let Some(expected) = len.filter(|l| *l != written) {
                let why = format!("blob is {written} bytes, expected {expected}");
                return Err(self.error(format!("blob {digest}"), ErrorKind::Protocol(why)));
            }
            verifier.finish().map_err(|actual| {
                self.error(
                    format!("blob {digest}"),
                    ErrorKind::DigestMismatch {
                        expected: digest.to_string(),
                        actual,
                    },
                )
            })?;
            file.sync_all().await.map_err(|e| self.io("write", &tmp, e))?;
            drop(file);
            place(&tmp, &path).map_err(|e| self.io("write", &path, e))
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

impl Drop for Layout {
    /// A writer that finished leaves no temporary folder behind.
    fn drop(&mut self) {
        if self.lock.get_mut().map(|l| l.is_some()).unwrap_or(false) {
            let _ = fs::remove_dir_all(self.root.join(TMP_DIR));
        }
    }
}

/// Renames a finished file into place and makes the rename durable.
fn place(tmp: &Path, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    fs::rename(tmp, path)?;
    File::open(dir)?.sync_all()
}

impl Store for Layout {
    fn name(&self) -> String {
        format!("oci:{}", self.root.display())
    }

    fn kind(&self) -> &'static str {
        "layout"
    }

    fn list_tags(&self) -> BoxFuture<'_, Result<Option<Vec<String>>>> {
        Box::pin(async move {
            let Some(index) = self.read_index()? else {
                return Ok(None);
            };
            let mut tags: Vec<String> = self.entries(&index)?.into_iter().filter_map(|e| e.tag).collect();
            tags.sort();
            tags.dedup();
            Ok(Some(tags))
        })
    }

    fn head_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Option<ManifestHead>>> {
        Box::pin(async move {
            Ok(self.resolve(reference)?.map(|(digest, media_type)| ManifestHead {
                digest: Some(digest),
                media_type,
            }))
        })
    }

    fn get_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<FetchedManifest>> {
        Box::pin(async move {
            let (digest, media_type) = self
                .resolve(reference)?
                .ok_or_else(|| self.invalid(format!("no manifest {reference}")))?;
            let path = self.blob_path(&digest);
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == IoKind::NotFound => {
                    return Err(self.invalid(format!("manifest {digest} is missing ({})", path.display())));
                }
                Err(e) => return Err(self.io("read", &path, e)),
            };
            if len > MAX_MANIFEST_BYTES as u64 {
                return Err(self.invalid(format!("manifest {digest} is larger than {MAX_MANIFEST_BYTES} bytes")));
            }
            let bytes = Bytes::from(fs::read(&path).map_err(|e| self.io("read", &path, e))?);
            if !digest.matches(&bytes) {
                return Err(self.invalid(format!("{} does not match its digest {digest}", path.display())));
            }
            let media_type = media_type_of(&media_type, &bytes);
            Ok(FetchedManifest {
                bytes,
                media_type,
                digest,
            })
        })
    }

    fn put_manifest<'a>(&'a self, reference: &'a str, m: &'a FetchedManifest) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.put_manifest_inner(reference, m))
    }

    fn has_blob<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move { Ok(self.blob_path(digest).is_file()) })
    }

    fn get_blob<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, Result<Blob>> {
        Box::pin(async move {
            let path = self.blob_path(digest);
            let file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) if e.kind() == IoKind::NotFound => {
                    return Err(self.invalid(format!("blob {digest} is missing ({})", path.display())));
                }
                Err(e) => return Err(self.io("read", &path, e)),
            };
            let len = file.metadata().await.map_err(|e| self.io("read", &path, e))?.len();
            let body = Box::pin(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
            Ok(Blob { body, len: Some(len) })
        })
    }

    fn put_blob<'a>(&'a self, digest: &'a Digest, len: Option<u64>, body: BlobBody) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.put_blob_inner(digest, len, body))
    }
}
