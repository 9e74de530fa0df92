//! Where registry credentials come from (README: Registries and credentials; docs/cloud-registries.md):
//! per registry, an explicit `auth:` choice; else the Docker config, then
//! the cloud the host name belongs to; anonymous when none has anything.
//! The registry client only ever sees a [`Credential`].

mod cloud;
mod docker;
mod web;

#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "azure")]
mod azure;
#[cfg(feature = "google")]
mod google;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
// tokio's clock (the std clock outside a runtime): tests run it paused
use tokio::time::Instant;

use futures_util::future::BoxFuture;
use tokio::sync::Mutex;

pub use crate::model::cloud::{AuthChoice, Cloud, recognise};
pub use docker::DockerConfigProvider;

use crate::model::Registry;

/// What the configuration says of one registry's credentials (`settings`
/// makes it from a `registries:` entry): where they come from and what
/// the cloud providers need. A registry without an entry gets the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// `auth:`; by default the Docker config, then the cloud the host name
    /// belongs to, then anonymous.
    pub auth: Option<AuthChoice>,
    /// Whether the registry is spoken to over HTTPS (Azure's token
    /// exchange follows it); `None`: HTTPS unless on loopback.
    pub tls: Option<bool>,
    /// AWS region and account for `auth: ecr` when the host does not tell.
    pub region: Option<String>,
    pub registry_id: Option<String>,
    /// Create missing ECR repositories before the first push.
    pub create_repositories: bool,
    /// The AWS profile for this registry's ECR token.
    pub aws_profile: Option<String>,
    /// A Google credentials file for this registry, read when a token is
    /// needed, instead of `GOOGLE_APPLICATION_CREDENTIALS` and the others.
    pub google_credentials: Option<std::path::PathBuf>,
}

impl RegistryCredentials {
    /// Whether `registry` is spoken to over HTTPS.
    pub fn uses_tls(&self, registry: &Registry) -> bool {
        self.tls.unwrap_or(!registry.is_loopback())
    }
}

/// A secret for one registry. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in Docker's config).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// A credential together with where it was found, for messages.
#[derive(Debug, Clone)]
pub struct Found {
    pub credential: Credential,
    pub source: String,
    /// When a cloud token stops being valid; `None` for static secrets.
    pub expires: Option<SystemTime>,
}

impl Found {
    pub fn fixed(credential: Credential, source: String) -> Found {
        Found {
            credential,
            source,
            expires: None,
        }
    }
}

/// Why a provider could not say whether it has a credential. Never holds a
/// secret: a helper's own output is left out, token endpoints' answers are
/// reduced to their status and OAuth error code.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credential helper {helper} failed")]
    Helper { helper: String },
    #[error("{place}: {reason}")]
    Unreadable { place: String, reason: String },
    #[error("{place} is not valid JSON (line {line}, column {column})")]
    NotJson { place: String, line: usize, column: usize },
    #[error("the lookup stopped: {0}")]
    Interrupted(String),
    #[error("{what}: this replicant was built without the \"{feature}\" cargo feature")]
    NotBuilt { what: &'static str, feature: &'static str },
}

impl LookupError {
    /// Whether the message already names the file or endpoint it concerns.
    fn names_its_place(&self) -> bool {
        matches!(
            self,
            LookupError::Open { .. } | LookupError::Unreadable { .. } | LookupError::NotJson { .. }
        )
    }
}

/// One place credentials can come from.
pub trait CredentialProvider: Send + Sync {
    /// Where this provider looks for `registry`, for messages.
    fn describe(&self, registry: &Registry) -> String;
    /// The credential for `registry`, or `None` if this provider has none.
    /// An error is logged as a warning and the chain goes on.
    fn lookup(&self, registry: Registry) -> BoxFuture<'_, Result<Option<Found>, LookupError>>;
}

/// What the chain holds for one registry.
#[derive(Default)]
struct Slot {
    found: Option<Found>,
    /// Ask the providers again from this moment (cloud tokens expire).
    renew_at: Option<Instant>,
    /// When the providers were last asked.
    asked: Option<Instant>,
    /// The last lookup failure, for "unauthorized" messages.
    failure: Option<String>,
}

/// A cloud token is renewed this long before it expires (at most a quarter
/// of its lifetime), and reused for at least [`MIN_REUSE`].
const RENEW_MARGIN: Duration = Duration::from_secs(300);
const MIN_REUSE: Duration = Duration::from_secs(1);

/// The longest a credential a peer hands out is kept before it is asked for
/// anew, whatever lifetime the peer claims: a token service's number can
/// neither overflow a clock nor keep a token for ever.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// When a credential that a peer says lives `seconds` from now expires
/// (at most [`MAX_LIFETIME`] away).
pub(crate) fn expires_in(seconds: u64) -> SystemTime {
    let now = SystemTime::now();
    now.checked_add(Duration::from_secs(seconds).min(MAX_LIFETIME))
        .unwrap_or(now)
}

