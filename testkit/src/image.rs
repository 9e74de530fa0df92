//! Test images: random layers, Docker and OCI manifests, multi-platform
//! indexes, layers shared between images.

use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Docker,
    Oci,
}

impl Format {
    pub fn manifest_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.distribution.manifest.v2+json",
            Format::Oci => "application/vnd.oci.image.manifest.v1+json",
        }
    }
    pub fn index_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
            Format::Oci => "application/vnd.oci.image.index.v1+json",
        }
    }
    fn config_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.container.image.v1+json",
            Format::Oci => "application/vnd.oci.image.config.v1+json",
        }
    }
    fn layer_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Format::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub data: Vec<u8>,
    pub media_type: String,
}

/// A manifest with everything it refers to.
#[derive(Debug, Clone)]
pub struct Image {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: String,
    /// Blobs of this manifest (empty for an index).
    pub blobs: Vec<Blob>,
    /// Child manifests (for an index).
    pub children: Vec<Image>,
}

impl Image {
    /// Every blob of the tree.
    pub fn all_blobs(&self) -> Vec<&Blob> {
        let mut out: Vec<&Blob> = self.blobs.iter().collect();
        for c in &self.children {
            out.extend(c.all_blobs());
        }
        out
    }
}

/// The platforms of a multi-platform test image.
const MULTI_ARCH: [(&str, &str); 3] = [("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")];

/// Makes images; seeded for reproducible test data.
pub struct ImageGen {
    rng: StdRng,
}

impl Default for ImageGen {
    fn default() -> Self {
        ImageGen {
            rng: StdRng::from_os_rng(),
        }
    }
}

impl ImageGen {
    pub fn seeded(seed: u64) -> ImageGen {
        ImageGen {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A random layer blob of `size` bytes.
    pub fn layer(&mut self, format: Format, size: usize) -> Blob {
        let mut data = vec![0u8; size];
        self.rng.fill_bytes(&mut data);
        Blob {
            digest: sha256(&data),
            data,
            media_type: format.layer_type().into(),
        }
    }

    /// A single-platform image with new random layers of `sizes` bytes,
    /// plus `shared` layers (reused from other images).
    pub fn image(&mut self, format: Format, sizes: &[usize], shared: &[Blob], platform: (&str, &str)) -> Image {
        let mut layers: Vec<Blob> = shared.to_vec();
        for &s in sizes {
            layers.push(self.layer(format, s));
        }
        let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
        let config = self.config(format, platform, &diff_ids);
        self.manifest(format, config, layers)
    }

    /// A single-platform image whose layers are real gzip-compressed tar
    /// archives (one random file each) and whose config lists their diff
    /// IDs, so that clients that unpack layers (`crane validate`) accept it.
    pub fn real_image(&mut self, format: Format, sizes: &[usize], platform: (&str, &str)) -> Image {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let mut content = vec![0u8; size];
            self.rng.fill_bytes(&mut content);
            let tar = tar_of(&format!("file-{i}"), &content);
            diff_ids.push(sha256(&tar));
            let data = gzip_stored(&tar);
            layers.push(Blob {
                digest: sha256(&data),
                data,
                media_type: format.layer_type().into(),
            });
        }
        let config = self.config(format, platform, &diff_ids);
        self.manifest(format, config, layers)
    }

    /// [`ImageGen::multi_arch`] of [`ImageGen::real_image`]s.
    pub fn real_multi_arch(&mut self, format: Format, size: usize) -> Image {
        let children = MULTI_ARCH
            .into_iter()
            .map(|p| self.real_image(format, &[size], p))
            .collect();
        self.index(format, children)
    }

    /// An image config for `platform` listing `diff_ids`, made unique.
    fn config(&mut self, format: Format, platform: (&str, &str), diff_ids: &[String]) -> Blob {
        let quoted: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
        let config = format!(
            r#"{{"architecture":"{}","os":"{}","config":{{"Labels":{{"testkit.nonce":"{}"}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            platform.1,
            platform.0,
            self.rng.random::<u64>(),
            quoted.join(",")
        )
        .into_bytes();
        Blob {
            digest: sha256(&config),
            data: config,
            media_type: format.config_type().into(),
        }
    }

    /// An image manifest over the given config and layers.
    pub fn manifest(&mut self, format: Format, config: Blob, layers: Vec<Blob>) -> Image {
        let desc = |b: &Blob| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
                b.media_type,
                b.digest,
                b.data.len()
            )
        };
        let layer_descs: Vec<String> = layers.iter().map(desc).collect();
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
            format.manifest_type(),
            desc(&config),
            layer_descs.join(",")
        )
        .into_bytes();
        let mut blobs = vec![config];
        blobs.extend(layers);
        Image {
            digest: sha256(&bytes),
            bytes,
            media_type: format.manifest_type().into(),
            blobs,
            children: vec![],
        }
    }

    /// An index over `children` (platforms taken in order from a fixed list).
    pub fn index(&mut self, format: Format, children: Vec<Image>) -> Image {
        const PLATFORMS: [(&str, &str); 4] = [
            ("linux", "amd64"),
            ("linux", "arm64"),
            ("linux", "s390x"),
            ("windows", "amd64"),
        ];
        let descs: Vec<String> = children
            .iter()
            .zip(PLATFORMS.iter().cycle())
            .map(|(c, (os, arch))| {
                format!(
                    r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"{os}"}}}}"#,
                    c.media_type,
                    c.digest,
                    c.bytes.len()
                )
            })
            .collect();
        let bytes = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            format.index_type(),
            descs.join(",")
        )
        .into_bytes();
        Image {
            digest: sha256(&bytes),
            bytes,
            media_type: format.index_type().into(),
            blobs: vec![],
            children,
        }
    }

    /// A single-platform image that says when it was made: `created` in
    /// its config, the `org.opencontainers.image.created` annotation on
    /// its manifest, either, both or neither.
    pub fn image_made(&mut self, format: Format, created: Option<&str>, annotated: Option<&str>) -> Image {
        let layer = self.layer(format, 500);
        let mut config = self.config(format, ("linux", "amd64"), std::slice::from_ref(&layer.digest));
        if let Some(t) = created {
            let mut doc: serde_json::Value = serde_json::from_slice(&config.data).unwrap();
            doc["created"] = t.into();
            config.data = serde_json::to_vec(&doc).unwrap();
            config.digest = sha256(&config.data);
        }
        let mut image = self.manifest(format, config, vec![layer]);
        if let Some(t) = annotated {
            let mut doc: serde_json::Value = serde_json::from_slice(&image.bytes).unwrap();
            doc["annotations"] = serde_json::json!({ "org.opencontainers.image.created": t });
            image.bytes = serde_json::to_vec(&doc).unwrap();
            image.digest = sha256(&image.bytes);
        }
        image
    }

    /// A 3-platform index whose children share `shared` and each have one
    /// own layer of `size` bytes.
    pub fn multi_arch(&mut self, format: Format, size: usize, shared: &[Blob]) -> Image {
        let children = MULTI_ARCH
            .into_iter()
            .map(|p| self.image(format, &[size], shared, p))
            .collect();
        self.index(format, children)
    }
}

/// A tar archive (ustar) holding one regular file.
fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u64 = header.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}

/// `data` as a gzip stream of stored (uncompressed) deflate blocks: valid
/// gzip without a compressor.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    let mut chunks = data.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), as gzip's trailer needs it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
