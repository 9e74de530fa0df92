//! Memory stays flat whatever the layer size and the concurrency: a 256 MiB
//! layer, or many large layers at once, are copied with a peak resident set
//! of replicant well under 64 MiB.

use std::process::Stdio;

use crate::support::*;

const LAYER: u64 = 256 * 1024 * 1024;
const LIMIT_KIB: i64 = 64 * 1024;
/// Many streams at once: their buffers' room and a little more.
const STREAMS_LIMIT_KIB: i64 = 44 * 1024;

/// Runs replicant with `args` and returns its output and peak RSS (KiB).
fn run_measured(ws: &Workspace, cfg: &std::path::Path, args: &[&str]) -> (String, String, i64) {
    let mut cmd = ws.command();
    cmd.arg("-c")
        .arg(cfg)
        .args(args)
        .stdout(Stdio::from(std::fs::File::create(ws.path("out")).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(ws.path("err")).unwrap()));
    let mut child = cmd.spawn().unwrap();
    let watch = testkit::measure::PeakRss::watch(child.id());
    let exit = child.wait().unwrap();
    let peak = watch.stop();
    let stdout = std::fs::read_to_string(ws.path("out")).unwrap();
    let stderr = std::fs::read_to_string(ws.path("err")).unwrap();
    assert!(exit.success(), "{stdout}\n{stderr}");
    assert!(peak > 0, "no VmHWM was read");
    (stdout, stderr, peak)
}

/// At the defaults (64 jobs, up to 128 connections a registry), 96 large
/// layers want to stream at once: the room for the streams' buffers
/// (`defaults::STREAM_MEMORY`) lets 32 go, the rest wait for it (without
/// it, and with glibc's moving mmap threshold, this took 52 MiB; it takes
/// about 34 MiB, loaded machine or not).
#[test]
fn many_large_layers_at_once_stay_in_bounded_memory() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut generator = ImageGen::default();
    let mut yaml = String::from("mode: semver\nimages:\n");
    let (repos, tags) = (
        ["a", "b", "c", "d"],
        ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0", "2.1.0", "2.2.0", "2.3.0"],
    );
    for repo in repos {
        for tag in tags {
            // three platforms, each with its own 4 MiB layer
            sc.push_image(
                &format!("big/{repo}"),
                &generator.multi_arch(Format::Oci, 4 << 20, &[]),
                tag,
            );
        }
        yaml.push_str(&format!(
            "  {repo}:\n    source: {}/big/{repo}\n    destination: {}/mirror/{repo}\n",
            src.host(),
            dst.host()
        ));
    }
    let ws = Workspace::new();
    let cfg = ws.write_config(&yaml);
    let (stdout, _, peak_kib) = run_measured(&ws, &cfg, &[]);
    for repo in repos {
        assert_mirror(&sc, &format!("big/{repo}"), &dc, &format!("mirror/{repo}"), &tags);
    }
    assert!(stdout.contains("192 transferred (384.0 MiB)"), "{stdout}");
    eprintln!("replicant peak RSS copying 96 layers of 4 MiB at the defaults: {peak_kib} KiB");
    assert!(
        peak_kib < STREAMS_LIMIT_KIB,
        "peak RSS {peak_kib} KiB exceeds {STREAMS_LIMIT_KIB} KiB"
    );
}

#[test]
fn a_256_mib_layer_is_streamed_in_bounded_memory() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let ws = Workspace::new();

    // the layer goes to a file (hashing as it is written), then to the source
    let layer_digest = sc.push_big_layer_image("big/app", "1.0.0", LAYER, ws.dir.path());

    let cfg = ws.write_config(&format!(
        "images:\n  big:\n    source: {}/big/app\n    destination: {}/mirror/big\n",
        src.host(),
        dst.host()
    ));
    let (stdout, _, peak_kib) = run_measured(&ws, &cfg, &[]);
    assert_mirror(&sc, "big/app", &dc, "mirror/big", &["1.0.0"]);
    assert!(dc.blob_exists("mirror/big", &layer_digest));
    assert!(stdout.contains("2 transferred (256.0 MiB)"), "{stdout}");
    eprintln!(
        "replicant peak RSS copying a {} MiB layer: {} KiB",
        LAYER >> 20,
        peak_kib
    );
    assert!(peak_kib < LIMIT_KIB, "peak RSS {peak_kib} KiB exceeds {LIMIT_KIB} KiB");
}
