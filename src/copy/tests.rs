//! The copy engine over in-memory stores that count every request: what
//! moves, how often, and in which order. No registry needed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{BoxFuture, join_all};
use futures_util::{StreamExt, stream};
use serde_json::json;

use super::*;
use crate::error::ErrorKind;
use crate::model::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::model::{Digest, FetchedManifest, ManifestHead};
use crate::store::{Blob, BlobBody, Result as StoreResult};

/// Repositories of one registry, by name -> blobs they hold (for mounts).
type Domain = Arc<Mutex<HashMap<String, HashSet<Digest>>>>;

#[derive(Default)]
struct State {
    tags: HashMap<String, Digest>,
    manifests: HashMap<Digest, FetchedManifest>,
    blobs: HashMap<Digest, Bytes>,
    /// Writes in order: `blob <digest>`, `manifest <reference>`.
    writes: Vec<String>,
    /// Requests by kind, and by `kind digest`.
    calls: HashMap<String, usize>,
}

/// A store in memory. With a `domain`, stores mount each other's blobs.
struct MemStore {
    name: String,
    domain: Option<Domain>,
    state: Mutex<State>,
    /// Blob uploads wait for this many milliseconds (to keep them in flight).
    put_delay: Duration,
    /// Blob uploads fail (after the delay) while this is set.
    put_fails: Mutex<bool>,
    /// How the next reads of a blob are served, one entry a read (then:
    /// well).
    reads: Mutex<HashMap<Digest, std::collections::VecDeque<Read>>>,
    put_blobs_started: AtomicUsize,
    /// Eight blob transfers at once, like a small layout.
    limiter: Arc<crate::limit::Limiter>,
}

impl MemStore {
    fn new(name: &str, domain: Option<Domain>) -> MemStore {
        MemStore {
            name: name.to_string(),
            domain,
            state: Mutex::default(),
            put_delay: Duration::ZERO,
            put_fails: Mutex::new(false),
            reads: Mutex::default(),
            put_blobs_started: AtomicUsize::new(0),
            limiter: crate::limit::Limiter::fixed(name, 8),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn count(&self, call: &str, digest: Option<&Digest>) {
        let mut st = self.state();
        *st.calls.entry(call.to_string()).or_default() += 1;
        if let Some(d) = digest {
            *st.calls.entry(format!("{call} {d}")).or_default() += 1;
        }
    }

    /// The next `times` reads of `digest` break after `after` bytes.
    fn break_reads(&self, digest: &Digest, after: usize, times: usize) {
        let read = Read {
            cut: Some(after),
            ..Read::default()
        };
        self.reads
            .lock()
            .unwrap()
            .insert(digest.clone(), vec![read; times].into());
    }

    fn calls(&self, call: &str) -> usize {
        self.state().calls.get(call).copied().unwrap_or(0)
    }

    fn add_blob(&self, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        self.hold(&d, Bytes::copy_from_slice(data));
        d
    }

    fn add_manifest(&self, media_type: &str, value: serde_json::Value) -> FetchedManifest {
        let bytes = Bytes::from(serde_json::to_vec(&value).unwrap());
        let m = FetchedManifest {
            digest: Digest::sha256_of(&bytes),
            bytes,
            media_type: media_type.to_string(),
        };
        self.state().manifests.insert(m.digest.clone(), m.clone());
        m
    }

    fn tag(&self, tag: &str, m: &FetchedManifest) {
        self.state().tags.insert(tag.to_string(), m.digest.clone());
    }

    /// An image of a config and layers with these contents.
    fn image(&self, config: &[u8], layers: &[&[u8]]) -> FetchedManifest {
        let desc = |data: &[u8], d: Digest| json!({"mediaType": "application/octet-stream", "digest": d.as_str(), "size": data.len()});
        let config = desc(config, self.add_blob(config));
        let layers: Vec<_> = layers.iter().map(|l| desc(l, self.add_blob(l))).collect();
        self.add_manifest(
            OCI_MANIFEST,
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}),
        )
    }

