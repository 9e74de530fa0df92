//! Verifying a blob while it streams.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{StreamExt, stream};

use crate::error::ErrorKind;
use crate::model::Digest;
use crate::store::BlobBody;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Passes a blob's bytes through while hashing them. The last chunk is only
/// released once the whole content matched its digest (and declared size),
/// so a corrupt blob never completes an upload: the body fails instead, and
/// `failure` records why.
pub fn verified(
    inner: BlobBody,
    digest: Digest,
    size: Option<u64>,
    failure: Arc<Mutex<Option<ErrorKind>>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    struct State<S> {
        inner: S,
        verifier: Option<crate::model::digest::Verifier>,
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
                ErrorKind::Protocol(format!("blob is {len} bytes, expected {expected}")),
            ));
        }
        v.finish().map_err(|actual| {
            fail(
                st,
                ErrorKind::DigestMismatch {
                    expected: st.digest.to_string(),
                    actual,
                },
            )
        })
    }
    let st = State {
        inner,
        verifier: Some(digest.verifier()),
        digest,
        size,
        failure,
    };
    stream::unfold((st, false), |(mut st, done)| async move {
        if done {
            return None;
        }
        match st.inner.next().await {
            Some(Ok(chunk)) => {
                let Some(v) = st.verifier.as_mut() else {
                    // bytes after the content was complete
                    let e = fail(&mut st, ErrorKind::Protocol("blob is longer than declared".into()));
                    return Some((Err(e), (st, true)));
                };
                v.update(&chunk);
                let len = v.len();
                match st.size {
                    Some(expected) if len > expected => {
                        let e = fail(
                            &mut st,
                            ErrorKind::Protocol(format!("blob is longer than its {expected} bytes")),
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
                let e = fail(&mut st, ErrorKind::Network(format!("reading the blob failed: {e}")));
                Some((Err(e), (st, true)))
            }
            None => match check(&mut st) {
                Ok(()) => None,
                Err(e) => Some((Err(e), (st, true))),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    async fn run(
        chunks: Vec<&'static [u8]>,
        digest: Digest,
        size: Option<u64>,
    ) -> (Result<Vec<u8>, String>, Option<String>) {
        let failure = Arc::new(Mutex::new(None));
        let inner: BlobBody = Box::pin(stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))));
        let out: Result<Vec<Bytes>, _> = verified(inner, digest, size, failure.clone()).try_collect().await;
        let out = out.map(|v| v.concat()).map_err(|e| e.to_string());
        let recorded = lock(&failure).as_ref().map(|k| k.to_string());
        (out, recorded)
    }

    #[tokio::test]
    async fn passes_matching_content() {
        let d = Digest::sha256_of(b"hello world");
        let (out, f) = run(vec![b"hello ", b"world"], d.clone(), Some(11)).await;
        assert_eq!(out.unwrap(), b"hello world");
        assert!(f.is_none());
        let (out, _) = run(vec![b"hello ", b"world"], d, None).await;
        assert_eq!(out.unwrap(), b"hello world");
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
