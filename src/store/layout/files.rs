//! The file-system side of an OCI image layout, all of it blocking: the
//! [`super::Layout`] store runs every call here on tokio's blocking pool,
//! never on the async workers.
//!
//! Writes are crash-safe: every file is written to `.replicant-tmp/`,
//! verified, synced and renamed into place, and `index.json` is replaced
//! (atomically) only after everything it names is on disk. Files a layout
//! names are opened only when they are regular files: a FIFO, a device or a
//! socket in a layout is refused, never read (a FIFO would block forever,
//! `/dev/zero` would never end).

use std::fs::{self, File, TryLockError};
use std::io::{ErrorKind as IoKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::{ErrorKind, StoreError};
use crate::model::manifest::{MAX_MANIFEST_BYTES, Manifest, media_type_of};
use crate::model::{Digest, FetchedManifest, is_valid_tag};

pub(super) type Result<T> = std::result::Result<T, StoreError>;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LOCK_FILE: &str = ".replicant.lock";
pub(super) const TMP_DIR: &str = ".replicant-tmp";
const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;
/// Indexes nested deeper than this are not followed (the copy engine
/// refuses them too).
const MAX_NESTING: usize = 8;

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One entry of `index.json`.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub tag: Option<String>,
    pub digest: Digest,
    pub media_type: String,
}

/// What identifies one version of `index.json`: length, modification
/// time, inode (every write replaces the file, so the inode changes).
type Stamp = (u64, Option<std::time::SystemTime>, u64);

/// Entries of `index.json` and the version they were read from.
type Cached = (Stamp, Arc<Vec<Entry>>);

/// A layout's root directory and the blocking operations on it.
#[derive(Debug, Clone)]
pub(super) struct Files {
    pub root: PathBuf,
    /// `index.json`'s entries as last read, with the version they came
    /// from: resolving each of thousands of tags must not re-read it.
    cache: Arc<Mutex<Option<Cached>>>,
}

impl Files {
    pub fn new(root: PathBuf) -> Files {
        Files {
            root,
            cache: Arc::default(),
        }
    }