    fn index(&self, children: &[&FetchedManifest]) -> FetchedManifest {
        let list: Vec<_> = children
            .iter()
            .map(|c| json!({"mediaType": c.media_type, "digest": c.digest.as_str(), "size": c.bytes.len()}))
            .collect();
        self.add_manifest(
            OCI_INDEX,
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list}),
        )
    }

    fn has(&self, d: &Digest) -> bool {
        let st = self.state();
        st.blobs.contains_key(d) || st.manifests.contains_key(d)
    }

    fn resolve(&self, reference: &str) -> Option<Digest> {
        let st = self.state();
        match Digest::parse(reference) {
            Ok(d) => st.manifests.contains_key(&d).then_some(d),
            Err(_) => st.tags.get(reference).cloned(),
        }
    }
}

/// How one blob read is served: honouring the offset asked or sending
/// the whole blob (or claiming another start), cut after some bytes, with
/// one byte flipped.
#[derive(Debug, Clone, Copy, Default)]
struct Read {
    whole: bool,
    /// Claims its body starts this many bytes after where it does.
    lies: u64,
    cut: Option<usize>,
    flip: Option<usize>,
}

impl Read {
    fn serve(self, data: &Bytes, offset: u64) -> Blob {
        let start = if self.whole {
            0
        } else {
            (offset as usize).min(data.len())
        };
        let mut part = data[start..].to_vec();
        if let Some(at) = self.flip.filter(|at| *at < part.len()) {
            part[at] ^= 0x40;
        }
        let len = Some(part.len() as u64);
        let mut items: Vec<std::io::Result<Bytes>> = Vec::new();
        let sent = self.cut.unwrap_or(part.len()).min(part.len());
        // in pieces of up to 7 bytes, as a network delivers them
        for piece in part[..sent].chunks(7) {
            items.push(Ok(Bytes::copy_from_slice(piece)));
        }
        if self.cut.is_some_and(|c| c < part.len()) {
            items.push(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset mid-body",
            )));
        }
        Blob {
            body: Box::pin(stream::iter(items)),
            len,
            start: start as u64 + self.lies,
        }
    }
}

fn not_found(store: &str, what: &str) -> StoreError {
    let kind = ErrorKind::Status {
        status: 404,
        errors: vec![],
    };
    StoreError::new(format!("{store}: {what}"), kind)
}

impl Store for MemStore {
    fn limiter(&self) -> Arc<crate::limit::Limiter> {
        self.limiter.clone()
    }

