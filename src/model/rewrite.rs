//! The only manifests replicant writes that are not the source's bytes: an
//! index reduced to some platforms (`platforms:`), and Docker manifests
//! turned into their OCI equivalents (`layout-media-types: oci`). The
//! result records the source's digest in an annotation, so a later pass can
//! tell whether upstream changed without fetching anything else.

use std::collections::HashMap;

use serde_json::Value;

use super::manifest::{DOCKER_LIST, DOCKER_MANIFEST, ManifestError, OCI_INDEX, OCI_MANIFEST};
use super::platform::Platform;
use super::{Digest, FetchedManifest};

/// The digest of the source manifest a rewritten one was made from.
pub const SOURCE_DIGEST: &str = "dev.replicant.source.digest";
/// The platforms an index was reduced to (`linux/amd64,linux/arm64`).
pub const PLATFORMS: &str = "dev.replicant.platforms";

/// Docker's attestation children (BuildKit) name the child they are about.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// What reducing an index to some platforms leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every child stays: copy the index as it is.
    All,
    /// No child is of a platform asked for; these are the ones it has.
    Nothing { offered: Vec<String> },
    /// The index with only those children (no annotation yet).
    Some(Vec<u8>),
}

fn json(bytes: &[u8]) -> Result<Value, ManifestError> {
    serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))
}

fn to_bytes(doc: &Value) -> Vec<u8> {
    // a Value always serialises
    serde_json::to_vec(doc).unwrap_or_default()
}

/// Keeps the children of an index whose platform one of `wanted` admits,
/// and the attestations that are about a kept child.
pub fn filter_index(bytes: &[u8], wanted: &[Platform]) -> Result<Filtered, ManifestError> {
    let mut doc = json(bytes)?;
    let Some(list) = doc.get_mut("manifests").and_then(Value::as_array_mut) else {
        return Err(ManifestError::Json("an index without a \"manifests\" list".into()));
    };
    let before = list.len();
    let is_attestation = |d: &Value| d.pointer(&format!("/annotations/{REFERENCE_TYPE}")).is_some();
    let mut offered = Vec::new();
    let mut kept_digests = Vec::new();
    for d in list.iter().filter(|d| !is_attestation(d)) {
        if let Some(p) = d.get("platform").and_then(Platform::of_json) {
            offered.push(p.to_string());
            if wanted.iter().any(|w| w.admits(&p)) {
                kept_digests.push(d.get("digest").cloned().unwrap_or_default());
            }
        }
    }
    list.retain(|d| match is_attestation(d) {
        true => d
            .get("annotations")
            .and_then(|a| a.get(REFERENCE_DIGEST))
            .is_some_and(|r| kept_digests.contains(r)),
        false => d.get("digest").is_some_and(|x| kept_digests.contains(x)),
    });
    Ok(if list.len() == before {
        Filtered::All
    } else if kept_digests.is_empty() {
        offered.sort();
        offered.dedup();
        Filtered::Nothing { offered }
    } else {
        Filtered::Some(to_bytes(&doc))
    })
}

/// The OCI media type for a Docker one (manifests, configs, layers).
fn oci_type(docker: &str) -> Option<&'static str> {
    Some(match docker {
        DOCKER_MANIFEST => OCI_MANIFEST,
        DOCKER_LIST => OCI_INDEX,
        "application/vnd.docker.container.image.v1+json" => "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        _ => return None,
    })
}

/// Whether a manifest of this media type changes under [`to_oci`].
pub fn is_docker(media_type: &str) -> bool {
    media_type == DOCKER_MANIFEST || media_type == DOCKER_LIST
}

/// A new child of an index: what a rewritten child is now.
#[derive(Debug, Clone)]
pub struct NewChild {
    pub digest: Digest,
    pub size: usize,
    pub media_type: String,
}

/// The document with OCI media types where it had Docker ones (its own,
/// its config's and layers', its children's), and children rewritten
/// before it pointing at their new digests (`children`: old digest → new).
/// Everything else is kept as it was.
pub fn to_oci(bytes: &[u8], children: &HashMap<Digest, NewChild>) -> Result<Vec<u8>, ManifestError> {
    let mut doc = json(bytes)?;
    let retype = |d: &mut Value| {
        if let Some(new) = d.get("mediaType").and_then(Value::as_str).and_then(oci_type) {
            d["mediaType"] = Value::from(new);
        }
    };
    if let Some(obj) = doc.as_object_mut()
        && obj.contains_key("mediaType")
    {
        retype(&mut doc);
    }
    if let Some(config) = doc.get_mut("config") {
        retype(config);
    }
    if let Some(layers) = doc.get_mut("layers").and_then(Value::as_array_mut) {
        layers.iter_mut().for_each(retype);
    }
    if let Some(list) = doc.get_mut("manifests").and_then(Value::as_array_mut) {
        for d in list {
            let old = d
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|s| Digest::parse(s).ok());
            match old.and_then(|o| children.get(&o)) {
                Some(new) => {
                    d["digest"] = Value::from(new.digest.as_str());
                    d["size"] = Value::from(new.size);
                    d["mediaType"] = Value::from(new.media_type.as_str());
                }
                None => retype(d),
            }
        }
    }
    Ok(to_bytes(&doc))
}

