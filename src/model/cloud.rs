//! Which cloud a registry belongs to, by its host name alone.

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
    let (account, rest) = host.split_once('.')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let strip = |prefixes: [&str; 2]| prefixes.iter().find_map(|p| rest.strip_prefix(p));
    let (rest, suffixes) = if let Some(rest) = strip(["dkr.ecr.", "dkr.ecr-fips."]) {
        (rest, ECR_SUFFIXES)
    } else if let Some(rest) = strip(["dkr-ecr.", "dkr-ecr-fips."]) {
        (rest, ECR_DUAL_STACK_SUFFIXES)
    } else {
        return None;
    };
    let (region, suffix) = rest.split_once('.')?;
    let label = region.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (label && suffixes.contains(&suffix)).then_some((account, region))
}

/// An explicit credential source for one registry (`registries: HOST: auth:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthChoice {
    Google,
    Ecr,
    EcrPublic,
    Azure,
    Docker,
    Anonymous,
}

impl AuthChoice {
    pub const NAMES: &'static [&'static str] = &["google", "ecr", "ecr-public", "azure", "docker", "anonymous"];

    /// The choice a recognised cloud host gets by default.
    pub fn of(cloud: Cloud) -> AuthChoice {
        match cloud {
            Cloud::Google => AuthChoice::Google,
            Cloud::Ecr { .. } => AuthChoice::Ecr,
            Cloud::EcrPublic => AuthChoice::EcrPublic,
            Cloud::Azure => AuthChoice::Azure,
        }
    }

    /// The cloud whose credentials this choice asks for (`None` for
    /// `docker` and `anonymous`).
    pub fn cloud(self) -> Option<Cloud> {
        match self {
            AuthChoice::Google => Some(Cloud::Google),
            AuthChoice::Ecr => Some(Cloud::Ecr {
                registry_id: None,
                region: None,
            }),
            AuthChoice::EcrPublic => Some(Cloud::EcrPublic),
            AuthChoice::Azure => Some(Cloud::Azure),
            AuthChoice::Docker | AuthChoice::Anonymous => None,
        }
    }

    pub fn parse(s: &str) -> Option<AuthChoice> {
        Some(match s {
            "google" => AuthChoice::Google,
            "ecr" => AuthChoice::Ecr,
            "ecr-public" => AuthChoice::EcrPublic,
            "azure" => AuthChoice::Azure,
            "docker" => AuthChoice::Docker,
            "anonymous" => AuthChoice::Anonymous,
            _ => return None,
        })
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