    fn delete_tags<'a>(&'a self, _tags: &'a [String], _keep: &'a [Digest]) -> BoxFuture<'a, crate::store::Deletions> {
        Box::pin(async { Vec::new() })
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn kind(&self) -> &'static str {
        "repository"
    }

    fn mount_domain(&self) -> Option<&str> {
        self.domain.as_ref().map(|_| "mem")
    }

    fn mount_name(&self) -> &str {
        &self.name
    }

    fn list_tags(&self) -> BoxFuture<'_, StoreResult<Option<Vec<String>>>> {
        Box::pin(async { Ok(Some(self.state().tags.keys().cloned().collect())) })
    }

    fn head_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, StoreResult<Option<ManifestHead>>> {
        Box::pin(async move {
            self.count("head_manifest", None);
            Ok(self.resolve(reference).map(|d| ManifestHead {
                media_type: self.state().manifests[&d].media_type.clone(),
                digest: Some(d),
            }))
        })
    }

    fn get_manifest<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, StoreResult<FetchedManifest>> {
        Box::pin(async move {
            let d = self
                .resolve(reference)
                .ok_or_else(|| not_found(&self.name, reference))?;
            self.count("get_manifest", Some(&d));
            Ok(self.state().manifests[&d].clone())
        })
    }

    fn put_manifest<'a>(&'a self, reference: &'a str, m: &'a FetchedManifest) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.count("put_manifest", None);
            let mut st = self.state();
            st.manifests.insert(m.digest.clone(), m.clone());
            if Digest::parse(reference).is_err() {
                st.tags.insert(reference.to_string(), m.digest.clone());
            }
            st.writes.push(format!("manifest {reference}"));
            Ok(())
        })
    }

    fn has_blob<'a>(&'a self, digest: &'a Digest) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            self.count("has_blob", Some(digest));
            Ok(self.state().blobs.contains_key(digest))
        })
    }

    fn get_blob<'a>(&'a self, digest: &'a Digest, offset: u64, _: Option<u64>) -> BoxFuture<'a, StoreResult<Blob>> {
        Box::pin(async move {
            self.count("get_blob", Some(digest));
            let data = self
                .state()
                .blobs
                .get(digest)
                .cloned()
                .ok_or_else(|| not_found(&self.name, "blob"))?;
            let read = self
                .reads
                .lock()
                .unwrap()
                .get_mut(digest)
                .and_then(|q| q.pop_front())
                .unwrap_or_default();
            Ok(read.serve(&data, offset))
        })
    }

    fn mount_blob<'a>(&'a self, digest: &'a Digest, from: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            self.count("mount_blob", Some(digest));
            let Some(domain) = &self.domain else { return Ok(false) };
            let there = domain.lock().unwrap().get(from).is_some_and(|b| b.contains(digest));
            if there {
                self.hold(digest, Bytes::new());
                self.state().writes.push(format!("blob {digest}"));
            }
            Ok(there)
        })
    }

    fn put_blob<'a>(&'a self, digest: &'a Digest, _len: Option<u64>, body: BlobBody) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.count("put_blob", Some(digest));
            self.put_blobs_started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let chunks: Vec<_> = body.collect().await;
            tokio::time::sleep(self.put_delay).await;
            let mut data = Vec::new();
            for c in chunks {
                let c = c.map_err(|e| StoreError::new(&self.name, ErrorKind::Network(e.to_string().into())))?;
                data.extend_from_slice(&c);
            }
            if *self.put_fails.lock().unwrap() {
                let mut e = StoreError::new(
                    format!("{}: upload", self.name),
                    ErrorKind::Status {
                        status: 500,
                        errors: vec![],
                    },
                );
                e.retries_spent = true;
                return Err(e);
            }
            assert_eq!(&Digest::sha256_of(&data), digest, "only verified content is stored");
            self.hold(digest, Bytes::from(data));
            self.state().writes.push(format!("blob {digest}"));
            Ok(())
        })
    }
}

impl MemStore {
    /// Stores a blob, visible to mounts from the other stores of the domain.
    fn hold(&self, digest: &Digest, data: Bytes) {
        self.state().blobs.insert(digest.clone(), data);
        if let Some(domain) = &self.domain {
            let mut repos = domain.lock().unwrap();
            repos.entry(self.name.clone()).or_default().insert(digest.clone());
        }
    }
}

fn engine() -> Engine {
    Engine::new(2)
}

#[tokio::test]
async fn a_blob_shared_by_many_tags_moves_once() {
    let (src, dst) = (MemStore::new("src", None), MemStore::new("dst", None));
    let shared: &[u8] = b"a base layer every tag shares";
    for i in 0..5 {
        let config = format!("config {i}");
        let own = format!("layer {i}");
        let m = src.image(config.as_bytes(), &[shared, own.as_bytes()]);
        src.tag(&format!("1.{i}.0"), &m);
    }
    let e = engine();
    let tags: Vec<String> = (0..5).map(|i| format!("1.{i}.0")).collect();
    let results = join_all(tags.iter().map(|t| e.copy_tag(&src, &dst, t))).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Outcome::Copied(_)))),
        "{results:?}"
    );
    let d = Digest::sha256_of(shared);
    assert_eq!(
        dst.calls(&format!("put_blob {d}")),
        1,
        "the shared layer was uploaded once"
    );
    assert_eq!(src.calls(&format!("get_blob {d}")), 1, "and downloaded once");
    assert_eq!(dst.calls("put_blob"), 11, "1 shared + 5 configs + 5 own layers");
    assert_eq!(e.stats.totals().blobs_transferred, 11);
    for t in &tags {
        assert_eq!(dst.resolve(t), src.resolve(t), "{t}");
    }
}

