//! Which cloud a registry belongs to, by host name, and the provider that
//! gets its credentials (each behind a cargo feature).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{CredentialProvider, Found, LookupError};
use crate::config::RegistryOptions;
use crate::model::Registry;

/// A cloud registry family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cloud {
    /// Container Registry (`gcr.io`, `*.gcr.io`) and Artifact Registry
    /// (`*-docker.pkg.dev`).
    Google,
    /// A private ECR registry; account and region when the host tells them.
    Ecr {
        registry_id: Option<String>,
        region: Option<String>,
    },
    /// `public.ecr.aws`.
    EcrPublic,
    /// `*.azurecr.io` and the sovereign clouds' suffixes.
    Azure,
}

/// ECR's DNS suffixes per partition, as the official credential helper
/// knows them: `<account>.dkr.ecr[-fips].<region>.<suffix>`.
const ECR_SUFFIXES: &[&str] = &[
    "amazonaws.com",
    "amazonaws.com.cn",
    "sc2s.sgov.gov",
    "c2s.ic.gov",
    "cloud.adc-e.uk",
    "csp.hci.ic.gov",
];
/// Dual-stack endpoints: `<account>.dkr-ecr[-fips].<region>.<suffix>`.
const ECR_DUAL_STACK_SUFFIXES: &[&str] = &["on.aws", "on.amazonwebservices.com.cn"];
/// Azure Container Registry in the public, China and US Government clouds.
const AZURE_SUFFIXES: &[&str] = &[".azurecr.io", ".azurecr.cn", ".azurecr.us"];

/// The cloud a registry host belongs to, if any. A port, or an upper-case
/// letter, never matches: cloud registries are spoken to on 443.
pub fn recognise(host: &str) -> Option<Cloud> {
    if host.contains(':') || host.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    if host == "gcr.io" || host.ends_with(".gcr.io") || host.ends_with("-docker.pkg.dev") {
        return Some(Cloud::Google);
    }
    if host == "public.ecr.aws" {
        return Some(Cloud::EcrPublic);
    }
    if AZURE_SUFFIXES.iter().any(|s| host.len() > s.len() && host.ends_with(s)) {
        return Some(Cloud::Azure);
    }
    ecr_host(host).map(|(account, region)| Cloud::Ecr {
        registry_id: Some(account.to_string()),
        region: Some(region.to_string()),
    })
}

/// `(account, region)` of an ECR host name.
fn ecr_host(host: &str) -> Option<(&str, &str)> {
    let label = |s: &str| {
        !s.is_empty()
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let (account, rest) = host.split_once('.')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (service, rest) = rest.split_once('.')?;
    let (region, suffix) = rest.split_once('.')?;
    let known = match service {
        "dkr" => {
            // dkr.ecr[-fips].<region>.<suffix>: region and suffix follow
            let (ecr, rest) = rest.split_once('.')?;
            let (region, suffix) = rest.split_once('.')?;
            return (matches!(ecr, "ecr" | "ecr-fips") && label(region) && ECR_SUFFIXES.contains(&suffix))
                .then_some((account, region));
        }
        "dkr-ecr" | "dkr-ecr-fips" => ECR_DUAL_STACK_SUFFIXES.contains(&suffix),
        _ => false,
    };
    (known && label(region)).then_some((account, region))
}

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
        options: Option<&RegistryOptions>,
    ) -> Arc<dyn CredentialProvider> {
        let _ = (registry, options);
        match cloud {
            #[cfg(feature = "google")]
            Cloud::Google => Arc::new(super::google::Google::new(self.web.clone())),
            #[cfg(feature = "azure")]
            Cloud::Azure => {
                let tls = options.cloned().unwrap_or_default().uses_tls(registry.is_loopback());
                Arc::new(super::azure::Azure::new(self.web.clone(), tls))
            }
            #[cfg(feature = "aws")]
            Cloud::Ecr { registry_id, region } => Arc::new(super::aws::Ecr::new(
                self.aws.clone(),
                options.and_then(|o| o.registry_id.clone()).or(registry_id),
                options.and_then(|o| o.region.clone()).or(region),
            )),
            #[cfg(feature = "aws")]
            Cloud::EcrPublic => Arc::new(super::aws::EcrPublic::new(self.aws.clone())),
            #[allow(unreachable_patterns)]
            other => Arc::new(NotBuilt(other)),
        }
    }
}

