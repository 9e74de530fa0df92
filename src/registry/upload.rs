//! Uploading a blob: most in one streamed request, large ones in chunks
//! that survive a broken connection.
//!
//! A chunked upload sends `PATCH` requests with `Content-Range`, in order,
//! then the closing `PUT` with the digest. The chunk being sent is held in
//! memory (within [`defaults::CHUNK_MEMORY`] over the whole run), so after a
//! failure the session's status (`GET` on its location: the `Range` it
//! holds) says where to go on, and only the rest is sent. A session the
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

/// A break after this much progress since the previous one starts the
/// count of breaks in a row again: a long upload over a link that breaks
/// now and then goes on, one that makes no headway stops after `--retries`.
const PROGRESS: u64 = 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// How large a run's chunks are.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunking {
    /// `--chunk-size`: every chunk this size; else they adapt.
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
        match self.upload_in_chunks(repo, location, digest, size, Box::pin(body)).await? {
            Chunked::Done => Ok(()),
            Chunked::Refused { held, rest, why } => {
                lock(&self.no_chunks).insert(repo.registry.host.clone());
                tracing::warn!(
                    "{repo}: upload blob {digest}: the registry refused a chunked upload ({why}); \
                     blobs go to {} in one stream for the rest of the run",
                    repo.registry
                );
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
                let put = closing_put(uploading, location, digest).header(CONTENT_LENGTH, len).body(body);
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

    async fn upload_in_chunks(
        &self,
        repo: &Repository,
        mut location: Url,
        digest: &Digest,
        size: u64,
        body: Body,
    ) -> Result<Chunked> {
        let ctx = format!("{repo}: upload blob {digest} in chunks");
        let mut source = Source { body, carry: None };
        let mut chunk_size = ChunkSize::new(self.chunking, self.transport.is_ecr(&repo.registry));
        let retries = self.transport.retries();
        // bytes the registry holds; where the last break happened; breaks
        // in a row without progress
        let (mut at, mut broke_at, mut breaks) = (0u64, 0u64, 0u32);
        while at < size {
            let end = at.saturating_add(chunk_size.now).min(size);
            let _room = self.chunk_room(end - at).await;
            let mut chunk = Chunk {
                start: at,
                end,
                held: Vec::new(),
                pulled: at,
            };
            let mut from = at;
            loop {
                let failure = match self.send_chunk(repo, &ctx, &location, from, &mut chunk, &mut source).await {
                    Sent::Accepted(next) => {
                        location = next;
                        break;
                    }
                    Sent::Source(e) => return Err(e),
                    Sent::Refused(why) if at == 0 && from == 0 => {
                        return Ok(Chunked::Refused {
                            held: chunk.held,
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
                // where does the session stand?
                let held = self.upload_status(repo, &ctx, &mut location).await?;
                if held >= broke_at.saturating_add(PROGRESS) {
                    breaks = 0;
                }
                breaks += 1;
                broke_at = held;
                if breaks > retries {
                    return Err(failure);
                }
                if held < chunk.start || held > chunk.pulled {
                    let why = format!(
                        "after a break the registry holds {held} bytes of the upload, where bytes {}-{} were at hand to go on from: \
                         the blob starts again in a new session",
                        chunk.start, chunk.pulled
                    );
                    return Err(StoreError::new(&ctx, ErrorKind::Network(why.into())));
                }
                tracing::debug!("{failure}; the upload goes on from byte {held} (break {breaks} of {retries})");
                chunk_size.shrink();
                from = held;
                tokio::time::sleep(crate::backoff::backoff(breaks - 1)).await;
            }
            at = end;
            chunk_size.grow();
        }
        let put = closing_put(self.transport.uploading(&repo.registry), location, digest).header(CONTENT_LENGTH, 0);
        let resp = self.transport.send_upload(repo, &push(repo), &ctx, put, ended()).await?;
        self.created(resp, &ctx, repo).await?;
        Ok(Chunked::Done)
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
                chunk.pulled += bytes.len() as u64;
                chunk.held.push(bytes.clone());
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
                if let Some(held) = held.filter(|h| *h != chunk.end) {
                    let why = format!(
                        "after bytes {from}-{} the registry says it holds {held} bytes",
                        chunk.end - 1
                    );
                    return Sent::Failed(StoreError::new(ctx, ErrorKind::Network(why.into())));
                }
                match self.location(repo, resp.headers(), ctx) {
                    Ok(next) => Sent::Accepted(next),
                    Err(e) => Sent::Failed(e),
                }
            }
            StatusCode::NOT_FOUND => Sent::Failed(lost(ctx, "HTTP 404")),
            s if matches!(s.as_u16(), 400 | 405 | 411 | 416 | 501) => {
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
            .exchange(repo, &push(repo), &status_ctx, super::transport::Spend::Free, build, |resp| async {
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
            })
            .await?;
        let (held, next) = answer.map_err(|why| lost(ctx, &why))?;
        if let Some(next) = next {
            *location = next;
        }
        Ok(held)
    }
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
    /// far, the rest of it, and the registry's words.
    Refused { held: Vec<Bytes>, rest: Body, why: String },
}

enum Sent {
    /// The next chunk goes to this location.
    Accepted(Url),
    /// The blob's own stream failed (the engine knows why): no going on.
    Source(StoreError),
    /// The registry does not take chunks (the first one tells).
    Refused(String),
    Failed(StoreError),
}

/// One chunk: bytes `start..end` of the blob, of which `start..pulled`
/// have been read from the source and are held.
struct Chunk {
    start: u64,
    end: u64,
    held: Vec<Bytes>,
    pulled: u64,
}

impl Chunk {
    /// The held bytes from blob offset `from` on.
    fn held_from(&self, from: u64) -> Vec<Bytes> {
        let mut skip = from.saturating_sub(self.start);
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

/// The size of the next chunk: fixed, or adapting (doubling after each
/// accepted chunk, halving after a break, within the minimum the registry
/// takes and [`defaults::CHUNK_MAX`]).
struct ChunkSize {
    now: u64,
    fixed: bool,
    min: u64,
}

impl ChunkSize {
    fn new(chunking: Chunking, ecr: bool) -> ChunkSize {
        let min = if ecr { defaults::ECR_CHUNK_MIN } else { defaults::CHUNK_MIN };
        let now = chunking.fixed.unwrap_or(defaults::CHUNK_FIRST).max(min);
        ChunkSize {
            now,
            fixed: chunking.fixed.is_some(),
            min,
        }
    }

    fn grow(&mut self) {
        if !self.fixed {
            self.now = (self.now * 2).min(defaults::CHUNK_MAX);
        }
    }

    fn shrink(&mut self) {
        if !self.fixed {
            self.now = (self.now / 2).max(self.min);
        }
    }
}

/// A channel's receiving end as a stream.
fn received(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
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
    fn held_bytes_are_resent_from_any_offset_inside_the_chunk() {
        let chunk = Chunk {
            start: 100,
            end: 110,
            held: vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")],
            pulled: 107,
        };
        let from = |at| chunk.held_from(at).concat();
        assert_eq!(from(100), b"abcdefg");
        assert_eq!(from(102), b"cdefg");
        assert_eq!(from(103), b"defg");
        assert_eq!(from(106), b"g");
        assert_eq!(from(107), b"");
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
    fn chunks_adapt_within_their_bounds_unless_fixed() {
        let mut size = ChunkSize::new(Chunking { fixed: None }, false);
        assert_eq!(size.now, defaults::CHUNK_FIRST);
        for _ in 0..10 {
            size.grow();
        }
        assert_eq!(size.now, defaults::CHUNK_MAX);
        for _ in 0..20 {
            size.shrink();
        }
        assert_eq!(size.now, defaults::CHUNK_MIN);
        let mut ecr = ChunkSize::new(Chunking { fixed: Some(MIB) }, true);
        assert_eq!(ecr.now, defaults::ECR_CHUNK_MIN, "ECR takes no part under 5 MiB");
        ecr.shrink();
        ecr.grow();
        assert_eq!(ecr.now, defaults::ECR_CHUNK_MIN);
    }
}
