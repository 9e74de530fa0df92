//! Amazon ECR and ECR Public through the official AWS SDK: its standard
//! credential chain (environment keys with session token, shared config and
//! credentials files and profiles, `credential_process`, web identity /
//! IRSA, ECS and EC2 instance roles) and `GetAuthorizationToken`. Endpoint
//! overrides come from the standard `AWS_ENDPOINT_URL*` variables.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use base64::Engine as _;
use futures_util::future::BoxFuture;
use tokio::sync::Mutex;

use super::{Credential, CredentialProvider, Found, LookupError};
use crate::model::Registry;

/// ECR Public's API lives in one region.
const PUBLIC_REGION: &str = "us-east-1";
/// Where the SDK looks, for messages.
const PLACES: &str = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE in \
                      ~/.aws/config and ~/.aws/credentials (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), \
                      AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, the ECS container endpoint, the EC2 \
                      instance metadata service";

/// A region and a profile, each `None` for the SDK's default.
type ConfigKey = (Option<String>, Option<String>);

/// The SDK configuration per region and profile, loaded once per run (the
/// profile files are read once; temporary credentials are renewed by the
/// SDK's providers).
pub(super) struct Aws {
    configs: Mutex<HashMap<ConfigKey, SdkConfig>>,
}

impl Aws {
    pub(super) fn new() -> Aws {
        Aws {
            configs: Mutex::new(HashMap::new()),
        }
    }

    /// The SDK configuration for `region` (else the SDK's default) and
    /// `profile` (else `AWS_PROFILE`, else `default`).
    async fn config(&self, region: Option<&str>, profile: Option<&str>) -> SdkConfig {
        let key = (region.map(str::to_string), profile.map(str::to_string));
        let mut configs = self.configs.lock().await;
        if let Some(c) = configs.get(&key) {
            return c.clone();
        }
        // bounded in time like every other answer a peer sends
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_timeout(Duration::from_secs(60))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .http_client(http::client());
        if let Some(r) = region {
            loader = loader.region(Region::new(r.to_string()));
        }
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        let config = loader.load().await;
        configs.insert(key, config.clone());
        config
    }

    /// The credentials the SDK's chain finds, resolved once for the token
    /// request that follows: `None` when none is configured anywhere (a read
    /// then goes anonymous).
    async fn credentials(config: &SdkConfig, place: &str) -> Result<Option<Credentials>, LookupError> {
        use aws_credential_types::provider::ProvideCredentials as _;
        let Some(provider) = config.credentials_provider() else {
            return Ok(None);
        };
        match provider.provide_credentials().await {
            Ok(credentials) => Ok(Some(credentials)),
            Err(CredentialsError::CredentialsNotLoaded(_)) => Ok(None),
            Err(e) => Err(LookupError::Unreadable {
                place: place.to_string(),
                reason: format!(
                    "AWS credentials: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                ),
            }),
        }
    }

    /// The ECR API client for `ecr`'s region and profile, and where it
    /// points, for messages.
    async fn ecr_api(&self, ecr: &Ecr) -> (aws_sdk_ecr::Client, String) {
        let config = self.config(ecr.region.as_deref(), ecr.profile.as_deref()).await;
        let place = format!(
            "ECR in {}",
            config.region().map(|r| r.as_ref()).unwrap_or("(no region)")
        );
        (aws_sdk_ecr::Client::new(&config), place)
    }

    /// Every repository of an ECR registry (`DescribeRepositories`, every
    /// page): what a repository pattern on it matches. Bounded as a tag
    /// list is: 1,000,000 names, 10,000 pages.
    pub(super) async fn repositories(&self, ecr: &Ecr) -> Result<Vec<String>, LookupError> {
        let registry_id = ecr.registry_id.as_deref();
        let (client, place) = self.ecr_api(ecr).await;
        let fail = |reason: String| LookupError::Unreadable {
            place: place.clone(),
            reason,
        };
        let (mut names, mut token) = (Vec::new(), None);
        for _ in 0..10_000 {
            let page = client
                .describe_repositories()
                .set_registry_id(registry_id.map(str::to_string))
                .set_next_token(token.take())
                .max_results(1000)
                .send()
                .await
                .map_err(|e| fail(format!("DescribeRepositories: {}", sdk_error(&e))))?;
            names.extend(
                page.repositories()
                    .iter()
                    .filter_map(|r| r.repository_name().map(str::to_string)),
            );
            if names.len() > 1_000_000 {
                return Err(fail("DescribeRepositories: more than 1,000,000 repositories".into()));
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(names),
            }
        }
        Err(fail("DescribeRepositories: more than 10,000 pages".into()))
    }

    /// Creates ECR repository `name` unless it exists; `true` if created.
    pub(super) async fn ensure_repository(&self, ecr: &Ecr, name: &str) -> Result<bool, LookupError> {
        let registry_id = ecr.registry_id.as_deref();
        let (client, place) = self.ecr_api(ecr).await;
        let fail = |what: &str, e: String| LookupError::Unreadable {
            place: place.clone(),
            reason: format!("{what} {name}: {e}"),
        };
        let described = client
            .describe_repositories()
            .set_registry_id(registry_id.map(str::to_string))
            .repository_names(name)
            .send()
            .await;
        match described {
            Ok(_) => return Ok(false),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) => {}
            Err(e) => return Err(fail("DescribeRepositories", sdk_error(&e))),
        }
        let created = client
            .create_repository()
            .set_registry_id(registry_id.map(str::to_string))
            .repository_name(name)
            .send()
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_already_exists_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(fail("CreateRepository", sdk_error(&e))),
        }
    }
}

