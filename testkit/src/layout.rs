//! OCI image layouts for tests: write one from generated images, and check
//! one the way a careful reader would (every blob matches its digest, every
//! tag resolves to a complete tree).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::image::{Image, sha256};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn blob_path(dir: &Path, digest: &str) -> std::path::PathBuf {
    let (alg, hex) = digest.split_once(':').expect("digest");
    dir.join("blobs").join(alg).join(hex)
}

fn write_tree(dir: &Path, image: &Image) {
    for b in &image.blobs {
        let p = blob_path(dir, &b.digest);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, &b.data).unwrap();
    }
    for c in &image.children {
        write_tree(dir, c);
    }
    let p = blob_path(dir, &image.digest);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, &image.bytes).unwrap();
}

/// Writes a layout holding `images` under their tags.
pub fn write_layout(dir: &Path, images: &[(&str, &Image)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut manifests = Vec::new();
    for (tag, image) in images {
        write_tree(dir, image);
        manifests.push(json!({
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": image.bytes.len(),
            "annotations": { REF_NAME: tag },
        }));
    }
    let index =
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    std::fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index).unwrap()).unwrap();
}

/// Tag -> manifest digest, from `index.json`.
pub fn layout_tags(dir: &Path) -> BTreeMap<String, String> {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            let tag = m["annotations"][REF_NAME].as_str()?;
            Some((tag.to_string(), m["digest"].as_str()?.to_string()))
        })
        .collect()
}

/// Checks a layout; returns its tags, or what is wrong.
pub fn validate_layout(dir: &Path) -> Result<BTreeMap<String, String>, String> {
    if !dir.join("oci-layout").is_file() {
        return Err("no oci-layout".into());
    }
    let blobs = dir.join("blobs");
    for alg in std::fs::read_dir(&blobs).map_err(|e| format!("blobs: {e}"))? {
        let alg = alg.unwrap();
        for f in std::fs::read_dir(alg.path()).unwrap() {
            let f = f.unwrap();
            let name = format!(
                "{}:{}",
                alg.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            let data = std::fs::read(f.path()).unwrap();
            if sha256(&data) != name {
                return Err(format!("blob {name} does not match its digest"));
            }
        }
    }
    let tags = layout_tags(dir);
    for (tag, digest) in &tags {
        check_tree(dir, digest).map_err(|e| format!("tag {tag}: {e}"))?;
    }
    Ok(tags)
}

fn check_tree(dir: &Path, digest: &str) -> Result<(), String> {
    let bytes = std::fs::read(blob_path(dir, digest)).map_err(|_| format!("manifest {digest} missing"))?;
    let m: Value = serde_json::from_slice(&bytes).map_err(|e| format!("manifest {digest}: {e}"))?;
    for child in m["manifests"].as_array().into_iter().flatten() {
        check_tree(dir, child["digest"].as_str().unwrap_or_default())?;
    }
    let blobs = m["config"].as_object().into_iter().map(|c| &c["digest"]).chain(
        m["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| {
                let t = l["mediaType"].as_str().unwrap_or_default();
                !t.contains("foreign") && !t.contains("nondistributable")
            })
            .map(|l| &l["digest"]),
    );
    for b in blobs {
        let d = b.as_str().unwrap_or_default();
        if !blob_path(dir, d).is_file() {
            return Err(format!("blob {d} of {digest} missing"));
        }
    }
    Ok(())
}