#[tokio::test]
async fn a_mount_is_tried_once_per_repository() {
    let domain = Domain::default();
    let src = MemStore::new("team/app", Some(domain.clone()));
    let dst = MemStore::new("mirror/app", Some(domain.clone()));
    let other = MemStore::new("mirror/other", Some(domain.clone()));
    let shared: &[u8] = b"shared layer";
    for i in 0..3 {
        let m = src.image(format!("config {i}").as_bytes(), &[shared]);
        src.tag(&format!("{i}"), &m);
    }
    let e = engine();
    for t in ["0", "1", "2"] {
        e.copy_tag(&src, &dst, t).await.unwrap();
        e.copy_tag(&src, &other, t).await.unwrap();
    }
    let d = Digest::sha256_of(shared);
    assert_eq!(dst.calls(&format!("mount_blob {d}")), 1);
    assert_eq!(other.calls(&format!("mount_blob {d}")), 1);
    assert_eq!(src.calls("get_blob"), 0, "everything was mounted, nothing streamed");
    assert_eq!(
        e.stats.totals().blobs_mounted,
        8,
        "1 shared + 3 configs, in each of 2 repositories"
    );
}

/// Two tags share a layer; the second asks for it while the first uploads it.
async fn two_copies_of_one_blob_in_flight(fail: bool) -> (Vec<std::result::Result<Outcome, CopyError>>, MemStore) {
    let src = MemStore::new("src", None);
    let mut dst = MemStore::new("dst", None);
    dst.put_delay = Duration::from_millis(150);
    *dst.put_fails.lock().unwrap() = fail;
    let shared: &[u8] = b"the layer in flight";
    let a = src.image(shared, &[]);
    src.tag("a", &a);
    let b = src.image(shared, &[]);
    src.tag("b", &b);
    let e = engine();
    let results = join_all([e.copy_tag(&src, &dst, "a"), e.copy_tag(&src, &dst, "b")]).await;
    (results, dst)
}

#[tokio::test]
async fn copies_waiting_on_a_blob_in_flight_get_its_result() {
    let (results, dst) = two_copies_of_one_blob_in_flight(false).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Outcome::Copied(_)))),
        "{results:?}"
    );
    assert_eq!(dst.calls("put_blob"), 1, "one transfer served both copies");

    let (results, dst) = two_copies_of_one_blob_in_flight(true).await;
    assert_eq!(
        dst.calls("put_blob"),
        1,
        "the waiter got the failure instead of trying again"
    );
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert!(e.to_string().contains("dst: upload: HTTP 500"), "{e}");
    }
    assert!(dst.state().tags.is_empty(), "no tag was written");
}

#[tokio::test]
async fn nesting_deeper_than_the_limit_is_refused() {
    let (src, dst) = (MemStore::new("src", None), MemStore::new("dst", None));
    let mut top = src.image(b"config", &[b"layer"]);
    for _ in 0..=MAX_DEPTH {
        top = src.index(&[&top]);
    }
    src.tag("deep", &top);
    let err = engine().copy_tag(&src, &dst, "deep").await.unwrap_err();
    assert!(matches!(err, CopyError::TooDeep { .. }), "{err}");
    assert!(err.to_string().contains("indexes nested more than 4 deep"), "{err}");
    assert!(dst.state().tags.is_empty());
}

