//! Making a blob present in a destination: known there, mounted from a
//! repository of the same registry, or streamed from the source, verified
//! on the way. Each happens at most once per destination per run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;

use super::resume::{Reading, resuming, serve_reopens};
use super::verify::{Checkpoints, verified_from};
use super::{CopyError, Engine};
use crate::defaults::STREAM_BUFFERS;
use crate::error::{ErrorKind, StoreError};
use crate::limit::Limiter;
use crate::lock;
use crate::model::Digest;
use crate::model::manifest::Descriptor;
use crate::store::Store;

/// Whether an upload that broke got far enough beyond where this attempt
/// started for going on not to count as a restart.
fn progressed(e: &StoreError, from: u64) -> bool {
    e.resume_at
        .is_some_and(|at| at >= from + crate::defaults::RESUME_PROGRESS)
}

impl Engine {
    /// Makes a blob present in `dst`, checking and moving it at most once
    /// per destination per run.
    pub(super) async fn copy_blob(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        let key = format!("blob:{}@{digest}", dst.name());
        self.present
            .get_or_try_init(key, || async {
                if !self.is_new(dst) && dst.has_blob(digest).await? {
                    self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                    self.stats.skipped_bytes.fetch_add(desc.size, Ordering::Relaxed);
                    self.holders_offer(dst, digest);
                    self.relay_offer(src, dst, digest);
                    return Ok(());
                }
                self.place_blob(src, dst, digest, desc).await?;
                self.relay_offer(src, dst, digest);
                Ok(())
            })
            .await
    }

    /// Mounts the blob from a repository of the same registry when one has
    /// it (the source itself, or one this run put it in, waiting for a
    /// transfer in flight), else transfers it.
    async fn place_blob(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        let Some(domain) = dst.mount_domain() else {
            return self.bring(src, dst, digest, desc).await;
        };
        if src.mount_domain() == Some(domain)
            && src.mount_name() != dst.mount_name()
            && self.mount(src.mount_name(), dst, digest, desc.size).await?
        {
            return Ok(());
        }
        let key = format!("{domain}@{digest}");
        let mine = std::sync::atomic::AtomicBool::new(false);
        let holder = self
            .holders
            .get_or_try_init(key, || async {
                mine.store(true, Ordering::Relaxed);
                self.bring(src, dst, digest, desc).await?;
                Ok::<String, CopyError>(dst.mount_name().to_string())
            })
            .await;
        let holder = match holder {
            Ok(h) => h,
            Err(e) if mine.load(Ordering::Relaxed) => return Err(e),
            // Another repository's transfer failed; that may be its own
            // trouble (say, no push rights there): try this one directly.
            Err(_) => return self.bring(src, dst, digest, desc).await,
        };
        if holder == dst.mount_name() || self.mount(&holder, dst, digest, desc.size).await? {
            return Ok(());
        }
        self.bring(src, dst, digest, desc).await
    }

    /// Brings a blob the destination lacks from the source. A source
    /// that several destinations read is read once: a destination that
    /// holds the blob this run (or is getting it, waited for) serves it to
    /// the others, and only when that read fails is the source read again.
    async fn bring(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        if !lock(&self.fanned).sources.contains(&src.name()) {
            return self.transfer(src, dst, digest, desc).await;
        }
        let key = relay_key(src, digest);
        // another destination's read that failed may have failed for its
        // own reasons (its upload): then one of the others reads, at most
        // this many times over before this one reads for itself
        for _ in 0..RELAY_TURNS {
            let mine = std::sync::atomic::AtomicBool::new(false);
            let holder = self
                .relays
                .get_or_try_init(key.clone(), || async {
                    mine.store(true, Ordering::Relaxed);
                    self.transfer(src, dst, digest, desc).await?;
                    Ok::<String, CopyError>(dst.name())
                })
                .await;
            let holder = match holder {
                Ok(h) => h,
                Err(e) if mine.load(Ordering::Relaxed) => return Err(e),
                Err(_) => continue,
            };
            if holder == dst.name() {
                return Ok(());
            }
            let Some(relay) = lock(&self.fanned).destinations.get(&holder).cloned() else {
                break;
            };
            match self.transfer(&*relay, dst, digest, desc).await {
                Ok(()) => {
                    tracing::debug!(destination = %dst.name(), %digest, from = holder, "blob read from another destination");
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(destination = %dst.name(), %digest, "{holder} could not serve the blob ({e}): read from the source");
                    break;
                }
            }
        }
        self.transfer(src, dst, digest, desc).await
    }

    async fn mount(&self, from: &str, dst: &dyn Store, digest: &Digest, size: u64) -> Result<bool, CopyError> {
        let mounted = dst.mount_blob(digest, from).await?;
        if mounted {
            tracing::debug!(destination = %dst.name(), %digest, from, "blob mounted");
            self.stats.mounted.fetch_add(1, Ordering::Relaxed);
            self.stats.mounted_bytes.fetch_add(size, Ordering::Relaxed);
        }
        Ok(mounted)
    }