/// When a credential whose expiry a peer gives as seconds since 1970
/// expires (at most [`MAX_LIFETIME`] away; a time the clock cannot hold
/// counts as that far).
pub(crate) fn expires_at(unix_seconds: u64) -> SystemTime {
    let latest = expires_in(u64::MAX);
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(unix_seconds))
        .map_or(latest, |t| t.min(latest))
}

/// Providers asked in order; answers cached per registry and renewed before
/// a cloud token expires. Concurrent askers for one registry wait on one
/// lookup.
pub struct Chain {
    docker: Arc<dyn CredentialProvider>,
    clouds: cloud::Providers,
    choices: BTreeMap<String, RegistryCredentials>,
    slots: std::sync::Mutex<HashMap<Registry, Arc<Mutex<Slot>>>>,
}

impl Chain {
    /// A chain with the given Docker-config provider and `registries:`
    /// settings (their `auth:`, `region:`, `registry-id:`).
    pub fn new(docker: Arc<dyn CredentialProvider>, registries: BTreeMap<String, RegistryCredentials>) -> Chain {
        Chain {
            docker,
            clouds: cloud::Providers::from_env(),
            choices: registries,
            slots: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The default chain: explicit choices, the Docker config file, the
    /// cloud by host name, then anonymous.
    pub fn standard(registries: BTreeMap<String, RegistryCredentials>) -> Chain {
        Chain::new(Arc::new(DockerConfigProvider::from_env()), registries)
    }

    /// A chain without a Docker config and without `registries:`
    /// settings: anonymous but for cloud registries (tests).
    pub fn without_docker_config() -> Chain {
        Chain::new(Arc::new(DockerConfigProvider::at(None)), BTreeMap::new())
    }

    /// The cloud whose provider `registry` gets: its explicit `auth:`,
    /// else the cloud its host name belongs to.
    fn cloud(&self, registry: &Registry) -> Option<Cloud> {
        match self.choices.get(&registry.host).and_then(|o| o.auth) {
            Some(choice) => choice.cloud(),
            None => recognise(&registry.host),
        }
    }

    /// The providers asked for `registry`, in order: the Docker config
    /// unless another `auth:` is chosen, then the registry's cloud.
    fn providers(&self, registry: &Registry) -> Vec<Arc<dyn CredentialProvider>> {
        let options = self.choices.get(&registry.host);
        let mut list = match options.and_then(|o| o.auth) {
            None | Some(AuthChoice::Docker) => vec![self.docker.clone()],
            Some(_) => vec![],
        };
        list.extend(self.cloud(registry).map(|c| self.clouds.provider(c, registry, options)));
        list
    }

    fn slot(&self, registry: &Registry) -> Arc<Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(registry.clone()).or_default().clone()
    }

    pub async fn get(&self, registry: &Registry) -> Option<Found> {
        let slot = self.slot(registry);
        let mut slot = slot.lock().await;
        let now = Instant::now();
        if slot.asked.is_some() && slot.renew_at.is_none_or(|t| now < t) {
            return slot.found.clone();
        }
        let mut found = None;
        let mut failures = Vec::new();
        for p in self.providers(registry) {
            match p.lookup(registry.clone()).await {
                Ok(Some(f)) => {
                    tracing::debug!(registry = %registry, source = %f.source, "using credentials");
                    found = Some(f);
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    let why = match e.names_its_place() {
                        true => e.to_string(),
                        false => format!("{e} ({})", p.describe(registry)),
                    };
                    // a helper's or a token service's words
                    let why = crate::error::printable(&why, 2000);
                    tracing::warn!(registry = %registry, "the credentials for {registry} could not be read: {why}");
                    failures.push(why);
                }
            }
        }
        if found.is_none() {
            tracing::debug!(registry = %registry, "no credentials found; anonymous");
        }
        slot.renew_at = found.as_ref().and_then(|f| f.expires).map(|expires| {
            let lifetime = expires
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .min(MAX_LIFETIME);
            let margin = RENEW_MARGIN.min(lifetime / 4);
            now + (lifetime - margin).max(MIN_REUSE)
        });
        slot.asked = Some(now);
        slot.failure = (!failures.is_empty()).then(|| failures.join("; "));
        slot.found = found.clone();
        found
    }

    /// The registry refused a credential that should still be valid: a
    /// cloud token is asked for anew on next use (at most once a second).
    pub async fn refused(&self, registry: &Registry) {
        let slot = self.slot(registry);
        let mut slot = slot.lock().await;
        let renewable = slot.found.as_ref().is_some_and(|f| f.expires.is_some());
        if renewable && slot.asked.is_some_and(|t| t.elapsed() >= MIN_REUSE) {
            slot.renew_at = Some(Instant::now());
        }
    }

    /// The ECR registry `registry` is, explicitly or by host name, with
    /// its account and region when known.
    fn ecr(&self, registry: &Registry) -> Option<Cloud> {
        self.cloud(registry).filter(|c| matches!(c, Cloud::Ecr { .. }))
    }

    /// Whether `registry` is a private ECR registry (which creates no
    /// repository on push).
    pub fn is_ecr(&self, registry: &Registry) -> bool {
        self.ecr(registry).is_some()
    }

    /// Every repository of `registry` when it is an ECR registry (whose
    /// `/v2/_catalog` lists nothing): `None` for any other.
    pub async fn repositories(&self, registry: &Registry) -> Option<Result<Vec<String>, LookupError>> {
        let cloud = self.ecr(registry)?;
        Some(self.clouds.repositories(cloud, self.choices.get(&registry.host)).await)
    }

    /// Creates repository `name` in `registry` before the first push, when
    /// it is an ECR registry with `create-repositories: true`; `Ok(true)`
    /// if it was created.
    pub async fn ensure_repository(&self, registry: &Registry, name: &str) -> Result<bool, LookupError> {
        let options = self.choices.get(&registry.host);
        if !options.is_some_and(|o| o.create_repositories) {
            return Ok(false);
        }
        let Some(cloud) = self.ecr(registry) else {
            return Ok(false);
        };
        self.clouds.ensure_repository(cloud, options, name).await
    }

    /// Where credentials were looked for, for "unauthorized" messages, with
    /// the last lookup failure if there was one.
    pub async fn lookup_failure(&self, registry: &Registry) -> Option<String> {
        self.slot(registry).lock().await.failure.clone()
    }

    pub async fn looked_in(&self, registry: &Registry) -> String {
        let places = self
            .providers(registry)
            .iter()
            .map(|p| p.describe(registry))
            .collect::<Vec<_>>();
        let mut text = match places.is_empty() {
            true => "nowhere: auth: anonymous".to_string(),
            false => places.join(", "),
        };
        if let Some(f) = &self.slot(registry).lock().await.failure {
            text.push_str(&format!("; the lookup failed: {f}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A provider that counts lookups and answers a token living `life`.
    struct Counting {
        calls: Arc<AtomicUsize>,
        life: Option<Duration>,
    }

    impl CredentialProvider for Counting {
        fn describe(&self, _: &Registry) -> String {
            "the counting provider".into()
        }

        fn lookup(&self, _: Registry) -> BoxFuture<'_, Result<Option<Found>, LookupError>> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(Some(Found {
                    credential: Credential::Basic {
                        username: "u".into(),
                        password: format!("token-{n}"),
                    },
                    source: "test".into(),
                    expires: self.life.map(|l| SystemTime::now() + l),
                }))
            })
        }
    }

    fn counting_chain(life: Option<Duration>, registries: &[(&str, AuthChoice)]) -> (Chain, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let docker = Arc::new(Counting {
            calls: calls.clone(),
            life,
        });
        let registries = registries
            .iter()
            .map(|(host, auth)| {
                let options = RegistryCredentials {
                    auth: Some(*auth),
                    ..RegistryCredentials::default()
                };
                (host.to_string(), options)
            })
            .collect();
        (Chain::new(docker, registries), calls)
    }

    #[tokio::test]
    async fn concurrent_askers_wait_on_one_lookup_per_registry() {
        let (chain, calls) = counting_chain(None, &[]);
        let chain = Arc::new(chain);
        let a = Registry::new("a.example.com");
        let b = Registry::new("b.example.com");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (chain, r) = (chain.clone(), if i % 2 == 0 { a.clone() } else { b.clone() });
            tasks.push(tokio::spawn(async move { chain.get(&r).await }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_some());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one lookup per registry");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expiring_token_is_renewed_before_it_expires_and_a_static_one_never() {
        let (chain, calls) = counting_chain(Some(Duration::from_secs(2)), &[]);
        let r = Registry::new("a.example.com");
        let first = chain.get(&r).await.unwrap().credential;
        assert_eq!(chain.get(&r).await.unwrap().credential, first);
        // a quarter of the lifetime before expiry, a new one
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_ne!(chain.get(&r).await.unwrap().credential, first);
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let (fixed, calls) = counting_chain(None, &[]);
        fixed.get(&r).await;
        fixed.refused(&r).await;
        fixed.get(&r).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a static secret is not asked again");
    }

    #[tokio::test]
    async fn explicit_choice_then_docker_config_then_cloud_by_host() {
        let (c, _) = counting_chain(
            None,
            &[("gcr.io", AuthChoice::Anonymous), ("r.example.com", AuthChoice::Docker)],
        );
        let c = &c;
        let looked = |host: &str| {
            let r = Registry::new(host);
            async move { c.looked_in(&r).await }
        };
        assert_eq!(looked("gcr.io").await, "nowhere: auth: anonymous");
        assert_eq!(looked("r.example.com").await, "the counting provider");
        let by_host = looked("eu.gcr.io").await;
        assert!(by_host.starts_with("the counting provider, "), "{by_host}");
        #[cfg(feature = "google")]
        assert!(by_host.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{by_host}");
        #[cfg(not(feature = "google"))]
        assert!(by_host.contains("cargo feature \"google\""), "{by_host}");
        assert_eq!(looked("registry.example.com").await, "the counting provider");
    }
}
