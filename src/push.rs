//! `--pushgateway`: where the run's metrics are pushed, with what
//! credentials and under which grouping key. The URL's own user and password
//! (if any) are taken out of it at once, so no message can show them.

use std::path::Path;

use base64::Engine as _;
use url::Url;

/// Why the Pushgateway settings cannot be used (a usage error, exit 2).
#[derive(Debug, thiserror::Error)]
pub enum PushSettingsError {
    #[error("--pushgateway: not an http(s) URL: {0}")]
    Url(String),
    #[error("--pushgateway-password-file {path}: {source}")]
    PasswordFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--pushgateway-grouping: {0:?} is not LABEL=VALUE (a Prometheus label name other than job and shard, \
         each once)"
    )]
    Grouping(String),
}

/// Why a push failed (said, and the run fails).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The exchange failed (the message is printable and names no URL).
    #[error("{message}")]
    Http {
        message: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("HTTP {0}")]
    Status(u16),
    /// No HTTP client could be built.
    #[error(transparent)]
    Client(#[from] crate::http::ClientError),
}

/// Where and how to push.
#[derive(Clone)]
pub struct Pushgateway {
    /// Without user and password.
    base: Url,
    credentials: Option<(String, String)>,
    /// Grouping labels after `job`, before `shard`.
    grouping: Vec<(String, String)>,
}

impl std::fmt::Debug for Pushgateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pushgateway({}, grouping {:?})", self.base, self.grouping)
    }
}

/// The job label every push carries.
pub const JOB: &str = "replicant";

impl Pushgateway {
    /// `url` may carry `user:password@`; `username` and the password (from
    /// `password_file`, else `password`) win over it. `grouping` is
    /// `label=value,label=value`.
    pub fn new(
        url: &str,
        username: Option<String>,
        password: Option<String>,
        password_file: Option<&Path>,
        grouping: Option<&str>,
    ) -> Result<Pushgateway, PushSettingsError> {
        let mut base = Url::parse(url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| PushSettingsError::Url(crate::error::printable(url, 300)))?;
        let from_url = (!base.username().is_empty()).then(|| {
            let decode = |s: &str| percent_decode(s);
            (decode(base.username()), decode(base.password().unwrap_or_default()))
        });
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let password = match password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                    .map_err(|source| PushSettingsError::PasswordFile {
                        path: path.display().to_string(),
                        source,
                    })?,
            ),
            None => password,
        };
        let credentials = match (username, password, from_url) {
            (Some(u), p, _) => Some((u, p.unwrap_or_default())),
            (None, Some(p), Some((u, _))) => Some((u, p)),
            (None, Some(p), None) => Some((String::new(), p)),
            (None, None, found) => found,
        };
        let mut labels: Vec<(String, String)> = Vec::new();
        for pair in grouping.unwrap_or_default().split(',').filter(|p| !p.trim().is_empty()) {
            let bad = || PushSettingsError::Grouping(crate::error::printable(pair, 100));
            let (name, value) = pair.split_once('=').ok_or_else(bad)?;
            let name = name.trim();
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with("__")
                && !matches!(name, "job" | "shard")
                && !labels.iter().any(|(n, _)| n == name);
            if !valid {
                return Err(bad());
            }
            labels.push((name.to_string(), value.trim().to_string()));
        }
        Ok(Pushgateway {
            base,
            credentials,
            grouping: labels,
        })
    }

    /// The grouping key of this run: `job`, the configured labels, then
    /// `shard` when sharded.
    pub fn group(&self, shard: Option<u32>) -> Vec<(String, String)> {
        let mut group = vec![("job".to_string(), JOB.to_string())];
        group.extend(self.grouping.iter().cloned());
        if let Some(i) = shard {
            group.push(("shard".into(), i.to_string()));
        }
        group
    }

    /// The group's URL (`/metrics/job/replicant/LABEL/VALUE…`), without
    /// credentials: safe to log.
    pub fn group_url(&self, group: &[(String, String)]) -> String {
        let mut url = format!("{}/metrics", self.base.as_str().trim_end_matches('/'));
        for (name, value) in group {
            // a value that is not a plain path segment goes base64url-encoded
            // (the Pushgateway's `LABEL@base64/VALUE` form; `=` is empty)
            let plain = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if plain {
                url.push_str(&format!("/{name}/{value}"));
            } else if value.is_empty() {
                url.push_str(&format!("/{name}@base64/="));
            } else {
                let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value);
                url.push_str(&format!("/{name}@base64/{encoded}"));
            }
        }
        url
    }

    /// Where the Pushgateway lists what it holds, without credentials.
    pub fn metrics_url(&self) -> String {
        format!("{}/metrics", self.base.as_str().trim_end_matches('/'))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Reads what the gateway holds, then PUTs `render(held)` to the group.
    pub async fn push(&self, group: &[(String, String)], render: impl FnOnce(&str) -> String) -> Result<(), PushError> {
        // the URL never reaches a message: it is logged by the caller, redacted
        let http_error = |e: reqwest::Error| {
            let e = e.without_url();
            PushError::Http {
                message: crate::error::printable(&e.to_string(), 500),
                source: e,
            }
        };
        let http = crate::http::peer_client(None, None, Some(std::time::Duration::from_secs(30)))?;
        let held = self
            .authorized(http.get(self.metrics_url()))
            .send()
            .await
            .map_err(http_error)?;
        if !held.status().is_success() {
            return Err(PushError::Status(held.status().as_u16()));
        }
        let held = held.text().await.map_err(http_error)?;
        let resp = self
            .authorized(http.put(self.group_url(group)))
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(render(&held))
            .send()
            .await
            .map_err(http_error)?;
        match resp.status().is_success() {
            true => Ok(()),
            false => Err(PushError::Status(resp.status().as_u16())),
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_grouping_goes_into_the_path() {
        let p = Pushgateway::new(
            "http://alice:s3cr%40t@gw:9091/",
            None,
            None,
            None,
            Some("release=prod, team=a/b"),
        )
        .unwrap();
        assert_eq!(p.credentials, Some(("alice".into(), "s3cr@t".into())));
        assert!(!format!("{p:?}").contains("s3cr"));
        let group = p.group(Some(2));
        assert_eq!(
            p.group_url(&group),
            "http://gw:9091/metrics/job/replicant/release/prod/team@base64/YS9i/shard/2"
        );
        assert_eq!(p.metrics_url(), "http://gw:9091/metrics");
        let p = Pushgateway::new("https://gw", Some("bob".into()), Some("pw".into()), None, None).unwrap();
        assert_eq!(p.credentials, Some(("bob".into(), "pw".into())));
        assert_eq!(p.group_url(&p.group(None)), "https://gw/metrics/job/replicant");
        for bad in ["job=x", "shard=1", "a=1,a=2", "1a=x", "noequals", "__x=1"] {
            assert!(
                matches!(
                    Pushgateway::new("http://gw", None, None, None, Some(bad)),
                    Err(PushSettingsError::Grouping(_))
                ),
                "{bad}"
            );
        }
        let e = Pushgateway::new("ftp://alice:s3cr3t@gw", None, None, None, None).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
}
