//! Signatures, SBOMs and attestations that refer to an image: OCI 1.1
//! referrers (a manifest whose `subject` names the image, listed by the
//! referrers API or, on registries without it, in an index tagged
//! `sha256-<hex>`), and cosign's tags `sha256-<hex>.sig`, `.att`, `.sbom`.

use serde_json::Value;

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

/// The descriptors of a referrers list (the API's answer, or a tag schema
/// index).
pub fn descriptors(bytes: &[u8]) -> Result<Vec<Value>, ManifestError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    Ok(doc
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// A referrer descriptor's digest and media type, when it has a valid one.
pub fn target(desc: &Value) -> Option<(Digest, String)> {
    let digest = Digest::parse(desc.get("digest")?.as_str()?).ok()?;
    let media_type = desc.get("mediaType").and_then(Value::as_str).unwrap_or_default();
    Some((digest, media_type.to_string()))
}

/// Whether a descriptor's `artifactType` is one of `types` (all pass when
/// `types` is empty).
pub fn admitted(desc: &Value, types: &[String]) -> bool {
    types.is_empty()
        || desc
            .get("artifactType")
            .and_then(Value::as_str)
            .is_some_and(|t| types.iter().any(|x| x == t))
}

/// The tag schema index for a subject: `existing` (if any) with `add`ed
/// descriptors it lacks; `None` when it already lists them all.
pub fn merged_index(existing: Option<&[u8]>, add: &[Value]) -> Result<Option<Vec<u8>>, ManifestError> {
    let mut list = match existing {
        Some(bytes) => descriptors(bytes)?,
        None => Vec::new(),
    };
    let before = list.len();
    for d in add {
        if !list.iter().any(|x| x.get("digest") == d.get("digest")) {
            list.push(d.clone());
        }
    }
    if list.len() == before && existing.is_some() {
        return Ok(None);
    }
    let doc = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list});
    Ok(Some(serde_json::to_vec(&doc).unwrap_or_default()))
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
        let d = |n: u8, t: &str| serde_json::json!({"mediaType": "m", "digest": format!("sha256:{}", hex::encode([n; 32])), "size": 1, "artifactType": t});
        let sbom = "application/spdx+json".to_string();
        assert!(admitted(&d(1, "application/spdx+json"), std::slice::from_ref(&sbom)));
        assert!(!admitted(&d(1, "x"), std::slice::from_ref(&sbom)));
        assert!(admitted(&d(1, "x"), &[]));
        let first = merged_index(None, &[d(1, "a")]).unwrap().unwrap();
        assert_eq!(merged_index(Some(&first), &[d(1, "a")]).unwrap(), None);
        let both = merged_index(Some(&first), &[d(2, "b"), d(1, "a")]).unwrap().unwrap();
        assert_eq!(descriptors(&both).unwrap().len(), 2);
        assert!(target(&d(2, "b")).is_some());
    }
}