#[tokio::test]
async fn a_schema1_child_inside_an_index_is_reported_and_schema1_tags_are_skipped() {
    let (src, dst) = (MemStore::new("src", None), MemStore::new("dst", None));
    let v1 = src.add_manifest(
        crate::model::manifest::DOCKER_SCHEMA1_SIGNED,
        json!({"schemaVersion": 1, "name": "x", "tag": "old", "fsLayers": []}),
    );
    let good = src.image(b"config", &[b"layer"]);
    let index = src.index(&[&good, &v1]);
    src.tag("mixed", &index);
    src.tag("old", &v1);
    let e = engine();
    let err = e.copy_tag(&src, &dst, "mixed").await.unwrap_err();
    assert!(
        matches!(&err, CopyError::Schema1Child { digest, .. } if *digest == v1.digest),
        "{err}"
    );
    assert!(err.to_string().contains("Docker schema 1"), "{err}");
    assert_eq!(e.copy_tag(&src, &dst, "old").await.unwrap(), Outcome::SkippedSchema1);
    assert!(dst.state().tags.is_empty(), "no tag points at a partial index");
}

#[tokio::test]
async fn the_tag_is_written_last() {
    let (src, dst) = (MemStore::new("src", None), MemStore::new("dst", None));
    let amd = src.image(b"amd64 config", &[b"amd64 layer", b"common"]);
    let arm = src.image(b"arm64 config", &[b"arm64 layer", b"common"]);
    let index = src.index(&[&amd, &arm]);
    src.tag("1.0.0", &index);
    engine().copy_tag(&src, &dst, "1.0.0").await.unwrap();
    let writes = dst.state().writes.clone();
    assert_eq!(writes.last().map(String::as_str), Some("manifest 1.0.0"), "{writes:?}");
    assert_eq!(writes.len(), 5 + 2 + 1, "5 blobs, 2 children, 1 tag: {writes:?}");
    let pos = |w: &str| writes.iter().position(|x| x == w).unwrap();
    for (child, blobs) in [
        (&amd, ["amd64 config", "amd64 layer"]),
        (&arm, ["arm64 config", "arm64 layer"]),
    ] {
        let child_at = pos(&format!("manifest {}", child.digest));
        for blob in blobs.iter().chain(&["common"]) {
            let blob_at = pos(&format!("blob {}", Digest::sha256_of(blob.as_bytes())));
            assert!(blob_at < child_at, "{blob} before its manifest: {writes:?}");
        }
    }
    assert!(dst.has(&index.digest));
}

#[tokio::test]
async fn a_body_that_breaks_mid_way_is_resumed_within_the_budget() {
    let (src, dst) = (MemStore::new("src", None), MemStore::new("dst", None));
    let layer: &[u8] = b"a layer whose download breaks";
    let m = src.image(b"config", &[layer]);
    src.tag("t", &m);
    let d = Digest::sha256_of(layer);
    src.break_reads(&d, layer.len() / 2, 2);
    engine().copy_tag(&src, &dst, "t").await.unwrap();
    assert_eq!(src.calls(&format!("get_blob {d}")), 3, "two breaks, two resumes");
    assert_eq!(
        dst.calls(&format!("put_blob {d}")),
        1,
        "one upload: the breaks never reached it"
    );
    assert_eq!(&dst.state().blobs[&d][..], layer);

    // with no restarts left, the break is the error
    let (src, dst) = (MemStore::new("src", None), MemStore::new("dst", None));
    let m = src.image(b"config", &[layer]);
    src.tag("t", &m);
    src.break_reads(&d, layer.len() / 2, 1);
    let err = Engine::new(0).copy_tag(&src, &dst, "t").await.unwrap_err();
    assert!(err.to_string().contains("reset mid-body"), "{err}");
    assert_eq!(src.calls(&format!("get_blob {d}")), 1);
    assert!(dst.state().tags.is_empty());
}

