//! Signatures, SBOMs and attestations that refer to an image: OCI 1.1
//! referrers (a manifest whose `subject` names the image, listed by the
//! referrers API or, on registries without it, in an index tagged
//! `sha256-<hex>`), and cosign's tags `sha256-<hex>.sig`, `.att`, `.sbom`.

use super::Digest;
use super::manifest::{ManifestError, OCI_INDEX};

/// The artifact types cosign's tags stand for (the types cosign gives the
/// same things when it stores them as OCI 1.1 referrers).
const COSIGN: [(&str, &str); 3] = [
    (".sig", "application/vnd.dev.cosign.artifact.sig.v1+json"),
    (".att", "application/vnd.dev.cosign.artifact.att.v1+json"),
    (".sbom", "application/vnd.dev.cosign.artifact.sbom.v1+json"),
];

/// What a tag is, when it is about another manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerTag {
    /// The manifest it is about.
    pub subject: Digest,
    /// For cosign's tags, the artifact type they stand for; `None` for the
    /// referrers tag schema's index (whose entries say their own).
    pub artifact_type: Option<&'static str>,
}

/// `sha256-<hex>` (the tag schema) or `sha256-<hex>.sig|.att|.sbom`
/// (cosign); `None` for any other tag.
pub fn referrer_tag(tag: &str) -> Option<ReferrerTag> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = rest.get(..64)?;
    let suffix = &rest[64..];
    let subject = Digest::parse(&format!("sha256:{hex}")).ok()?;
    let artifact_type = match suffix {
        "" => None,
        s => Some(COSIGN.iter().find(|(suffix, _)| *suffix == s)?.1),
    };
    Some(ReferrerTag { subject, artifact_type })
}

/// The tag the referrers tag schema lists `subject`'s referrers under.
pub fn schema_tag(subject: &Digest) -> Option<String> {
    subject
        .as_str()
        .strip_prefix("sha256:")
        .map(|hex| format!("sha256-{hex}"))
}

/// One entry of a referrers list: the API's answer, a tag schema index,
/// or what replicant writes, which it makes only from the referrer's own
/// manifest ([`describe`]), never from what a peer's list claims.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Referrer {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(rename = "artifactType", default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// The descriptors of a referrers list (the API's answer, or a tag schema
/// index), typed: an entry without a digest is a malformed list, not an
/// empty object kept in memory.
pub fn descriptors(bytes: &[u8]) -> Result<Vec<Referrer>, ManifestError> {
    #[derive(serde::Deserialize)]
    struct List {
        #[serde(default)]
        manifests: Vec<Referrer>,
    }
    let list: List = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    Ok(list.manifests)
}

/// A referrer descriptor's digest and media type, when it has a valid one.
pub fn target(desc: &Referrer) -> Option<(Digest, String)> {
    let digest = Digest::parse(&desc.digest).ok()?;
    Some((digest, desc.media_type.clone()))
}

/// Whether a descriptor's `artifactType` is one of `types` (all pass when
/// `types` is empty).
pub fn admitted(desc: &Referrer, types: &[String]) -> bool {
    types.is_empty()
        || desc
            .artifact_type
            .as_deref()
            .is_some_and(|t| types.iter().any(|x| x == t))
}

/// Whether a listed referrer may be of one of `types`, judging by what the
/// list claims: its `artifactType` is one of them, or says nothing an
/// artifact's own type could not hide behind (missing, or a config media
/// type: go-containerregistry's registry lists the config's media type
/// instead of the manifest's `artifactType`). Only a pre-filter: what is
/// copied is decided on the referrer's own manifest ([`describe`]).
pub fn may_be_admitted(desc: &Referrer, types: &[String]) -> bool {
    const CONFIG_TYPES: [&str; 2] = [
        "application/vnd.oci.empty.v1+json",
        "application/vnd.oci.image.config.v1+json",
    ];
    admitted(desc, types) || desc.artifact_type.as_deref().is_none_or(|t| CONFIG_TYPES.contains(&t))
}