/// `m` with the source's digest (and the platforms it was reduced to, if
/// it was) in its annotations, ready to be written.
pub fn annotated(
    m: &FetchedManifest,
    media_type: &str,
    source: &Digest,
    platforms: Option<&str>,
) -> Result<FetchedManifest, ManifestError> {
    let mut doc = json(&m.bytes)?;
    let Some(obj) = doc.as_object_mut() else {
        return Err(ManifestError::Json("a manifest that is not an object".into()));
    };
    let annotations = obj
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if !annotations.is_object() {
        *annotations = Value::Object(Default::default());
    }
    annotations[SOURCE_DIGEST] = Value::from(source.as_str());
    if let Some(p) = platforms {
        annotations[PLATFORMS] = Value::from(p);
    }
    if obj.contains_key("mediaType") {
        obj.insert("mediaType".into(), Value::from(media_type));
    }
    Ok(FetchedManifest::made(to_bytes(&doc), media_type))
}

/// What a rewritten manifest says it was made from: the source digest and
/// the platforms (each `None` when absent, as in any verbatim copy).
pub fn provenance(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(doc) = json(bytes) else { return (None, None) };
    let read = |k: &str| {
        doc.get("annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    (read(SOURCE_DIGEST), read(PLATFORMS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn index(children: &[(u8, &str, &str)]) -> Vec<u8> {
        let list: Vec<Value> = children
            .iter()
            .map(|(n, os, arch)| {
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d(*n), "size": 10,
                    "platform": {"os": os, "architecture": arch}})
            })
            .collect();
        to_bytes(&serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list}))
    }

    fn platforms(list: &[&str]) -> Vec<Platform> {
        list.iter().map(|p| Platform::parse(p).unwrap()).collect()
    }

    #[test]
    fn an_index_keeps_the_platforms_asked_for_and_their_attestations() {
        let mut doc = json(&index(&[
            (1, "linux", "amd64"),
            (2, "linux", "arm64"),
            (3, "linux", "s390x"),
        ]))
        .unwrap();
        doc["manifests"].as_array_mut().unwrap().push(serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": d(4), "size": 5,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {REFERENCE_TYPE: "attestation-manifest", REFERENCE_DIGEST: d(1)}
        }));
        let bytes = to_bytes(&doc);
        let Filtered::Some(kept) = filter_index(&bytes, &platforms(&["linux/amd64"])).unwrap() else {
            panic!()
        };
        let kept = json(&kept).unwrap();
        let digests: Vec<&str> = kept["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["digest"].as_str().unwrap())
            .collect();
        assert_eq!(digests, [d(1), d(4)]);
        assert_eq!(
            filter_index(&bytes, &platforms(&["linux/amd64", "linux/arm64", "linux/s390x"])).unwrap(),
            Filtered::All
        );
        assert_eq!(
            filter_index(&bytes, &platforms(&["windows/amd64"])).unwrap(),
            Filtered::Nothing {
                offered: vec!["linux/amd64".into(), "linux/arm64".into(), "linux/s390x".into()]
            }
        );
    }

    #[test]
    fn docker_becomes_oci_and_the_source_is_recorded() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":3}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":5}}]}}"#,
            d(1),
            d(2)
        );
        let oci = json(&to_oci(image.as_bytes(), &HashMap::new()).unwrap()).unwrap();
        assert_eq!(oci["mediaType"], OCI_MANIFEST);
        assert_eq!(oci["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
        assert_eq!(
            oci["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(oci["layers"][0]["digest"], d(2));

        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{}","size":9,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d(3)
        );
        let new = NewChild {
            digest: Digest::parse(&d(4)).unwrap(),
            size: 11,
            media_type: OCI_MANIFEST.into(),
        };
        let children = HashMap::from([(Digest::parse(&d(3)).unwrap(), new)]);
        let m = FetchedManifest::made(to_oci(list.as_bytes(), &children).unwrap(), DOCKER_LIST);
        let source = Digest::parse(&d(9)).unwrap();
        let out = annotated(&m, OCI_INDEX, &source, Some("linux/amd64")).unwrap();
        let doc = json(&out.bytes).unwrap();
        assert_eq!(doc["mediaType"], OCI_INDEX);
        assert_eq!(doc["manifests"][0]["digest"], d(4));
        assert_eq!(doc["manifests"][0]["size"], 11);
        assert_eq!(doc["manifests"][0]["platform"]["os"], "linux");
        assert!(out.digest.matches(&out.bytes));
        assert_eq!(
            provenance(&out.bytes),
            (Some(source.to_string()), Some("linux/amd64".into()))
        );
        assert_eq!(provenance(list.as_bytes()), (None, None));
    }

    proptest::proptest! {
        #[test]
        fn rewriting_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = filter_index(&bytes, &platforms(&["linux/amd64"]));
            let _ = to_oci(&bytes, &HashMap::new());
            let _ = provenance(&bytes);
        }
    }
}
