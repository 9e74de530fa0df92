//! The one layer that sends HTTP requests to registries. Everything about
//! *how* a request travels lives here, so the operations above it (and the
//! copy engine above those) never see a token or a retry:
//!
//! - **Retries, once.** An exchange (request, response, and reading a small
//!   body) is attempted at most `retries + 1` times, with exponential backoff
//!   and jitter, honouring `Retry-After`. A 401 renews the token once
//!   without counting as a retry. Errors that leave here carry
//!   `retries_spent`, so no layer above retries them again.
//! - **Auth.** The `/v2/` ping learns the challenge (once per registry per
//!   run); Bearer tokens are cached per scope until they expire, and
//!   copies that need one scope at once wait for one fetch of it.
//! - **How many at once.** Each registry has a limit on requests in flight
//!   that adapts to its answers ([`super::limit`]); a request waits for a
//!   slot, and gives it back when its answer is read (not while it backs
//!   off between attempts).
//! - **Fail fast.** A ping that fails after its retries marks the registry
//!   unreachable for the rest of the run: every later request to it fails at
//!   once, citing that first failure.
//! - **Pull budget.** A registry still throttling after every retry, or
//!   reporting no pulls left, is not pulled from again in the run.

use crate::lock;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use url::Url;

use super::auth::{Challenge, Token, TokenResponse, parse_challenge, scope_key};
use super::connect::{Connections, TransportSettings};
use super::wire::{MAX_ERROR_BODY, basic, classify, protocol, rate_limit, read_limited, retry_after, same_origin};
use crate::backoff::backoff;
use crate::credentials::{Chain, Credential, Found};
use crate::error::{Cause, ErrorKind, StoreError, parse_api_errors, printable};
use crate::limit::{Limiter, Signal};
use crate::model::{Registry, Repository};

type Result<T> = std::result::Result<T, StoreError>;

const MAX_TOKEN_BODY: usize = 1024 * 1024;

/// What the transport knows about one registry during a run.
struct RegistryState {
    /// The ping's outcome, remembered for the run: the challenge, or why the
    /// registry is unreachable. The async lock makes concurrent first
    /// requests wait for one ping instead of each pinging.
    ping: tokio::sync::Mutex<Option<std::result::Result<Challenge, Arc<StoreError>>>>,
    /// Tokens by scope. Each scope has its own lock, so that copies
    /// needing the same scope at once wait for one fetch, while different
    /// scopes are fetched side by side.
    tokens: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
    /// How many requests may be in flight (see [`super::limit`]).
    limiter: Arc<Limiter>,
    /// The pull budget ran out: no more pulls until then (for this run).
    exhausted_until: Mutex<Option<SystemTime>>,
    /// Said once per run that credentials are withheld over plain HTTP.
    cleartext_warned: std::sync::atomic::AtomicBool,
}

impl RegistryState {
    fn new(registry: &Registry, ceiling: usize) -> RegistryState {
        RegistryState {
            ping: Default::default(),
            tokens: Default::default(),
            limiter: Limiter::new(&registry.to_string(), ceiling),
            exhausted_until: Default::default(),
            cleartext_warned: Default::default(),
        }
    }

    /// The lock of one scope's token.
    fn token_slot(&self, key: String) -> Arc<tokio::sync::Mutex<Option<Token>>> {
        lock(&self.tokens).entry(key).or_default().clone()
    }
}

/// A request ready to send, with the client it was built from.
type Prepared = (reqwest::Client, reqwest::Request);

/// Whether a request reads from the registry in a way that counts against
/// a pull budget (manifest and blob GETs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spend {
    Pull,
    Free,
}

pub(super) struct Transport {
    connections: Connections,
    credentials: Arc<Chain>,
    registries: Mutex<HashMap<Registry, Arc<RegistryState>>>,
    retries: u32,
    deadline: Duration,
    /// The ceiling of each registry's adaptive limit.
    max_connections: usize,
    pub(super) traffic: super::Traffic,
}

impl Transport {
    pub(super) fn new(credentials: Arc<Chain>, settings: &TransportSettings) -> Result<Transport> {
        let connections = Connections::new(settings)
            .map_err(|e| StoreError::new("creating the HTTP clients", ErrorKind::Io(Cause::new(e.to_string(), e))))?;
        Ok(Transport {
            connections,
            credentials,
            registries: Mutex::new(HashMap::new()),
            retries: settings.retries,
            deadline: settings.response_deadline,
            max_connections: settings.max_connections,
            traffic: super::Traffic::default(),
        })
    }