/// An SDK error with its causes, never a credential (the SDK redacts them).
/// ECR's and ECR Public's `SdkError` are one type.
fn sdk_error<E: std::error::Error + 'static, R: std::fmt::Debug>(e: &aws_sdk_ecr::error::SdkError<E, R>) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(e).to_string()
}

/// `AWS:<password>` from an ECR authorization token.
fn decode(token: &str, place: &str) -> Result<Credential, LookupError> {
    let bad = || LookupError::Unreadable {
        place: place.to_string(),
        reason: "the authorization token is not base64 of user:password".into(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (username, password) = text.split_once(':').ok_or_else(bad)?;
    Ok(Credential::Basic {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// The credential of a `GetAuthorizationToken` answer (ECR and ECR
/// Public answer alike), got at `place`.
fn found(
    token: Option<&str>,
    at: Option<&aws_smithy_types::DateTime>,
    place: String,
) -> Result<Option<Found>, LookupError> {
    let token = token.ok_or_else(|| LookupError::Unreadable {
        place: place.clone(),
        reason: "the answer holds no authorization token".into(),
    })?;
    // ECR tokens last 12 hours; a missing or past expiry is renewed soon
    let expires = at
        .and_then(|t| u64::try_from(t.secs()).ok())
        .map(super::expires_at)
        .unwrap_or_else(|| super::expires_in(12 * 3600));
    Ok(Some(Found {
        credential: decode(token, &place)?,
        source: format!("AWS {place}"),
        expires: Some(expires),
    }))
}

/// A private ECR registry.
pub(super) struct Ecr {
    aws: Arc<Aws>,
    registry_id: Option<String>,
    region: Option<String>,
    profile: Option<String>,
}

impl Ecr {
    pub(super) fn new(
        aws: Arc<Aws>,
        registry_id: Option<String>,
        region: Option<String>,
        profile: Option<String>,
    ) -> Ecr {
        Ecr {
            aws,
            registry_id,
            region,
            profile,
        }
    }

    pub(super) async fn ensure_repository(&self, name: &str) -> Result<bool, LookupError> {
        self.aws.ensure_repository(self, name).await
    }

    pub(super) async fn repositories(&self) -> Result<Vec<String>, LookupError> {
        self.aws.repositories(self).await
    }
}

/// The region ("the default region" when unset), and the profile if set.
fn where_(region: Option<&str>, profile: Option<&str>) -> String {
    let region = region.unwrap_or("the default region");
    match profile {
        Some(p) => format!("{region} with profile {p}"),
        None => region.to_string(),
    }
}

impl CredentialProvider for Ecr {
    fn describe(&self, _: &Registry) -> String {
        let at = where_(self.region.as_deref(), self.profile.as_deref());
        format!("AWS credentials ({PLACES}) for ECR GetAuthorizationToken in {at}")
    }

    fn lookup(&self, _: Registry) -> BoxFuture<'_, Result<Option<Found>, LookupError>> {
        Box::pin(async move {
            let config = self.aws.config(self.region.as_deref(), self.profile.as_deref()).await;
            let Some(region) = config.region().map(|r| r.to_string()) else {
                return Err(LookupError::Unreadable {
                    place: "ECR".into(),
                    reason: "no AWS region: set region: in registries:, or AWS_REGION".into(),
                });
            };
            let place = format!("ECR GetAuthorizationToken in {region}");
            let Some(credentials) = Aws::credentials(&config, &place).await? else {
                return Ok(None);
            };
            // the credentials just resolved, not a second pass of the chain
            let client = aws_sdk_ecr::config::Builder::from(&config).credentials_provider(credentials);
            let answer = aws_sdk_ecr::Client::from_conf(client.build())
                .get_authorization_token()
                .send()
                .await
                .map_err(|e| LookupError::Unreadable {
                    place: place.clone(),
                    reason: sdk_error(&e),
                })?;
            let data = answer.authorization_data().first();
            found(
                data.and_then(|d| d.authorization_token()),
                data.and_then(|d| d.expires_at()),
                place,
            )
        })
    }
}

/// `public.ecr.aws`: its own API, in us-east-1.
pub(super) struct EcrPublic {
    aws: Arc<Aws>,
    profile: Option<String>,
}

impl EcrPublic {
    pub(super) fn new(aws: Arc<Aws>, profile: Option<String>) -> EcrPublic {
        EcrPublic { aws, profile }
    }
}

impl CredentialProvider for EcrPublic {
    fn describe(&self, _: &Registry) -> String {
        let at = where_(Some(PUBLIC_REGION), self.profile.as_deref());
        format!("AWS credentials ({PLACES}) for ECR Public GetAuthorizationToken in {at}")
    }

    fn lookup(&self, _: Registry) -> BoxFuture<'_, Result<Option<Found>, LookupError>> {
        Box::pin(async move {
            let config = self.aws.config(Some(PUBLIC_REGION), self.profile.as_deref()).await;
            let place = format!("ECR Public GetAuthorizationToken in {PUBLIC_REGION}");
            let Some(credentials) = Aws::credentials(&config, &place).await? else {
                return Ok(None);
            };
            let client = aws_sdk_ecrpublic::config::Builder::from(&config).credentials_provider(credentials);
            let answer = aws_sdk_ecrpublic::Client::from_conf(client.build())
                .get_authorization_token()
                .send()
                .await
                .map_err(|e| LookupError::Unreadable {
                    place: place.clone(),
                    reason: sdk_error(&e),
                })?;
            let data = answer.authorization_data();
            found(
                data.and_then(|d| d.authorization_token()),
                data.and_then(|d| d.expires_at()),
                place,
            )
        })
    }
}

/// The SDK's HTTP client: reqwest, the one the registries are spoken to
/// with (one TLS stack in the binary, and no second HTTPS client to build).
/// Answers are bounded like every other answer a peer sends.
mod http {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_smithy_runtime_api::client::http::{
        HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
        http_client_fn,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use futures_util::StreamExt as _;

    /// The largest answer read from an AWS endpoint (authorization tokens
    /// and credentials are a few KiB).
    const MAX_ANSWER: usize = 1024 * 1024;

    #[derive(Debug, Clone)]
    /// A client, or why it could not be built.
    struct Reqwest(Result<reqwest::Client, crate::http::ClientError>);

    /// The client for the SDK, one reqwest client per timeout setting (the
    /// instance metadata service is asked with shorter ones).
    pub(super) fn client() -> SharedHttpClient {
        type Timeouts = (Option<Duration>, Option<Duration>);
        let clients: Arc<Mutex<HashMap<Timeouts, Reqwest>>> = Arc::default();
        http_client_fn(move |settings: &HttpConnectorSettings, _| {
            let key = (settings.connect_timeout(), settings.read_timeout());
            let mut clients = crate::lock(&clients);
            let connector = clients.entry(key).or_insert_with(|| {
                // a client that cannot be built fails every request, saying why
                Reqwest(crate::http::peer_client(key.0, key.1, None))
            });
            SharedHttpConnector::new(connector.clone())
        })
    }

    impl HttpConnector for Reqwest {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let client = self.0.clone();
            HttpConnectorFuture::new(async move {
                let user = |e: &str| ConnectorError::user(e.to_string().into());
                let client = client.map_err(|why| user(&why.to_string()))?;
                let method =
                    reqwest::Method::from_bytes(request.method().as_bytes()).map_err(|_| user("bad method"))?;
                let mut builder = client.request(method, request.uri());
                for (name, value) in request.headers() {
                    builder = builder.header(name, value);
                }
                let body = request
                    .body()
                    .bytes()
                    .ok_or_else(|| user("streamed request bodies are not supported"))?
                    .to_vec();
                let resp = builder.body(body).send().await.map_err(|e| {
                    if e.is_timeout() {
                        ConnectorError::timeout(e.into())
                    } else {
                        ConnectorError::io(e.into())
                    }
                })?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let mut bytes = Vec::new();
                let mut body = resp.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| ConnectorError::io(e.into()))?;
                    if bytes.len() + chunk.len() > MAX_ANSWER {
                        return Err(ConnectorError::other("answer larger than 1 MiB".into(), None));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                let status = status.try_into().map_err(|_| user("bad status"))?;
                let mut out = HttpResponse::new(status, SdkBody::from(bytes));
                for (name, value) in &headers {
                    // a header that is not text is not one the SDK reads
                    if let Ok(value) = value.to_str() {
                        let _ = out
                            .headers_mut()
                            .try_append(name.as_str().to_string(), value.to_string());
                    }
                }
                Ok(out)
            })
        }
    }
}
