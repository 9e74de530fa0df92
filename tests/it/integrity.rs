//! Integrity: content that does not match its digest never lands under a tag.

use crate::support::*;

/// Overwrites a blob in the registry's own storage, keeping its length: the
/// registry then serves wrong bytes under the right digest.
fn corrupt_blob(reg: &Registry, digest: &str) {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let path = reg
        .data_dir()
        .join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn a_corrupt_source_blob_fails_the_tag_and_writes_no_manifest() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut generator = ImageGen::default();
    let good = generator.image(Format::Oci, &[4000], &[], ("linux", "amd64"));
    let bad = generator.multi_arch(Format::Oci, 3000, &[]);
    sc.push_image("team/app", &good, "1.0.0");
    sc.push_image("team/app", &bad, "1.1.0");
    // one layer of one platform of 1.1.0 goes bad at rest
    let victim = bad.children[1].blobs[1].digest.clone();
    corrupt_blob(&src, &victim);

    let ws = Workspace::new();
    let cfg = ws.app_config(&src.host(), &dst.host(), "mode: semver\n");
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("failed 1.1.0"))
        .unwrap_or_else(|| panic!("{run:?}"));
    assert!(
        line.contains(&format!("blob {victim}"))
            && line.contains("does not match its digest")
            && line.contains("failed 1.1.0 (integrity): "),
        "{line}"
    );
    // the good tag is there, the bad one is not; the corrupt blob never landed
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0"]);
    assert!(!dc.blob_exists("mirror/app", &victim));
    assert_eq!(dc.digest("mirror/app", &bad.digest), None, "no index was pushed");
}