#[tokio::test]
async fn a_blob_with_a_manifests_bytes_does_not_stand_for_that_manifest() {
    let (src, dst) = (MemStore::new("src", None), MemStore::new("dst", None));
    let m = src.image(b"M's config", &[b"M's layer"]);
    // tag a: an image one of whose layers has exactly M's bytes
    let a = src.image(b"a's config", &[&m.bytes]);
    src.tag("a", &a);
    // tag b: an index that lists M
    let b = src.index(&[&m]);
    src.tag("b", &b);
    let e = Engine::new(0);
    e.copy_tag(&src, &dst, "a").await.unwrap();
    e.copy_tag(&src, &dst, "b").await.unwrap();
    for blob in [b"M's config".as_slice(), b"M's layer"] {
        let d = Digest::sha256_of(blob);
        assert!(dst.has(&d), "M's blob {d} reached the destination");
    }
}

#[tokio::test]
async fn a_failed_transfer_into_one_repository_does_not_fail_another() {
    let domain = Domain::default();
    let src = MemStore::new("src", None);
    let mut denied = MemStore::new("mirror/denied", Some(domain.clone()));
    denied.put_delay = Duration::from_millis(100);
    *denied.put_fails.lock().unwrap() = true;
    let open = MemStore::new("mirror/open", Some(domain));
    let m = src.image(b"config", &[b"layer"]);
    src.tag("t", &m);
    let e = engine();
    let (a, b) = tokio::join!(e.copy_tag(&src, &denied, "t"), async {
        // ask while the denied repository's upload is in flight
        tokio::time::sleep(Duration::from_millis(20)).await;
        e.copy_tag(&src, &open, "t").await
    });
    assert!(a.is_err());
    assert!(matches!(b.unwrap(), Outcome::Copied(_)));
    assert_eq!(open.resolve("t"), Some(m.digest));
}

/// A source with one image, and three destinations the engine knows read
/// it (`destination` as a list).
fn fanned(e: &Engine) -> (MemStore, Vec<Arc<MemStore>>, FetchedManifest) {
    let src = MemStore::new("src", None);
    let m = src.image(b"config", &[b"layer one", b"layer two"]);
    src.tag("t", &m);
    let dsts: Vec<Arc<MemStore>> = ["eu", "us", "ap"]
        .iter()
        .map(|n| Arc::new(MemStore::new(n, None)))
        .collect();
    let stores: Vec<Arc<dyn Store>> = dsts.iter().map(|d| d.clone() as Arc<dyn Store>).collect();
    e.fan_out(&src, &stores);
    (src, dsts, m)
}

#[tokio::test]
async fn a_source_read_by_several_destinations_is_read_once() {
    let e = engine();
    let (src, dsts, m) = fanned(&e);
    let results = join_all(dsts.iter().map(|d| e.copy_tag(&src, &**d, "t"))).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(
        src.calls("get_blob"),
        3,
        "each of the 3 blobs read from the source once"
    );
    for d in &dsts {
        assert_eq!(d.resolve("t"), Some(m.digest.clone()));
        assert_eq!(d.calls("put_blob"), 3, "{}", d.name);
        assert!(missing_in(&**d, "t").await.is_empty());
    }
    // the two others read them from the destinations that had them
    let relayed: usize = dsts.iter().map(|d| d.calls("get_blob")).sum();
    assert_eq!(relayed, 6);
}

