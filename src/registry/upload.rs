//! Uploading a blob: most in one streamed request, large ones as `PATCH`
//! requests that survive a broken connection.
//!
//! A large blob goes as `PATCH` requests with `Content-Range`, in order,
//! then the closing `PUT` with the digest. By default one `PATCH` carries
//! the whole blob (a clean upload costs one request more than a single
//! `PUT`) and nothing is held: after a break the session's status (`GET`
//! on its location: the `Range` it holds) says where the registry stands,
//! and the error's `resume_at` has the copy engine read the rest again from
//! the source into the same session (`upload_rest`). A registry seen
//! dropping what arrived of a broken request gets chunks of
//! [`defaults::CHUNK_HELD`] held in memory (within
//! [`defaults::CHUNK_MEMORY`] over the run) and sent again from there, for
//! the rest of the run; so do chunks of a set `--chunk-size`. A session the
//! registry lost is an error the copy engine restarts in a new session; a
//! registry that refuses chunks gets one stream, for the rest of the run.

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::client::{Client, push};
use super::ranges::upload_held;
use super::wire::header;
use crate::defaults;
use crate::error::{ErrorKind, StoreError};
use crate::lock;
use crate::model::{Digest, Repository};

type Result<T> = std::result::Result<T, StoreError>;
type Body = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

const MIB: u64 = 1024 * 1024;

/// How large a run's chunks are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunking {
    /// `--chunk-size`: every chunk this size (and held whole); else the
    /// first is the whole blob.
    pub fixed: Option<u64>,
}

impl Client {
    /// Uploads a whole blob into the session at `location`: in chunks when
    /// it is large and the registry takes them, else in one streamed `PUT`
    /// with `Content-Length` (or, when the length is unknown, one streamed
    /// `PATCH` and a closing `PUT`). A streamed body cannot be replayed, so
    /// a one-stream upload that fails is restarted by the copy engine with
    /// a new session; a chunked one goes on where the registry stands.
    pub async fn upload_blob(
        &self,
        repo: &Repository,
        location: Url,
        digest: &Digest,
        size: Option<u64>,
        body: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    ) -> Result<()> {
        let chunked = size
            .filter(|s| *s >= defaults::CHUNKED_FROM)
            .filter(|_| !lock(&self.no_chunks).contains(&repo.registry.host));
        let Some(size) = chunked else {
            return self.upload_whole(repo, location, digest, size, body).await;
        };
        match self
            .upload_in_chunks(repo, location, digest, size, 0, Box::pin(body))
            .await?
        {
            Chunked::Done => Ok(()),
            Chunked::Refused { held, rest, why } => {
                lock(&self.no_chunks).insert(repo.registry.host.clone());
                tracing::warn!(
                    "{repo}: upload blob {digest}: the registry refused a chunked upload ({why}); \
                     blobs go to {} in one stream for the rest of the run",
                    repo.registry
                );
                let Some(held) = held else {
                    // more was sent than is held: the copy engine starts the
                    // blob again (in one stream now)
                    let why = "the registry refused a chunked upload: the blob starts again in one stream";
                    return Err(StoreError::new(
                        format!("{repo}: upload blob {digest}"),
                        ErrorKind::Network(why.into()),
                    ));
                };
                let location = self.start_upload(repo).await?;
                let body = futures_util::stream::iter(held.into_iter().map(Ok)).chain(rest);
                self.upload_whole(repo, location, digest, Some(size), body).await
            }
        }
    }

