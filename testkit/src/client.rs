//! A small blocking registry client for setting up and checking tests.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use reqwest::blocking::{Body, Client, RequestBuilder, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use serde::Deserialize;

use crate::image::{Blob, Image};

pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

pub struct TestClient {
    base: String,
    http: Client,
    creds: Option<(String, String)>,
    /// Authorization header last used per repository.
    auth: Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(rename = "mediaType", default)]
    media_type: String,
}

#[derive(Deserialize)]
struct AnyManifest {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

impl TestClient {
    /// A client for a TLS registry at `host` whose certificate `ca_pem` signed.
    pub fn https(host: &str, ca_pem: &str) -> TestClient {
        crate::crypto();
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA");
        TestClient {
            base: format!("https://{host}"),
            http: Client::builder().tls_certs_merge([ca]).build().expect("client"),
            creds: None,
            auth: Mutex::new(HashMap::new()),
        }
    }

    /// A client for a registry that also requires a client certificate.
    pub fn mtls(host: &str, ca: &crate::tls::TestCa) -> TestClient {
        crate::crypto();
        let root = reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).expect("CA");
        let pem = format!("{}{}", ca.client_cert_pem, ca.client_key_pem);
        let id = reqwest::Identity::from_pem(pem.as_bytes()).expect("identity");
        TestClient {
            base: format!("https://{host}"),
            http: Client::builder()
                .tls_certs_merge([root])
                .identity(id)
                .build()
                .expect("client"),
            creds: None,
            auth: Mutex::new(HashMap::new()),
        }
    }

    /// `host` is `127.0.0.1:<port>`.
    pub fn new(host: &str, creds: Option<(&str, &str)>) -> TestClient {
        crate::crypto();
        TestClient {
            base: format!("http://{host}"),
            http: Client::builder()
                .timeout(std::time::Duration::from_secs(600))
                .build()
                .expect("client"),
            creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
            auth: Mutex::new(HashMap::new()),
        }
    }

    fn basic(&self) -> Option<String> {
        self.creds.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    /// Sends, answering one auth challenge if needed.
    fn send(&self, repo: &str, build: impl Fn() -> RequestBuilder) -> Response {
        let cached = self.auth.lock().unwrap().get(repo).cloned();
        let with = |h: &Option<String>| match h {
            Some(h) => build().header(AUTHORIZATION, h),
            None => build(),
        };
        let resp = with(&cached).send().expect("request");
        if resp.status().as_u16() != 401 {
            return resp;
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let header = if challenge.starts_with("Basic") {
            self.basic()
        } else {
            let params = parse_params(&challenge);
            let mut url = reqwest::Url::parse(params.get("realm").expect("realm")).expect("realm url");
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = params.get("service") {
                    q.append_pair("service", s);
                }
                if let Some(s) = params.get("scope") {
                    q.append_pair("scope", s);
                }
            }
            let mut req = self.http.get(url);
            if let Some(b) = self.basic() {
                req = req.header(AUTHORIZATION, b);
            }
            let body: serde_json::Value = req.send().expect("token").json().expect("token json");
            body["token"].as_str().map(|t| format!("Bearer {t}"))
        };
        if let Some(h) = &header {
            self.auth.lock().unwrap().insert(repo.to_string(), h.clone());
        }
        with(&header).send().expect("request")
    }

    fn url(&self, repo: &str, rest: &str) -> String {
        format!("{}/v2/{repo}/{rest}", self.base)
    }

    pub fn blob_exists(&self, repo: &str, digest: &str) -> bool {
        let url = self.url(repo, &format!("blobs/{digest}"));
        let resp = self.send(repo, || self.http.head(&url));
        match resp.status().as_u16() {
            200 => true,
            404 => false,
            s => panic!("HEAD {url}: {s}"),
        }
    }

    fn upload(&self, repo: &str, digest: &str, body: impl Fn() -> Body, len: u64) {
        let post = self.url(repo, "blobs/uploads/");
        let resp = self.send(repo, || self.http.post(&post).header(CONTENT_LENGTH, 0));
        assert_eq!(resp.status().as_u16(), 202, "POST {post}");
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .expect("Location")
            .to_string();
        let mut url = reqwest::Url::parse(&self.base).unwrap().join(&loc).unwrap();
        url.query_pairs_mut().append_pair("digest", digest);
        let resp = self.send(repo, || {
            self.http
                .put(url.clone())
                .header(CONTENT_LENGTH, len)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body())
        });
        assert_eq!(
            resp.status().as_u16(),
            201,
            "PUT blob {digest}: {}",
            resp.text().unwrap_or_default()
        );
    }

