//! Small pieces of HTTP shared by the transport and the operations: reading
//! bodies within limits, headers (`Link`, `Retry-After`, rate limits), what a
//! failed connection means, the backoff schedule, and the rule for where
//! credentials may go.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Response;
use reqwest::header::{HeaderMap, LINK, RETRY_AFTER};
use url::Url;

use crate::error::{Cause, ErrorKind, StoreError};
use crate::model::Registry;

type Result<T> = std::result::Result<T, StoreError>;

/// Error bodies are read only this far (they end up in one message line).
pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;

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
    // the window is the registry's number: at most a week
    let window = parts
        .find_map(|p| p.trim().strip_prefix("w="))
        .and_then(|w| w.trim().parse::<u64>().ok())
        .map(|w| Duration::from_secs(w.min(7 * 86_400)))
        .unwrap_or(Duration::from_secs(21600));
    Some((remaining, window))
}

pub(super) fn basic(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

/// Whether `url` has the registry's scheme, host and port: only then may it
/// carry our credentials (not to object storage, not over a downgraded
/// scheme).
pub(super) fn same_origin(url: &Url, origin: &Url) -> bool {
    url.scheme() == origin.scheme()
        && url.host_str().map(str::to_ascii_lowercase) == origin.host_str().map(str::to_ascii_lowercase)
        && url.port_or_known_default() == origin.port_or_known_default()
}

pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// What a failed request means, from the error's types (not its text):
/// a TLS connection answered in plain HTTP, a rejected certificate (neither
/// is worth retrying), or a network failure that may pass.
pub(super) fn classify(ctx: &str, registry: &Registry, e: reqwest::Error) -> StoreError {
    let mut message = e.to_string();
    let mut kind = None;
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        match find_rustls(s) {
            Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
                kind = Some(ErrorKind::PlainHttp {
                    registry: registry.host.clone(),
                });
            }
            Some(
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::InvalidCertRevocationList(_),
            ) => kind = kind.or(Some(ErrorKind::Tls(Cause::from("")))),
            _ => {}
        }
        source = s.source();
    }
    // TLS and plain-HTTP failures are configuration problems: their kinds
    // are not transient, so nothing retries them
    let kind = match kind {
        Some(ErrorKind::Tls(_)) => ErrorKind::Tls(Cause::new(message, e)),
        Some(k) => k,
        None => ErrorKind::Network(Cause::new(message, e)),
    };
    StoreError::new(ctx, kind)
}

/// A rustls error at this level, or wrapped in (nested) `io::Error`s, whose
/// `source()` skips the wrapped error itself.
fn find_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    find_rustls(inner)
}

pub(super) fn protocol(ctx: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::new(ctx, ErrorKind::Protocol(e.to_string().into()))
}

