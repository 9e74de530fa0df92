//! Errors from reading or writing a store (a registry repository or an OCI
//! layout), written for the person reading them: they name the registry and
//! repository or the path, what was being done, the HTTP status and the
//! registry's own error codes.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// An error with the operation it happened in. Cloneable, so that copies
/// waiting on one transfer, and images that need one unreachable registry,
/// all get the same error.
#[derive(Debug, Clone)]
pub struct StoreError {
    /// e.g. `127.0.0.1:5000/mirror/app: GET manifest 1.2.3`
    pub context: String,
    pub kind: ErrorKind,
    /// How long the registry asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// The transport already spent its retries on this: trying again from a
    /// layer above would multiply attempts.
    pub retries_spent: bool,
    /// A blob upload that broke where the destination still holds its
    /// first this many bytes: the rest can be sent into the same session
    /// (`Store::put_blob_rest`) rather than the whole blob into a new one.
    pub resume_at: Option<u64>,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.kind)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Unreachable { cause, .. } => Some(&**cause),
            ErrorKind::Network(c)
            | ErrorKind::Tls(c)
            | ErrorKind::Protocol(c)
            | ErrorKind::Io(c)
            | ErrorKind::Layout(c)
            | ErrorKind::Cloud(c) => c.source(),
            _ => None,
        }
    }
}

/// What went wrong, in words for people, and the error it came from when
/// there is one (kept for `source()`; shared, so errors stay `Clone`).
#[derive(Debug, Clone)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// `message`, caused by `source`.
    pub fn new(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The error this one came from, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Cause {
        Cause { message, source: None }
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Cause {
        Cause::from(message.to_string())
    }
}

impl std::ops::Deref for Cause {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone)]
pub enum ErrorKind {
    /// The registry answered with an unexpected status.
    Status { status: u16, errors: Vec<ApiError> },
    /// Authentication failed or was refused.
    Unauthorized {
        status: u16,
        errors: Vec<ApiError>,
        detail: String,
    },
    /// Connection, timeout, or a body cut short.
    Network(Cause),
    /// The registry's host name does not resolve.
    Dns { host: String, message: String },
    /// The registry's certificate was not accepted (not worth retrying).
    Tls(Cause),
    /// A TLS connection was answered in plain HTTP.
    PlainHttp { registry: String },
    /// An earlier request found the registry unreachable in this run.
    Unreachable { registry: String, cause: Arc<StoreError> },
    /// The registry's pull budget is spent for this run: it throttled this
    /// request past every retry (`throttled`), or an earlier one, and this
    /// one was not sent.
    RateLimited {
        registry: String,
        until: SystemTime,
        throttled: bool,
    },
    /// Content did not match its digest.
    DigestMismatch { expected: String, actual: String },
    /// The registry sent something we cannot use.
    Protocol(Cause),
    /// A file of a layout could not be read or written.
    Io(Cause),
    /// A layout is not valid (not a layout, bad index, bad tag, bad digest).
    Layout(Cause),
    /// A registry that creates no repository on push (ECR) lacks this one.
    RepositoryMissing { registry: String, repository: String },
    /// The repository's tags are immutable: an existing tag cannot change.
    ImmutableTag { repository: String, message: String },
    /// A cloud provider's API refused or failed (e.g. creating a repository).
    Cloud(Cause),
}

/// What kind of thing failed, for the report and for people deciding what
/// to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Credentials missing, refused, or lacking permission.
    Auth,
    /// A repository, tag or manifest does not exist.
    NotFound,
    /// The registry throttled us past every retry.
    RateLimited,
    /// The registry could not be reached at all in this run.
    Unreachable,
    /// Connections, timeouts, server errors.
    Network,
    /// Certificates and TLS settings.
    Tls,
    /// Content that does not match its digest or declared size.
    Integrity,
    /// An OCI layout that cannot be read or written.
    Layout,
    /// A registry answer or manifest replicant cannot use.
    Protocol,
    /// The registry refused a write by its own rules (immutable tags).
    Refused,
    /// Stopped by a signal before it finished.
    Interrupted,
    /// The image selects no tags from a source that has some
    /// (`--fail-on-empty`).
    Selection,
}

