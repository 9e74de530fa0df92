//! The provider that gets a cloud registry's credentials (each behind a
//! cargo feature); which cloud a host belongs to is `model::cloud`.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::RegistryCredentials;
use super::{CredentialProvider, Found, LookupError};
use crate::model::Registry;
use crate::model::cloud::Cloud;

/// The cloud providers of one run (shared HTTP client and SDK state).
pub(super) struct Providers {
    #[cfg(any(feature = "google", feature = "azure"))]
    web: Arc<super::web::Web>,
    #[cfg(feature = "aws")]
    aws: Arc<super::aws::Aws>,
}

impl Providers {
    pub(super) fn from_env() -> Providers {
        Providers {
            #[cfg(any(feature = "google", feature = "azure"))]
            web: Arc::new(super::web::Web::new()),
            #[cfg(feature = "aws")]
            aws: Arc::new(super::aws::Aws::new()),
        }
    }

    /// The provider for `cloud`, with a `registries:` entry's settings.
    pub(super) fn provider(
        &self,
        cloud: Cloud,
        registry: &Registry,
        options: Option<&RegistryCredentials>,
    ) -> Arc<dyn CredentialProvider> {
        let _ = (registry, options);
        match cloud {
            #[cfg(feature = "google")]
            Cloud::Google => Arc::new(super::google::Google::new(
                self.web.clone(),
                options.and_then(|o| o.google_credentials.clone()),
            )),
            #[cfg(feature = "azure")]
            Cloud::Azure => {
                let tls = options.cloned().unwrap_or_default().uses_tls(registry);
                Arc::new(super::azure::Azure::new(self.web.clone(), tls))
            }
            #[cfg(feature = "aws")]
            Cloud::Ecr { registry_id, region } => Arc::new(self.ecr(registry_id, region, options)),
            #[cfg(feature = "aws")]
            Cloud::EcrPublic => Arc::new(super::aws::EcrPublic::new(
                self.aws.clone(),
                options.and_then(|o| o.aws_profile.clone()),
            )),
            #[allow(unreachable_patterns)]
            other => Arc::new(NotBuilt(other)),
        }
    }

    /// A private ECR registry: the `registries:` entry's settings first,
    /// then what the host name tells.
    #[cfg(feature = "aws")]
    fn ecr(
        &self,
        registry_id: Option<String>,
        region: Option<String>,
        options: Option<&RegistryCredentials>,
    ) -> super::aws::Ecr {
        super::aws::Ecr::new(
            self.aws.clone(),
            options.and_then(|o| o.registry_id.clone()).or(registry_id),
            options.and_then(|o| o.region.clone()).or(region),
            options.and_then(|o| o.aws_profile.clone()),
        )
    }

    /// Every repository of an ECR registry.
    pub(super) async fn repositories(
        &self,
        cloud: Cloud,
        options: Option<&RegistryCredentials>,
    ) -> Result<Vec<String>, LookupError> {
        let _ = (&cloud, options);
        #[cfg(feature = "aws")]
        if let Cloud::Ecr { registry_id, region } = cloud {
            return self.ecr(registry_id, region, options).repositories().await;
        }
        Err(LookupError::NotBuilt {
            what: "listing ECR repositories (DescribeRepositories)",
            feature: "aws",
        })
    }

    /// Creates ECR repository `name` unless it exists.
    pub(super) async fn ensure_repository(
        &self,
        cloud: Cloud,
        options: Option<&RegistryCredentials>,
        name: &str,
    ) -> Result<bool, LookupError> {
        let _ = (&cloud, options, name);
        #[cfg(feature = "aws")]
        if let Cloud::Ecr { registry_id, region } = cloud {
            return self.ecr(registry_id, region, options).ensure_repository(name).await;
        }
        #[cfg(not(feature = "aws"))]
        return Err(LookupError::NotBuilt {
            what: "create-repositories (ECR)",
            feature: "aws",
        });
        #[allow(unreachable_code)]
        Ok(false)
    }
}

/// A cloud whose feature was left out of this build.
struct NotBuilt(Cloud);

impl NotBuilt {
    fn what(&self) -> (&'static str, &'static str) {
        match self.0 {
            Cloud::Google => ("Google (GCR / Artifact Registry) credentials", "google"),
            Cloud::Ecr { .. } => ("Amazon ECR credentials", "aws"),
            Cloud::EcrPublic => ("Amazon ECR Public credentials", "aws"),
            Cloud::Azure => ("Azure Container Registry credentials", "azure"),
        }
    }
}

impl CredentialProvider for NotBuilt {
    fn describe(&self, _: &Registry) -> String {
        let (what, feature) = self.what();
        format!("{what} (not built: cargo feature \"{feature}\")")
    }

    fn lookup(&self, _: Registry) -> BoxFuture<'_, Result<Option<Found>, LookupError>> {
        let (what, feature) = self.what();
        Box::pin(async move { Err(LookupError::NotBuilt { what, feature }) })
    }
}
