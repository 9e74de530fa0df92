//! Reading manifests: what a manifest refers to (children, config, layers).
//!
//! Manifests are only *read* here, never re-serialised: the copy pushes the
//! original bytes so every digest is preserved. The structs are deliberately
//! lenient (unknown fields ignored, artifact config types accepted), which is
//! why they are our own and not `oci-spec`'s strict types.

use serde::Deserialize;

use bytes::Bytes;

use super::digest::{BadDigest, Digest};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header for manifest requests: the four types we copy.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused (registries cap at 4 MiB too).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What a manifest lookup without the body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Option<Digest>,
    pub media_type: String,
}

/// A manifest's original bytes, verified against its digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl FetchedManifest {
    /// A manifest made here (not fetched): its digest is computed.
    pub fn made(bytes: Vec<u8>, media_type: &str) -> FetchedManifest {
        FetchedManifest {
            digest: Digest::sha256_of(&bytes),
            bytes: bytes.into(),
            media_type: media_type.to_string(),
        }
    }
}

/// A reference from one manifest to a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// Non-distributable ("foreign") layers stay where their URLs point.
    pub fn is_foreign(&self) -> bool {
        self.media_type.contains("foreign") || self.media_type.contains("nondistributable")
    }
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<u64>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    blobs: Option<Vec<Descriptor>>,
}

/// What a manifest is, for the purpose of copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An index / manifest list: copy every child manifest first.
    Index { children: Vec<(Digest, Descriptor)> },
    /// An image or artifact manifest: copy these blobs first.
    Image {
        blobs: Vec<(Digest, Descriptor)>,
        foreign: usize,
    },
    /// Docker schema 1: not copied.
    Schema1,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest refers to an {0}")]
    Digest(#[from] BadDigest),
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
}

impl Manifest {
    /// Parses `bytes` served with `media_type` (the Content-Type header,
    /// falling back to the `mediaType` field).
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        let media_type = effective_media_type(media_type, raw.media_type.as_deref());
        if media_type.starts_with(DOCKER_SCHEMA1) || raw.schema_version == Some(1) {
            return Ok(Manifest::Schema1);
        }
        let collect = |list: Vec<Descriptor>| -> Result<Vec<(Digest, Descriptor)>, BadDigest> {
            list.into_iter().map(|d| Ok((Digest::parse(&d.digest)?, d))).collect()
        };
        match media_type {
            OCI_INDEX | DOCKER_LIST => Ok(Manifest::Index {
                children: collect(raw.manifests.unwrap_or_default())?,
            }),
            OCI_MANIFEST | DOCKER_MANIFEST | "" if raw.manifests.is_none() => {
                let mut all: Vec<Descriptor> = raw.config.into_iter().collect();
                all.extend(raw.layers.unwrap_or_default());
                all.extend(raw.blobs.unwrap_or_default());
                let foreign = all.iter().filter(|d| d.is_foreign()).count();
                let blobs = collect(all.into_iter().filter(|d| !d.is_foreign()).collect())?;
                Ok(Manifest::Image { blobs, foreign })
            }
            "" => Ok(Manifest::Index {
                children: collect(raw.manifests.unwrap_or_default())?,
            }),
            other => Err(ManifestError::MediaType(other.to_string())),
        }
    }
}

impl Manifest {
    /// The child manifests an index lists (none for an image).
    pub fn children(&self) -> Vec<Digest> {
        match self {
            Manifest::Index { children } => children.iter().map(|(d, _)| d.clone()).collect(),
            _ => Vec::new(),
        }
    }
}

/// The media type to push a manifest's bytes with: the served Content-Type,
/// or the document's `mediaType` field when the Content-Type is generic.
///
/// In order: a specific `content_type` (the registry's `Content-Type`, or a
/// layout's `index.json` entry); the `descriptor` that led here (an index
/// child's `mediaType`, a tag's entry); the document's own `mediaType`
/// field; and, when none says, the content itself (`manifests` → OCI index,
/// `config` → OCI image manifest; Docker's formats always carry the field).
pub fn media_type_of(content_type: &str, descriptor: &str, bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Fields {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        config: Option<serde::de::IgnoredAny>,
    }
    let fields = serde_json::from_slice::<Fields>(bytes).ok();
    let from_content = fields.as_ref().and_then(|f| {
        f.media_type.clone().filter(|t| !t.is_empty()).or_else(|| {
            if f.manifests.is_some() {
                Some(OCI_INDEX.to_string())
            } else if f.config.is_some() {
                Some(OCI_MANIFEST.to_string())
            } else {
                None
            }
        })
    });
    let known = Some(descriptor)
        .filter(|d| !d.trim().is_empty())
        .map(str::to_string)
        .or(from_content);
    effective_media_type(content_type, known.as_deref()).to_string()
}

