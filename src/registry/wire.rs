//! Small pieces of HTTP shared by the client: reading bodies within limits,
//! headers (`Link`, `Retry-After`, rate limits), error construction, the
//! backoff schedule, and the rules for where credentials may go.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Response;
use reqwest::header::{HeaderMap, LINK, RETRY_AFTER};
use url::Url;

use crate::error::{ErrorKind, StoreError};
use crate::reference::Registry;

type Result<T> = std::result::Result<T, StoreError>;

/// The wait before attempt `attempt + 1`: exponential from 250 ms, capped at
/// 15 s, with jitter so that parallel copies do not retry in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(15));
    base.mul_f64(rand::random_range(0.5..1.0))
}

/// A registry's `Retry-After` (seconds; dates are not worth a clock skew),
/// capped so that one throttle cannot stall a run for long.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

/// Docker Hub's `ratelimit-remaining: 76;w=21600`: pulls left and the
/// window they are counted over.
pub(super) fn rate_limit(headers: &HeaderMap) -> Option<(u64, Duration)> {
    let value = headers.get("ratelimit-remaining")?.to_str().ok()?;
    let mut parts = value.split(';');
    let remaining = parts.next()?.trim().parse().ok()?;
    let window = parts
        .find_map(|p| p.trim().strip_prefix("w="))
        .and_then(|w| w.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(21600));
    Some((remaining, window))
}

/// Tags end up in URLs: only the Distribution tag grammar is accepted.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(super) fn basic(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

pub(super) fn same_authority(url: &Url, registry: &Registry) -> bool {
    let Some(host) = url.host_str() else { return false };
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    authority.eq_ignore_ascii_case(&registry.host)
}

pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

pub(super) fn network(ctx: &str, e: reqwest::Error) -> StoreError {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    // certificate problems do not go away by themselves: no retries
    if msg.contains("certificate") {
        return StoreError::new(ctx, ErrorKind::Tls(msg));
    }
    StoreError::new(ctx, ErrorKind::Network(msg))
}

pub(super) fn protocol(ctx: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::new(ctx, ErrorKind::Protocol(e.to_string()))
}

/// Reads a body of at most `max` bytes.
pub(super) async fn read_limited(mut resp: Response, max: usize, ctx: &str) -> Result<Vec<u8>> {
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(protocol(ctx, format!("response body larger than {max} bytes")));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| network(ctx, e))? {
        if buf.len() + chunk.len() > max {
            return Err(protocol(ctx, format!("response body larger than {max} bytes")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The `rel="next"` target of a `Link` header, resolved against `current`.
pub(super) fn next_link(headers: &HeaderMap, current: &str) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    for part in link.split(',') {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        if is_next {
            return Url::parse(current).ok()?.join(target).ok().map(String::from);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn link_header_pagination() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#),
        );
        assert_eq!(
            next_link(&h, "http://127.0.0.1:5000/v2/a/tags/list?n=2").as_deref(),
            Some("http://127.0.0.1:5000/v2/a/tags/list?last=x&n=2")
        );
        h.insert(
            LINK,
            HeaderValue::from_static(r#"<https://r.io/v2/a/tags/list?last=y>; rel="prev""#),
        );
        assert_eq!(next_link(&h, "https://r.io/v2/a/tags/list"), None);
        h.insert(LINK, HeaderValue::from_static("garbage"));
        assert_eq!(next_link(&h, "https://r.io/v2/a/tags/list"), None);
    }

    proptest::proptest! {
        #[test]
        fn link_parsing_never_panics(link in "\\PC{0,120}", base in "(http|https)://[a-z0-9.:]{1,20}/v2/[a-z/]{0,20}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&link) {
                h.insert(LINK, v);
            }
            if let Some(next) = next_link(&h, &base) {
                proptest::prop_assert!(Url::parse(&next).is_ok());
            }
        }
    }

    #[test]
    fn docker_hub_rate_limit_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_limit(&h), None);
        h.insert("ratelimit-remaining", HeaderValue::from_static("76;w=21600"));
        assert_eq!(rate_limit(&h), Some((76, Duration::from_secs(21600))));
        h.insert("ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(rate_limit(&h), Some((0, Duration::from_secs(21600))));
        h.insert("ratelimit-remaining", HeaderValue::from_static("lots"));
        assert_eq!(rate_limit(&h), None);
    }

    #[test]
    fn tag_grammar() {
        assert!(is_valid_tag("1.2.3-alpine"));
        assert!(is_valid_tag("latest"));
        assert!(is_valid_tag("_x"));
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-x",
            &"a".repeat(129),
            "a b",
            "sha256:abc",
        ] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn credentials_only_go_to_the_registry_host() {
        let r = Registry::new("127.0.0.1:5000");
        assert!(same_authority(&Url::parse("http://127.0.0.1:5000/v2/x").unwrap(), &r));
        assert!(!same_authority(&Url::parse("http://127.0.0.1:5001/v2/x").unwrap(), &r));
        assert!(!same_authority(
            &Url::parse("https://storage.example.com/blob").unwrap(),
            &Registry::new("r.io")
        ));
        assert!(same_authority(
            &Url::parse("https://r.io/v2/").unwrap(),
            &Registry::new("r.io")
        ));
    }
}
