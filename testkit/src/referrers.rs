//! Referrers as signing tools store them: cosign's signature manifests
//! (tagged `sha256-<hex>.sig`), OCI 1.1 artifacts whose `subject` names an
//! image, the tag schema's index (`sha256-<hex>`); and what a registry's
//! referrers API lists (go-containerregistry's registry has one:
//! `Implementation::Ggcr`).

use serde_json::{Value, json};

use crate::image::{Blob, Image, sha256};

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

/// The referrers of `digest` in `repo` as a registry's referrers API lists
/// them (`host`: `127.0.0.1:<port>`, plain HTTP).
pub fn referrers_by_api(host: &str, repo: &str, digest: &str) -> Value {
    let url = format!("http://{host}/v2/{repo}/referrers/{digest}");
    crate::crypto();
    let resp = reqwest::blocking::get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().unwrap_or_else(|e| panic!("GET {url}: {e}"))
}
