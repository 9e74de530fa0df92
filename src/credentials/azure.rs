//! Azure Container Registry: a service principal's id and password sent as
//! they are (`AZURE_SP_ID` / `AZURE_SP_PASSWORD`, as the Go tool did), or a
//! Microsoft Entra access token (client secret, workload identity's
//! federated token file, or managed identity) exchanged at the registry's
//! `/oauth2/exchange` for an ACR refresh token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::web::{Web, endpoint, expiry, jwt_expiry, read_small, var};
use super::{Credential, CredentialProvider, Found, LookupError};
use crate::model::Registry;

const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com/";
/// The audience ACR's exchange takes, in every Azure cloud.
const RESOURCE: &str = "https://containerregistry.azure.net";
const DEFAULT_IMDS: &str = "http://169.254.169.254";
/// ACR refresh tokens live three hours.
const REFRESH_LIFETIME: Duration = Duration::from_secs(3 * 3600);

pub(super) struct Azure {
    web: Arc<Web>,
    /// `https` unless the registry is spoken to over plain HTTP (loopback).
    scheme: &'static str,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<u64>,
}

/// Managed identity endpoints write numbers as strings.
fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

/// A tenant id or domain: nothing that could change the token URL's path.
fn valid_tenant(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') && !t.contains("..")
}

impl Azure {
    pub(super) fn new(web: Arc<Web>, tls: bool) -> Azure {
        Azure {
            web,
            scheme: if tls { "https" } else { "http" },
        }
    }