    async fn upload_whole(
        &self,
        repo: &Repository,
        location: Url,
        digest: &Digest,
        size: Option<u64>,
        body: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    ) -> Result<()> {
        let ctx = format!("{repo}: upload blob {digest}");
        let scopes = push(repo);
        // the registry answers once the whole body is in: that answer must
        // come within the response deadline of the body's end
        let (sent, body_sent) = tokio::sync::oneshot::channel();
        let body = reqwest::Body::wrap_stream(announce_end(body, sent));
        let uploading = self.transport.uploading(&repo.registry);
        let resp = match size {
            Some(len) => {
                let put = closing_put(uploading, location, digest)
                    .header(CONTENT_LENGTH, len)
                    .body(body);
                self.transport.send_upload(repo, &scopes, &ctx, put, body_sent).await?
            }
            None => {
                let patch = uploading
                    .request(Method::PATCH, location)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body);
                let resp = self
                    .transport
                    .send_upload(repo, &scopes, &ctx, patch, body_sent)
                    .await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.failure(resp, &ctx, repo).await);
                }
                let next = self.location(repo, resp.headers(), &ctx)?;
                let put = closing_put(uploading, next, digest).header(CONTENT_LENGTH, 0);
                self.transport.send_upload(repo, &scopes, &ctx, put, ended()).await?
            }
        };
        self.created(resp, &ctx, repo).await
    }

    async fn created(&self, resp: Response, ctx: &str, repo: &Repository) -> Result<()> {
        if resp.status() != StatusCode::CREATED {
            return Err(self.write_failure(resp, ctx, repo).await);
        }
        Ok(())
    }

    /// Sends the rest of a blob, from byte `from`, into the session a
    /// broken chunked upload left (its error's `resume_at`).
    pub async fn upload_rest(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        from: u64,
        body: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    ) -> Result<()> {
        let ctx = format!("{repo}: upload blob {digest} in chunks");
        let key = format!("{repo}@{digest}");
        let session = lock(&self.resumable).remove(&key);
        let Some((location, held)) = session.filter(|(_, held)| *held == from) else {
            let why = format!("no upload session holding {from} bytes to go on with");
            return Err(StoreError::new(ctx, ErrorKind::Protocol(why.into())));
        };
        tracing::debug!("{ctx}: the rest, from byte {held}, read again from the source");
        match self
            .upload_in_chunks(repo, location, digest, size, held, Box::pin(body))
            .await?
        {
            Chunked::Done => Ok(()),
            Chunked::Refused { why, .. } => Err(StoreError::new(ctx, ErrorKind::Network(why.into()))),
        }
    }

    async fn upload_in_chunks(
        &self,
        repo: &Repository,
        mut location: Url,
        digest: &Digest,
        size: u64,
        start: u64,
        body: Body,
    ) -> Result<Chunked> {
        let ctx = format!("{repo}: upload blob {digest} in chunks");
        let sizes = self.chunk_sizes(repo);
        if sizes.chunk.is_none() {
            return self
                .upload_streamed(repo, &ctx, location, digest, size, start, body)
                .await;
        }
        let mut source = Source { body, carry: None };
        let retries = self.transport.retries();
        // bytes the registry holds; where the last break happened; breaks
        // in a row without progress
        let (mut at, mut broke_at, mut breaks) = (start, start, 0u32);
        while at < size {
            let end = at.saturating_add(sizes.chunk.unwrap_or(u64::MAX)).min(size);
            let _room = self.chunk_room(sizes.held).await;
            let mut chunk = Chunk::new(at, end, sizes.held);
            let mut from = at;
            loop {
                let failure = match self
                    .send_chunk(repo, &ctx, &location, from, &mut chunk, &mut source)
                    .await
                {
                    Sent::Accepted(next) => {
                        location = next;
                        break;
                    }
                    Sent::Source(e) | Sent::Lost(e) => return Err(e),
                    Sent::Refused(why) if at == 0 && from == 0 => {
                        let whole = chunk.held_start == 0;
                        return Ok(Chunked::Refused {
                            held: whole.then(|| chunk.held.into()),
                            rest: source.rest(),
                            why,
                        });
                    }
                    // after a break: the registry may still have been
                    // taking in the broken request's last bytes when it told
                    // its status; it tells again
                    Sent::Refused(why) => StoreError::new(&ctx, ErrorKind::Network(why.into())),
                    Sent::Failed(e) => e,
                };
                if failure.status() != Some(401) && !failure.is_retryable() {
                    return Err(failure);
                }
                // where does the session stand? (asked after the wait, so
                // that the registry is done with the broken request)
                tokio::time::sleep(crate::backoff::backoff(breaks)).await;
                let held = self.upload_status(repo, &ctx, &mut location).await?;
                if held >= broke_at.saturating_add(defaults::RESUME_PROGRESS) {
                    breaks = 0;
                }
                breaks += 1;
                broke_at = held;
                if breaks > retries {
                    return Err(failure);
                }
                if held > chunk.pulled {
                    let why = format!(
                        "after a break the registry says it holds {held} bytes of the upload, more than the {} sent: \
                         the blob starts again in a new session",
                        chunk.pulled
                    );
                    return Err(StoreError::new(&ctx, ErrorKind::Network(why.into())));
                }
                if held < chunk.held_start {
                    if held >= chunk.start {
                        // it dropped what arrived of the broken chunk
                        lock(&self.drops_partial).insert(repo.registry.host.clone());
                    }
                    // what it lacks is no longer held here: the copy engine
                    // reads it again from the source, into this session
                    lock(&self.resumable).insert(format!("{repo}@{digest}"), (location, held));
                    let why = format!(
                        "after a break the registry holds {held} bytes of the upload: it goes on from byte {held}, \
                         the rest read again from the source"
                    );
                    let mut e = StoreError::new(&ctx, ErrorKind::Network(why.into()));
                    e.resume_at = Some(held);
                    return Err(e);
                }
                tracing::debug!("{failure}; the upload goes on from byte {held} (break {breaks} of {retries})");
                from = held;
            }
            at = end;
        }
        self.close_upload(repo, &ctx, location, digest).await?;
        Ok(Chunked::Done)
    }

    /// The rest of a blob, from `start`, in one `PATCH` whose body is the
    /// read itself (nothing held, nothing queued): after a break, where the
    /// registry stands is the error's `resume_at`, for the copy engine to
    /// send the rest into this session.
    #[allow(clippy::too_many_arguments)]
    async fn upload_streamed(
        &self,
        repo: &Repository,
        ctx: &str,
        mut location: Url,
        digest: &Digest,
        size: u64,
        start: u64,
        body: Body,
    ) -> Result<Chunked> {
        let (sent, body_sent) = tokio::sync::oneshot::channel();
        let patch = self
            .transport
            .uploading(&repo.registry)
            .request(Method::PATCH, location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_RANGE, format!("{start}-{}", size - 1))
            .header(CONTENT_LENGTH, size - start)
            .body(reqwest::Body::wrap_stream(announce_end(body, sent)));
        let scopes = push(repo);
        let failure = match self.transport.send_upload(repo, &scopes, ctx, patch, body_sent).await {
            Ok(resp) => match resp.status() {
                StatusCode::ACCEPTED => {
                    let next = self.location(repo, resp.headers(), ctx)?;
                    self.close_upload(repo, ctx, next, digest).await?;
                    return Ok(Chunked::Done);
                }
                StatusCode::NOT_FOUND => return Err(lost(ctx, "HTTP 404")),
                s if start == 0 && refuses_chunks(s) => {
                    let why = self.failure(resp, ctx, repo).await.kind.to_string();
                    let rest: Body = Box::pin(futures_util::stream::empty());
                    return Ok(Chunked::Refused { held: None, rest, why });
                }
                _ => self.write_failure(resp, ctx, repo).await,
            },
            Err(e) => e,
        };
        if failure.status() != Some(401) && !failure.is_retryable() {
            return Err(failure);
        }
        // where does the session stand? (asked after a wait, so that the
        // registry is done with the broken request)
        tokio::time::sleep(crate::backoff::backoff(0)).await;
        let held = self.upload_status(repo, ctx, &mut location).await?;
        if held > size {
            let why = format!("after a break the registry says it holds {held} bytes of a {size}-byte blob");
            return Err(lost(ctx, &why));
        }
        if held == size {
            // all of it arrived; only the answer was lost
            self.close_upload(repo, ctx, location, digest).await?;
            return Ok(Chunked::Done);
        }
        lock(&self.resumable).insert(format!("{repo}@{digest}"), (location, held));
        let why = format!(
            "{failure}; after the break the registry holds {held} bytes of the upload: it goes on from byte {held}, \
             the rest read again from the source"
        );
        let mut e = StoreError::new(ctx, ErrorKind::Network(why.into()));
        e.resume_at = Some(held);
        Err(e)
    }

    /// The closing `PUT` with the digest.
    async fn close_upload(&self, repo: &Repository, ctx: &str, location: Url, digest: &Digest) -> Result<()> {
        let put = closing_put(self.transport.uploading(&repo.registry), location, digest).header(CONTENT_LENGTH, 0);
        let resp = self.transport.send_upload(repo, &push(repo), ctx, put, ended()).await?;
        self.created(resp, ctx, repo).await
    }

    fn chunk_sizes(&self, repo: &Repository) -> Sizes {
        let ecr = self.transport.is_ecr(&repo.registry);
        chunk_sizes(
            self.chunking,
            ecr,
            lock(&self.drops_partial).contains(&repo.registry.host),
        )
    }

    /// Waits until the run's chunks in memory leave room for `len` bytes.
    async fn chunk_room(&self, len: u64) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let mib = len.div_ceil(MIB).min(defaults::CHUNK_MEMORY / MIB) as u32;
        self.chunk_memory.acquire_many(mib).await.ok()
    }

    /// Sends bytes `from`..`chunk.end` of the blob: those already held, then
    /// what the source brings, holding it too.
    async fn send_chunk(
        &self,
        repo: &Repository,
        ctx: &str,
        location: &Url,
        from: u64,
        chunk: &mut Chunk,
        source: &mut Source,
    ) -> Sent {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let (sent, body_sent) = tokio::sync::oneshot::channel();
        let body = reqwest::Body::wrap_stream(announce_end(received(rx), sent));
        let patch = self
            .transport
            .uploading(&repo.registry)
            .request(Method::PATCH, location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_RANGE, format!("{from}-{}", chunk.end - 1))
            .header(CONTENT_LENGTH, chunk.end - from)
            .body(body);
        let scopes = push(repo);
        let send = self.transport.send_upload(repo, &scopes, ctx, patch, body_sent);
        let held = chunk.held_from(from);
        let end = chunk.end;
        let feed = async {
            for bytes in held {
                if tx.send(Ok(bytes)).await.is_err() {
                    return Ok(());
                }
            }
            while chunk.pulled < chunk.end {
                let bytes = match source.next_upto(chunk.end - chunk.pulled).await {
                    Some(Ok(bytes)) => bytes,
                    Some(Err(e)) => {
                        // the request must fail, not end short
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string()))).await;
                        return Err(e);
                    }
                    None => {
                        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "the blob ended before its size");
                        let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string()))).await;
                        return Err(e);
                    }
                };
                chunk.push(bytes.clone());
                if tx.send(Ok(bytes)).await.is_err() {
                    return Ok(());
                }
            }
            Ok(())
        };
        tokio::pin!(send, feed);
        let mut fed = None;
        let answer = loop {
            tokio::select! {
                biased;
                f = &mut feed, if fed.is_none() => fed = Some(f),
                answer = &mut send => break answer,
            }
        };
        if let Some(Err(e)) = fed {
            let kind = ErrorKind::Network(crate::error::Cause::new(format!("reading the blob failed: {e}"), e));
            return Sent::Source(StoreError::new(ctx, kind));
        }
        let resp = match answer {
            Ok(resp) => resp,
            Err(e) => return Sent::Failed(e),
        };
        match resp.status() {
            StatusCode::ACCEPTED => {
                let held = header(resp.headers(), "range").as_deref().and_then(upload_held);
                if let Some(held) = held.filter(|h| *h != end) {
                    let why = format!("after bytes {from}-{} the registry says it holds {held} bytes", end - 1);
                    return Sent::Failed(StoreError::new(ctx, ErrorKind::Network(why.into())));
                }
                match self.location(repo, resp.headers(), ctx) {
                    Ok(next) => Sent::Accepted(next),
                    Err(e) => Sent::Failed(e),
                }
            }
            StatusCode::NOT_FOUND => Sent::Lost(lost(ctx, "HTTP 404")),
            s if refuses_chunks(s) => {
                let e = self.failure(resp, ctx, repo).await;
                Sent::Refused(e.kind.to_string())
            }
            _ => Sent::Failed(self.write_failure(resp, ctx, repo).await),
        }
    }

    /// How many bytes the upload session at `location` holds (`GET`: its
    /// `Range`), moving `location` to the one it gives. A session the
    /// registry no longer knows, or cannot say, is lost.
    async fn upload_status(&self, repo: &Repository, ctx: &str, location: &mut Url) -> Result<u64> {
        let status_ctx = format!("{ctx}: upload status");
        let url = location.clone();
        let build = || self.http(repo).get(url.clone());
        // a lost session is an answer, not a failure to retry here: the
        // copy engine starts the blob again in a new one
        let answer = self
            .transport
            .exchange(
                repo,
                &push(repo),
                &status_ctx,
                super::transport::Spend::Free,
                build,
                |resp| async {
                    match resp.status() {
                        StatusCode::NO_CONTENT | StatusCode::OK => {
                            let Some(held) = header(resp.headers(), "range").as_deref().and_then(upload_held) else {
                                return Ok(Err("no Range of the form 0-N in its status".to_string()));
                            };
                            let next = match resp.headers().contains_key(LOCATION) {
                                true => Some(self.location(repo, resp.headers(), ctx)?),
                                false => None,
                            };
                            Ok(Ok((held, next)))
                        }
                        // Distribution 2.8 cancels a session whose last request
                        // broke off (400 BLOB_UPLOAD_INVALID), others forget it
                        s if matches!(s.as_u16(), 400 | 404 | 416) => Ok(Err(format!("HTTP {s} to its status"))),
                        _ => Err(self.failure(resp, &status_ctx, repo).await),
                    }
                },
            )
            .await?;
        let (held, next) = answer.map_err(|why| lost(ctx, &why))?;
        if let Some(next) = next {
            *location = next;
        }
        Ok(held)
    }
}