/// The media type a manifest is pushed with: the served Content-Type unless
/// it is missing or generic, then the document's own `mediaType`.
pub fn effective_media_type<'a>(content_type: &'a str, field: Option<&'a str>) -> &'a str {
    let ct = content_type.split(';').next().unwrap_or_default().trim();
    if ct.is_empty() || ct == "application/json" || ct == "application/octet-stream" || ct == "text/plain" {
        field.unwrap_or(ct)
    } else {
        ct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    #[test]
    fn reads_images_indexes_and_artifacts() {
        let img = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":3}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":5}},{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":9,"urls":["https://example.com/x"]}}]}}"#,
            d(1),
            d(2),
            d(3)
        );
        match Manifest::parse(DOCKER_MANIFEST, img.as_bytes()).unwrap() {
            Manifest::Image { blobs, foreign } => {
                assert_eq!(blobs.iter().map(|b| b.0.to_string()).collect::<Vec<_>>(), [d(1), d(2)]);
                assert_eq!(foreign, 1);
            }
            other => panic!("{other:?}"),
        }
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":7}}]}}"#,
            d(4)
        );
        assert!(
            matches!(Manifest::parse(OCI_INDEX, index.as_bytes()).unwrap(), Manifest::Index { children } if children.len() == 1)
        );
        let artifact = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/x-demo","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
            d(5)
        );
        assert!(
            matches!(Manifest::parse("application/json", artifact.as_bytes()).unwrap(), Manifest::Image { blobs, .. } if blobs.len() == 1)
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = Manifest::parse(OCI_MANIFEST, &bytes);
            let _ = media_type_of("", "", &bytes);
        }

        #[test]
        fn parse_never_panics_on_manifest_shaped_json(
            media in "(application/vnd[a-z.+0-9-]{0,40}|)",
            digests in proptest::collection::vec("(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{0,130}|[a-z0-9:./]{0,20})", 0..4),
            size in proptest::prelude::any::<i64>(),
        ) {
            let descs: Vec<String> = digests.iter().map(|d| format!(r#"{{"mediaType":"{media}","digest":"{d}","size":{size}}}"#)).collect();
            for doc in [
                format!(r#"{{"schemaVersion":2,"mediaType":"{media}","manifests":[{}]}}"#, descs.join(",")),
                format!(r#"{{"schemaVersion":2,"config":{},"layers":[{}]}}"#, descs.first().cloned().unwrap_or("null".into()), descs.join(",")),
            ] {
                if let Ok(Manifest::Image { blobs, .. } | Manifest::Index { children: blobs }) = Manifest::parse(&media, doc.as_bytes()) {
                    // whatever was accepted is a valid digest, safe in a path
                    for (d, _) in blobs {
                        proptest::prop_assert!(Digest::parse(d.as_str()).is_ok());
                    }
                }
            }
        }
    }

    #[test]
    fn schema1_and_bad_input() {
        assert_eq!(
            Manifest::parse(DOCKER_SCHEMA1_SIGNED, br#"{"schemaVersion":1,"fsLayers":[]}"#).unwrap(),
            Manifest::Schema1
        );
        assert!(matches!(
            Manifest::parse(OCI_MANIFEST, b"not json"),
            Err(ManifestError::Json(_))
        ));
        let evil = r#"{"schemaVersion":2,"layers":[{"digest":"sha256:../../x","size":1}]}"#;
        assert!(matches!(
            Manifest::parse(OCI_MANIFEST, evil.as_bytes()),
            Err(ManifestError::Digest(_))
        ));
        assert!(matches!(
            Manifest::parse("application/x-unknown", b"{}"),
            Err(ManifestError::MediaType(_))
        ));
    }
}
