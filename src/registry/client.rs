//! A thin client for the Distribution API. Authentication lives here, so the
//! copy engine never sees a token; *what* to fetch is decided by the caller.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::{Mutex, OnceCell};
use url::Url;

use super::auth::{Challenge, Token, TokenResponse, parse_challenge, scope_key};
use super::wire::{
    backoff, basic, header, is_valid_tag, network, next_link, protocol, rate_limit, read_limited, retry_after,
    same_authority,
};
use crate::config::RegistryOptions;
use crate::credentials::{Chain, Credential};
use crate::digest::Digest;
use crate::error::{ErrorKind, StoreError, parse_api_errors};
use crate::manifest::{ACCEPT as MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};
use crate::reference::{Registry, Repository};
use crate::store::{FetchedManifest, ManifestHead};

const MAX_ERROR_BODY: usize = 64 * 1024;
const MAX_TOKEN_BODY: usize = 1024 * 1024;
const MAX_TAGS_PAGE: usize = 8 * 1024 * 1024;
const MAX_TAG_PAGES: usize = 10_000;
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

type Result<T> = std::result::Result<T, StoreError>;

/// The outcome of a cross-repository mount request.
#[derive(Debug)]
pub enum Mount {
    Mounted,
    /// The registry declined and opened an upload session instead.
    Upload(Url),
}

#[derive(Default)]
struct RegistryState {
    challenge: OnceCell<Challenge>,
    tokens: Mutex<HashMap<String, Token>>,
    /// The pull budget ran out: no more pulls until then (for this run).
    exhausted_until: std::sync::Mutex<Option<std::time::SystemTime>>,
}

/// How patient the client is.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Further attempts after a retryable failure.
    pub retries: u32,
    /// Connect timeout, and the longest a response may stay silent.
    pub timeout: Duration,
    /// Connection settings per registry host.
    pub registries: BTreeMap<String, RegistryOptions>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retries: 4,
            timeout: Duration::from_secs(60),
            registries: BTreeMap::new(),
        }
    }
}

/// One HTTP client (connection reuse) and the auth state of every registry.
pub struct Client {
    /// For registries without settings of their own.
    default_http: reqwest::Client,
    /// Registries with a `registries:` entry (CA, client certificate, insecure).
    custom_http: HashMap<String, reqwest::Client>,
    credentials: Arc<Chain>,
    registries: std::sync::Mutex<HashMap<Registry, Arc<RegistryState>>>,
    settings: Settings,
}

fn pull(repo: &Repository) -> String {
    format!("repository:{}:pull", repo.path)
}

fn push(repo: &Repository) -> String {
    format!("repository:{}:pull,push", repo.path)
}