impl Category {
    /// Every category, in the order the docs list them.
    pub const ALL: [Category; 12] = [
        Category::Auth,
        Category::NotFound,
        Category::RateLimited,
        Category::Unreachable,
        Category::Network,
        Category::Tls,
        Category::Integrity,
        Category::Layout,
        Category::Protocol,
        Category::Refused,
        Category::Interrupted,
        Category::Selection,
    ];
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Category::Auth => "auth",
            Category::NotFound => "not-found",
            Category::RateLimited => "rate-limited",
            Category::Unreachable => "unreachable",
            Category::Network => "network",
            Category::Tls => "tls",
            Category::Integrity => "integrity",
            Category::Layout => "layout",
            Category::Protocol => "protocol",
            Category::Refused => "refused",
            Category::Interrupted => "interrupted",
            Category::Selection => "selection",
        };
        f.write_str(s)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Status { status, errors } => {
                write!(f, "HTTP {status}")?;
                write_api_errors(f, errors)
            }
            ErrorKind::Unauthorized { status, errors, detail } => {
                write!(f, "HTTP {status}")?;
                // the registry's own code (UNAUTHORIZED, DENIED) says it
                // better, and saying both reads twice
                match (errors.is_empty(), status) {
                    (true, 403) => f.write_str(" forbidden")?,
                    (true, _) => f.write_str(" unauthorized")?,
                    (false, _) => write_api_errors(f, errors)?,
                }
                write!(f, "; {detail}")
            }
            ErrorKind::Network(m) => write!(f, "network error: {m}"),
            ErrorKind::RepositoryMissing { registry, repository } => write!(
                f,
                "repository {repository} does not exist in {registry}, and this registry creates none on push; \
                 create it (aws ecr create-repository --repository-name {repository}) or set \
                 `registries: {registry}: create-repositories: true` in the config"
            ),
            ErrorKind::ImmutableTag { repository, message } => write!(
                f,
                "the tags of {repository} are immutable: an existing tag cannot be replaced (replace-tag); \
                 the registry said: {message}"
            ),
            ErrorKind::Cloud(m) => write!(f, "{m}"),
            ErrorKind::Dns { host, message } => write!(f, "the host name {host} does not resolve ({message})"),
            ErrorKind::Unreachable { registry, cause } => match self.category() {
                Category::Unreachable => write!(
                    f,
                    "registry {registry} is unreachable in this run (first failure: {cause})"
                ),
                _ => write!(
                    f,
                    "registry {registry} cannot be used in this run (first failure: {cause})"
                ),
            },
            ErrorKind::RateLimited {
                registry,
                until,
                throttled,
            } => {
                let wait = until
                    .duration_since(SystemTime::now())
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                if *throttled {
                    write!(
                        f,
                        "HTTP 429 after every retry: {registry} will not be pulled from again in this run"
                    )?;
                } else {
                    write!(f, "not pulled: the pull budget of {registry} is exhausted")?;
                }
                write!(f, "; retry after {} (in {wait} s)", utc_at(*until))
            }
            ErrorKind::Tls(m) => write!(
                f,
                "TLS error: {m} (trust a private CA with ca-file, or skip verification with insecure: true, in the config's registries: section)"
            ),
            ErrorKind::PlainHttp { registry } => write!(
                f,
                "{registry} answered in plain HTTP on a TLS connection; if that is intended, set `registries: {registry}: tls: false` in the config"
            ),
            ErrorKind::DigestMismatch { expected, actual } => {
                write!(
                    f,
                    "content does not match its digest: expected {expected}, got {actual}"
                )
            }
            ErrorKind::Protocol(m) => write!(f, "unexpected response: {m}"),
            ErrorKind::Io(m) => write!(f, "{m}"),
            ErrorKind::Layout(m) => write!(f, "invalid OCI layout: {m}"),
        }
    }
}

