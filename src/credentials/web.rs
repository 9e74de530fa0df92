//! The HTTP side of the cloud token flows written here (Google, Azure): one
//! client, answers bounded in size and time, https only (plain http only on
//! loopback), no redirects, and error texts that never quote a secret.

#![cfg_attr(not(any(feature = "google", feature = "azure")), allow(dead_code))]

use std::time::{Duration, SystemTime};

use reqwest::{RequestBuilder, Url};
use serde::de::DeserializeOwned;

use super::LookupError;
use crate::model::Registry;

/// The most a token endpoint may answer.
const MAX_ANSWER: usize = 256 * 1024;
/// How long one token request may take in all.
const TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Web {
    /// Or why it could not be built: then every lookup fails saying so.
    client: Result<reqwest::Client, crate::http::ClientError>,
}

impl Web {
    pub(super) fn new() -> Web {
        let client = crate::http::peer_client(Some(Duration::from_secs(5)), None, Some(TIMEOUT));
        Web { client }
    }

    pub(super) fn client(&self) -> Result<&reqwest::Client, LookupError> {
        self.client.as_ref().map_err(|why| LookupError::Unreadable {
            place: "the token service's HTTP client".into(),
            reason: why.to_string(),
        })
    }

    /// Sends `request` and reads a JSON answer of type `T`. `place` names
    /// the endpoint in errors.
    pub(super) async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        place: &str,
    ) -> Result<T, LookupError> {
        let resp = request.send().await.map_err(|e| LookupError::Unreadable {
            place: place.to_string(),
            reason: describe(&e),
        })?;
        self.read_json(resp, place).await
    }

    /// Reads a JSON answer of type `T` from `resp`.
    pub(super) async fn read_json<T: DeserializeOwned>(
        &self,
        resp: reqwest::Response,
        place: &str,
    ) -> Result<T, LookupError> {
        let body = self.read_body(resp, place).await?;
        serde_json::from_slice(&body).map_err(|e| LookupError::Unreadable {
            place: place.to_string(),
            reason: format!("unexpected answer: {e}"),
        })
    }

    /// The body of a successful answer, at most [`MAX_ANSWER`] bytes.
    pub(super) async fn read_body(&self, mut resp: reqwest::Response, place: &str) -> Result<Vec<u8>, LookupError> {
        let fail = |reason: String| LookupError::Unreadable {
            place: place.to_string(),
            reason,
        };
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(describe(&e)))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(fail(format!("the answer is larger than {} KiB", MAX_ANSWER / 1024)));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(fail(format!("HTTP {}{}", status.as_u16(), oauth_error(&body))));
        }
        Ok(body)
    }
}

/// A transport error without the URL (which may carry a query secret).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {cause}")
    }
}

/// The OAuth `error` / `error_description` of an error answer, printable
/// and short: these never carry secrets, the rest of the body might.
fn oauth_error(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        error: Option<serde_json::Value>,
        error_description: Option<String>,
    }
    let Ok(e) = serde_json::from_slice::<E>(body) else {
        return String::new();
    };
    let code = match e.error {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Object(o)) => o
            .get("message")
            .or_else(|| o.get("status"))
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    let text = [code, e.error_description.unwrap_or_default()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    if text.is_empty() {
        text
    } else {
        format!(" ({})", crate::error::printable(&text, 200))
    }
}

/// `url` parsed, if it is https, or plain http to a loopback host.
pub(super) fn endpoint(url: &str, what: &str) -> Result<Url, LookupError> {
    let bad = |reason: &str| LookupError::Unreadable {
        place: what.to_string(),
        reason: reason.to_string(),
    };
    let parsed = Url::parse(url).map_err(|_| bad("not a URL"))?;
    let loopback = parsed.host_str().is_some_and(|h| Registry::new(h).is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(bad("must be an https URL (plain http only on loopback)")),
    }
}

