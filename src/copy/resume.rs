//! Reading a blob across broken connections: after a break the rest is
//! asked for (`Store::get_blob` from the offset reached: a `Range` request),
//! and its bytes continue the same stream, so the running digest above it
//! sees every byte once. A store that sends the whole blob again instead
//! has what was already read skipped.
//!
//! The stream owns what it needs, so that it goes straight into the
//! destination's upload (no queue, no second task per chunk); only at a
//! break does it ask the copy engine's task, which holds the source store,
//! for a new body ([`Reopen`]).

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};

use super::verify::{MinRate, TooSlow, rate_guarded};
use crate::error::{Cause, ErrorKind};
use crate::lock;
use crate::model::Digest;
use crate::store::{Blob, BlobBody, Store};

/// A request for the blob from an offset, and where to send the answer.
pub(super) type ReopenRequest = (u64, tokio::sync::oneshot::Sender<crate::store::Result<Blob>>);
/// How a read asks for the rest of its blob after a break.
pub(super) type Reopen = tokio::sync::mpsc::Sender<ReopenRequest>;

/// Answers a read's requests for the rest of its blob (in the task that
/// holds the source store), until the read is gone.
pub(super) async fn serve_reopens(
    src: &dyn Store,
    digest: &Digest,
    size: Option<u64>,
    mut requests: tokio::sync::mpsc::Receiver<ReopenRequest>,
) {
    while let Some((at, reply)) = requests.recv().await {
        let _ = reply.send(src.get_blob(digest, at, size).await);
    }
}

/// Where a read stands, and how it goes on after a break.
pub(super) struct Reading {
    /// For messages: the source store's name.
    pub src: String,
    pub digest: Digest,
    pub reopen: Reopen,
    /// The blob's byte the read starts at.
    pub start: u64,
    /// The blob's size, when known: a body that ends before it broke.
    pub size: Option<u64>,
    pub min_rate: Option<MinRate>,
    /// Breaks in a row without progress before the read gives up.
    pub breaks_allowed: u32,
    /// Why it gave up, for the copy engine to report.
    pub failure: Arc<Mutex<Option<ErrorKind>>>,
}

struct State {
    reading: Reading,
    body: BlobBody,
    /// Bytes passed on so far: where a resumed read starts.
    at: u64,
    /// Bytes of the current body to drop (a whole blob sent again).
    skip: u64,
    /// Breaks in a row, and bytes passed on since the last one.
    breaks: u32,
    since_break: u64,
    done: bool,
}

/// The blob's bytes in order from `reading.start` (`first` starts there
/// or before it), resuming after each break; fails (with the cause
/// recorded) once the breaks in a row exceed what is allowed, or a resume
/// is refused.
pub(super) fn resuming(reading: Reading, first: Blob) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let body = guarded(first.body, reading.min_rate);
    let state = State {
        at: reading.start,
        skip: reading.start.saturating_sub(first.start),
        reading,
        body,
        breaks: 0,
        since_break: 0,
        done: false,
    };
    stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            let why = match st.body.next().await {
                Some(Ok(mut chunk)) => {
                    if st.skip > 0 {
                        let n = st.skip.min(chunk.len() as u64);
                        st.skip -= n;
                        chunk = chunk.slice(n as usize..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    st.at += chunk.len() as u64;
                    st.since_break += chunk.len() as u64;
                    return Some((Ok(chunk), st));
                }
                None if st.reading.size.is_none_or(|size| st.at >= size) => return None,
                None => io::Error::new(io::ErrorKind::UnexpectedEof, "the body ended early"),
                Some(Err(e)) => e,
            };
            match st.resume(why).await {
                Ok(()) => {}
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
            }
        }
    })
}

impl State {
    /// After a break: waits, then asks for the rest. An error when the
    /// read gives up, with its cause recorded.
    async fn resume(&mut self, why: io::Error) -> io::Result<()> {
        if self.since_break >= crate::defaults::RESUME_PROGRESS {
            self.breaks = 0;
        }
        self.breaks += 1;
        self.since_break = 0;
        let r = &self.reading;
        if self.breaks > r.breaks_allowed {
            let kind = match why.get_ref().and_then(|e| e.downcast_ref::<TooSlow>()) {
                Some(slow) => ErrorKind::Network(slow.0.clone().into()),
                None => ErrorKind::Network(Cause::new(format!("reading the blob failed: {why}"), why)),
            };
            return Err(self.give_up(kind));
        }
        tracing::debug!(
            "{}: blob {}: {why}; resuming from byte {} (break {} of {})",
            r.src,
            r.digest,
            self.at,
            self.breaks,
            r.breaks_allowed
        );
        tokio::time::sleep(crate::backoff::backoff(self.breaks - 1)).await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let asked = r.reopen.send((self.at, reply)).await.is_ok();
        let blob = match answer.await {
            Ok(Ok(blob)) if asked => blob,
            Ok(Err(e)) => return Err(self.give_up(e.kind)),
            _ => return Err(self.give_up(ErrorKind::Network("the transfer ended".into()))),
        };
        let consistent = blob.start <= self.at
            && match (blob.len, r.size) {
                (Some(len), Some(size)) => blob.start.checked_add(len) == Some(size),
                _ => true,
            };
        if !consistent {
            let why = format!(
                "asked for the rest from byte {}, got {} bytes from byte {}",
                self.at,
                blob.len.map_or("?".to_string(), |l| l.to_string()),
                blob.start
            );
            return Err(self.give_up(ErrorKind::Protocol(why.into())));
        }
        self.skip = self.at - blob.start;
        self.body = guarded(blob.body, r.min_rate);
        Ok(())
    }

    fn give_up(&mut self, kind: ErrorKind) -> io::Error {
        let e = io::Error::other(kind.to_string());
        *lock(&self.reading.failure) = Some(kind);
        e
    }
}

fn guarded(body: BlobBody, min_rate: Option<MinRate>) -> BlobBody {
    match min_rate {
        Some(min) => rate_guarded(body, min),
        None => body,
    }
}
