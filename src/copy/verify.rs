//! Verifying a blob while it streams.

use crate::lock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, stream};

use crate::error::ErrorKind;
use crate::model::Digest;
use crate::model::digest::Verifier;
use crate::store::BlobBody;

/// Where a blob's running digest stood at each multiple of [`CHECKPOINT`]
/// bytes: a read that must start again part-way (the rest of an upload)
/// goes on from the last one before it, hashing each byte once. 1 MiB
/// apart: a break costs at most that much read again besides what was in
/// flight, and a 2 GiB blob keeps 2,048 of them (about 250 KiB).
pub type Checkpoints = Arc<Mutex<Vec<(u64, Verifier)>>>;
pub const CHECKPOINT: u64 = 1024 * 1024;

/// Passes a blob's bytes through while hashing them, going on from
/// `verifier` (the digest of the blob's bytes before `inner`'s: a fresh one
/// for a read from byte 0), recording [`Checkpoints`] when given them. The
/// last chunk is only released once the whole content matched its digest
/// (and declared size), so a corrupt blob never completes an upload: the
/// body fails instead, and `failure` records why.
pub fn verified_from<'a>(
    inner: impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'a,
    verifier: Verifier,
    digest: Digest,
    size: Option<u64>,
    failure: Arc<Mutex<Option<ErrorKind>>>,
    checkpoints: Option<Checkpoints>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'a {
    struct State<S> {
        checkpoints: Option<Checkpoints>,
        inner: S,
        verifier: Option<Verifier>,
        digest: Digest,
        size: Option<u64>,
        failure: Arc<Mutex<Option<ErrorKind>>>,
    }
    fn fail<S>(st: &mut State<S>, kind: ErrorKind) -> std::io::Error {
        let msg = kind.to_string();
        *lock(&st.failure) = Some(kind);
        st.verifier = None;
        std::io::Error::other(msg)
    }
    fn check<S>(st: &mut State<S>) -> Result<(), std::io::Error> {
        let Some(v) = st.verifier.take() else { return Ok(()) };
        let len = v.len();
        if let Some(expected) = st.size.filter(|s| *s != len) {
            return Err(fail(
                st,
                ErrorKind::Protocol(format!("blob is {len} bytes, expected {expected}").into()),
            ));
        }
        v.finish().map_err(|actual| {
            fail(
                st,
                ErrorKind::DigestMismatch {
                    expected: st.digest.to_string(),
                    actual: actual.to_string(),
                },
            )
        })
    }
    let st = State {
        checkpoints,
        inner: Box::pin(inner),
        verifier: Some(verifier),
        digest,
        size,
        failure,
    };
    stream::unfold((st, false), |(mut st, done)| async move {
        if done {
            return None;
        }
        match st.inner.next().await {
            // an empty chunk carries nothing (HTTP/2 ends a body with an
            // empty DATA frame, after the content is complete)
            Some(Ok(chunk)) if chunk.is_empty() => Some((Ok(chunk), (st, false))),
            Some(Ok(chunk)) => {
                let Some(v) = st.verifier.as_mut() else {
                    // bytes after the content was complete
                    let e = fail(&mut st, ErrorKind::Protocol("blob is longer than declared".into()));
                    return Some((Err(e), (st, true)));
                };
                match &st.checkpoints {
                    Some(marks) => update_marking(v, &chunk, marks),
                    None => v.update(&chunk),
                }
                let len = v.len();
                match st.size {
                    Some(expected) if len > expected => {
                        let e = fail(
                            &mut st,
                            ErrorKind::Protocol(format!("blob is longer than its {expected} bytes").into()),
                        );
                        Some((Err(e), (st, true)))
                    }
                    Some(expected) if len == expected => match check(&mut st) {
                        Ok(()) => Some((Ok(chunk), (st, false))),
                        Err(e) => Some((Err(e), (st, true))),
                    },
                    _ => Some((Ok(chunk), (st, false))),
                }
            }
            Some(Err(e)) => {
                // the reader below recorded why it gave up
                st.verifier = None;
                Some((Err(e), (st, true)))
            }
            None => match check(&mut st) {
                Ok(()) => None,
                Err(e) => Some((Err(e), (st, true))),
            },
        }
    })
}

/// Hashes `chunk`, recording the state at each multiple of [`CHECKPOINT`].
fn update_marking(v: &mut Verifier, mut chunk: &[u8], marks: &Checkpoints) {
    while !chunk.is_empty() {
        let to_mark = CHECKPOINT - v.len() % CHECKPOINT;
        let n = (to_mark as usize).min(chunk.len());
        v.update(&chunk[..n]);
        chunk = &chunk[n..];
        if v.len().is_multiple_of(CHECKPOINT) {
            lock(marks).push((v.len(), v.clone()));
        }
    }
}

