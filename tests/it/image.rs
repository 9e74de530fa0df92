//! The container image: assembled with buildah by the release's own scripts
//! from the same description as the Dockerfile (image/rootfs.sh and the
//! Dockerfile's runtime stage), then run as a pod would run it: user 65532,
//! read-only root, the config at /config/replicant.yaml. Skipped, with the
//! reason printed and recorded in target/skipped-tests.txt, only where
//! buildah cannot run.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::support::*;
use testkit::container::{Buildah, Image, Mount, RunSpec, skipped, static_binary};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn image(test: &str) -> Option<(Buildah, Image)> {
    let b = match Buildah::new() {
        Ok(b) => b,
        Err(reason) => {
            skipped(test, &reason);
            return None;
        }
    };
    let image = b.assemble(static_binary(), "localhost/replicant:test", VERSION);
    Some((b, image))
}

/// A folder the container's user (65532) may write into.
fn writable(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
}

#[test]
fn image_is_small_static_nonroot_and_labelled() {
    let Some((_b, image)) = image("image_is_small_static_nonroot_and_labelled") else {
        return;
    };
    let c = &image.config;
    assert_eq!(c["User"], "65532:65532", "{c}");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/replicant"]), "{c}");
    assert_eq!(c["Labels"]["org.opencontainers.image.version"], VERSION, "{c}");
    assert_eq!(c["Labels"]["org.opencontainers.image.licenses"], "Apache-2.0", "{c}");
    assert_eq!(c["Labels"]["org.opencontainers.image.title"], "replicant", "{c}");
    // the image is the binary and little else: what it adds (CA bundle,
    // passwd, licence files) stays small. The binary here is the tests'
    // unoptimised static build (Cargo.toml: image-test); the release's
    // `dist` build of the same code is about 17 MB.
    let binary = std::fs::metadata(static_binary()).unwrap().len();
    assert!(
        image.size.saturating_sub(binary) <= 2_000_000,
        "the runtime image adds {} bytes to the {binary}-byte binary, more than 2 MB",
        image.size.saturating_sub(binary)
    );
    assert!(binary <= 40_000_000, "the static test binary is {binary} bytes");
}

#[test]
fn image_mirrors_as_user_65532_with_a_read_only_root() {
    let Some((b, image)) = image("image_mirrors_as_user_65532_with_a_read_only_root") else {
        return;
    };
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let dc = TestClient::new(&dst.host(), None);
    let mut generator = ImageGen::default();
    sc.push_image("team/app", &generator.multi_arch(Format::Oci, 2000, &[]), "1.2.0");
    sc.push_image("team/app", &generator.multi_arch(Format::Docker, 2000, &[]), "1.3.0");

    let ws = Workspace::new();
    let config = ws.path("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("replicant.yaml"),
        format!(
            "mode: semver\nimages:\n  app:\n    source: {0}/team/app\n    destination: {1}/mirror/app\n  \
             layout:\n    source: {0}/team/app\n    destination: oci:/data/app\n",
            src.host(),
            dst.host()
        ),
    )
    .unwrap();
    let data = ws.path("data");
    writable(&data);
    let spec = RunSpec {
        mounts: vec![
            Mount {
                source: config.clone(),
                target: "/config".into(),
                read_only: true,
            },
            Mount {
                source: data.clone(),
                target: "/data".into(),
                read_only: false,
            },
        ],
        read_only_root: true,
        ..RunSpec::default()
    };
    let out = output(b.run(&image, &spec));
    assert_eq!(out.code, 0, "{out:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.2.0", "1.3.0"]);
    let tags = testkit::layout::validate_layout(&data.join("app")).expect("a complete layout");
    assert_eq!(tags.keys().collect::<Vec<_>>(), ["1.2.0", "1.3.0"]);
    // written by the image's user, not root
    let owner = std::fs::metadata(data.join("app/index.json")).unwrap().uid();
    assert_eq!(owner, 65532, "index.json written by uid {owner}");

    // the same container cannot write anywhere else: the root is read-only,
    // and replicant says so for the image, the others still mirrored
    std::fs::write(
        config.join("replicant.yaml"),
        format!(
            "images:\n  app:\n    source: {0}/team/app\n    destination: {1}/again/app\n  \
             nowhere:\n    source: {0}/team/app\n    destination: oci:/layouts/app\n",
            src.host(),
            dst.host()
        ),
    )
    .unwrap();
    let out = output(b.run(&image, &spec));
    assert_eq!(out.code, 1, "{out:?}");
    // the layout as the user wrote it, the system's reason, no temporary names
    assert!(
        out.stdout
            .contains("failed 1.3.0 (layout): oci:/layouts/app: create: /layouts"),
        "{out:?}"
    );
    assert!(out.stdout.contains("Read-only file system"), "{out:?}");
    assert!(
        !out.all().contains("replicant-new") && !out.all().contains(".replicant-tmp"),
        "{out:?}"
    );
    assert_eq!(dc.tags("again/app"), ["1.3.0"], "{out:?}");
}

#[test]
fn replicant_publishes_its_own_image_from_a_layout() {
    let test = "replicant_publishes_its_own_image_from_a_layout";
    let b = match Buildah::new() {
        Ok(b) => b,
        Err(reason) => return skipped(test, &reason),
    };
    let dst = Registry::start(Auth::Basic(vec![("publisher".into(), "s3cret".into())]));
    let work = tempfile::tempdir().unwrap();
    // the release's script: assemble, gather into an index in an OCI layout,
    // then replicant copies the layout to the registry with the credentials
    let out = b
        .script("scripts/release/publish-image")
        .args([
            "--image",
            &format!("{}/tools/replicant", dst.host()),
            "--version",
            VERSION,
        ])
        .arg("--binary")
        .arg(format!("amd64={}", static_binary().display()))
        .arg("--work")
        .arg(work.path())
        .env("REGISTRY_USER", "publisher")
        .env("REGISTRY_TOKEN", "s3cret")
        .output()
        .expect("run scripts/release/publish-image");
    let out = output(out);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains("s3cret"), "the token was printed: {out:?}");

    let dc = TestClient::new(&dst.host(), Some(("publisher", "s3cret")));
    assert_eq!(dc.tags("tools/replicant"), [VERSION]);
    let layout_tags = testkit::layout::validate_layout(&work.path().join("layout")).expect("layout");
    let digest = dc.digest("tools/replicant", VERSION).expect("published digest");
    assert_eq!(
        Some(&digest),
        layout_tags.get(VERSION),
        "published digest differs from the layout's"
    );
    let (bytes, media_type) = dc.manifest("tools/replicant", VERSION).unwrap();
    assert_eq!(media_type, "application/vnd.oci.image.index.v1+json");
    let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let platforms: Vec<_> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64"]);
    dc.assert_complete("tools/replicant", VERSION);
}
