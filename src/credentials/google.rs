//! Google Container Registry and Artifact Registry: application default
//! credentials, as Google's own tools find them, turned into an access
//! token that goes to the registry as user `oauth2accesstoken`.
//!
//! Order: the key file named by `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
//! `application_default_credentials.json`, then the metadata server (GCE,
//! GKE Workload Identity; `GCE_METADATA_HOST` overrides its address). Files
//! may hold a service-account key (a signed JWT exchanged at its
//! `token_uri`), gcloud user credentials (a refresh token), or an external
//! account (workload identity federation: a subject token from a file or
//! URL exchanged at Google's STS, optionally impersonating a service
//! account).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::web::{self, Web, endpoint, expiry, read_small, var};
use super::{Credential, CredentialProvider, Found, LookupError};
use crate::model::Registry;

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
/// The user name Google's registries take with an access token.
const USER: &str = "oauth2accesstoken";
/// How long a service-account JWT asks for (Google allows at most 1 h).
const JWT_LIFETIME: u64 = 3600;

pub(super) struct Google {
    web: Arc<Web>,
    /// `google-credentials:` of the registry: this file and nothing else.
    file: Option<PathBuf>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

/// The credential files application default credentials know.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KeyFile {
    ServiceAccount {
        client_email: String,
        private_key: String,
        private_key_id: Option<String>,
        token_uri: Option<String>,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: Option<String>,
    },
    ExternalAccount {
        audience: String,
        subject_token_type: String,
        token_url: String,
        service_account_impersonation_url: Option<String>,
        credential_source: Box<CredentialSource>,
    },
}

#[derive(Deserialize)]
struct CredentialSource {
    file: Option<PathBuf>,
    url: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    format: Option<SourceFormat>,
    executable: Option<serde_json::Value>,
    environment_id: Option<String>,
}

#[derive(Deserialize)]
struct SourceFormat {
    #[serde(rename = "type")]
    kind: String,
    subject_token_field_name: Option<String>,
}

impl Google {
    pub(super) fn new(web: Arc<Web>, file: Option<PathBuf>) -> Google {
        Google { web, file }
    }

    fn adc_file() -> Option<PathBuf> {
        let dir = var("CLOUDSDK_CONFIG")
            .map(PathBuf::from)
            .or_else(|| web::home().map(|h| h.join(".config").join("gcloud")))?;
        Some(dir.join("application_default_credentials.json"))
    }

    fn metadata_host() -> String {
        var("GCE_METADATA_HOST").unwrap_or_else(|| DEFAULT_METADATA_HOST.to_string())
    }

    async fn token_from_file(&self, path: &std::path::Path) -> Result<(String, SystemTime), LookupError> {
        let place = path.display().to_string();
        let text = read_small(path).await?;
        // serde's message may quote the value it choked on: name the field only
        let key: KeyFile = serde_json::from_str(&text).map_err(|e| LookupError::Unreadable {
            place: place.clone(),
            reason: format!(
                "not a Google credentials file (service_account, authorized_user or external_account) at line {}",
                e.line()
            ),
        })?;
        match key {
            KeyFile::ServiceAccount {
                client_email,
                private_key,
                private_key_id,
                token_uri,
            } => {
                let uri = token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
                let assertion = sign_jwt(&client_email, private_key_id.as_deref(), &private_key, &uri, &place)?;
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ];
                self.grant(&uri, &format!("{place}: token_uri"), "token endpoint", &form)
                    .await
            }
            KeyFile::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            } => {
                let uri = token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
                let form = [
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.as_str()),
                    ("refresh_token", refresh_token.as_str()),
                ];
                self.grant(&uri, &format!("{place}: token_uri"), "token endpoint", &form)
                    .await
            }
            KeyFile::ExternalAccount {
                audience,
                subject_token_type,
                token_url,
                service_account_impersonation_url,
                credential_source,
            } => {
                let subject = self.subject_token(&place, &credential_source).await?;
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                    ("audience", audience.as_str()),
                    ("scope", SCOPE),
                    ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                    ("subject_token_type", subject_token_type.as_str()),
                    ("subject_token", subject.as_str()),
                ];
                let what = format!("{place}: token_url");
                let sts = self.grant(&token_url, &what, "security token service", &form).await?;
                let Some(impersonate) = service_account_impersonation_url else {
                    return Ok(sts);
                };
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Impersonated {
                    access_token: String,
                    expire_time: Option<String>,
                }
                let url = endpoint(&impersonate, &format!("{place}: service_account_impersonation_url"))?;
                let request = self
                    .web
                    .client()?
                    .post(url)
                    .bearer_auth(&sts.0)
                    .json(&serde_json::json!({ "scope": [SCOPE], "lifetime": "3600s" }));
                let answer: Impersonated = self
                    .web
                    .json(request, &format!("IAM credentials {impersonate}"))
                    .await?;
                let expires = answer
                    .expire_time
                    .as_deref()
                    .and_then(web::parse_rfc3339_utc)
                    .map(super::expires_at)
                    .unwrap_or_else(|| expiry(None, Duration::from_secs(3600)));
                Ok((answer.access_token, expires))
            }
        }
    }

    /// POSTs `form` to the OAuth token endpoint `uri` (named by `what` in
    /// errors about the URL, `name` in errors about the answer) and reads
    /// the access token it grants.
    async fn grant(
        &self,
        uri: &str,
        what: &str,
        name: &str,
        form: &[(&str, &str)],
    ) -> Result<(String, SystemTime), LookupError> {
        let url = endpoint(uri, what)?;
        let request = self.web.client()?.post(url).form(form);
        let answer: TokenAnswer = self.web.json(request, &format!("{name} {uri}")).await?;
        Ok((
            answer.access_token,
            expiry(answer.expires_in, Duration::from_secs(JWT_LIFETIME)),
        ))
    }

    /// The subject token of an external account, from its file or URL.
    async fn subject_token(&self, place: &str, source: &CredentialSource) -> Result<String, LookupError> {
        let unsupported = |what: &str| LookupError::Unreadable {
            place: place.to_string(),
            reason: format!(
                "external_account with {what} credential_source is not supported; use a file or url source"
            ),
        };
        let raw = if let Some(file) = &source.file {
            read_small(file).await?
        } else if let Some(url) = &source.url {
            // often an instance metadata service on plain http: nothing
            // secret goes there but the headers the file itself names
            let mut request = self.web.client()?.get(url);
            for (k, v) in &source.headers {
                request = request.header(k, v);
            }
            let source_place = format!("{place}: credential_source.url");
            let resp = request.send().await.map_err(|e| LookupError::Unreadable {
                place: source_place.clone(),
                reason: if e.is_timeout() {
                    "timed out".into()
                } else {
                    "cannot connect".into()
                },
            })?;
            let body = self.web.read_body(resp, &source_place).await?;
            String::from_utf8_lossy(&body).into_owned()
        } else if source.executable.is_some() {
            return Err(unsupported("an executable"));
        } else if source.environment_id.is_some() {
            return Err(unsupported("an AWS environment"));
        } else {
            return Err(unsupported("an empty"));
        };
        match &source.format {
            Some(f) if f.kind == "json" => {
                let field = f.subject_token_field_name.as_deref().unwrap_or("access_token");
                serde_json::from_str::<serde_json::Value>(&raw)
                    .ok()
                    .and_then(|v| v.get(field).and_then(|t| t.as_str()).map(str::to_string))
                    .ok_or_else(|| LookupError::Unreadable {
                        place: place.to_string(),
                        reason: format!("the subject token source holds no JSON field \"{field}\""),
                    })
            }
            _ => Ok(raw.trim().to_string()),
        }
    }

    /// A token from the metadata server, or `None` when there is none
    /// (not on Google Cloud).
    async fn token_from_metadata(&self) -> Result<Option<(String, SystemTime)>, LookupError> {
        let host = Self::metadata_host();
        let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
        let place = format!("the metadata server {host}");
        let request = self
            .web
            .client()?
            .get(&url)
            .header("Metadata-Flavor", "Google")
            .timeout(Duration::from_secs(5));
        match request.send().await {
            Err(e) => {
                tracing::debug!("no Google metadata server at {host}: {}", e.is_timeout());
                Ok(None)
            }
            Ok(resp) if resp.status() == reqwest::StatusCode::NOT_FOUND => Ok(None),
            Ok(resp) => {
                let answer: TokenAnswer = self.web.read_json(resp, &place).await?;
                Ok(Some((
                    answer.access_token,
                    expiry(answer.expires_in, Duration::from_secs(3600)),
                )))
            }
        }
    }
}