/// The answers to a `PATCH` with `Content-Range` that say the registry
/// does not take chunks.
fn refuses_chunks(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 405 | 411 | 416 | 501)
}

/// A session the registry lost: the copy engine starts the blob again.
fn lost(ctx: &str, why: &str) -> StoreError {
    let why = format!("the registry lost the upload session ({why}): the blob starts again in a new one");
    StoreError::new(ctx, ErrorKind::Network(why.into()))
}

fn closing_put(client: &reqwest::Client, mut location: Url, digest: &Digest) -> reqwest::RequestBuilder {
    location.query_pairs_mut().append_pair("digest", digest.as_str());
    client.put(location).header(CONTENT_TYPE, "application/octet-stream")
}

enum Chunked {
    Done,
    /// The registry refused the first chunk: what was read of the blob so
    /// far (if all of it is still held), the rest of it, and the registry's
    /// words.
    Refused {
        held: Option<Vec<Bytes>>,
        rest: Body,
        why: String,
    },
}

enum Sent {
    /// The next chunk goes to this location.
    Accepted(Url),
    /// The blob's own stream failed (the engine knows why): no going on.
    Source(StoreError),
    /// The registry no longer knows the session.
    Lost(StoreError),
    /// The registry does not take chunks (the first one tells).
    Refused(String),
    Failed(StoreError),
}