    pub fn push_blob(&self, repo: &str, blob: &Blob) {
        if self.blob_exists(repo, &blob.digest) {
            return;
        }
        let data = blob.data.clone();
        self.upload(repo, &blob.digest, || Body::from(data.clone()), blob.data.len() as u64);
    }

    /// Uploads a blob from a file without holding it in memory.
    pub fn push_blob_file(&self, repo: &str, path: &std::path::Path, digest: &str, len: u64) {
        self.upload(
            repo,
            digest,
            || Body::sized(std::fs::File::open(path).expect("open blob file"), len),
            len,
        );
    }

    /// Pushes `repo:tag`: one OCI image with a single random layer of `size`
    /// bytes (a whole number of MiB), generated into a file in `scratch`
    /// while it is hashed, so neither side holds it in memory. Returns the
    /// layer's digest.
    pub fn push_big_layer_image(&self, repo: &str, tag: &str, size: u64, scratch: &std::path::Path) -> String {
        use rand::{RngCore, SeedableRng};
        use sha2::Digest as _;
        use std::io::Write as _;
        let path = scratch.join("big-layer.bin");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("layer file"));
        let mut rng = rand::rngs::StdRng::seed_from_u64(size);
        let mut hasher = sha2::Sha256::new();
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..(size >> 20) {
            rng.fill_bytes(&mut chunk);
            hasher.update(&chunk);
            file.write_all(&chunk).expect("write layer");
        }
        file.flush().expect("write layer");
        drop(file);
        let layer = format!("sha256:{}", hex::encode(hasher.finalize()));
        self.push_blob_file(repo, &path, &layer, size);
        std::fs::remove_file(&path).expect("remove layer file");
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
        let config = Blob {
            digest: crate::image::sha256(&config),
            data: config,
            media_type: String::new(),
        };
        self.push_blob(repo, &config);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":{size}}}]}}"#,
            config.digest,
            config.data.len()
        );
        self.push_manifest(
            repo,
            tag,
            manifest.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        );
        layer
    }

    pub fn push_manifest(&self, repo: &str, reference: &str, bytes: &[u8], media_type: &str) {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let bytes = bytes.to_vec();
        let resp = self.send(repo, || {
            self.http.put(&url).header(CONTENT_TYPE, media_type).body(bytes.clone())
        });
        assert_eq!(
            resp.status().as_u16(),
            201,
            "PUT {url}: {}",
            resp.text().unwrap_or_default()
        );
    }

    /// Pushes an image tree (blobs, children by digest) and tags it.
    pub fn push_image(&self, repo: &str, image: &Image, tag: &str) {
        self.push_tree(repo, image);
        self.push_manifest(repo, tag, &image.bytes, &image.media_type);
    }

    fn push_tree(&self, repo: &str, image: &Image) {
        for b in &image.blobs {
            self.push_blob(repo, b);
        }
        for c in &image.children {
            self.push_tree(repo, c);
            self.push_manifest(repo, &c.digest, &c.bytes, &c.media_type);
        }
    }

    /// Deletes the manifest `tag` points at, and so every tag on it
    /// (Distribution 2.8 deletes by digest only).
    pub fn delete_tag(&self, repo: &str, tag: &str) {
        let digest = self
            .digest(repo, tag)
            .unwrap_or_else(|| panic!("{repo}:{tag} is absent"));
        let url = self.url(repo, &format!("manifests/{digest}"));
        let resp = self.send(repo, || self.http.delete(&url));
        assert_eq!(resp.status().as_u16(), 202, "DELETE {url}");
    }

    /// DELETEs the manifest `reference` (a tag or a digest) as it is, for
    /// registries that delete a tag alone (go-containerregistry's deletes
    /// only the key it is given).
    pub fn delete_reference(&self, repo: &str, reference: &str) {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let resp = self.send(repo, || self.http.delete(&url));
        assert!(resp.status().is_success(), "DELETE {url}: {}", resp.status());
    }

    /// The repository's tags, sorted; empty when it does not exist.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let url = self.url(repo, "tags/list");
        let resp = self.send(repo, || self.http.get(&url));
        if resp.status().as_u16() == 404 {
            return vec![];
        }
        assert_eq!(resp.status().as_u16(), 200, "GET {url}");
        let v: serde_json::Value = resp.json().expect("tags json");
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect())
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// The manifest digest of a tag, by HEAD; `None` when absent.
    pub fn digest(&self, repo: &str, reference: &str) -> Option<String> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let resp = self.send(repo, || self.http.head(&url).header(ACCEPT, MANIFEST_ACCEPT));
        match resp.status().as_u16() {
            200 => resp
                .headers()
                .get("docker-content-digest")
                .and_then(|h| h.to_str().ok())
                .map(String::from),
            404 => None,
            s => panic!("HEAD {url}: {s}"),
        }
    }

    pub fn manifest(&self, repo: &str, reference: &str) -> Option<(Vec<u8>, String)> {
        let url = self.url(repo, &format!("manifests/{reference}"));
        let resp = self.send(repo, || self.http.get(&url).header(ACCEPT, MANIFEST_ACCEPT));
        match resp.status().as_u16() {
            200 => {
                let ct = resp
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                Some((resp.bytes().expect("body").to_vec(), ct))
            }
            404 => None,
            s => panic!("GET {url}: {s}"),
        }
    }

    /// Checks that every manifest and blob of the tree under `reference` is
    /// present and matches its digest; returns how many objects were checked.
    pub fn assert_complete(&self, repo: &str, reference: &str) -> usize {
        let (bytes, _) = self
            .manifest(repo, reference)
            .unwrap_or_else(|| panic!("{repo}:{reference} missing"));
        if reference.starts_with("sha256:") {
            assert_eq!(
                crate::image::sha256(&bytes),
                reference,
                "{repo}@{reference} bytes do not match"
            );
        }
        let m: AnyManifest = serde_json::from_slice(&bytes).expect("manifest json");
        let mut checked = 1;
        for child in &m.manifests {
            checked += self.assert_complete(repo, &child.digest);
        }
        // non-distributable ("foreign") layers live elsewhere, by design
        let foreign = |d: &&Descriptor| d.media_type.contains("foreign") || d.media_type.contains("nondistributable");
        for blob in m.config.iter().chain(m.layers.iter()).filter(|d| !foreign(d)) {
            assert!(
                self.blob_exists(repo, &blob.digest),
                "{repo}: blob {} of {reference} missing",
                blob.digest
            );
            checked += 1;
        }
        checked
    }
}

fn parse_params(header: &str) -> HashMap<String, String> {
    let rest = header.split_once(' ').map(|(_, r)| r).unwrap_or("");
    let mut out = HashMap::new();
    let mut rest = rest.trim();
    while let Some((k, v)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let v = v.trim_start();
        let (value, tail) = if let Some(q) = v.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (q[..end].to_string(), &q[(end + 1).min(q.len())..])
        } else {
            let end = v.find(',').unwrap_or(v.len());
            (v[..end].to_string(), &v[end..])
        };
        out.insert(k, value);
        rest = tail.trim();
    }
    out
}