impl Providers {
    /// Creates ECR repository `name` unless it exists.
    pub(super) async fn ensure_repository(
        &self,
        cloud: Cloud,
        options: Option<&RegistryOptions>,
        name: &str,
    ) -> Result<bool, LookupError> {
        let _ = (&cloud, options, name);
        #[cfg(feature = "aws")]
        if let Cloud::Ecr { registry_id, region } = cloud {
            let ecr = super::aws::Ecr::new(
                self.aws.clone(),
                options.and_then(|o| o.registry_id.clone()).or(registry_id),
                options.and_then(|o| o.region.clone()).or(region),
            );
            return ecr.ensure_repository(name).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ecr(account: &str, region: &str) -> Option<Cloud> {
        Some(Cloud::Ecr {
            registry_id: Some(account.into()),
            region: Some(region.into()),
        })
    }

    #[test]
    fn cloud_registries_are_recognised_by_host() {
        assert_eq!(recognise("gcr.io"), Some(Cloud::Google));
        assert_eq!(recognise("eu.gcr.io"), Some(Cloud::Google));
        assert_eq!(recognise("europe-west1-docker.pkg.dev"), Some(Cloud::Google));
        assert_eq!(recognise("public.ecr.aws"), Some(Cloud::EcrPublic));
        assert_eq!(recognise("myreg.azurecr.io"), Some(Cloud::Azure));
        assert_eq!(recognise("myreg.azurecr.cn"), Some(Cloud::Azure));
        assert_eq!(recognise("myreg.azurecr.us"), Some(Cloud::Azure));
        let a = "123456789012";
        assert_eq!(
            recognise(&format!("{a}.dkr.ecr.us-east-1.amazonaws.com")),
            ecr(a, "us-east-1")
        );
        assert_eq!(
            recognise(&format!("{a}.dkr.ecr-fips.us-gov-west-1.amazonaws.com")),
            ecr(a, "us-gov-west-1")
        );
        assert_eq!(
            recognise(&format!("{a}.dkr.ecr.cn-north-1.amazonaws.com.cn")),
            ecr(a, "cn-north-1")
        );
        assert_eq!(
            recognise(&format!("{a}.dkr.ecr.us-iso-east-1.c2s.ic.gov")),
            ecr(a, "us-iso-east-1")
        );
        assert_eq!(
            recognise(&format!("{a}.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk")),
            ecr(a, "eu-isoe-west-1")
        );
        assert_eq!(recognise(&format!("{a}.dkr-ecr.eu-west-1.on.aws")), ecr(a, "eu-west-1"));
        assert_eq!(
            recognise(&format!("{a}.dkr-ecr-fips.us-east-1.on.aws")),
            ecr(a, "us-east-1")
        );
    }

    #[test]
    fn look_alikes_are_not_cloud_registries() {
        for host in [
            "gcr.io.evil.example",
            "evilgcr.io",
            "docker.pkg.dev",
            "pkg.dev",
            "azurecr.io",
            "x.azurecr.io.example.com",
            "public.ecr.aws.example",
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com.example",
            "123456789012.dkr.ecr.us-east-1.example.com",
            "123456789012.dkr.ecs.us-east-1.amazonaws.com",
            "123456789012.dkr-ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:5000",
            "GCR.io",
            "localhost:5000",
            "registry-1.docker.io",
        ] {
            assert_eq!(recognise(host), None, "{host}");
        }
    }
}
