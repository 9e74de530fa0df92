//! Memory stays flat whatever the layer size: a 256 MiB layer is copied with
//! a peak resident set of replicant well under 64 MiB.

mod support;

use std::io::Write;
use std::process::Stdio;

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use support::*;

const LAYER: u64 = 256 * 1024 * 1024;
const LIMIT_KIB: i64 = 64 * 1024;

#[test]
fn a_256_mib_layer_is_streamed_in_bounded_memory() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let ws = Workspace::new();

    // the layer goes to a file (hashing as it is written), then to the source
    let layer_path = ws.path("layer.bin");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&layer_path).unwrap());
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..(LAYER >> 20) {
        rng.fill_bytes(&mut chunk);
        hasher.update(&chunk);
        file.write_all(&chunk).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let layer_digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    sc.push_blob_file("big/app", &layer_path, &layer_digest, LAYER);
    std::fs::remove_file(&layer_path).unwrap();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = testkit::image::sha256(config);
    sc.push_blob(
        "big/app",
        &testkit::image::Blob {
            digest: config_digest.clone(),
            data: config.to_vec(),
            media_type: String::new(),
        },
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{LAYER}}}]}}"#,
        config.len()
    );
    sc.push_manifest(
        "big/app",
        "1.0.0",
        manifest.as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    );

    let cfg = ws.write_config(&format!(
        "images:\n  big:\n    source: {}/big/app\n    destination: {}/mirror/big\n",
        src.host(),
        dst.host()
    ));
    let mut cmd = ws.command();
    cmd.arg("-c")
        .arg(&cfg)
        .stdout(Stdio::from(std::fs::File::create(ws.path("out")).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(ws.path("err")).unwrap()));
    // reaped below by wait4, which std's Child::wait cannot replace: it has
    // no resource usage
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    // wait4 reports this child's own peak resident set size (KiB on Linux)
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with valid pointers to locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let stdout = std::fs::read_to_string(ws.path("out")).unwrap();
    let stderr = std::fs::read_to_string(ws.path("err")).unwrap();
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{stdout}\n{stderr}"
    );

    assert_mirror(&sc, "big/app", &dc, "mirror/big", &["1.0.0"]);
    assert!(dc.blob_exists("mirror/big", &layer_digest));
    assert!(stdout.contains("2 transferred (256.0 MiB)"), "{stdout}");
    let peak_kib = usage.ru_maxrss;
    eprintln!(
        "replicant peak RSS copying a {} MiB layer: {} KiB",
        LAYER >> 20,
        peak_kib
    );
    assert!(peak_kib < LIMIT_KIB, "peak RSS {peak_kib} KiB exceeds {LIMIT_KIB} KiB");
}