/// The chunks of an upload: `--chunk-size`; chunks held whole where the
/// registry was seen dropping a broken chunk (`drops`; at least ECR's
/// minimum part there); else the whole blob at once.
fn chunk_sizes(chunking: Chunking, ecr: bool, drops: bool) -> Sizes {
    let min = if ecr {
        defaults::ECR_CHUNK_MIN
    } else {
        defaults::CHUNK_MIN
    };
    let held_whole = |n: u64| Sizes {
        chunk: Some(n.max(min)),
        held: n.max(min),
    };
    match chunking.fixed {
        Some(fixed) => held_whole(fixed),
        None if drops => held_whole(defaults::CHUNK_HELD),
        // nothing held: after a break the copy engine reads again what the
        // registry lacks (`resume_at`), from a checkpoint at most 1 MiB back
        None => Sizes { chunk: None, held: 0 },
    }
}

/// The chunks of one upload: how large (`None`: the rest of the blob), and
/// how many of the last bytes sent are held for sending again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sizes {
    chunk: Option<u64>,
    held: u64,
}

/// One chunk: bytes `start..end` of the blob, of which `start..pulled`
/// have been read from the source, and the last of those (`held_start..
/// pulled`, at most `keep` bytes and whole pieces) are held.
struct Chunk {
    start: u64,
    end: u64,
    held: std::collections::VecDeque<Bytes>,
    held_start: u64,
    pulled: u64,
    keep: u64,
}