/// An access token's expiry from `expires_in` seconds.
pub(super) fn expiry(expires_in: Option<u64>, default: Duration) -> SystemTime {
    super::expires_in(expires_in.unwrap_or(default.as_secs()))
}

/// Seconds since 1970 of an RFC 3339 time (`2026-12-01T10:00:00Z`,
/// fractions allowed), as Google's IAM credentials API writes them.
pub(super) use crate::model::created::parse_rfc3339 as parse_rfc3339_utc;

/// The `exp` claim of a JWT, read without checking its signature (only to
/// know when to renew it; the registry checks it).
pub(super) fn jwt_expiry(token: &str) -> Option<SystemTime> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let exp = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_u64()?;
    Some(super::expires_at(exp))
}

/// `~`, from `$HOME`.
pub(super) fn home() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(Into::into)
}

/// A non-empty environment variable.
pub(super) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Reads a small file (key files, token files): at most 1 MiB.
pub(super) async fn read_small(path: &std::path::Path) -> Result<String, LookupError> {
    use tokio::io::AsyncReadExt as _;
    let open = |e: std::io::Error| LookupError::Open {
        path: path.to_path_buf(),
        source: e,
    };
    let file = tokio::fs::File::open(path).await.map_err(open)?;
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).await.map_err(open)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_are_read() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_utc("2026-11-27T21:00:00Z"), Some(1_795_813_200));
        assert_eq!(parse_rfc3339_utc("2026-11-27T21:00:00.123456Z"), Some(1_795_813_200));
        assert_eq!(parse_rfc3339_utc("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(parse_rfc3339_utc("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_utc("2026-11-27 21:00:00"), None);
    }

    fn jwt_with_exp(exp: &str) -> String {
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{exp}}}"));
        format!("e30.{claims}.sig")
    }

    #[test]
    fn lifetimes_too_large_for_the_clock_are_kept_a_day_at_most() {
        let day_on = SystemTime::now() + super::super::MAX_LIFETIME + Duration::from_secs(1);
        for expires in [
            expiry(Some(u64::MAX), Duration::from_secs(60)),
            jwt_expiry(&jwt_with_exp("18446744073709551615")).unwrap(),
            super::super::expires_at(u64::MAX),
        ] {
            assert!(expires > SystemTime::now() && expires < day_on);
        }
        assert!(expiry(Some(0), Duration::from_secs(60)) <= SystemTime::now());
        assert_eq!(parse_rfc3339_utc("99999999999-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_utc("-9223372036854775808-01-01T00:00:00Z"), None);
    }

    proptest::proptest! {
        #[test]
        fn no_expiry_a_peer_sends_panics(n in proptest::prelude::any::<u64>(), y in proptest::prelude::any::<i64>(),
                                         s in "[0-9:TZ.-]{0,40}") {
            let _ = expiry(Some(n), Duration::from_secs(60));
            let _ = super::super::expires_at(n);
            let _ = jwt_expiry(&jwt_with_exp(&n.to_string()));
            let _ = jwt_expiry(&jwt_with_exp(&format!("{n}e300")));
            let _ = parse_rfc3339_utc(&format!("{y}-01-01T00:00:00Z"));
            let _ = parse_rfc3339_utc(&s);
        }
    }

    #[test]
    fn only_https_or_loopback_http_endpoints() {
        assert!(endpoint("https://oauth2.googleapis.com/token", "t").is_ok());
        assert!(endpoint("http://127.0.0.1:8080/token", "t").is_ok());
        assert!(endpoint("http://localhost:8080/token", "t").is_ok());
        assert!(endpoint("http://oauth2.googleapis.com/token", "t").is_err());
        assert!(endpoint("file:///etc/passwd", "t").is_err());
    }

    #[test]
    fn error_answers_keep_only_the_oauth_error() {
        let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT","access_token":"SECRET"}"#;
        assert_eq!(oauth_error(body), " (invalid_grant: Invalid JWT)");
        assert_eq!(oauth_error(b"SECRET"), "");
    }
}