    /// Records that `dst` holds a blob of a source several destinations
    /// read, if none was recorded yet: the others may read it there.
    fn relay_offer(&self, src: &dyn Store, dst: &dyn Store, digest: &Digest) {
        if lock(&self.fanned).sources.contains(&src.name()) {
            self.relays.set_if_empty(relay_key(src, digest), dst.name());
        }
    }

    /// Records that `dst` holds a blob, if no repository of its registry
    /// was recorded yet.
    fn holders_offer(&self, dst: &dyn Store, digest: &Digest) {
        if let Some(domain) = dst.mount_domain() {
            self.holders
                .set_if_empty(format!("{domain}@{digest}"), dst.mount_name().to_string());
        }
    }

    /// Streams the blob from `src` into `dst`, verified on the way. Failed
    /// exchanges were already retried by the transport; a read that breaks
    /// goes on from where it stood (`copy/resume.rs`), a chunked upload
    /// from where the registry stands (`registry/upload.rs`); what neither
    /// can repair — a blob that failed verification, a one-stream upload
    /// that broke, a lost upload session — starts again here from scratch
    /// (a new read, a new upload session), at most `restarts` times.
    /// Nothing of a broken attempt is ever committed.
    async fn transfer(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        // room for its buffers first (a blob of unknown size may need all
        // of it): waiting for it holds no connection slot (the semaphore is
        // never closed)
        let kib = match desc.size {
            0 => STREAM_BUFFERS,
            size => size.min(STREAM_BUFFERS),
        }
        .div_ceil(1024) as u32;
        let _room = self.stream_memory.acquire_many(kib).await.ok();
        // a slot on each side for the whole transfer; its own requests
        // take no further slot there
        Limiter::covering(self.limiters(src, dst), self.transfer_in_slots(src, dst, digest, desc)).await
    }

    async fn transfer_in_slots(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
    ) -> Result<(), CopyError> {
        let tally = crate::progress::current();
        if let Some(t) = &tally {
            t.expect(desc.size);
        }
        // where each attempt starts sending: 0, or where the destination
        // stands after an upload that broke (its session goes on)
        let (mut restarts, mut from) = (0, 0);
        let checkpoints = Checkpoints::default();
        loop {
            match self
                .transfer_once(src, dst, digest, desc, tally.clone(), from, &checkpoints)
                .await
            {
                // an upload that got further than the last one goes on
                // without counting: a long link that breaks now and then
                // still delivers a multi-gigabyte blob
                Err(CopyError::Store(e)) if e.is_retryable() && (restarts < self.restarts || progressed(&e, from)) => {
                    if !progressed(&e, from) {
                        restarts += 1;
                    }
                    from = e.resume_at.unwrap_or(0);
                    if from > 0 {
                        // the upload waited already
                        tracing::debug!(
                            "{e}; blob transfer goes on from byte {from} ({restarts} of {})",
                            self.restarts
                        );
                        continue;
                    }
                    let wait = e.retry_after.unwrap_or_else(|| crate::backoff::backoff(restarts - 1));
                    tracing::debug!("{e}; blob transfer restart {restarts} of {} in {wait:?}", self.restarts);
                    tokio::time::sleep(wait).await;
                }
                result => return result,
            }
        }
    }