    fn authority() -> String {
        var("AZURE_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_AUTHORITY.to_string())
    }

    /// A Microsoft Entra access token for ACR, from the first source that
    /// is configured, with where it came from; `None` when none is.
    async fn entra_token(&self) -> Result<Option<(String, SystemTime, String)>, LookupError> {
        let client_id = var("AZURE_CLIENT_ID");
        let tenant = var("AZURE_TENANT_ID");
        let secret = var("AZURE_CLIENT_SECRET");
        let federated = var("AZURE_FEDERATED_TOKEN_FILE");
        if let (Some(client_id), Some(tenant)) = (&client_id, &tenant)
            && (secret.is_some() || federated.is_some())
        {
            if !valid_tenant(tenant) {
                return Err(LookupError::Unreadable {
                    place: "AZURE_TENANT_ID".into(),
                    reason: "not a tenant id or domain".into(),
                });
            }
            let authority = Self::authority();
            let uri = format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
            let url = endpoint(&uri, "AZURE_AUTHORITY_HOST")?;
            let scope = format!("{RESOURCE}/.default");
            let (form, source) = match (&secret, &federated) {
                (Some(secret), _) => (
                    vec![
                        ("grant_type", "client_credentials".to_string()),
                        ("client_id", client_id.clone()),
                        ("client_secret", secret.clone()),
                        ("scope", scope),
                    ],
                    "AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET".to_string(),
                ),
                (None, Some(file)) => {
                    let assertion = read_small(std::path::Path::new(file)).await?;
                    (
                        vec![
                            ("grant_type", "client_credentials".to_string()),
                            ("client_id", client_id.clone()),
                            (
                                "client_assertion_type",
                                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
                            ),
                            ("client_assertion", assertion.trim().to_string()),
                            ("scope", scope),
                        ],
                        format!("workload identity (AZURE_FEDERATED_TOKEN_FILE {file})"),
                    )
                }
                (None, None) => unreachable!("checked above"),
            };
            let request = self.web.client()?.post(url).form(&form);
            let answer: TokenAnswer = self.web.json(request, &format!("Microsoft Entra {uri}")).await?;
            let expires = expiry(answer.expires_in, Duration::from_secs(3600));
            return Ok(Some((answer.access_token, expires, source)));
        }
        self.managed_identity(client_id.as_deref()).await
    }

    /// Managed identity: App Service / Container Apps (`IDENTITY_ENDPOINT`
    /// with `IDENTITY_HEADER`), else the instance metadata service.
    async fn managed_identity(
        &self,
        client_id: Option<&str>,
    ) -> Result<Option<(String, SystemTime, String)>, LookupError> {
        let (url, header, place) = match (var("IDENTITY_ENDPOINT"), var("IDENTITY_HEADER")) {
            (Some(endpoint), Some(secret)) => {
                let mut url = reqwest::Url::parse(&endpoint).map_err(|_| LookupError::Unreadable {
                    place: "IDENTITY_ENDPOINT".into(),
                    reason: "not a URL".into(),
                })?;
                url.query_pairs_mut()
                    .append_pair("api-version", "2019-08-01")
                    .append_pair("resource", RESOURCE);
                (
                    url,
                    ("X-IDENTITY-HEADER", secret),
                    format!("managed identity endpoint {endpoint}"),
                )
            }
            _ => {
                let host = var("AZURE_POD_IDENTITY_AUTHORITY_HOST").unwrap_or_else(|| DEFAULT_IMDS.to_string());
                let base = format!("{}/metadata/identity/oauth2/token", host.trim_end_matches('/'));
                let mut url = reqwest::Url::parse(&base).map_err(|_| LookupError::Unreadable {
                    place: "AZURE_POD_IDENTITY_AUTHORITY_HOST".into(),
                    reason: "not a URL".into(),
                })?;
                url.query_pairs_mut()
                    .append_pair("api-version", "2018-02-01")
                    .append_pair("resource", RESOURCE);
                (
                    url,
                    ("Metadata", "true".to_string()),
                    format!("the instance metadata service {host}"),
                )
            }
        };
        let mut url = url;
        if let Some(id) = client_id {
            url.query_pairs_mut().append_pair("client_id", id);
        }
        let request = self
            .web
            .client()?
            .get(url)
            .header(header.0, header.1)
            .timeout(Duration::from_secs(5));
        let resp = match request.send().await {
            Ok(r) => r,
            Err(_) => {
                tracing::debug!("no Azure managed identity at {place}");
                return Ok(None);
            }
        };
        let answer: TokenAnswer = self.web.read_json(resp, &place).await?;
        let expires = expiry(answer.expires_in, Duration::from_secs(3600));
        Ok(Some((
            answer.access_token,
            expires,
            format!("managed identity ({place})"),
        )))
    }

    /// Trades an Entra access token for an ACR refresh token at the
    /// registry itself.
    async fn exchange(&self, registry: &Registry, access_token: &str) -> Result<(String, SystemTime), LookupError> {
        #[derive(Deserialize)]
        struct Answer {
            refresh_token: String,
        }
        let uri = format!("{}://{}/oauth2/exchange", self.scheme, registry.host);
        let url = endpoint(&uri, "the registry's token exchange")?;
        let mut form = vec![
            ("grant_type", "access_token".to_string()),
            ("service", registry.hostname().to_string()),
            ("access_token", access_token.to_string()),
        ];
        if let Some(t) = var("AZURE_TENANT_ID") {
            form.push(("tenant", t));
        }
        let request = self.web.client()?.post(url).form(&form);
        let answer: Answer = self.web.json(request, &format!("ACR token exchange {uri}")).await?;
        let expires =
            jwt_expiry(&answer.refresh_token).unwrap_or_else(|| super::expires_in(REFRESH_LIFETIME.as_secs()));
        Ok((answer.refresh_token, expires))
    }
}

impl CredentialProvider for Azure {
    fn describe(&self, registry: &Registry) -> String {
        format!(
            "Azure credentials (AZURE_SP_ID / AZURE_SP_PASSWORD, AZURE_CLIENT_ID / AZURE_TENANT_ID with \
             AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE at {}, managed identity) exchanged at {}://{}/oauth2/exchange",
            Self::authority(),
            self.scheme,
            registry.host
        )
    }

    fn lookup(&self, registry: Registry) -> BoxFuture<'_, Result<Option<Found>, LookupError>> {
        Box::pin(async move {
            if let (Some(username), Some(password)) = (var("AZURE_SP_ID"), var("AZURE_SP_PASSWORD")) {
                let source = "AZURE_SP_ID / AZURE_SP_PASSWORD".to_string();
                return Ok(Some(Found::fixed(Credential::Basic { username, password }, source)));
            }
            let Some((access, _, source)) = self.entra_token().await? else {
                return Ok(None);
            };
            let (refresh, refresh_expires) = self.exchange(&registry, &access).await?;
            Ok(Some(Found {
                credential: Credential::IdentityToken(refresh),
                source: format!("Azure {source}"),
                // renewed by a new access token and a new exchange
                expires: Some(refresh_expires),
            }))
        })
    }
}