#[tokio::test]
async fn a_failing_destination_holds_no_other_back_and_a_relay_that_cannot_serve_falls_back_to_the_source() {
    let e = engine();
    let (src, dsts, m) = fanned(&e);
    // eu refuses every upload; us gets the blobs first, then serves them
    // corrupted, so ap must read them from the source after all
    let eu = &dsts[0];
    *eu.put_fails.lock().unwrap() = true;
    e.copy_tag(&src, &*dsts[1], "t").await.unwrap();
    let served = src.calls("get_blob");
    let blobs: Vec<Digest> = src.state().blobs.keys().cloned().collect();
    for d in blobs {
        let flipped = Read {
            flip: Some(1),
            ..Read::default()
        };
        dsts[1].reads.lock().unwrap().insert(d, vec![flipped; 8].into());
    }
    let (failed, copied) = tokio::join!(e.copy_tag(&src, &**eu, "t"), e.copy_tag(&src, &*dsts[2], "t"));
    assert!(failed.is_err());
    assert_eq!(copied.unwrap(), Outcome::Copied(m.digest.clone()));
    assert!(missing_in(&*dsts[2], "t").await.is_empty());
    assert!(
        src.calls("get_blob") > served,
        "the blobs us could not serve were read from the source"
    );
    assert!(eu.state().tags.is_empty(), "no tag was written where uploads fail");
}

/// Walks a tag in a store: every manifest of its tree and every blob they
/// refer to must be there. Returns what is missing.
async fn missing_in(store: &dyn Store, tag: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let Some(head) = store.head_manifest(tag).await.unwrap() else {
        return vec![format!("tag {tag}")];
    };
    let mut todo = vec![head.digest.unwrap()];
    while let Some(d) = todo.pop() {
        let Ok(m) = store.get_manifest(d.as_str()).await else {
            missing.push(format!("manifest {d}"));
            continue;
        };
        match Manifest::parse(&m.media_type, &m.bytes).unwrap() {
            Manifest::Image { blobs, .. } => {
                for (b, _) in blobs {
                    if !store.has_blob(&b).await.unwrap() {
                        missing.push(format!("blob {b} of {d}"));
                    }
                }
            }
            Manifest::Index { children } => todo.extend(children.into_iter().map(|(c, _)| c)),
            Manifest::Schema1 => missing.push(format!("schema 1 {d}")),
        }
    }
    missing
}

/// A random graph of images: blobs shared between images, images shared
/// between indexes, nested indexes, tags that alias one manifest, and
/// layers whose bytes are exactly another manifest's.
#[derive(Debug, Clone)]
struct Graph {
    /// Per image: (config seed, layer seeds); a seed of None means "the
    /// bytes of the image before this one" (a byte-identical manifest).
    images: Vec<(u8, Vec<Option<u8>>)>,
    /// Per index: images it lists (by position), and whether it also
    /// lists the index before it (nesting).
    indexes: Vec<(Vec<usize>, bool)>,
    /// Tags: (is an index, which one).
    tags: Vec<(bool, usize)>,
}

fn graphs() -> impl proptest::strategy::Strategy<Value = Graph> {
    use proptest::prelude::*;
    let image = (
        any::<u8>(),
        proptest::collection::vec(proptest::option::weighted(0.8, 0u8..6), 0..4),
    );
    (proptest::collection::vec(image, 1..6), 0usize..4, 1usize..8).prop_flat_map(|(images, n_idx, n_tags)| {
        let n_img = images.len();
        let index = (proptest::collection::vec(0..n_img, 1..4), any::<bool>());
        let tag = (any::<bool>(), 0usize..8);
        (
            Just(images),
            proptest::collection::vec(index, n_idx),
            proptest::collection::vec(tag, n_tags),
        )
            .prop_map(|(images, indexes, tags)| Graph { images, indexes, tags })
    })
}