impl CredentialProvider for Google {
    fn describe(&self, _: &Registry) -> String {
        if let Some(file) = &self.file {
            return format!("the Google credentials file {} (google-credentials)", file.display());
        }
        let adc = Self::adc_file()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(no $HOME)".into());
        format!(
            "Google application default credentials (GOOGLE_APPLICATION_CREDENTIALS, {adc}, the metadata server {})",
            Self::metadata_host()
        )
    }

    fn lookup(&self, _: Registry) -> BoxFuture<'_, Result<Option<Found>, LookupError>> {
        Box::pin(async move {
            let found = |(token, expires): (String, SystemTime), source: String| {
                Some(Found {
                    credential: Credential::Basic {
                        username: USER.to_string(),
                        password: token,
                    },
                    source,
                    expires: Some(expires),
                })
            };
            if let Some(path) = &self.file {
                let token = self.token_from_file(path).await?;
                return Ok(found(token, format!("Google credentials {}", path.display())));
            }
            if let Some(path) = var("GOOGLE_APPLICATION_CREDENTIALS") {
                let path = PathBuf::from(path);
                let token = self.token_from_file(&path).await?;
                return Ok(found(token, format!("Google credentials {}", path.display())));
            }
            if let Some(path) = Self::adc_file().filter(|p| p.is_file()) {
                let token = self.token_from_file(&path).await?;
                return Ok(found(token, format!("Google credentials {}", path.display())));
            }
            let source = format!("the Google metadata server {}", Self::metadata_host());
            Ok(self.token_from_metadata().await?.and_then(|t| found(t, source)))
        })
    }
}

/// A JWT asking `token_uri` for an access token, signed RS256 with a
/// service account's PKCS#8 key.
fn sign_jwt(email: &str, key_id: Option<&str>, pem: &str, token_uri: &str, place: &str) -> Result<String, LookupError> {
    let bad = |reason: &str| LookupError::Unreadable {
        place: place.to_string(),
        reason: reason.to_string(),
    };
    use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    use rustls_pki_types::{PrivatePkcs8KeyDer, pem::PemObject as _};
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| bad("private_key is not a PEM PKCS#8 private key"))?;
    let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|_| bad("private_key is not a usable RSA key"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
    if let Some(kid) = key_id {
        header["kid"] = kid.into();
    }
    let claims = serde_json::json!({
        "iss": email,
        "scope": SCOPE,
        "aud": token_uri,
        "iat": now,
        "exp": now + JWT_LIFETIME,
    });
    let signing_input = format!("{}.{}", b64(&header), b64(&claims));
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| bad("signing with private_key failed"))?;
    Ok(format!(
        "{signing_input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature)
    ))
}