impl Client {
    pub fn new(credentials: Arc<Chain>, settings: Settings) -> Result<Client> {
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("replicant/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
                .read_timeout(settings.timeout)
                .pool_idle_timeout(Duration::from_secs(90))
        };
        let failed = |what: String, e: &dyn std::fmt::Display| StoreError::new(what, ErrorKind::Io(e.to_string()));
        let default_http = builder()
            .build()
            .map_err(|e| failed("creating the HTTP client".into(), &e))?;
        let mut custom_http = HashMap::new();
        for (host, o) in &settings.registries {
            let ctx = |what: String| format!("registries: {host}: {what}");
            let mut b = builder();
            if let Some(path) = &o.ca_file {
                let shown = path.display();
                let pem = std::fs::read(path).map_err(|e| failed(ctx(format!("ca-file {shown}")), &e))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .ok()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| failed(ctx(format!("ca-file {shown}")), &"it holds no PEM certificate"))?;
                b = b.tls_certs_merge(certs);
            }
            if let (Some(cert), Some(key)) = (&o.cert_file, &o.key_file) {
                let mut pem =
                    std::fs::read(cert).map_err(|e| failed(ctx(format!("cert-file {}", cert.display())), &e))?;
                pem.extend(std::fs::read(key).map_err(|e| failed(ctx(format!("key-file {}", key.display())), &e))?);
                let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    failed(
                        ctx("cert-file and key-file are not a PEM certificate and key".into()),
                        &e,
                    )
                })?;
                b = b.identity(id);
            }
            if o.insecure {
                tracing::warn!(registry = %host, "TLS certificates are not verified (insecure: true)");
                b = b.tls_danger_accept_invalid_certs(true);
            }
            let client = b.build().map_err(|e| failed(ctx("TLS settings".into()), &e))?;
            custom_http.insert(host.clone(), client);
        }
        Ok(Client {
            default_http,
            custom_http,
            credentials,
            registries: std::sync::Mutex::new(HashMap::new()),
            settings,
        })
    }

    fn http(&self, registry: &Registry) -> &reqwest::Client {
        self.custom_http.get(&registry.host).unwrap_or(&self.default_http)
    }

    /// `https://host` or, for loopback registries (unless configured for
    /// TLS), `http://host`.
    fn base_url(&self, registry: &Registry) -> String {
        let tls = match self.settings.registries.get(&registry.host) {
            Some(o) => o.uses_tls(registry.is_loopback()),
            None => !registry.is_loopback(),
        };
        format!("{}://{}", if tls { "https" } else { "http" }, registry.host)
    }

    /// Credentials never travel in clear text beyond this machine.
    fn cleartext_forbidden(&self, registry: &Registry) -> bool {
        !registry.is_loopback() && self.base_url(registry).starts_with("http:")
    }

    /// The credential for a registry, unless it would go out in clear text.
    async fn credential(&self, registry: &Registry) -> Option<crate::credentials::Found> {
        if self.cleartext_forbidden(registry) {
            tracing::warn!(registry = %registry, "plain HTTP to a remote registry: no credentials are sent");
            return None;
        }
        self.credentials.get(registry).await
    }

    fn state(&self, registry: &Registry) -> Arc<RegistryState> {
        let mut map = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(registry.clone()).or_default().clone()
    }

    fn url(&self, repo: &Repository, rest: &str) -> String {
        format!("{}/v2/{}/{}", self.base_url(&repo.registry), repo.path, rest)
    }

    /// Runs `op` again after retryable failures (network, timeouts, 408,
    /// 429, 5xx, damaged content), waiting as the registry asks or with
    /// backoff, at most `retries` more times.
    async fn with_retries<T, F, Fut>(&self, registry: &Registry, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if attempt < self.settings.retries && e.is_retryable() => {
                    let wait = e.retry_after.unwrap_or_else(|| backoff(attempt));
                    attempt += 1;
                    tracing::debug!("{e}; attempt {attempt} of {} in {wait:?}", self.settings.retries);
                    tokio::time::sleep(wait).await;
                }
                // still throttled after every retry: the budget is spent
                Err(e) if e.status() == Some(429) => {
                    let wait = e.retry_after.unwrap_or(Duration::from_secs(3600));
                    self.exhaust(registry, wait);
                    return Err(e);
                }
                result => return result,
            }
        }
    }

    /// Stops pulling from `registry` for the rest of the run.
    fn exhaust(&self, registry: &Registry, wait: Duration) {
        let until = std::time::SystemTime::now() + wait;
        let state = self.state(registry);
        let mut slot = state.exhausted_until.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            tracing::warn!(registry = %registry, "pull budget exhausted: no more pulls from it in this run");
        }
        *slot = Some(until);
    }

    /// An error for a pull from a registry whose budget is spent.
    fn refuse_if_exhausted(&self, registry: &Registry, ctx: &str) -> Result<()> {
        let state = self.state(registry);
        let until = *state.exhausted_until.lock().unwrap_or_else(|p| p.into_inner());
        match until {
            Some(until) => Err(StoreError::new(
                ctx,
                ErrorKind::RateLimited {
                    registry: registry.host.clone(),
                    until,
                },
            )),
            None => Ok(()),
        }
    }

    /// Registries whose pull budget ran out in this run, with when to retry.
    pub fn exhausted(&self) -> Vec<(String, std::time::SystemTime)> {
        let map = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = map
            .iter()
            .filter_map(|(r, s)| {
                (*s.exhausted_until.lock().unwrap_or_else(|p| p.into_inner())).map(|u| (r.host.clone(), u))
            })
            .collect();
        out.sort();
        out
    }

    // ---- authentication ------------------------------------------------

    async fn ping(&self, registry: &Registry) -> Result<Challenge> {
        let ctx = format!("{registry}: GET /v2/");
        let resp = self
            .http(registry)
            .get(format!("{}/v2/", self.base_url(registry)))
            .send()
            .await
            .map_err(|e| network(&ctx, e))?;
        tracing::debug!(registry = %registry, status = resp.status().as_u16(), "ping");
        match resp.status() {
            s if s.is_success() => Ok(Challenge::None),
            StatusCode::UNAUTHORIZED => {
                let header = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                parse_challenge(header).ok_or_else(|| {
                    let shown: String = header.chars().take(200).collect();
                    StoreError::new(
                        ctx,
                        ErrorKind::Protocol(format!("unusable WWW-Authenticate challenge \"{shown}\"")),
                    )
                })
            }
            _ => Err(self.failure(resp, &ctx, registry).await),
        }
    }

    async fn authorization(&self, registry: &Registry, scopes: &[String], ctx: &str) -> Result<Option<String>> {
        let state = self.state(registry);
        let challenge = state
            .challenge
            .get_or_try_init(|| self.with_retries(registry, || self.ping(registry)))
            .await?;
        match challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(match self.credential(registry).await.map(|f| f.credential) {
                Some(Credential::Basic { username, password }) => Some(basic(&username, &password)),
                _ => None,
            }),
            Challenge::Bearer { realm, service } => {
                let key = scope_key(scopes);
                let mut tokens = state.tokens.lock().await;
                if let Some(t) = tokens.get(&key).filter(|t| t.is_fresh()) {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let token = self
                    .fetch_token(registry, realm, service.as_deref(), scopes, ctx)
                    .await?;
                let header = format!("Bearer {}", token.value);
                tokens.insert(key, token);
                Ok(Some(header))
            }
        }
    }

    async fn forget_token(&self, registry: &Registry, scopes: &[String]) {
        self.state(registry).tokens.lock().await.remove(&scope_key(scopes));
    }

    async fn fetch_token(
        &self,
        registry: &Registry,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        ctx: &str,
    ) -> Result<Token> {
        let ctx = format!("{ctx}: token from {realm}");
        let mut url = Url::parse(realm)
            .map_err(|e| StoreError::new(&ctx, ErrorKind::Protocol(format!("bad token realm: {e}"))))?;
        let found = self.credential(registry).await;
        let realm_is_loopback = url.host_str().is_some_and(|h| Registry::new(h).is_loopback());
        if url.scheme() != "https" && !(url.scheme() == "http" && realm_is_loopback) {
            return Err(StoreError::new(
                ctx,
                ErrorKind::Protocol("token realm must use https (plain http only on loopback)".into()),
            ));
        }
        let request = match found.as_ref().map(|f| &f.credential) {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", refresh.clone()),
                    ("client_id", "replicant".to_string()),
                    ("scope", scopes.join(" ")),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_string()));
                }
                self.http(registry).post(url).form(&form)
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let req = self.http(registry).get(url);
                match other {
                    Some(Credential::Basic { username, password }) => {
                        req.header(AUTHORIZATION, basic(username, password))
                    }
                    _ => req,
                }
            }
        };
        let resp = request.send().await.map_err(|e| network(&ctx, e))?;
        tracing::debug!(registry = %registry, scopes = %scopes.join(" "), status = resp.status().as_u16(), "token request");
        if !resp.status().is_success() {
            return Err(self.failure(resp, &ctx, registry).await);
        }
        let body = read_limited(resp, MAX_TOKEN_BODY, &ctx).await?;
        serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| StoreError::new(ctx, ErrorKind::Protocol("token response has no token".into())))
    }

    /// Sends a request built by `build`, authenticated for `scopes`. A 401
    /// (an expired or revoked token) re-authenticates once and resends.
    async fn send(
        &self,
        repo: &Repository,
        scopes: &[String],
        ctx: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        let mut resp = self.send_once(repo, scopes, ctx, build()).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.forget_token(&repo.registry, scopes).await;
            resp = self.send_once(repo, scopes, ctx, build()).await?;
        }
        Ok(resp)
    }

    /// Sends once; for bodies that cannot be replayed.
    async fn send_once(
        &self,
        repo: &Repository,
        scopes: &[String],
        ctx: &str,
        builder: RequestBuilder,
    ) -> Result<Response> {
        let mut request = builder.build().map_err(|e| network(ctx, e))?;
        // Never hand our credentials to another host (e.g. an upload
        // location on object storage).
        if same_authority(request.url(), &repo.registry)
            && let Some(auth) = self.authorization(&repo.registry, scopes, ctx).await?
        {
            let value = auth
                .parse()
                .map_err(|_| StoreError::new(ctx, ErrorKind::Protocol("token is not a valid header value".into())))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let (method, url) = (request.method().clone(), request.url().path().to_string());
        let resp = self
            .http(&repo.registry)
            .execute(request)
            .await
            .map_err(|e| network(ctx, e))?;
        tracing::debug!(%method, registry = %repo.registry, path = %url, status = resp.status().as_u16(), "request");
        if let Some((remaining, window)) = rate_limit(resp.headers()) {
            tracing::debug!(registry = %repo.registry, remaining, window_seconds = window.as_secs(), "pull budget");
            if remaining == 0 {
                self.exhaust(&repo.registry, window);
            }
        }
        Ok(resp)
    }

    /// Turns an unexpected response into an error naming what went wrong.
    async fn failure(&self, resp: Response, ctx: &str, registry: &Registry) -> StoreError {
        let status = resp.status().as_u16();
        let wait = retry_after(resp.headers());
        let body = read_limited(resp, MAX_ERROR_BODY, ctx).await.unwrap_or_default();
        let errors = parse_api_errors(&body);
        if status == 401 || status == 403 {
            let detail = match self.credential(registry).await {
                Some(found) => format!("the credentials from {} were refused or lack permission", found.source),
                None => format!(
                    "no credentials for {registry} were found (looked in {}); access was anonymous",
                    self.credentials.looked_in(registry)
                ),
            };
            return StoreError::new(ctx, ErrorKind::Unauthorized { status, errors, detail });
        }
        let mut e = StoreError::new(ctx, ErrorKind::Status { status, errors });
        e.retry_after = wait;
        e
    }

    // ---- operations, each retried as a whole -------------------------------

    pub async fn list_tags(&self, repo: &Repository) -> Result<Option<Vec<String>>> {
        self.with_retries(&repo.registry, || self.list_tags_once(repo)).await
    }

    pub async fn head_manifest(&self, repo: &Repository, reference: &str, write: bool) -> Result<Option<ManifestHead>> {
        self.with_retries(&repo.registry, || self.head_manifest_once(repo, reference, write))
            .await
    }

    pub async fn get_manifest(&self, repo: &Repository, reference: &str) -> Result<FetchedManifest> {
        self.with_retries(&repo.registry, || self.get_manifest_once(repo, reference))
            .await
    }

    pub async fn put_manifest(&self, repo: &Repository, reference: &str, m: &FetchedManifest) -> Result<()> {
        self.with_retries(&repo.registry, || self.put_manifest_once(repo, reference, m))
            .await
    }

    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest, write: bool) -> Result<bool> {
        self.with_retries(&repo.registry, || self.blob_exists_once(repo, digest, write))
            .await
    }

    pub async fn get_blob(&self, repo: &Repository, digest: &Digest) -> Result<Response> {
        self.with_retries(&repo.registry, || self.get_blob_once(repo, digest))
            .await
    }

    pub async fn mount_blob(&self, repo: &Repository, digest: &Digest, from: &Repository) -> Result<Mount> {
        self.with_retries(&repo.registry, || self.mount_blob_once(repo, digest, from))
            .await
    }

    pub async fn start_upload(&self, repo: &Repository) -> Result<Url> {
        self.with_retries(&repo.registry, || self.start_upload_once(repo)).await
    }

    // ---- tags ------------------------------------------------------------

    /// All tags of a repository, following `Link` pagination; `None` when
    /// the repository does not exist.
    async fn list_tags_once(&self, repo: &Repository) -> Result<Option<Vec<String>>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let ctx = format!("{repo}: list tags");
        let scopes = [pull(repo)];
        let mut next = Some(self.url(repo, "tags/list?n=1000"));
        let mut all = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_TAG_PAGES {
                return Err(StoreError::new(
                    ctx,
                    ErrorKind::Protocol("too many tag list pages".into()),
                ));
            }
            let resp = self
                .send(repo, &scopes, &ctx, || self.http(&repo.registry).get(&url))
                .await?;
            if resp.status() == StatusCode::NOT_FOUND && pages == 1 {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(self.failure(resp, &ctx, &repo.registry).await);
            }
            next = next_link(resp.headers(), &url);
            let body = read_limited(resp, MAX_TAGS_PAGE, &ctx).await?;
            let page: Page = serde_json::from_slice(&body)
                .map_err(|e| StoreError::new(&ctx, ErrorKind::Protocol(format!("bad tag list: {e}"))))?;
            all.extend(page.tags.unwrap_or_default().into_iter().filter(|t| {
                let ok = is_valid_tag(t);
                if !ok {
                    tracing::warn!(repository = %repo, "ignoring invalid tag name {:?}", t.chars().take(140).collect::<String>());
                }
                ok
            }));
        }
        Ok(Some(all))
    }

    // ---- manifests -------------------------------------------------------

    /// HEAD a manifest: `None` when the tag or digest does not exist. Any
    /// other failure is an error, never taken for "present" or "absent".
    async fn head_manifest_once(
        &self,
        repo: &Repository,
        reference: &str,
        write: bool,
    ) -> Result<Option<ManifestHead>> {
        let ctx = format!("{repo}: HEAD manifest {reference}");
        let scopes = [if write { push(repo) } else { pull(repo) }];
        let url = self.url(repo, &format!("manifests/{reference}"));
        let resp = self
            .send(repo, &scopes, &ctx, || {
                self.http(&repo.registry).head(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(ManifestHead {
                digest: header(resp.headers(), DOCKER_CONTENT_DIGEST).and_then(|d| Digest::parse(&d).ok()),
                media_type: header(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default(),
            })),
            _ => Err(self.failure(resp, &ctx, &repo.registry).await),
        }
    }

    /// GET a manifest's bytes and verify them: against `reference` when it
    /// is a digest, else against the registry's `Docker-Content-Digest`.
    async fn get_manifest_once(&self, repo: &Repository, reference: &str) -> Result<FetchedManifest> {
        let ctx = format!("{repo}: GET manifest {reference}");
        self.refuse_if_exhausted(&repo.registry, &ctx)?;
        let scopes = [pull(repo)];
        let url = self.url(repo, &format!("manifests/{reference}"));
        let resp = self
            .send(repo, &scopes, &ctx, || {
                self.http(&repo.registry).get(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.failure(resp, &ctx, &repo.registry).await);
        }
        let media_type = header(resp.headers(), CONTENT_TYPE.as_str()).unwrap_or_default();
        let claimed = match header(resp.headers(), DOCKER_CONTENT_DIGEST) {
            Some(d) => Some(Digest::parse(&d).map_err(|e| StoreError::new(&ctx, ErrorKind::Protocol(e.to_string())))?),
            None => None,
        };
        let bytes = bytes::Bytes::from(read_limited(resp, MAX_MANIFEST_BYTES, &ctx).await?);
        let expected = match (Digest::parse(reference).ok(), claimed) {
            (Some(d), _) => d,
            (None, Some(d)) => d,
            (None, None) => Digest::sha256_of(&bytes),
        };
        let mut v = expected.verifier();
        v.update(&bytes);
        v.finish().map_err(|actual| {
            StoreError::new(
                &ctx,
                ErrorKind::DigestMismatch {
                    expected: expected.to_string(),
                    actual,
                },
            )
        })?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest: expected,
        })
    }

    /// PUT the original bytes of a manifest under a tag or its digest.
    async fn put_manifest_once(&self, repo: &Repository, reference: &str, m: &FetchedManifest) -> Result<()> {
        let ctx = format!("{repo}: PUT manifest {reference}");
        let scopes = [push(repo)];
        let url = self.url(repo, &format!("manifests/{reference}"));
        let resp = self
            .send(repo, &scopes, &ctx, || {
                self.http(&repo.registry)
                    .put(&url)
                    .header(CONTENT_TYPE, &m.media_type)
                    .body(m.bytes.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.failure(resp, &ctx, &repo.registry).await);
        }
        if let Some(stored) = header(resp.headers(), DOCKER_CONTENT_DIGEST)
            && stored.split(':').next() == Some(m.digest.algorithm())
            && stored != m.digest.as_str()
        {
            let kind = ErrorKind::DigestMismatch {
                expected: m.digest.to_string(),
                actual: stored,
            };
            return Err(StoreError::new(ctx, kind));
        }
        Ok(())
    }

    // ---- blobs -----------------------------------------------------------

    async fn blob_exists_once(&self, repo: &Repository, digest: &Digest, write: bool) -> Result<bool> {
        let ctx = format!("{repo}: HEAD blob {digest}");
        let scopes = [if write { push(repo) } else { pull(repo) }];
        let url = self.url(repo, &format!("blobs/{digest}"));
        let resp = self
            .send(repo, &scopes, &ctx, || self.http(&repo.registry).head(&url))
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.failure(resp, &ctx, &repo.registry).await),
        }
    }

    /// GET a blob; the caller streams and verifies the body.
    async fn get_blob_once(&self, repo: &Repository, digest: &Digest) -> Result<Response> {
        let ctx = format!("{repo}: GET blob {digest}");
        self.refuse_if_exhausted(&repo.registry, &ctx)?;
        let url = self.url(repo, &format!("blobs/{digest}"));
        let resp = self
            .send(repo, &[pull(repo)], &ctx, || self.http(&repo.registry).get(&url))
            .await?;
        if !resp.status().is_success() {
            return Err(self.failure(resp, &ctx, &repo.registry).await);
        }
        Ok(resp)
    }

    /// Asks the registry to mount `digest` from `from` (same registry).
    async fn mount_blob_once(&self, repo: &Repository, digest: &Digest, from: &Repository) -> Result<Mount> {
        let ctx = format!("{repo}: mount blob {digest} from {}", from.path);
        let scopes = [push(repo), pull(from)];
        let mut url = Url::parse(&self.url(repo, "blobs/uploads/")).map_err(|e| protocol(&ctx, e))?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", &from.path);
        let resp = self
            .send(repo, &scopes, &ctx, || {
                self.http(&repo.registry).post(url.clone()).header(CONTENT_LENGTH, "0")
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(self.location(repo, resp.headers(), &ctx)?)),
            _ => Err(self.failure(resp, &ctx, &repo.registry).await),
        }
    }

    /// Opens an upload session and returns its location.
    async fn start_upload_once(&self, repo: &Repository) -> Result<Url> {
        let ctx = format!("{repo}: start upload");
        let url = self.url(repo, "blobs/uploads/");
        let resp = self
            .send(repo, &[push(repo)], &ctx, || {
                self.http(&repo.registry).post(&url).header(CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.failure(resp, &ctx, &repo.registry).await);
        }
        self.location(repo, resp.headers(), &ctx)
    }

    /// Uploads a whole blob in one streamed PUT with `Content-Length`, or,
    /// when the length is unknown, one streamed PATCH and a closing PUT.
    pub async fn upload_blob(
        &self,
        repo: &Repository,
        location: Url,
        digest: &Digest,
        size: Option<u64>,
        body: reqwest::Body,
    ) -> Result<()> {
        let ctx = format!("{repo}: upload blob {digest}");
        let scopes = [push(repo)];
        let mut location = location;
        let body = match size {
            Some(len) => Some((len, body)),
            None => {
                let patch = self
                    .http(&repo.registry)
                    .request(Method::PATCH, location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body);
                let resp = self.send_once(repo, &scopes, &ctx, patch).await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self.failure(resp, &ctx, &repo.registry).await);
                }
                location = self.location(repo, resp.headers(), &ctx)?;
                None
            }
        };
        location.query_pairs_mut().append_pair("digest", digest.as_str());
        let put = self
            .http(&repo.registry)
            .put(location)
            .header(CONTENT_TYPE, "application/octet-stream");
        let put = match body {
            Some((len, body)) => put.header(CONTENT_LENGTH, len).body(body),
            None => put.header(CONTENT_LENGTH, 0),
        };
        let resp = self.send_once(repo, &scopes, &ctx, put).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.failure(resp, &ctx, &repo.registry).await);
        }
        Ok(())
    }

    fn location(&self, repo: &Repository, headers: &HeaderMap, ctx: &str) -> Result<Url> {
        let loc = header(headers, LOCATION.as_str())
            .ok_or_else(|| StoreError::new(ctx, ErrorKind::Protocol("upload response has no Location".into())))?;
        let base = Url::parse(&format!("{}/", self.base_url(&repo.registry))).map_err(|e| protocol(ctx, e))?;
        let url = base.join(&loc).map_err(|e| protocol(ctx, e))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(protocol(ctx, "upload Location is not http(s)"));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_travel_in_clear_text_to_a_remote_host() {
        let mut settings = Settings::default();
        let plain = RegistryOptions {
            tls: Some(false),
            ..RegistryOptions::default()
        };
        settings.registries.insert("r.example.com".into(), plain);
        settings.registries.insert(
            "127.0.0.1:5443".into(),
            RegistryOptions {
                tls: Some(true),
                ..Default::default()
            },
        );
        let c = Client::new(Arc::new(Chain::new(vec![])), settings).unwrap();
        let remote = Registry::new("r.example.com");
        assert_eq!(c.base_url(&remote), "http://r.example.com");
        assert!(c.cleartext_forbidden(&remote));
        assert_eq!(c.base_url(&Registry::new("127.0.0.1:5443")), "https://127.0.0.1:5443");
        assert!(!c.cleartext_forbidden(&Registry::new("127.0.0.1:5000")));
        assert_eq!(c.base_url(&Registry::new("quay.io")), "https://quay.io");
        assert!(!c.cleartext_forbidden(&Registry::new("quay.io")));
    }
}