/// Builds the graph in a source store; returns the tags.
fn build(src: &MemStore, g: &Graph) -> Vec<String> {
    let mut images: Vec<FetchedManifest> = Vec::new();
    for (config, layers) in &g.images {
        let layers: Vec<Vec<u8>> = layers
            .iter()
            .map(|l| match (l, images.last()) {
                (Some(seed), _) => format!("layer {seed}").into_bytes(),
                (None, Some(prev)) => prev.bytes.to_vec(),
                (None, None) => b"first".to_vec(),
            })
            .collect();
        let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
        images.push(src.image(format!("config {config}").as_bytes(), &refs));
    }
    let mut indexes: Vec<FetchedManifest> = Vec::new();
    for (children, nested) in &g.indexes {
        let mut list: Vec<&FetchedManifest> = children.iter().map(|c| &images[*c]).collect();
        let prev = indexes.last().cloned();
        if let (true, Some(p)) = (nested, prev.as_ref()) {
            list.push(p);
        }
        let made = src.index(&list);
        indexes.push(made);
    }
    let mut tags = Vec::new();
    for (n, (is_index, which)) in g.tags.iter().enumerate() {
        let target = match (is_index, indexes.is_empty()) {
            (true, false) => &indexes[which % indexes.len()],
            _ => &images[which % images.len()],
        };
        let tag = format!("t{n}");
        src.tag(&tag, target);
        tags.push(tag);
    }
    tags
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever the graph, every tag copied into a layout or a registry-like
    /// store resolves to a complete tree, in any order of copies.
    #[test]
    fn every_copied_tag_resolves_completely(g in graphs(), reverse in proptest::bool::ANY) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let src = MemStore::new("src", None);
            let mut tags = build(&src, &g);
            if reverse {
                tags.reverse();
            }
            let dir = tempfile::tempdir().unwrap();
            let layout = crate::store::Layout::new(dir.path().join("out"), 4);
            let mem = MemStore::new("dst", None);
            let e = Engine::new(0);
            for dst in [&layout as &dyn Store, &mem] {
                let copies = join_all(tags.iter().map(|t| e.copy_tag(&src, dst, t))).await;
                for r in copies {
                    r.unwrap();
                }
                assert!(dst.flush().await.is_empty());
                for t in &tags {
                    let missing = missing_in(dst, t).await;
                    assert!(missing.is_empty(), "{} {t}: {missing:?} in {g:?}", dst.name());
                }
            }
        });
    }
}

fn read_strategy() -> impl proptest::strategy::Strategy<Value = Read> {
    use proptest::prelude::*;
    (
        any::<bool>(),
        prop_oneof![4 => Just(0u64), 1 => 1u64..20],
        proptest::option::of(0usize..300),
        prop_oneof![6 => Just(None), 1 => (0usize..300).prop_map(Some)],
    )
        .prop_map(|(whole, lies, cut, flip)| Read { whole, lies, cut, flip })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// Whatever breaks, ranges ignored or misreported and corruption the
    /// reads of a blob meet, the copy ends with exactly the source's blob
    /// under its tag, or fails with nothing under the tag and no blob.
    #[test]
    fn any_sequence_of_breaks_ends_with_the_right_blob_or_a_clear_failure(
        reads in proptest::collection::vec(read_strategy(), 0..8),
        restarts in 0u32..4,
        len in 1usize..300,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let (src, dst) = (MemStore::new("src", None), MemStore::new("dst", None));
            let layer: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let m = src.image(b"config", &[&layer]);
            src.tag("t", &m);
            let d = Digest::sha256_of(&layer);
            src.reads.lock().unwrap().insert(d.clone(), reads.clone().into());
            let outcome = Engine::new(restarts).copy_tag(&src, &dst, "t").await;
            let held = dst.state().blobs.get(&d).cloned();
            match outcome {
                Ok(_) => {
                    proptest::prop_assert_eq!(held.as_deref(), Some(&layer[..]));
                    proptest::prop_assert!(dst.state().tags.contains_key("t"));
                }
                Err(e) => {
                    proptest::prop_assert!(held.is_none(), "no blob after {e}");
                    proptest::prop_assert!(dst.state().tags.is_empty(), "no tag after {e}");
                    let said = e.to_string();
                    proptest::prop_assert!(
                        ["reset mid-body", "does not match its digest", "asked for the rest", "expected", "longer"]
                            .iter()
                            .any(|w| said.contains(w)),
                        "a clear failure: {said}"
                    );
                }
            }
            Ok(())
        })?;
    }
}