    pub(super) fn http(&self, registry: &Registry) -> &reqwest::Client {
        self.connections.http(registry)
    }

    pub(super) fn base_url(&self, registry: &Registry) -> String {
        self.connections.base_url(registry)
    }

    fn state(&self, registry: &Registry) -> Arc<RegistryState> {
        lock(&self.registries)
            .entry(registry.clone())
            .or_insert_with(|| Arc::new(RegistryState::new(registry, self.max_connections)))
            .clone()
    }

    /// How many requests may go to `registry` at once, adapting.
    pub(super) fn limiter(&self, registry: &Registry) -> Arc<Limiter> {
        self.state(registry).limiter.clone()
    }

    /// One exchange, retried: `build` makes the request (again for each
    /// attempt), `read` turns the response into a value or an error (an
    /// unexpected status through [`Transport::failure`]).
    pub(super) async fn exchange<T, R, Fut>(
        &self,
        repo: &Repository,
        scopes: &[String],
        ctx: &str,
        spend: Spend,
        build: impl Fn() -> RequestBuilder,
        read: R,
    ) -> Result<T>
    where
        R: Fn(Response) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let registry = &repo.registry;
        self.retried(ctx, || async {
            if spend == Spend::Pull {
                self.refuse_if_exhausted(registry, ctx)?;
            }
            // auth first: the ping and the token are exchanges of their own,
            // with their own deadlines; this one's deadline is for its answer
            let request = self.prepare(repo, scopes, ctx, build()).await?;
            // a slot for this attempt only: none is held while backing off
            let _slot = self.limiter(registry).acquire_uncovered().await;
            self.bounded(ctx, async {
                let mut resp = self.execute(repo, ctx, request).await?;
                if resp.status() == StatusCode::UNAUTHORIZED {
                    // an expired or revoked token: renew once, not a retry
                    self.credentials.refused(registry).await;
                    self.forget_token(registry, scopes).await;
                    let again = self.prepare(repo, scopes, ctx, build()).await?;
                    resp = self.execute(repo, ctx, again).await?;
                }
                read(resp).await
            })
            .await
        })
        .await
        .map_err(|e| {
            if e.status() != Some(429) {
                return e;
            }
            // still throttled after every retry: the budget is spent
            let until = self.exhaust(registry, e.retry_after.unwrap_or(Duration::from_secs(3600)));
            let registry = registry.host.clone();
            let kind = ErrorKind::RateLimited {
                registry,
                until,
                throttled: true,
            };
            StoreError::new(ctx, kind)
        })
    }

    /// One answer, within the response deadline however it trickles in.
    async fn bounded<T>(&self, ctx: &str, answer: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.deadline, answer).await.unwrap_or_else(|_| {
            let why = format!(
                "no complete answer within {} s (--response-deadline)",
                self.deadline.as_secs()
            );
            Err(StoreError::new(ctx, ErrorKind::Network(why.into())))
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or has been tried
    /// `retries + 1` times. The error that comes out is marked spent.
    async fn retried<T, F, Fut>(&self, ctx: &str, attempt: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut failures = 0;
        loop {
            match attempt().await {
                Err(e) if failures < self.retries && e.is_retryable() => {
                    let wait = e.retry_after.unwrap_or_else(|| backoff(failures));
                    failures += 1;
                    tracing::debug!("{e}; attempt {} of {} in {wait:?}", failures + 1, self.retries + 1);
                    tokio::time::sleep(wait).await;
                }
                Err(mut e) => {
                    if failures > 0 {
                        tracing::debug!("{ctx}: giving up after {} attempts", failures + 1);
                    }
                    e.retries_spent = true;
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    /// The client for streamed uploads (no read timeout: see `connect`).
    pub(super) fn uploading(&self, registry: &Registry) -> &reqwest::Client {
        self.connections.uploading(registry)
    }

    /// Sends a streamed upload once (a streamed body cannot be replayed).
    /// The registry's answer must come within the response deadline of the
    /// body's end (`body_sent`); before that, the body's own pace rules.
    pub(super) async fn send_upload(
        &self,
        repo: &Repository,
        scopes: &[String],
        ctx: &str,
        builder: RequestBuilder,
        body_sent: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<Response> {
        let answer_due = async {
            let _ = body_sent.await;
            tokio::time::sleep(self.deadline).await;
        };
        let request = self.prepare(repo, scopes, ctx, builder).await?;
        let _slot = self.limiter(&repo.registry).acquire_uncovered().await;
        tokio::select! {
            resp = self.execute(repo, ctx, request) => resp,
            () = answer_due => {
                let why = format!(
                    "no answer within {} s of the upload's end (--response-deadline)",
                    self.deadline.as_secs()
                );
                Err(StoreError::new(ctx, ErrorKind::Network(why.into())))
            }
        }
    }

    /// Builds a request, authenticated for `scopes` when it goes to the
    /// registry itself, with the client it was built from (which says how
    /// patient to be: uploads come from the client without a read timeout).
    async fn prepare(
        &self,
        repo: &Repository,
        scopes: &[String],
        ctx: &str,
        builder: RequestBuilder,
    ) -> Result<Prepared> {
        let registry = &repo.registry;
        let (client, request) = builder.build_split();
        let mut request = request.map_err(|e| classify(ctx, registry, e))?;
        // Our credentials go only to the registry itself, over the scheme
        // it was reached with (never to object storage, never downgraded).
        let origin = Url::parse(&self.base_url(registry)).map_err(|e| protocol(ctx, e))?;
        if same_origin(request.url(), &origin) {
            if let Some(auth) = self.authorization(registry, scopes, ctx).await? {
                let value = auth
                    .parse()
                    .map_err(|_| protocol(ctx, "token is not a valid header value"))?;
                request.headers_mut().insert(AUTHORIZATION, value);
            }
        } else {
            // never pull from an unreachable registry's redirect either
            self.health(registry, ctx).await?;
        }
        Ok((client, request))
    }

    /// Sends a prepared request once.
    async fn execute(&self, repo: &Repository, ctx: &str, (client, request): Prepared) -> Result<Response> {
        let registry = &repo.registry;
        let (method, path) = (request.method().clone(), request.url().path().to_string());
        let resp = client.execute(request).await.map_err(|e| {
            self.traffic.request(registry, method.as_str(), None);
            self.limiter(registry).record_failure(&e);
            classify(ctx, registry, e)
        })?;
        self.traffic
            .request(registry, method.as_str(), Some(resp.status().as_u16()));
        self.limiter(registry).record(Signal::of_status(resp.status().as_u16()));
        tracing::debug!(%method, registry = %registry, %path, status = resp.status().as_u16(), "request");
        if let Some((remaining, window)) = rate_limit(resp.headers()) {
            self.traffic.budget(registry, remaining);
            tracing::debug!(registry = %registry, remaining, window_seconds = window.as_secs(), "pull budget");
            if remaining == 0 {
                self.exhaust(registry, window);
            }
        }
        Ok(resp)
    }

    // ---- registry health: the ping, remembered ----------------------------

    /// The registry's challenge, pinging it on first use. A failed ping
    /// (after its retries) marks the registry unreachable for the run.
    async fn health(&self, registry: &Registry, ctx: &str) -> Result<Challenge> {
        let state = self.state(registry);
        let mut ping = state.ping.lock().await;
        if ping.is_none() {
            let ping_ctx = format!("{registry}: GET /v2/");
            let attempt = || self.bounded(&ping_ctx, self.ping(registry, &ping_ctx));
            let outcome = match self.retried(&ping_ctx, attempt).await {
                Ok(c) => Ok(c),
                // a throttled ping is a budget problem, not a dead registry
                Err(e) if e.status() == Some(429) => return Err(e),
                Err(e) => {
                    tracing::warn!(registry = %registry, "unreachable for the rest of this run: {}", printable(&e.to_string(), 2000));
                    Err(Arc::new(e))
                }
            };
            *ping = Some(outcome);
        }
        match ping.as_ref() {
            Some(Ok(c)) => Ok(c.clone()),
            Some(Err(first)) => Err(unreachable(ctx, registry, first.clone())),
            None => Err(protocol(ctx, "no ping result")),
        }
    }

    async fn ping(&self, registry: &Registry, ctx: &str) -> Result<Challenge> {
        let resp = self
            .http(registry)
            .get(format!("{}/v2/", self.base_url(registry)))
            .send()
            .await;
        self.traffic
            .request(registry, "GET", resp.as_ref().ok().map(|r| r.status().as_u16()));
        if let Err(e) = &resp {
            self.limiter(registry).record_failure(e);
        }
        let resp = match resp {
            Ok(r) => r,
            Err(e) if e.is_connect() && !resolves(registry).await => {
                let message = "no address found".to_string();
                let host = registry.hostname().to_string();
                return Err(StoreError::new(ctx, ErrorKind::Dns { host, message }));
            }
            Err(e) => return Err(classify(ctx, registry, e)),
        };
        tracing::debug!(registry = %registry, status = resp.status().as_u16(), "ping");
        self.limiter(registry).record(Signal::of_status(resp.status().as_u16()));
        match resp.status() {
            s if s.is_success() => Ok(Challenge::None),
            StatusCode::UNAUTHORIZED => {
                let header = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                parse_challenge(header).ok_or_else(|| {
                    let shown = printable(header, 200);
                    protocol(ctx, format!("unusable WWW-Authenticate challenge \"{shown}\""))
                })
            }
            _ => Err(self.failure(resp, ctx, registry).await),
        }
    }

    // ---- authentication ---------------------------------------------------

    /// The credential for a registry, unless it would go out in clear text.
    async fn credential(&self, registry: &Registry) -> Option<Found> {
        if self.connections.cleartext_forbidden(registry) {
            if !self
                .state(registry)
                .cleartext_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    registry = %registry,
                    "{registry} is spoken to over plain HTTP (tls: false) and is not on this machine: \
                     credentials are not sent to it"
                );
            }
            return None;
        }
        self.credentials.get(registry).await
    }

    async fn authorization(&self, registry: &Registry, scopes: &[String], ctx: &str) -> Result<Option<String>> {
        match self.health(registry, ctx).await? {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(match self.credential(registry).await.map(|f| f.credential) {
                Some(Credential::Basic { username, password }) => Some(basic(&username, &password)),
                _ => None,
            }),
            Challenge::Bearer { realm, service } => {
                let key = scope_key(scopes);
                let slot = self.state(registry).token_slot(key.clone());
                let mut cached = slot.lock().await;
                if let Some(t) = cached.as_ref().filter(|t| t.is_fresh()) {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let ctx = format!("{ctx}: token from {realm}");
                let token = self
                    .retried(&ctx, || {
                        let fetch = self.fetch_token(registry, &realm, service.as_deref(), scopes, &ctx);
                        self.bounded(&ctx, fetch)
                    })
                    .await?;
                tracing::debug!(registry = %registry, scope = %key, "token fetched");
                let header = format!("Bearer {}", token.value);
                *cached = Some(token);
                Ok(Some(header))
            }
        }
    }

    async fn forget_token(&self, registry: &Registry, scopes: &[String]) {
        let slot = self.state(registry).token_slot(scope_key(scopes));
        *slot.lock().await = None;
    }

    async fn fetch_token(
        &self,
        registry: &Registry,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        ctx: &str,
    ) -> Result<Token> {
        let mut url = Url::parse(realm).map_err(|e| protocol(ctx, format!("bad token realm: {e}")))?;
        let realm_is_loopback = url.host_str().is_some_and(|h| Registry::new(h).is_loopback());
        if url.scheme() != "https" && !(url.scheme() == "http" && realm_is_loopback) {
            return Err(protocol(
                ctx,
                "token realm must use https (plain http only on loopback)",
            ));
        }
        let found = self.credential(registry).await;
        let method = match found.as_ref().map(|f| &f.credential) {
            Some(Credential::IdentityToken(_)) => "POST",
            _ => "GET",
        };
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
                self.connections.for_realm(&url, registry).post(url).form(&form)
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
                let req = self.connections.for_realm(&url, registry).get(url);
                match other {
                    Some(Credential::Basic { username, password }) => req.basic_auth(username, Some(password)),
                    _ => req,
                }
            }
        };
        let resp = request.send().await;
        self.traffic
            .request(registry, method, resp.as_ref().ok().map(|r| r.status().as_u16()));
        let resp = resp.map_err(|e| classify(ctx, registry, e))?;
        if !resp.status().is_success() {
            return Err(self.failure(resp, ctx, registry).await);
        }
        let body = read_limited(resp, MAX_TOKEN_BODY, ctx).await?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| protocol(ctx, format!("bad token response: {e}")))?;
        parsed
            .into_token()
            .ok_or_else(|| protocol(ctx, "token response holds no token"))
    }

    // ---- cloud registries -------------------------------------------------

    /// `--retries`: further attempts after a failure that may pass.
    pub(super) fn retries(&self) -> u32 {
        self.retries
    }

    pub(super) fn is_ecr(&self, registry: &Registry) -> bool {
        self.credentials.is_ecr(registry)
    }

    /// Every repository of an ECR registry, from its API; `None` for
    /// another registry (its catalog is asked).
    pub(super) async fn ecr_repositories(&self, registry: &Registry) -> Option<Result<Vec<String>>> {
        let listed = self.credentials.repositories(registry).await?;
        Some(listed.map_err(|e| {
            let ctx = format!("{registry}: listing its repositories");
            StoreError::new(&ctx, ErrorKind::Cloud(Cause::new(e.to_string(), e)))
        }))
    }

    pub(super) async fn ensure_repository(&self, repo: &Repository) -> Result<()> {
        match self.credentials.ensure_repository(&repo.registry, &repo.path).await {
            Ok(true) => {
                tracing::info!(repository = %repo, "created the ECR repository");
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => {
                let ctx = format!("{repo}: creating the repository");
                Err(StoreError::new(&ctx, ErrorKind::Cloud(Cause::new(e.to_string(), e))))
            }
        }
    }

    // ---- failures ---------------------------------------------------------

    /// Turns an unexpected response into an error naming what went wrong.
    pub(super) async fn failure(&self, resp: Response, ctx: &str, registry: &Registry) -> StoreError {
        let status = resp.status().as_u16();
        let wait = retry_after(resp.headers());
        let body = read_limited(resp, MAX_ERROR_BODY, ctx).await.unwrap_or_default();
        let errors = parse_api_errors(&body);
        if status == 401 || status == 403 {
            let detail = if self.connections.cleartext_forbidden(registry) {
                match self.credentials.get(registry).await {
                    Some(found) => format!(
                        "credentials for {registry} were found ({}) but are not sent over plain HTTP (tls: false); \
                         access was anonymous",
                        found.source
                    ),
                    None => format!(
                        "no credentials for {registry} were found, and none would be sent over plain HTTP \
                         (tls: false); access was anonymous"
                    ),
                }
            } else {
                match self.credentials.get(registry).await {
                    Some(found) => format!("the credentials from {} were refused or lack permission", found.source),
                    None => match self.credentials.lookup_failure(registry).await {
                        Some(why) => {
                            format!("the credentials for {registry} could not be read: {why}; access was anonymous")
                        }
                        None => format!(
                            "no credentials for {registry} were found (looked in {}); access was anonymous",
                            self.credentials.looked_in(registry).await
                        ),
                    },
                }
            };
            return StoreError::new(ctx, ErrorKind::Unauthorized { status, errors, detail });
        }
        let mut e = StoreError::new(ctx, ErrorKind::Status { status, errors });
        e.retry_after = wait;
        e
    }

    // ---- pull budget ------------------------------------------------------

    /// Stops pulling from `registry` for the rest of the run; returns when
    /// pulling may resume.
    fn exhaust(&self, registry: &Registry, wait: Duration) -> SystemTime {
        let until = SystemTime::now()
            .checked_add(wait)
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(86_400));
        let state = self.state(registry);
        let mut slot = lock(&state.exhausted_until);
        if slot.is_none() {
            tracing::warn!(registry = %registry, "pull budget exhausted: no more pulls from it in this run");
        }
        *slot = Some(until);
        until
    }

    /// An error for a pull from a registry whose budget is spent.
    fn refuse_if_exhausted(&self, registry: &Registry, ctx: &str) -> Result<()> {
        let until = *lock(&self.state(registry).exhausted_until);
        match until {
            Some(until) => {
                let registry = registry.host.clone();
                let kind = ErrorKind::RateLimited {
                    registry,
                    until,
                    throttled: false,
                };
                Err(StoreError::new(ctx, kind))
            }
            None => Ok(()),
        }
    }
}

fn unreachable(ctx: &str, registry: &Registry, first: Arc<StoreError>) -> StoreError {
    let kind = ErrorKind::Unreachable {
        registry: registry.host.clone(),
        cause: first,
    };
    StoreError::new(ctx, kind)
}

/// Whether the registry's host name resolves: tells a DNS failure from
/// other connection failures, without reading error strings.
async fn resolves(registry: &Registry) -> bool {
    if registry.hostname().parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let port = registry
        .host
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .unwrap_or(443);
    let lookup = tokio::net::lookup_host((registry.hostname(), port));
    match tokio::time::timeout(Duration::from_secs(10), lookup).await {
        Ok(Ok(mut addrs)) => addrs.next().is_some(),
        _ => false,
    }
}
