//! Where registry credentials come from (SPEC §6): a chain of providers,
//! first match wins, anonymous when none has anything.
//!
//! Native cloud providers (GCR, ECR, ACR) slot in as further
//! [`CredentialProvider`]s ahead of the Docker config; the registry client
//! only ever sees a [`Credential`].

mod docker;

use std::collections::HashMap;
use std::fmt;

use futures_util::future::BoxFuture;
use tokio::sync::Mutex;

pub use docker::DockerConfigProvider;

use crate::model::Registry;

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
}

/// Why a provider could not say whether it has a credential. Never holds a
/// secret: a helper's own output is left out.
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
    #[error("the lookup stopped: {0}")]
    Interrupted(String),
}

/// One place credentials can come from.
pub trait CredentialProvider: Send + Sync {
    /// Where this provider looks for `registry`, for messages.
    fn describe(&self, registry: &Registry) -> String;
    /// The credential for `registry`, or `None` if this provider has none.
    /// An error is logged as a warning and the chain goes on.
    fn lookup(&self, registry: Registry) -> BoxFuture<'_, Result<Option<Found>, LookupError>>;
}

/// Providers asked in order; answers cached per registry for the run.
pub struct Chain {
    providers: Vec<Box<dyn CredentialProvider>>,
    cache: Mutex<HashMap<Registry, Option<Found>>>,
}

impl Chain {
    pub fn new(providers: Vec<Box<dyn CredentialProvider>>) -> Chain {
        Chain {
            providers,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The default chain: the Docker config file, then anonymous.
    pub fn standard() -> Chain {
        Chain::new(vec![Box::new(DockerConfigProvider::from_env())])
    }

    pub async fn get(&self, registry: &Registry) -> Option<Found> {
        let mut cache = self.cache.lock().await;
        if let Some(hit) = cache.get(registry) {
            return hit.clone();
        }
        let mut found = None;
        for p in &self.providers {
            match p.lookup(registry.clone()).await {
                Ok(Some(f)) => {
                    tracing::debug!(registry = %registry, source = %f.source, "using credentials");
                    found = Some(f);
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(registry = %registry, "credential lookup in {} failed: {e}", p.describe(registry))
                }
            }
        }
        if found.is_none() {
            tracing::debug!(registry = %registry, "no credentials found; anonymous");
        }
        cache.insert(registry.clone(), found.clone());
        found
    }

    /// Where credentials were looked for, for "unauthorized" messages.
    pub fn looked_in(&self, registry: &Registry) -> String {
        self.providers
            .iter()
            .map(|p| p.describe(registry))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