    /// One attempt: the source read (resuming after breaks, verified)
    /// streams straight into the destination's upload; a break on the
    /// source side never reaches the upload (the read asks this task for
    /// the rest and goes on). From byte `from` > 0,
    /// the read starts at the last checkpoint of the running digest before
    /// it, and the bytes up to `from` are hashed but not sent: the
    /// destination has them.
    #[allow(clippy::too_many_arguments)]
    async fn transfer_once(
        &self,
        src: &dyn Store,
        dst: &dyn Store,
        digest: &Digest,
        desc: &Descriptor,
        tally: Option<Arc<crate::progress::Tally>>,
        from: u64,
        checkpoints: &Checkpoints,
    ) -> Result<(), CopyError> {
        let declared = (desc.size > 0).then_some(desc.size);
        let (begin, verifier) = {
            let mut marks = lock(checkpoints);
            marks.retain(|(at, _)| *at <= from);
            match marks.last() {
                Some((at, v)) if from > 0 => (*at, v.clone()),
                _ => (0, digest.verifier()),
            }
        };
        let blob = src.get_blob(digest, begin, declared).await?;
        let ctx = format!("{}: blob {digest}", src.name());
        let served = blob.len.map(|len| blob.start + len);
        let size = match (desc.size, served) {
            (0, served) => served,
            (declared, Some(served)) if served != declared => {
                let why = format!("served {served} bytes where the manifest declares {declared}");
                return Err(StoreError::new(ctx, ErrorKind::Protocol(why.into())).into());
            }
            (declared, _) => Some(declared),
        };
        if blob.start > begin {
            let why = format!("asked for the blob from byte {begin}, got it from byte {}", blob.start);
            return Err(StoreError::new(ctx, ErrorKind::Protocol(why.into())).into());
        }
        let failure = Arc::new(Mutex::new(None));
        let (reopen, reopens) = tokio::sync::mpsc::channel(1);
        let reading = Reading {
            src: src.name(),
            digest: digest.clone(),
            reopen,
            start: begin,
            size,
            min_rate: self.min_rate,
            breaks_allowed: self.restarts,
            failure: failure.clone(),
        };
        let read = resuming(reading, blob);
        let body = verified_from(
            read,
            verifier,
            digest.clone(),
            size,
            failure.clone(),
            Some(checkpoints.clone()),
        );
        let body = unsent(body, from - begin);
        // progress: counted as the body streams (in the HTTP client's task,
        // where no task-local reaches)
        let attempt = Arc::new(AtomicU64::new(0));
        let counted = {
            let (tally, attempt) = (tally.clone(), attempt.clone());
            futures_util::StreamExt::inspect(body, move |chunk| {
                if let (Ok(bytes), Some(t)) = (chunk, &tally) {
                    let n = bytes.len() as u64;
                    attempt.fetch_add(n, Ordering::Relaxed);
                    t.moved(n);
                }
            })
        };
        let body: crate::store::BlobBody = Box::pin(counted);
        let upload = async {
            match (from, size) {
                (0, _) => dst.put_blob(digest, size, body).await,
                (from, Some(size)) => dst.put_blob_rest(digest, size, from, body).await,
                (_, None) => Err(StoreError::new(
                    &ctx,
                    ErrorKind::Protocol("no size to go on with".into()),
                )),
            }
        };
        // the read asks this task for the rest after a break: answered
        // until the upload is done with it
        let stored = {
            let serving = serve_reopens(src, digest, size, reopens);
            tokio::pin!(upload, serving);
            tokio::select! {
                stored = &mut upload => stored,
                () = &mut serving => upload.await,
            }
        };
        // what the destination kept of a broken upload stays counted
        let kept = stored
            .as_ref()
            .err()
            .and_then(|e| e.resume_at)
            .map_or(0, |at| at.saturating_sub(from));
        let give_back = |tally: &Option<Arc<crate::progress::Tally>>| {
            if let Some(t) = tally {
                t.give_back(attempt.load(Ordering::Relaxed).saturating_sub(kept));
            }
        };
        // A failure of the read (or its verification) is the real cause.
        if let Some(kind) = lock(&failure).take() {
            give_back(&tally);
            return Err(StoreError::new(ctx, kind).into());
        }
        if stored.is_err() {
            give_back(&tally);
        }
        stored?;
        let bytes = size.unwrap_or(desc.size);
        self.stats.transferred.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        tracing::debug!(destination = %dst.name(), %digest, bytes, "blob transferred");
        Ok(())
    }

    /// The limits of both sides (a registry's adaptive one, or a layout's
    /// fixed one), in a fixed order so that transfers waiting for slots can
    /// never wait for each other.
    fn limiters(&self, src: &dyn Store, dst: &dyn Store) -> Vec<Arc<Limiter>> {
        let mut sides: Vec<(String, Arc<Limiter>)> = [src, dst]
            .iter()
            .map(|s| {
                let name = s.mount_domain().map(str::to_string).unwrap_or_else(|| s.name());
                (name, s.limiter())
            })
            .collect();
        sides.sort_by(|a, b| a.0.cmp(&b.0));
        sides.dedup_by(|a, b| a.0 == b.0);
        sides.into_iter().map(|(_, l)| l).collect()
    }
}

/// How often a destination waits for another one's read of a blob that
/// failed before reading it from the source itself.
const RELAY_TURNS: usize = 4;

/// The key of a source's blob among the relays.
fn relay_key(src: &dyn Store, digest: &Digest) -> String {
    format!("{}@{digest}", src.name())
}

/// Drops the first `n` bytes of a stream (hashed above it, not sent).
fn unsent<'a>(
    body: impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'a,
    n: u64,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'a {
    futures_util::stream::unfold((Box::pin(body), n), |(mut body, mut n)| async move {
        loop {
            match body.next().await? {
                Ok(chunk) if n >= chunk.len() as u64 => n -= chunk.len() as u64,
                Ok(chunk) => {
                    let rest = chunk.slice(n as usize..);
                    return Some((Ok(rest), (body, 0)));
                }
                Err(e) => return Some((Err(e), (body, n))),
            }
        }
    })
}
