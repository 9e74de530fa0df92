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
        let diff_ids: Vec<String> = layers.iter().map(|l| format!("\"{}\"", l.digest)).collect();
        let config = format!(
            r#"{{"architecture":"{}","os":"{}","config":{{"Labels":{{"testkit.nonce":"{}"}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            platform.1,
            platform.0,
            self.rng.random::<u64>(),
            diff_ids.join(",")
        )
        .into_bytes();
        let config = Blob {
            digest: sha256(&config),
            data: config,
            media_type: format.config_type().into(),
        };
        self.manifest(format, config, layers)
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

    /// A 3-platform index whose children share `shared` and each have one
    /// own layer of `size` bytes.
    pub fn multi_arch(&mut self, format: Format, size: usize, shared: &[Blob]) -> Image {
        let children = [("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")]
            .into_iter()
            .map(|p| self.image(format, &[size], shared, p))
            .collect();
        self.index(format, children)
    }
}