/// The slowest a blob may arrive: `bytes_per_second`, averaged over each
/// `window` (`--min-transfer-rate` over `--timeout`).
#[derive(Debug, Clone, Copy)]
pub struct MinRate {
    pub bytes_per_second: u64,
    pub window: Duration,
}

/// Why a body was cut for being too slow (inside the `io::Error` the
/// stream fails with), for the reader to tell when it gives up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TooSlow(pub String);

/// Passes a blob's bytes through, failing the stream with [`TooSlow`] when
/// fewer than the minimum rate's worth arrived in a window: a peer that
/// drips bytes (and so never trips the silence timeout) cannot hold a
/// transfer for days. Total silence is the HTTP client's read timeout's to
/// catch.
pub fn rate_guarded(inner: BlobBody, min: MinRate) -> BlobBody {
    let state = (inner, Instant::now(), 0u64, false);
    Box::pin(stream::unfold(
        state,
        move |(mut inner, mut start, mut bytes, done)| async move {
            if done {
                return None;
            }
            let item = inner.next().await?;
            if let Ok(chunk) = &item {
                bytes += chunk.len() as u64;
                let elapsed = start.elapsed();
                if elapsed >= min.window {
                    let needed = min.bytes_per_second.saturating_mul(elapsed.as_secs().max(1));
                    if bytes < needed {
                        let rate = bytes / elapsed.as_secs().max(1);
                        let why = format!(
                            "the blob arrived at {rate} B/s over {} s, below the minimum of {} B/s (--min-transfer-rate)",
                            elapsed.as_secs(),
                            min.bytes_per_second
                        );
                        return Some((Err(std::io::Error::other(TooSlow(why))), (inner, start, bytes, true)));
                    }
                    (start, bytes) = (Instant::now(), 0);
                }
            }
            Some((item, (inner, start, bytes, false)))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    async fn run(
        chunks: Vec<&'static [u8]>,
        digest: Digest,
        size: Option<u64>,
    ) -> (Result<Vec<u8>, std::io::Error>, Option<String>) {
        let failure = Arc::new(Mutex::new(None));
        let inner: BlobBody = Box::pin(stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))));
        let verifier = digest.verifier();
        let out: Result<Vec<Bytes>, _> = verified_from(inner, verifier, digest, size, failure.clone(), None)
            .try_collect()
            .await;
        let out = out.map(|v| v.concat());
        let recorded = lock(&failure).as_ref().map(|k| k.to_string());
        (out, recorded)
    }

    #[tokio::test]
    async fn a_dripping_body_is_cut_off_below_the_minimum_rate() {
        let drip = stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            (n < 100).then(|| (Ok(Bytes::from_static(b"x")), n + 1))
        });
        let min = MinRate {
            bytes_per_second: 1000,
            window: Duration::from_millis(200),
        };
        let out: Result<Vec<Bytes>, _> = rate_guarded(Box::pin(drip), min).try_collect().await;
        let why = out.unwrap_err();
        let slow = why.get_ref().and_then(|e| e.downcast_ref::<TooSlow>());
        assert!(
            slow.is_some_and(|s| s.0.contains("below the minimum of 1000 B/s")),
            "{why}"
        );

        let fast: BlobBody = Box::pin(stream::iter(vec![Ok(Bytes::from_static(b"plenty"))]));
        let out: Result<Vec<Bytes>, _> = rate_guarded(fast, min).try_collect().await;
        assert_eq!(out.unwrap().concat(), b"plenty");
    }

    #[tokio::test]
    async fn passes_matching_content() {
        let d = Digest::sha256_of(b"hello world");
        let (out, f) = run(vec![b"hello ", b"world"], d.clone(), Some(11)).await;
        assert_eq!(out.unwrap(), b"hello world");
        assert!(f.is_none());
        let (out, _) = run(vec![b"hello ", b"world"], d.clone(), None).await;
        assert_eq!(out.unwrap(), b"hello world");
        // HTTP/2 may end a body with an empty frame once it is complete
        let (out, f) = run(vec![b"", b"hello ", b"world", b""], d, Some(11)).await;
        assert_eq!(out.unwrap(), b"hello world");
        assert!(f.is_none());
    }

    #[tokio::test]
    async fn withholds_the_last_chunk_of_corrupt_content() {
        let d = Digest::sha256_of(b"hello world");
        let (out, f) = run(vec![b"hello ", b"wOrld"], d.clone(), Some(11)).await;
        assert!(out.is_err());
        assert!(f.unwrap().contains("does not match its digest"));
        let (out, f) = run(vec![b"hello ", b"wor"], d.clone(), Some(11)).await;
        assert!(out.is_err());
        assert!(f.unwrap().contains("expected 11"));
        let (out, _) = run(vec![b"hello ", b"world!!"], d.clone(), Some(11)).await;
        assert!(out.is_err());
        let (out, _) = run(vec![b"hello ", b"wOrld"], d, None).await;
        assert!(out.is_err());
    }
}