impl Chunk {
    fn new(start: u64, end: u64, keep: u64) -> Chunk {
        Chunk {
            start,
            end,
            held: Default::default(),
            held_start: start,
            pulled: start,
            keep,
        }
    }

    /// Holds the next bytes read, letting go of the oldest beyond `keep`.
    fn push(&mut self, bytes: Bytes) {
        self.pulled += bytes.len() as u64;
        self.held.push_back(bytes);
        while let Some(oldest) = self.held.front() {
            let len = oldest.len() as u64;
            if self.pulled - self.held_start - len < self.keep {
                break;
            }
            self.held_start += len;
            self.held.pop_front();
        }
    }

    /// The held bytes from blob offset `from` on (`from` within them).
    fn held_from(&self, from: u64) -> Vec<Bytes> {
        let mut skip = from.saturating_sub(self.held_start);
        let mut out = Vec::new();
        for bytes in &self.held {
            let len = bytes.len() as u64;
            if skip >= len {
                skip -= len;
                continue;
            }
            out.push(bytes.slice(skip as usize..));
            skip = 0;
        }
        out
    }
}

/// The blob's stream, read in pieces that end where a chunk ends.
struct Source {
    body: Body,
    carry: Option<Bytes>,
}

impl Source {
    async fn next_upto(&mut self, max: u64) -> Option<io::Result<Bytes>> {
        let mut bytes = match self.carry.take() {
            Some(b) => b,
            None => match self.body.next().await? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            },
        };
        if bytes.len() as u64 > max {
            self.carry = Some(bytes.split_off(max as usize));
        }
        Some(Ok(bytes))
    }

    fn rest(self) -> Body {
        let carried = futures_util::stream::iter(self.carry.map(Ok));
        Box::pin(carried.chain(self.body))
    }
}