/// What a referrer's own manifest says of it: its descriptor as the OCI
/// 1.1 referrers API lists it (media type, digest, size, `artifactType`
/// (else the config's media type), annotations), and the manifest its
/// `subject` names.
pub fn describe(m: &super::FetchedManifest) -> Result<(Referrer, Option<Digest>), ManifestError> {
    #[derive(serde::Deserialize)]
    struct Own {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(rename = "artifactType", default)]
        artifact_type: Option<String>,
        #[serde(default)]
        config: Option<Typed>,
        #[serde(default)]
        subject: Option<Subject>,
        #[serde(default)]
        annotations: Option<std::collections::BTreeMap<String, String>>,
    }
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Subject {
        digest: String,
    }
    let own: Own = serde_json::from_slice(&m.bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    let subject = match own.subject {
        Some(s) => Some(Digest::parse(&s.digest)?),
        None => None,
    };
    let media_type = super::manifest::effective_media_type(&m.media_type, own.media_type.as_deref()).to_string();
    let artifact_type = own.artifact_type.or_else(|| own.config.and_then(|c| c.media_type));
    let d = Referrer {
        media_type,
        digest: m.digest.to_string(),
        size: m.bytes.len() as u64,
        artifact_type,
        annotations: own.annotations,
    };
    Ok((d, subject))
}

/// The tag schema index for a subject: `existing` (if any) with `add`ed
/// descriptors it lacks; `None` when it already lists them all.
pub fn merged_index(existing: Option<&[u8]>, add: &[Referrer]) -> Result<Option<Vec<u8>>, ManifestError> {
    let mut list = match existing {
        Some(bytes) => descriptors(bytes)?,
        None => Vec::new(),
    };
    let before = list.len();
    for d in add {
        if !list.iter().any(|x| x.digest == d.digest) {
            list.push(d.clone());
        }
    }
    if list.len() == before && existing.is_some() {
        return Ok(None);
    }
    let doc = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list});
    serde_json::to_vec(&doc)
        .map(Some)
        .map_err(|e| ManifestError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_tags_and_what_they_are_about() {
        let hex = "ab".repeat(32);
        let subject = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(
            referrer_tag(&format!("sha256-{hex}")),
            Some(ReferrerTag {
                subject: subject.clone(),
                artifact_type: None
            })
        );
        let sig = referrer_tag(&format!("sha256-{hex}.sig")).unwrap();
        assert_eq!(
            sig.artifact_type,
            Some("application/vnd.dev.cosign.artifact.sig.v1+json")
        );
        for not in [
            format!("sha256-{hex}.txt"),
            format!("sha256-{}", &hex[..63]),
            "sha256-".into(),
            "1.0.0".into(),
            format!("sha256-{}é", &hex[..62]),
            format!("sha512-{hex}"),
        ] {
            assert_eq!(referrer_tag(&not), None, "{not}");
        }
        assert_eq!(schema_tag(&subject), Some(format!("sha256-{hex}")));
    }

    #[test]
    fn filters_and_merges_descriptors() {
        let d = |n: u8, t: &str| Referrer {
            media_type: "m".into(),
            digest: format!("sha256:{}", hex::encode([n; 32])),
            size: 1,
            artifact_type: Some(t.into()),
            annotations: None,
        };
        let sbom = "application/spdx+json".to_string();
        assert!(admitted(&d(1, "application/spdx+json"), std::slice::from_ref(&sbom)));
        assert!(!admitted(&d(1, "x"), std::slice::from_ref(&sbom)));
        assert!(admitted(&d(1, "x"), &[]));
        let first = merged_index(None, &[d(1, "a")]).unwrap().unwrap();
        assert_eq!(merged_index(Some(&first), &[d(1, "a")]).unwrap(), None);
        let both = merged_index(Some(&first), &[d(2, "b"), d(1, "a")]).unwrap().unwrap();
        assert_eq!(descriptors(&both).unwrap().len(), 2);
        assert!(target(&d(2, "b")).is_some());
        // an entry that is no descriptor makes the list malformed
        assert!(descriptors(br#"{"manifests":[{},{}]}"#).is_err());
    }

    #[test]
    fn a_referrer_is_described_by_its_own_manifest() {
        let subject = format!("sha256:{}", "ab".repeat(32));
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/spdx+json","digest":"{subject}","size":2}},"layers":[],"subject":{{"mediaType":"x","digest":"{subject}","size":3}},"annotations":{{"a":"b"}}}}"#
        );
        let m = crate::model::FetchedManifest::made(bytes.clone().into_bytes(), "");
        let (d, about) = describe(&m).unwrap();
        assert_eq!(about.map(|d| d.to_string()), Some(subject));
        assert_eq!(d.artifact_type.as_deref(), Some("application/spdx+json"));
        assert_eq!(d.size, bytes.len() as u64);
        assert_eq!(d.digest, m.digest.to_string());
        assert_eq!(d.media_type, "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(d.annotations.unwrap()["a"], "b");
    }
}
