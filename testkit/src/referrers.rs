//! Referrers as signing tools store them: cosign's signature manifests
//! (tagged `sha256-<hex>.sig`), OCI 1.1 artifacts whose `subject` names an
//! image, the tag schema's index (`sha256-<hex>`); and a stand-in for the
//! OCI 1.1 referrers API in front of a real `docker-registry`
//! (Distribution 2.8 lacks it), answered from the registry's own storage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::image::{Blob, Image, sha256};
use crate::proxy::FaultProxy;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

fn blob(media_type: &str, data: Vec<u8>) -> Blob {
    Blob {
        digest: sha256(&data),
        data,
        media_type: media_type.into(),
    }
}

fn desc(b: &Blob) -> Value {
    json!({"mediaType": b.media_type, "digest": b.digest, "size": b.data.len()})
}

fn manifest(doc: Value, blobs: Vec<Blob>) -> Image {
    let bytes = serde_json::to_vec(&doc).unwrap();
    Image {
        digest: sha256(&bytes),
        bytes,
        media_type: doc["mediaType"].as_str().unwrap().into(),
        blobs,
        children: vec![],
    }
}

/// The tag the tag schema (and cosign, with a suffix) uses for `subject`.
pub fn schema_tag(subject: &Image) -> String {
    subject.digest.replace(':', "-")
}

/// A signature as cosign stores it: an image manifest whose layer is the
/// signed payload naming the subject, tagged `sha256-<hex>.sig`. `nonce`
/// makes each signature different.
pub fn cosign_signature(subject: &Image, nonce: u64) -> Image {
    let payload = json!({"critical": {"identity": {"docker-reference": "example"},
        "image": {"docker-manifest-digest": subject.digest}, "type": "cosign container image signature"},
        "optional": {"nonce": nonce}});
    let layer = blob(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        serde_json::to_vec(&payload).unwrap(),
    );
    let config = blob(
        "application/vnd.oci.image.config.v1+json",
        serde_json::to_vec(&json!({"architecture": "", "os": "", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}))
        .unwrap(),
    );
    let mut layer_desc = desc(&layer);
    layer_desc["annotations"] = json!({"dev.cosignproject.cosign/signature": format!("MEUCIQ{nonce}")});
    let doc = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(&config), "layers": [layer_desc]});
    manifest(doc, vec![config, layer])
}

/// An OCI 1.1 artifact about `subject` (its `subject` field names it).
pub fn artifact(subject: &Image, artifact_type: &str, payload: &[u8]) -> Image {
    let config = blob(EMPTY, b"{}".to_vec());
    let layer = blob(artifact_type, payload.to_vec());
    let doc = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
        "config": desc(&config), "layers": [desc(&layer)],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.bytes.len()},
        "annotations": {"org.opencontainers.image.created": "2026-12-02T00:00:00Z"}});
    manifest(doc, vec![config, layer])
}

/// The tag schema's index listing `artifacts` (push it under
/// [`schema_tag`] of their subject, as a client of a registry without the
/// referrers API does).
pub fn tag_schema_index(artifacts: &[&Image]) -> Image {
    let list: Vec<Value> = artifacts.iter().map(|a| descriptor_of(&a.bytes)).collect();
    let doc = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list});
    let mut index = manifest(doc, vec![]);
    index.children = artifacts.iter().map(|a| (*a).clone()).collect();
    index
}

/// A referrers-list descriptor for a manifest: digest, size, media type,
/// artifact type (the config's media type when it has none), annotations.
fn descriptor_of(bytes: &[u8]) -> Value {
    let doc: Value = serde_json::from_slice(bytes).unwrap_or_default();
    let artifact_type = doc
        .get("artifactType")
        .or_else(|| doc.pointer("/config/mediaType"))
        .cloned()
        .unwrap_or_default();
    let mut d = json!({"mediaType": doc.get("mediaType").cloned().unwrap_or(OCI_MANIFEST.into()),
        "digest": sha256(bytes), "size": bytes.len(), "artifactType": artifact_type});
    if let Some(a) = doc.get("annotations") {
        d["annotations"] = a.clone();
    }
    d
}

/// The referrers of `digest` in `repo`, read from the registry's storage:
/// every manifest of the repository whose `subject` names it.
pub fn referrers_in_storage(data: &Path, repo: &str, digest: &str) -> Value {
    let v2 = data.join("docker/registry/v2");
    let revisions = v2.join("repositories").join(repo).join("_manifests/revisions/sha256");
    let mut list = Vec::new();
    for entry in std::fs::read_dir(&revisions).into_iter().flatten().flatten() {
        let hex = entry.file_name().to_string_lossy().into_owned();
        let blob: PathBuf = v2
            .join("blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(&hex)
            .join("data");
        let Ok(bytes) = std::fs::read(&blob) else { continue };
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if doc.pointer("/subject/digest").and_then(Value::as_str) == Some(digest) {
            list.push(descriptor_of(&bytes));
        }
    }
    list.sort_by_key(|d| d["digest"].as_str().unwrap_or_default().to_string());
    json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list})
}

/// Makes `proxy` answer the referrers API for `repo` of the registry whose
/// storage is `data`, as an OCI 1.1 registry would; every other request
/// goes through to the registry.
pub fn serve_referrers_api(proxy: &FaultProxy, data: PathBuf, repo: &str) {
    let prefix = format!("/v2/{repo}/referrers/");
    let repo = repo.to_string();
    let strip = prefix.clone();
    proxy.route(
        &prefix,
        Arc::new(move |req: crate::http::Request| {
            let path = req.target.split('?').next().unwrap_or_default();
            let digest = path.strip_prefix(&strip).unwrap_or_default();
            let mut resp = crate::http::Response::json(200, referrers_in_storage(&data, &repo, digest).to_string());
            resp.headers = vec![("Content-Type".into(), OCI_INDEX.into())];
            resp
        }),
    );
}