    /// The entries of `index.json` (`None` when there is no layout yet),
    /// read again only when the file changed.
    fn index_entries(&self) -> Result<Option<Arc<Vec<Entry>>>> {
        use std::os::unix::fs::MetadataExt;
        let stamp = fs::symlink_metadata(self.root.join("index.json"))
            .ok()
            .map(|m| (m.len(), m.modified().ok(), m.ino()));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(stamp), Some((cached, entries))) = (stamp, cache.as_ref())
            && stamp == *cached
        {
            return Ok(Some(entries.clone()));
        }
        let Some(index) = self.read_index()? else {
            return Ok(None);
        };
        let entries = Arc::new(self.entries(&index)?);
        *cache = stamp.map(|s| (s, entries.clone()));
        Ok(Some(entries))
    }

    pub fn error(&self, what: impl std::fmt::Display, kind: ErrorKind) -> StoreError {
        StoreError::new(format!("oci:{}: {what}", self.root.display()), kind)
    }

    pub fn invalid(&self, message: impl Into<String>) -> StoreError {
        let message: String = message.into();
        self.error("read", ErrorKind::Layout(message.into()))
    }

    pub fn io(&self, what: &str, path: &Path, e: std::io::Error) -> StoreError {
        self.error(
            what,
            ErrorKind::Io(crate::error::Cause::new(format!("{}: {e}", path.display()), e)),
        )
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        let (alg, hex) = d.as_str().split_once(':').unwrap_or(("sha256", d.as_str()));
        self.root.join("blobs").join(alg).join(hex)
    }

    /// The folders a blob lives in (`blobs/`, `blobs/<alg>/`) must be real
    /// folders inside the layout: a symbolic link there would make reads
    /// and writes land outside it.
    pub fn check_blob_dirs(&self, d: &Digest) -> Result<()> {
        let alg = d.algorithm();
        for dir in [self.root.join("blobs"), self.root.join("blobs").join(alg)] {
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.invalid(format!(
                        "{} is a symbolic link: refused, a layout's files must be inside it",
                        dir.display()
                    )));
                }
                Ok(m) if !m.is_dir() => {
                    return Err(self.invalid(format!("{} is not a directory", dir.display())));
                }
                Ok(_) => {}
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) => return Err(self.io("read", &dir, e)),
            }
        }
        Ok(())
    }

    /// Whether a blob is here as a regular file (a symbolic link is not).
    pub fn has_blob(&self, d: &Digest) -> Result<bool> {
        self.check_blob_dirs(d)?;
        Ok(is_regular(&self.blob_path(d)))
    }

    /// Opens a file the layout names, refusing anything but a regular file:
    /// not a symbolic link (`O_NOFOLLOW`: it could lead anywhere on the
    /// host), and without hanging on a FIFO (`O_NONBLOCK`). `None` when the
    /// file does not exist.
    pub fn open_regular(&self, path: &Path) -> Result<Option<(File, u64)>> {
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == IoKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(self.invalid(format!(
                    "{} is a symbolic link: refused, a layout's files must be inside it",
                    path.display()
                )));
            }
            Err(e) => return Err(self.io("read", path, e)),
        };
        let meta = file.metadata().map_err(|e| self.io("read", path, e))?;
        if !meta.is_file() {
            return Err(self.invalid(format!(
                "{} is not a regular file (a FIFO, device or socket is never read)",
                path.display()
            )));
        }
        Ok(Some((file, meta.len())))
    }

    /// Reads a whole file the layout names, of at most `max` bytes.
    fn read_small(&self, path: &Path, max: u64, what: &str) -> Result<Option<Vec<u8>>> {
        let Some((file, len)) = self.open_regular(path)? else {
            return Ok(None);
        };
        if len > max {
            return Err(self.invalid(format!("{what} {} is larger than {max} bytes", path.display())));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io("read", path, e))?;
        if bytes.len() as u64 > max {
            return Err(self.invalid(format!("{what} {} is larger than {max} bytes", path.display())));
        }
        Ok(Some(bytes))
    }

    /// `index.json`, or `None` when there is no layout yet (no directory, or
    /// an empty one).
    pub fn read_index(&self) -> Result<Option<Value>> {
        match fs::read_dir(&self.root) {
            Err(e) if e.kind() == IoKind::NotFound && fs::symlink_metadata(&self.root).is_ok() => {
                let target = fs::read_link(&self.root).unwrap_or_default();
                return Err(self.invalid(format!(
                    "{} is a symbolic link to {}, which does not exist",
                    self.root.display(),
                    target.display()
                )));
            }
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
        let text = self
            .read_small(&path, MAX_INDEX_BYTES, "index")?
            .ok_or_else(|| self.invalid(format!("{} is missing", path.display())))?;
        let index: Value = serde_json::from_slice(&text)
            .map_err(|e| self.invalid(format!("{} is not valid JSON: {e}", path.display())))?;
        if !index.get("manifests").is_none_or(Value::is_array) {
            return Err(self.invalid(format!("{}: \"manifests\" is not a list", path.display())));
        }
        Ok(Some(index))
    }

    pub fn entries(&self, index: &Value) -> Result<Vec<Entry>> {
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
                let tag = entry_tag(m);
                if let Some(t) = tag.filter(|t| !is_valid_tag(t)) {
                    return Err(self.invalid(format!("{}: {t:?} is not a valid tag", path.display())));
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

    /// Tags of the layout, sorted; `None` when there is no layout.
    pub fn tags(&self) -> Result<Option<Vec<String>>> {
        let Some(entries) = self.index_entries()? else {
            return Ok(None);
        };
        let mut tags: Vec<String> = entries.iter().filter_map(|e| e.tag.clone()).collect();
        tags.sort();
        tags.dedup();
        Ok(Some(tags))
    }

    /// A tag or digest -> (digest, media type from the index if known).
    pub fn resolve(&self, reference: &str) -> Result<Option<(Digest, String)>> {
        if let Ok(d) = Digest::parse(reference) {
            return Ok(self.has_blob(&d)?.then_some((d, String::new())));
        }
        let Some(entries) = self.index_entries()? else {
            return Ok(None);
        };
        let found = entries.iter().rev().find(|e| e.tag.as_deref() == Some(reference));
        Ok(found.map(|e| (e.digest.clone(), e.media_type.clone())))
    }

    /// Whether the manifest `digest` is here with everything it refers to
    /// (blobs, and child manifests in turn): only then may a copy skip it.
    /// A blob file that merely has a manifest's digest is not enough: its
    /// bytes may have arrived as some other image's layer.
    pub fn manifest_complete(&self, digest: &Digest, depth: usize) -> Result<bool> {
        if depth > MAX_NESTING {
            return Ok(false);
        }
        self.check_blob_dirs(digest)?;
        let path = self.blob_path(digest);
        let Some(bytes) = self.read_small(&path, MAX_MANIFEST_BYTES as u64, "manifest")? else {
            return Ok(false);
        };
        if !digest.matches(&bytes) {
            return Ok(false);
        }
        let media_type = media_type_of("", "", &bytes);
        Ok(match Manifest::parse(&media_type, &bytes) {
            Ok(Manifest::Image { blobs, .. }) => {
                for (d, _) in &blobs {
                    if !self.has_blob(d)? {
                        return Ok(false);
                    }
                }
                true
            }
            Ok(Manifest::Index { children }) => {
                for (child, _) in &children {
                    if !self.manifest_complete(child, depth + 1)? {
                        return Ok(false);
                    }
                }
                true
            }
            Ok(Manifest::Schema1) | Err(_) => false,
        })
    }

    /// A manifest's bytes, checked against its digest.
    pub fn read_manifest(&self, reference: &str) -> Result<FetchedManifest> {
        let (digest, media_type) = self
            .resolve(reference)?
            .ok_or_else(|| self.invalid(format!("no manifest {reference}")))?;
        let path = self.blob_path(&digest);
        let bytes = self
            .read_small(&path, MAX_MANIFEST_BYTES as u64, "manifest")?
            .ok_or_else(|| self.invalid(format!("manifest {digest} is missing ({})", path.display())))?;
        let bytes = Bytes::from(bytes);
        if !digest.matches(&bytes) {
            return Err(self.invalid(format!("{} does not match its digest {digest}", path.display())));
        }
        let media_type = media_type_of(&media_type, "", &bytes);
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Takes the layout for writing: creates it if missing, takes the lock,
    /// clears what a killed writer left in the temporary folder. The lock is
    /// held as long as the returned file is open.
    pub fn take_for_writing(&self) -> Result<File> {
        if self.read_index()?.is_none() {
            self.create()?;
        }
        let lock_path = self.root.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => self.invalid(format!(
                    "{} is a symbolic link: refused, a layout's files must be inside it",
                    lock_path.display()
                )),
                _ => self.io("lock", &lock_path, e),
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(self.error(
                    "lock",
                    ErrorKind::Io(
                        format!(
                            "another replicant process is writing this layout (it holds {}); try again when it has finished",
                            lock_path.display()
                        )
                        .into(),
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(self.io("lock", &lock_path, e)),
        }
        let tmp = self.root.join(TMP_DIR);
        match fs::symlink_metadata(&tmp) {
            // a symbolic link is removed itself, never followed
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => fs::remove_file(&tmp),
            Ok(_) => fs::remove_dir_all(&tmp),
            Err(_) => Ok(()),
        }
        .map_err(|e| self.io("clean", &tmp, e))?;
        fs::create_dir(&tmp).map_err(|e| self.io("create", &tmp, e))?;
        Ok(file)
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
        build().map_err(|e| self.io("create", &self.root, e))?;
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

    pub fn tmp_path(&self) -> PathBuf {
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

    /// Stores a manifest's bytes under its digest, unless there.
    pub fn write_manifest(&self, m: &FetchedManifest) -> Result<()> {
        self.check_blob_dirs(&m.digest)?;
        let path = self.blob_path(&m.digest);
        if !is_regular(&path) {
            self.write_atomic(&path, &m.bytes)?;
        }
        Ok(())
    }

    /// Points tags at their manifests in `index.json`, all in one atomic
    /// replacement: one read, one pass and one write however many tags, so
    /// a run's index writes grow linearly, not with the square of its tags.
    pub fn point_tags(&self, tags: &[TagEntry]) -> Result<()> {
        let mut index = self
            .read_index()?
            .unwrap_or_else(|| json!({"schemaVersion": 2, "manifests": []}));
        let names: std::collections::HashSet<&str> = tags.iter().map(|t| t.tag.as_str()).collect();
        let entries = tags.iter().map(|t| {
            json!({
                "mediaType": t.media_type,
                "digest": t.digest.as_str(),
                "size": t.size,
                "annotations": { REF_NAME: t.tag },
            })
        });
        if let Some(list) = index.get_mut("manifests").and_then(Value::as_array_mut) {
            list.retain(|e| !entry_tag(e).is_some_and(|t| names.contains(t)));
            list.extend(entries);
        } else {
            index["manifests"] = Value::Array(entries.collect());
        }
        let text = serde_json::to_vec_pretty(&index).map_err(|e| self.invalid(e.to_string()))?;
        self.write_atomic(&self.root.join("index.json"), &text)?;
        tracing::debug!(layout = %self.root.display(), tags = tags.len(), "index.json written");
        Ok(())
    }
}

/// What a layout prune did: the tags whose entries it removed, and how many
/// files nothing else reached.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub removed: Vec<String>,
    pub files: usize,
}

impl Files {
    /// Removes the entries of `tags` from `index.json` (one atomic
    /// replacement), then deletes the files of their trees (manifests,
    /// child manifests, blobs) that no entry left still reaches. Decided
    /// before anything is touched, and fail-closed: when what a staying
    /// entry needs cannot be known (its manifest, or one of its index's
    /// children, is missing, a link, too large, unreadable or of a kind
    /// this tool does not read), nothing is deleted and that is the error.
    /// Files outside the removed trees are never touched.
    pub fn prune(&self, tags: &[String]) -> Result<Pruned> {
        let Some(mut index) = self.read_index()? else {
            return Ok(Pruned::default());
        };
        let entries = self.entries(&index)?;
        let (gone, staying): (Vec<&Entry>, Vec<&Entry>) = entries
            .iter()
            .partition(|e| e.tag.as_ref().is_some_and(|t| tags.contains(t)));
        if gone.is_empty() {
            return Ok(Pruned::default());
        }
        let mut kept = std::collections::HashSet::new();
        for e in &staying {
            self.needs(&e.digest, 0, &mut kept).map_err(|why| {
                let tag = e
                    .tag
                    .as_deref()
                    .map_or("an untagged entry".to_string(), |t| format!("tag {t}"));
                self.invalid(format!(
                    "prune refused: what {tag} needs cannot be known, so nothing was deleted: {why}"
                ))
            })?;
        }
        let mut candidates = std::collections::HashSet::new();
        for e in &gone {
            self.reach(&e.digest, 0, &mut candidates)?;
        }
        let removed: Vec<String> = gone.iter().filter_map(|e| e.tag.clone()).collect();
        if let Some(list) = index.get_mut("manifests").and_then(Value::as_array_mut) {
            list.retain(|e| !entry_tag(e).is_some_and(|t| tags.iter().any(|x| x == t)));
        }
        let text = serde_json::to_vec_pretty(&index).map_err(|e| self.invalid(e.to_string()))?;
        self.write_atomic(&self.root.join("index.json"), &text)?;
        let mut files = 0;
        for d in candidates.difference(&kept) {
            self.check_blob_dirs(d)?;
            let path = self.blob_path(d);
            if is_regular(&path) {
                fs::remove_file(&path).map_err(|e| self.io("delete", &path, e))?;
                files += 1;
            }
        }
        Ok(Pruned { removed, files })
    }

    /// Adds the manifest `digest`, which something staying needs, and
    /// everything it refers to, to `out`; an error when any of it cannot be
    /// read and understood (what it needs would be unknown).
    fn needs(&self, digest: &Digest, depth: usize, out: &mut std::collections::HashSet<Digest>) -> Result<()> {
        self.walk(digest, depth, out, true)
    }

    /// Adds `digest` and everything it refers to (when it is a manifest
    /// here) to `out`: what a removed entry may free. What cannot be read
    /// is only not freed.
    fn reach(&self, digest: &Digest, depth: usize, out: &mut std::collections::HashSet<Digest>) -> Result<()> {
        self.walk(digest, depth, out, false)
    }

    /// The tree under `digest` into `out`; `strict`: anything that cannot
    /// be read and understood is an error instead of a leaf.
    fn walk(
        &self,
        digest: &Digest,
        depth: usize,
        out: &mut std::collections::HashSet<Digest>,
        strict: bool,
    ) -> Result<()> {
        if depth > MAX_NESTING {
            return match strict {
                true => Err(self.invalid(format!("manifests nested deeper than {MAX_NESTING} levels"))),
                false => Ok(()),
            };
        }
        if !out.insert(digest.clone()) {
            return Ok(());
        }
        self.check_blob_dirs(digest)?;
        let path = self.blob_path(digest);
        let bytes = match self.read_small(&path, MAX_MANIFEST_BYTES as u64, "manifest") {
            Ok(Some(bytes)) => bytes,
            Ok(None) if strict => return Err(self.invalid(format!("its manifest {digest} is not in the layout"))),
            Err(e) if strict => return Err(e),
            // a layer, a config, or nothing: a leaf
            _ => return Ok(()),
        };
        match Manifest::parse(&media_type_of("", "", &bytes), &bytes) {
            Ok(Manifest::Image { blobs, .. }) => out.extend(blobs.into_iter().map(|(d, _)| d)),
            Ok(Manifest::Index { children }) => {
                for (child, _) in children {
                    self.walk(&child, depth + 1, out, strict)?;
                }
            }
            Ok(Manifest::Schema1) if strict => {
                return Err(self.invalid(format!(
                    "{digest} is a Docker schema 1 manifest, which is not read here"
                )));
            }
            Err(e) if strict => return Err(self.invalid(format!("its manifest {digest} cannot be read: {e}"))),
            // something this tool does not read
            Ok(Manifest::Schema1) | Err(_) => {}
        }
        Ok(())
    }
}

/// The tag an `index.json` entry names, if any.
fn entry_tag(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(REF_NAME)?.as_str()
}

/// A tag to point at a manifest in `index.json`.
#[derive(Debug, Clone)]
pub(super) struct TagEntry {
    pub tag: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: usize,
}

/// A regular file, not through a symbolic link.
pub(super) fn is_regular(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Renames a finished file into place and makes the rename durable.
pub(super) fn place(tmp: &Path, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    fs::rename(tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,20}".prop_map(Value::String),
            "sha256:[0-9a-f]{64}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("manifests".to_string()),
                            Just("digest".to_string()),
                            Just("mediaType".to_string()),
                            Just("annotations".to_string()),
                            Just(REF_NAME.to_string()),
                            "[a-z]{1,6}"
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever `index.json` holds, reading tags and resolving one is a
        /// clear answer or a clear error, never a panic.
        #[test]
        fn any_index_json_is_read_without_panic(index in json_value(), raw in "\\PC{0,40}", use_raw in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("l");
            fs::create_dir_all(root.join("blobs/sha256")).unwrap();
            fs::write(root.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
            let text = if use_raw { raw.into_bytes() } else { serde_json::to_vec(&index).unwrap() };
            fs::write(root.join("index.json"), text).unwrap();
            let files = Files::new(root);
            if let Ok(Some(tags)) = files.tags() {
                for t in &tags {
                    prop_assert!(is_valid_tag(t));
                    let _ = files.resolve(t);
                }
            }
            let _ = files.resolve("latest");
            let _ = files.manifest_complete(&Digest::sha256_of(b"x"), 0);
        }
    }
}