/// Reads a body of at most `max` bytes.
pub(super) async fn read_limited(mut resp: Response, max: usize, ctx: &str) -> Result<Vec<u8>> {
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(protocol(ctx, format!("response body larger than {max} bytes")));
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| StoreError::new(ctx, ErrorKind::Network(Cause::new(format!("reading the body: {e}"), e))))?
    {
        if buf.len() + chunk.len() > max {
            return Err(protocol(ctx, format!("response body larger than {max} bytes")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The bounds of one paged listing (a tag list, a referrers list): pages,
/// bytes, items and time in all; a `Link` that leads back to a page already
/// read; an empty page that points to another. Each page is bounded by
/// the response deadline; these bound the whole.
#[derive(Debug)]
pub(super) struct Pages {
    limits: PageLimits,
    what: &'static str,
    seen: std::collections::HashSet<String>,
    pages: usize,
    bytes: usize,
    items: usize,
    started: std::time::Instant,
}

/// What one listing may take in all.
#[derive(Debug, Clone, Copy)]
pub(super) struct PageLimits {
    pub pages: usize,
    pub bytes: usize,
    pub items: usize,
    pub time: Duration,
}

/// Why a listing was stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PageRefusal {
    #[error("its Link leads back to a page already read ({0}): refused")]
    Loop(String),
    #[error("it goes on past {0} pages: refused")]
    TooManyPages(usize),
    #[error("it is still going after {secs} s ({pages} pages): refused")]
    TooLong { secs: u64, pages: usize },
    #[error("it goes on past {items} entries or {kib} KiB ({pages} pages): refused")]
    TooMuch { items: usize, kib: usize, pages: usize },
    #[error("page {0} is empty yet links to another: refused")]
    EmptyLinksOn(usize),
}

/// A listing stopped: which listing, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub(super) struct PageError {
    what: &'static str,
    #[source]
    why: PageRefusal,
}

impl Pages {
    /// `what`: the listing, for messages ("the tag list").
    pub(super) fn new(limits: PageLimits, what: &'static str) -> Pages {
        Pages {
            limits,
            what,
            seen: Default::default(),
            pages: 0,
            bytes: 0,
            items: 0,
            started: std::time::Instant::now(),
        }
    }

    /// Pages asked for so far.
    pub(super) fn count(&self) -> usize {
        self.pages
    }

    fn refuse(&self, why: PageRefusal) -> std::result::Result<(), PageError> {
        Err(PageError { what: self.what, why })
    }

    /// Before asking for the page at `url`.
    pub(super) fn ask(&mut self, url: &str) -> std::result::Result<(), PageError> {
        if !self.seen.insert(url.to_string()) {
            return self.refuse(PageRefusal::Loop(crate::error::printable(url, 200)));
        }
        self.pages += 1;
        let limits = self.limits;
        if self.pages > limits.pages {
            return self.refuse(PageRefusal::TooManyPages(limits.pages));
        }
        let elapsed = self.started.elapsed();
        if elapsed > limits.time {
            let (secs, pages) = (elapsed.as_secs(), self.pages - 1);
            return self.refuse(PageRefusal::TooLong { secs, pages });
        }
        Ok(())
    }

    /// After reading a page of `bytes` holding `items`; `more`: it links
    /// to a next page.
    pub(super) fn read(&mut self, bytes: usize, items: usize, more: bool) -> std::result::Result<(), PageError> {
        self.bytes = self.bytes.saturating_add(bytes);
        self.items = self.items.saturating_add(items);
        let limits = self.limits;
        if self.bytes > limits.bytes || self.items > limits.items {
            let (items, kib, pages) = (limits.items, limits.bytes >> 10, self.pages);
            return self.refuse(PageRefusal::TooMuch { items, kib, pages });
        }
        if items == 0 && more {
            return self.refuse(PageRefusal::EmptyLinksOn(self.pages));
        }
        Ok(())
    }
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

    proptest::proptest! {
        #[test]
        fn retry_after_and_rate_limits_never_panic_and_stay_bounded(
            n in proptest::prelude::any::<u64>(), w in proptest::prelude::any::<u64>(), junk in "\\PC{0,40}",
        ) {
            for (name, value) in [
                (RETRY_AFTER.as_str(), n.to_string()),
                (RETRY_AFTER.as_str(), junk.clone()),
                ("ratelimit-remaining", format!("{n};w={w}")),
                ("ratelimit-remaining", junk.clone()),
            ] {
                let mut h = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), v);
                }
                proptest::prop_assert!(retry_after(&h).is_none_or(|d| d <= Duration::from_secs(60)));
                proptest::prop_assert!(rate_limit(&h).is_none_or(|(_, d)| d <= Duration::from_secs(7 * 86_400)));
            }
        }
    }

    #[test]
    fn listings_stop_at_loops_empty_links_and_their_bounds() {
        let limits = PageLimits {
            pages: 3,
            bytes: 100,
            items: 10,
            time: Duration::from_secs(60),
        };
        let mut p = Pages::new(limits, "l");
        assert!(p.ask("http://r/1").is_ok() && p.read(10, 2, true).is_ok());
        assert!(
            p.ask("http://r/1")
                .unwrap_err()
                .to_string()
                .contains("leads back to a page already read")
        );
        let mut p = Pages::new(limits, "l");
        assert!(p.ask("http://r/1").is_ok());
        assert!(
            p.read(2, 0, true)
                .unwrap_err()
                .to_string()
                .contains("page 1 is empty yet links to another")
        );
        assert!(
            Pages::new(limits, "l").read(2, 0, false).is_ok(),
            "an empty last page is fine"
        );
        let mut p = Pages::new(limits, "l");
        for i in 0..3 {
            assert!(p.ask(&format!("http://r/{i}")).is_ok() && p.read(1, 1, true).is_ok());
        }
        assert!(p.ask("http://r/3").unwrap_err().to_string().contains("past 3 pages"));
        assert!(
            Pages::new(limits, "l")
                .read(101, 1, false)
                .unwrap_err()
                .to_string()
                .contains("past 10 entries or 0 KiB")
        );
        assert!(Pages::new(limits, "l").read(1, 11, false).is_err());
        let mut p = Pages::new(
            PageLimits {
                time: Duration::ZERO,
                ..limits
            },
            "l",
        );
        assert!(p.ask("http://r/1").is_ok() || p.count() == 1);
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            p.ask("http://r/2")
                .unwrap_err()
                .to_string()
                .contains("still going after")
        );
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
    fn credentials_only_go_to_the_registry_origin() {
        let origin = Url::parse("https://r.io:5000").unwrap();
        assert!(same_origin(&Url::parse("https://r.io:5000/v2/x").unwrap(), &origin));
        assert!(same_origin(&Url::parse("https://R.IO:5000/v2/x").unwrap(), &origin));
        assert!(
            !same_origin(&Url::parse("http://r.io:5000/v2/x").unwrap(), &origin),
            "scheme downgrade"
        );
        assert!(!same_origin(&Url::parse("https://r.io:5001/v2/x").unwrap(), &origin));
        assert!(!same_origin(
            &Url::parse("https://storage.example.com/blob").unwrap(),
            &origin
        ));
        let default_port = Url::parse("https://r.io").unwrap();
        assert!(same_origin(&Url::parse("https://r.io:443/v2/").unwrap(), &default_port));
    }
}