fn write_api_errors(f: &mut fmt::Formatter<'_>, errors: &[ApiError]) -> fmt::Result {
    for e in errors {
        write!(f, " {}", e.code)?;
        if !e.message.is_empty() {
            write!(f, " ({})", e.message)?;
        }
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a point in time.
pub fn utc_at(t: SystemTime) -> String {
    utc(t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0))
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the epoch.
pub fn utc(secs: u64) -> String {
    let (date, time) = date_and_time(secs);
    format!("{date} {time} UTC")
}

/// RFC 3339 in UTC (`2026-12-02T03:04:56Z`) for a point in time.
pub fn rfc3339(t: SystemTime) -> String {
    let (date, time) = date_and_time(
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    format!("{date}T{time}Z")
}

/// `YYYY-MM-DD` and `HH:MM:SS` in UTC for seconds since the epoch
/// (civil-from-days, to avoid a date crate for a few lines of output).
fn date_and_time(secs: u64) -> (String, String) {
    let (days, rem) = (secs / 86400, secs % 86400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// One entry of the Distribution API's `{"errors": [...]}` body.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiError>,
}

/// Text that came from a peer, safe to print: control characters (newlines,
/// escape sequences) become spaces, a URL's `user:password@` is taken out,
/// and it is cut to `max` characters. Every string a peer controls goes
/// through this before it reaches a log line, the summary or the report.
pub fn printable(s: &str, max: usize) -> String {
    let s = without_userinfo(s);
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// `text` with the `user:password@` of every URL in it removed
/// (`https://alice:secret@host/x` reads `https://host/x`): whatever follows
/// a `//` up to an `@`, before any `/`, `?`, `#`, space or quote.
pub fn without_userinfo(text: &str) -> std::borrow::Cow<'_, str> {
    static USERINFO: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"//[^/?#\s"'<>()\[\]]*@"#).unwrap_or_else(|e| unreachable!("a fixed pattern: {e}"))
    });
    if !text.contains('@') {
        return std::borrow::Cow::Borrowed(text);
    }
    USERINFO.replace_all(text, "//")
}

/// Parses an error body; anything unparseable yields no codes.
pub fn parse_api_errors(body: &[u8]) -> Vec<ApiError> {
    let mut errors = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors)
        .unwrap_or_default();
    for e in &mut errors {
        // a peer's words: one short line each, no control characters
        e.code = printable(&e.code, 64);
        e.message = printable(&e.message, 200);
    }
    errors.truncate(5);
    errors
}

impl StoreError {
    pub fn new(context: impl Into<String>, kind: ErrorKind) -> StoreError {
        StoreError {
            context: context.into(),
            kind,
            retry_after: None,
            retries_spent: false,
            resume_at: None,
        }
    }

    /// Whether trying again may succeed: network trouble, a timeout, a
    /// throttle or a server error, or content that arrived damaged, and the
    /// transport has not already spent its retries on it.
    pub fn is_retryable(&self) -> bool {
        !self.retries_spent && self.kind.is_transient()
    }

    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Status { status, .. } | ErrorKind::Unauthorized { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn category(&self) -> Category {
        self.kind.category()
    }
}

impl ErrorKind {
    /// Failures that may pass by themselves.
    fn is_transient(&self) -> bool {
        match self {
            ErrorKind::Network(_) | ErrorKind::DigestMismatch { .. } => true,
            ErrorKind::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    pub fn category(&self) -> Category {
        match self {
            ErrorKind::Status { status: 404, .. } => Category::NotFound,
            ErrorKind::Status { status: 429, .. } | ErrorKind::RateLimited { .. } => Category::RateLimited,
            ErrorKind::Status { status, .. } if *status >= 500 || *status == 408 => Category::Network,
            ErrorKind::Status { .. } | ErrorKind::Protocol(_) => Category::Protocol,
            ErrorKind::Unauthorized { .. } => Category::Auth,
            ErrorKind::Network(_) | ErrorKind::Dns { .. } => Category::Network,
            ErrorKind::Tls(_) | ErrorKind::PlainHttp { .. } => Category::Tls,
            // the registry failed as a whole: what its first failure was
            // (a certificate, plain HTTP on TLS), unless that was the
            // network, which is what unreachable means
            ErrorKind::Unreachable { cause, .. } => match cause.category() {
                Category::Network | Category::Unreachable => Category::Unreachable,
                other => other,
            },
            ErrorKind::DigestMismatch { .. } => Category::Integrity,
            ErrorKind::Io(_) | ErrorKind::Layout(_) => Category::Layout,
            ErrorKind::RepositoryMissing { .. } => Category::NotFound,
            ErrorKind::ImmutableTag { .. } => Category::Refused,
            ErrorKind::Cloud(_) => Category::Auth,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_category_is_spelled_the_same_in_text_and_json() {
        for c in Category::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.to_string(), "{c:?}");
        }
    }

    use super::*;

    #[test]
    fn printable_takes_out_control_characters_and_url_passwords() {
        assert_eq!(
            printable("push to http://alice:s3cr3t@gw:9091/metrics failed\n\u{1b}[2J", 200),
            "push to http://gw:9091/metrics failed  [2J"
        );
        assert_eq!(
            without_userinfo("mail a@b, see https://h/x@y"),
            "mail a@b, see https://h/x@y"
        );
        assert_eq!(
            without_userinfo("(https://u@h) 'http://p:q@r'"),
            "(https://h) 'http://r'"
        );
    }

    proptest::proptest! {
        #[test]
        fn printable_text_is_one_line_without_passwords(s in "\\PC{0,30}", user in "[a-z]{1,8}") {
            let text = format!("{s}https://{user}:pw-SECRET@host/{s}\n\u{1b}{s}");
            let shown = printable(&text, 10_000);
            proptest::prop_assert!(!shown.chars().any(char::is_control));
            proptest::prop_assert!(!shown.contains("pw-SECRET"));
        }
    }

    #[test]
    fn messages_name_status_and_codes() {
        let errors =
            parse_api_errors(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#);
        let e = StoreError::new("r.io/a/b: GET manifest 1.0", ErrorKind::Status { status: 404, errors });
        assert_eq!(
            e.to_string(),
            "r.io/a/b: GET manifest 1.0: HTTP 404 MANIFEST_UNKNOWN (manifest unknown)"
        );
        assert_eq!(e.category(), Category::NotFound);
        assert!(!e.is_retryable());
        assert!(parse_api_errors(b"<html>").is_empty());
        for (status, retry) in [
            (429, true),
            (503, true),
            (500, true),
            (408, true),
            (404, false),
            (400, false),
        ] {
            let e = StoreError::new("x", ErrorKind::Status { status, errors: vec![] });
            assert_eq!(e.is_retryable(), retry, "{status}");
        }
        assert!(StoreError::new("x", ErrorKind::Network("reset".into())).is_retryable());
        // the cause is kept, not only its words
        let disk = ErrorKind::Io(Cause::new("writing", std::io::Error::other("disk full")));
        let e = StoreError::new("oci:/m", disk);
        assert_eq!(e.to_string(), "oci:/m: writing");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(
            source.downcast_ref::<std::io::Error>().unwrap().to_string(),
            "disk full"
        );
        assert!(std::error::Error::source(&e.clone()).is_some(), "clones keep it");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_813_200), "2026-11-27 21:00:00 UTC");
        assert!(!StoreError::new("x", ErrorKind::Layout("bad".into())).is_retryable());
        let mut spent = StoreError::new("x", ErrorKind::Network("reset".into()));
        spent.retries_spent = true;
        assert!(
            !spent.is_retryable(),
            "what the transport gave up on is not retried again"
        );
        let tls = StoreError::new(
            "x",
            ErrorKind::PlainHttp {
                registry: "r.io:5000".into(),
            },
        );
        assert!(
            tls.to_string().contains("set `registries: r.io:5000: tls: false`"),
            "{tls}"
        );
        assert_eq!(tls.category(), Category::Tls);
    }
}