/// A channel's receiving end as a stream.
fn received(
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// Passes a body through and says when it has all been read.
fn announce_end(
    body: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    sent: tokio::sync::oneshot::Sender<()>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let body = Box::pin(body);
    futures_util::stream::unfold((body, Some(sent)), |(mut body, mut sent)| async move {
        match body.next().await {
            Some(item) => Some((item, (body, sent))),
            None => {
                if let Some(s) = sent.take() {
                    let _ = s.send(());
                }
                None
            }
        }
    })
}

/// A body that has already ended (an empty closing PUT).
fn ended() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(());
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_bytes_sent_are_held_to_go_on_from() {
        let mut chunk = Chunk::new(100, 120, 6);
        chunk.push(Bytes::from_static(b"abc"));
        chunk.push(Bytes::from_static(b"defg"));
        let from = |c: &Chunk, at| c.held_from(at).concat();
        assert_eq!(from(&chunk, 100), b"abcdefg", "under the limit: all held");
        assert_eq!(from(&chunk, 102), b"cdefg");
        assert_eq!(from(&chunk, 106), b"g");
        assert_eq!(from(&chunk, 107), b"");
        // past the limit, whole pieces go, oldest first
        chunk.push(Bytes::from_static(b"hi"));
        assert_eq!((chunk.held_start, chunk.pulled), (103, 109));
        assert_eq!(from(&chunk, 103), b"defghi");
        assert_eq!(from(&chunk, 105), b"fghi");
        // one piece larger than the limit is still held
        chunk.push(Bytes::from_static(b"0123456789"));
        assert_eq!((chunk.held_start, chunk.pulled), (109, 119));
    }

    #[tokio::test]
    async fn the_source_is_cut_where_chunks_end() {
        let parts = vec![Ok(Bytes::from_static(b"0123456789")), Ok(Bytes::from_static(b"ab"))];
        let mut source = Source {
            body: Box::pin(futures_util::stream::iter(parts)),
            carry: None,
        };
        assert_eq!(&source.next_upto(4).await.unwrap().unwrap()[..], b"0123");
        assert_eq!(&source.next_upto(4).await.unwrap().unwrap()[..], b"4567");
        let rest: Vec<Bytes> = source.rest().map(|b| b.unwrap()).collect().await;
        assert_eq!(rest.concat(), b"89ab");
    }

    #[test]
    fn chunks_are_the_whole_blob_unless_set_or_the_registry_drops_broken_ones() {
        let whole = Sizes { chunk: None, held: 0 };
        let held_whole = |n| Sizes {
            chunk: Some(n),
            held: n,
        };
        let sizes = |fixed, ecr, drops| chunk_sizes(Chunking { fixed }, ecr, drops);
        assert_eq!(sizes(None, false, false), whole);
        assert_eq!(sizes(None, false, true), held_whole(defaults::CHUNK_HELD));
        assert_eq!(sizes(Some(2 * MIB), false, false), held_whole(2 * MIB));
        assert_eq!(
            sizes(Some(2 * MIB), true, true),
            held_whole(defaults::ECR_CHUNK_MIN),
            "ECR takes no part under 5 MiB"
        );
    }
}
