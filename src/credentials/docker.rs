//! Credentials from Docker's config file: `auths`, `credHelpers`,
//! `credsStore`, read by the `docker_credential` crate.

use std::path::PathBuf;

use futures_util::future::BoxFuture;

use super::{Credential, CredentialProvider, Found, LookupError};
use crate::model::Registry;

/// Reads `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub struct DockerConfigProvider {
    path: Option<PathBuf>,
}

impl DockerConfigProvider {
    pub fn from_env() -> DockerConfigProvider {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        DockerConfigProvider {
            path: dir.map(|d| d.join("config.json")),
        }
    }

    /// Reads `path` (`None`: nothing).
    pub fn at(path: Option<PathBuf>) -> DockerConfigProvider {
        DockerConfigProvider { path }
    }

    /// The key Docker itself uses for a registry in `auths` / helpers.
    fn server_key(registry: &Registry) -> String {
        if registry.is_docker_hub() {
            "https://index.docker.io/v1/".to_string()
        } else {
            registry.host.clone()
        }
    }
}

impl CredentialProvider for DockerConfigProvider {
    fn describe(&self, registry: &Registry) -> String {
        match &self.path {
            Some(p) => format!(
                "the Docker config {} (key \"{}\")",
                p.display(),
                Self::server_key(registry)
            ),
            None => "the Docker config (no $DOCKER_CONFIG or $HOME)".to_string(),
        }
    }

    fn lookup(&self, registry: Registry) -> BoxFuture<'_, Result<Option<Found>, LookupError>> {
        Box::pin(async move {
            let Some(path) = self.path.clone() else { return Ok(None) };
            if !path.exists() {
                return Ok(None);
            }
            let server = Self::server_key(&registry);
            let source = format!("Docker config {}", path.display());
            // docker_credential is blocking (it may run a helper program).
            let place = source.clone();
            let result = tokio::task::spawn_blocking(move || {
                let text = std::fs::read(&path).map_err(|source| LookupError::Open { path, source })?;
                // its own error for a broken file does not say where
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(&text) {
                    return Err(LookupError::NotJson {
                        place,
                        line: e.line(),
                        column: e.column(),
                    });
                }
                Ok(docker_credential::get_credential_from_reader(&text[..], &server))
            })
            .await
            .map_err(|e| LookupError::Interrupted(e.to_string()))??;
            use docker_credential::{CredentialRetrievalError as E, DockerCredential as D};
            match result {
                Ok(D::UsernamePassword(username, password)) => {
                    Ok(Some(Found::fixed(Credential::Basic { username, password }, source)))
                }
                Ok(D::IdentityToken(t)) => Ok(Some(Found::fixed(Credential::IdentityToken(t), source))),
                Err(E::NoCredentialConfigured) => Ok(None),
                // The helper's own output may hold secrets: name the helper only.
                Err(E::HelperFailure { helper, .. }) => Err(LookupError::Helper { helper }),
                Err(e) => Err(LookupError::Unreadable {
                    place: source,
                    reason: e.to_string(),
                }),
            }
        })
    }
}
