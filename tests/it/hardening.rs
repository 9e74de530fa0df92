//! Hostile registries and layouts, one test per way they were found to do
//! harm: incomplete images under a tag, panics, credentials sent off the
//! registry, lost media types, forged log lines, symbolic links out of a
//! layout. Where a real registry cannot misbehave that way, a stand-in
//! server or a crafted layout does.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::*;
use serde_json::json;
use testkit::http::{Response, Server};
use testkit::image::{Blob, sha256};
use testkit::layout::{validate_layout, write_layout};

const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn blob(data: &[u8]) -> Blob {
    Blob {
        digest: sha256(data),
        data: data.to_vec(),
        media_type: OCI_LAYER.into(),
    }
}

fn yaml(source: &str, destination: &str) -> String {
    format!("mode: all\nimages:\n  app:\n    source: {source}\n    destination: {destination}\n")
}

/// A server that counts the requests it gets (a place credentials must
/// never reach).
fn recorder() -> (Server, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = Server::start(move |_| {
        h.fetch_add(1, Ordering::SeqCst);
        Response::json(200, "{\"tags\":[]}".into())
    });
    (server, hits)
}

#[test]
fn a_blob_with_a_manifests_bytes_never_stands_for_that_manifest() {
    let mut generator = ImageGen::default();
    // M: an image of its own; tag a: an image whose layer has M's exact
    // bytes; tag b: an index that lists M
    let m = generator.image(Format::Oci, &[300], &[], ("linux", "amd64"));
    let config = generator.image(Format::Oci, &[], &[], ("linux", "arm64")).blobs[0].clone();
    let a = generator.manifest(Format::Oci, config, vec![blob(&m.bytes)]);
    let b = generator.index(Format::Oci, vec![m.clone()]);
    let ws = Workspace::new();
    let src = ws.path("src");
    write_layout(&src, &[("a", &a), ("b", &b)]);

    // into a layout
    let out = ws.path("out");
    let cfg = ws.write_config(&yaml(
        &format!("oci:{}", src.display()),
        &format!("oci:{}", out.display()),
    ));
    let run = ws.run(&cfg, &["--jobs", "1"]);
    assert_eq!(run.code, 0, "{run:?}");
    let tags = validate_layout(&out).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    assert_eq!(tags.len(), 2, "{tags:?}");

    // into a registry
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let cfg = ws.write_config(&yaml(&format!("oci:{}", src.display()), &format!("{}/m/x", dst.host())));
    let run = ws.run(&cfg, &["--jobs", "1"]);
    assert_eq!(run.code, 0, "{run:?}");
    for tag in ["a", "b"] {
        dc.assert_complete("m/x", tag);
    }
}

#[test]
fn huge_numbers_from_a_registry_do_not_panic() {
    // a token that claims to live 2^64 s, a pull budget window of 2^64 s
    let server = Server::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        let port = req.headers.get("host").cloned().unwrap_or_default();
        match path.as_str() {
            "/v2/" if !req.headers.contains_key("authorization") => Response {
                status: 401,
                headers: vec![(
                    "WWW-Authenticate".into(),
                    format!("Bearer realm=\"http://{port}/token\",service=\"x\""),
                )],
                body: vec![],
            },
            "/token" => Response::json(200, r#"{"token":"t","expires_in":18446744073709551615}"#.into()),
            p if p.ends_with("/tags/list") => {
                let mut r = Response::json(200, r#"{"tags":["1.0.0"]}"#.into());
                r.headers
                    .push(("ratelimit-remaining".into(), "0;w=18446744073709551615".into()));
                r
            }
            _ => Response::json(200, "{}".into()),
        }
    });
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let cfg = ws.app_config(&format!("127.0.0.1:{}", server.port), &dst.host(), "");
    let run = ws.run(&cfg, &["--retries", "0"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    assert!(run.stdout.contains("pull budget"), "{run:?}");
    assert!(run.stdout.contains("totals: 1 images, 1 failed"), "{run:?}");
}

#[test]
fn links_and_locations_off_the_registry_are_refused() {
    let (elsewhere, hits) = recorder();
    let other = format!("127.0.0.1:{}", elsewhere.port);

    // a tag list whose next page is on another host
    let o = other.clone();
    let paging = Server::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        if path.ends_with("/tags/list") {
            let mut r = Response::json(200, r#"{"tags":["1.0.0"]}"#.into());
            r.headers.push((
                "Link".into(),
                format!("<http://{o}/v2/team/app/tags/list?last=1.0.0>; rel=\"next\""),
            ));
            return r;
        }
        Response::json(200, "{}".into())
    });
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let cfg = ws.app_config(&format!("127.0.0.1:{}", paging.port), &dst.host(), "");
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("tag list Link points to http://{other}/v2/team/app/tags/list")),
        "{run:?}"
    );
    assert!(run.stdout.contains("refused"), "{run:?}");

    // an upload session placed on another host
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    sc.push_image(
        "team/app",
        &ImageGen::default().image(Format::Oci, &[100], &[], ("linux", "amd64")),
        "1.0.0",
    );
    let o = other.clone();
    let diverting = Server::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        if path == "/v2/" {
            return Response::json(200, "{}".into());
        }
        if req.method == "POST" && path.ends_with("/blobs/uploads/") {
            let mut r = Response::json(202, String::new());
            r.headers.push(("Location".into(), format!("http://{o}/upload/1")));
            return r;
        }
        Response::json(404, r#"{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}"#.into())
    });
    let cfg = ws.app_config(&src.host(), &format!("127.0.0.1:{}", diverting.port), "");
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("upload Location points to http://{other}/upload/1")),
        "{run:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent off the registry");
}

/// A layout whose manifests carry no `mediaType` field: the types are only
/// in `index.json` and in the index's child descriptors (valid OCI).
fn layout_without_media_type_fields(dir: &Path) -> (String, String) {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"layer without a type in its manifest";
    let desc = |data: &[u8], t: &str| json!({"mediaType": t, "digest": sha256(data), "size": data.len()});
    let image = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "config": desc(config, "application/vnd.oci.image.config.v1+json"),
        "layers": [desc(layer, OCI_LAYER)],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [desc(&image, "application/vnd.oci.image.manifest.v1+json")],
    }))
    .unwrap();
    for data in [&config[..], &layer[..], &image, &index] {
        let d = sha256(data);
        let p = dir.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let entry = |data: &[u8], t: &str, tag: &str| {
        json!({"mediaType": t, "digest": sha256(data), "size": data.len(),
               "annotations": {"org.opencontainers.image.ref.name": tag}})
    };
    let top = json!({"schemaVersion": 2, "manifests": [
        entry(&image, "application/vnd.oci.image.manifest.v1+json", "single"),
        entry(&index, "application/vnd.oci.image.index.v1+json", "multi"),
    ]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    (sha256(&image), sha256(&index))
}

#[test]
fn media_types_come_from_the_descriptor_when_the_content_has_none() {
    let ws = Workspace::new();
    let src = ws.path("src");
    let (image, index) = layout_without_media_type_fields(&src);

    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let cfg = ws.write_config(&yaml(&format!("oci:{}", src.display()), &format!("{}/m/t", dst.host())));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(dc.digest("m/t", "single").as_deref(), Some(image.as_str()));
    assert_eq!(dc.digest("m/t", "multi").as_deref(), Some(index.as_str()));
    let (_, served) = dc.manifest("m/t", "multi").unwrap();
    assert_eq!(served, "application/vnd.oci.image.index.v1+json");
    dc.assert_complete("m/t", "multi");

    let out = ws.path("out");
    let cfg = ws.write_config(&yaml(
        &format!("oci:{}", src.display()),
        &format!("oci:{}", out.display()),
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let types: Vec<&str> = written["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mediaType"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"application/vnd.oci.image.manifest.v1+json"),
        "{types:?}"
    );
    assert!(types.contains(&"application/vnd.oci.image.index.v1+json"), "{types:?}");
}

#[test]
fn a_registrys_words_cannot_forge_log_lines() {
    let forged = "DENIED\n2026-01-01T00:00:00.000000Z  INFO done image=forged\u{1b}[2J";
    let message = format!("{forged}{}", "x".repeat(50_000));
    let body = json!({"errors": [{"code": forged, "message": message}]}).to_string();
    let server = Server::start(move |req| {
        if req.target == "/v2/" {
            return Response::json(200, "{}".into());
        }
        Response::json(400, body.clone())
    });
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let cfg = ws.app_config(&format!("127.0.0.1:{}", server.port), &dst.host(), "");
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    let all = run.all();
    assert!(!all.contains('\u{1b}'), "an escape sequence reached the output");
    assert!(
        !all.lines().any(|l| l.starts_with("2026-01-01T00:00:00")),
        "a forged line: {run:?}"
    );
    assert!(
        all.contains("DENIED 2026-01-01T00:00:00"),
        "the code is shown, on one line: {run:?}"
    );
    let longest = all.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 5_000, "a line of {longest} bytes");
}

#[test]
fn platform_names_cannot_forge_log_lines_or_reach_the_report_raw() {
    // JSON escapes: the manifest's strings hold a line break and an ESC
    let forged = "linux\\n2026-01-01T00:00:00.000000Z  INFO copied 9.9.9\\u001b[2J";
    let mut g = ImageGen::default();
    let single = g.image(Format::Oci, &[100], &[], (forged, "amd64"));
    let child = g.image(Format::Oci, &[100], &[], ("linux", "amd64"));
    let mut index = g.index(Format::Oci, vec![child]);
    index.bytes = String::from_utf8(index.bytes)
        .unwrap()
        .replace("\"os\":\"linux\"", &format!("\"os\":\"{forged}\""))
        .replace(
            "\"architecture\":\"amd64\"",
            "\"architecture\":\"amd64\",\"variant\":\"v\\n\\u001b[31mred\"",
        )
        .into_bytes();
    index.digest = sha256(&index.bytes);
    let ws = Workspace::new();
    let src = ws.path("src");
    write_layout(&src, &[("1.0.0", &single), ("2.0.0", &index)]);
    let cfg = ws.write_config(&format!(
        "mode: all\nplatforms: [linux/arm64]\nimages:\n  app:\n    source: oci:{}\n    destination: oci:{}\n",
        src.display(),
        ws.path("out").display()
    ));
    let report = ws.path("report.json");
    let run = ws.run(&cfg, &["--report", report.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("skipped, none of the platforms asked for (2): 1.0.0, 2.0.0"),
        "{run:?}"
    );
    let all = run.all();
    assert!(
        !all.contains('\u{1b}'),
        "an escape sequence reached the output: {run:?}"
    );
    assert!(
        !all.lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00") || l.starts_with("[31m")),
        "a forged line: {run:?}"
    );
    assert!(
        all.contains("linux 2026-01-01T00:00:00.000000Z  INFO copied 9.9.9"),
        "{run:?}"
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let reasons: Vec<&str> = doc["images"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["error"].as_str())
        .collect();
    assert_eq!(reasons.len(), 2, "{text}");
    for why in reasons {
        assert!(!why.contains(['\n', '\u{1b}']), "{why:?}");
    }
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn layouts_never_lead_outside_themselves() {
    let image = ImageGen::default().image(Format::Oci, &[200], &[], ("linux", "amd64"));
    let ws = Workspace::new();
    let src = ws.path("src");
    write_layout(&src, &[("1.0.0", &image)]);
    let from_src = format!("oci:{}", src.display());

    // the lock file of a destination is a link to a file elsewhere
    let outside = ws.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let dst = ws.path("lock-link");
    write_layout(&dst, &[]);
    symlink(&outside.join("planted"), &dst.join(".replicant.lock"));
    let run = ws.run(
        &ws.write_config(&yaml(&from_src, &format!("oci:{}", dst.display()))),
        &[],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(".replicant.lock is a symbolic link: refused"),
        "{run:?}"
    );
    assert!(!outside.join("planted").exists());

    // the blobs folder of a destination is a link to a folder elsewhere
    let dst = ws.path("blobs-link");
    write_layout(&dst, &[]);
    std::fs::remove_dir_all(dst.join("blobs/sha256")).ok();
    std::fs::create_dir_all(dst.join("blobs")).unwrap();
    symlink(&outside, &dst.join("blobs/sha256"));
    let run = ws.run(
        &ws.write_config(&yaml(&from_src, &format!("oci:{}", dst.display()))),
        &[],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("blobs/sha256 is a symbolic link: refused"),
        "{run:?}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );

    // a source blob is a link to a host file with the right content
    let host_file = ws.path("host-file");
    let layer = &image.blobs[1];
    std::fs::write(&host_file, &layer.data).unwrap();
    let linked = ws.path("linked-src");
    write_layout(&linked, &[("1.0.0", &image)]);
    let blob_path = linked
        .join("blobs/sha256")
        .join(layer.digest.trim_start_matches("sha256:"));
    std::fs::remove_file(&blob_path).unwrap();
    symlink(&host_file, &blob_path);
    let out = ws.path("out-linked");
    let run = ws.run(
        &ws.write_config(&yaml(
            &format!("oci:{}", linked.display()),
            &format!("oci:{}", out.display()),
        )),
        &[],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("is a symbolic link: refused"), "{run:?}");

    // a destination that is a dangling link says so
    let dangling = ws.path("dangling");
    symlink(&ws.path("nowhere"), &dangling);
    let run = ws.run(
        &ws.write_config(&yaml(&from_src, &format!("oci:{}", dangling.display()))),
        &[],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("which does not exist"), "{run:?}");

    // one layout reached by two paths is one layout, not two lock holders
    let real = ws.path("real");
    let alias = ws.path("alias");
    std::fs::create_dir_all(&real).unwrap();
    symlink(&real, &alias);
    let cfg = ws.write_config(&format!(
        "mode: all\nimages:\n  one:\n    source: {from_src}\n    destination: oci:{}\n  two:\n    source: {from_src}\n    destination: oci:{}/\n",
        real.display(),
        alias.display()
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    validate_layout(&real).unwrap();
}

/// Runs to the end, watching the child's peak RSS (MiB).
fn run_measured(ws: &Workspace, cfg: &Path, args: &[&str]) -> (Run, i64) {
    let child = ws.spawn(cfg, args);
    let watch = testkit::measure::PeakRss::watch(child.id());
    let run = output(child.wait_with_output().unwrap());
    (run, watch.stop() / 1024)
}

#[test]
fn memory_stays_bounded_whatever_the_peer_sends() {
    let ws = Workspace::new();
    let dst = Registry::start(Auth::None);

    // a tag list that pages on forever, 7 MB a page
    let endless = Server::start(|req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        if !path.ends_with("/tags/list") {
            return Response::json(200, "{}".into());
        }
        let page: usize = req
            .query()
            .iter()
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let tags: Vec<String> = (0..350_000).map(|i| format!("\"1.{page}.{i}-padding\"")).collect();
        let mut r = Response::json(200, format!("{{\"tags\":[{}]}}", tags.join(",")));
        r.headers
            .push(("Link".into(), format!("<{path}?page={}>; rel=\"next\"", page + 1)));
        r
    });
    let cfg = ws.app_config(&format!("127.0.0.1:{}", endless.port), &dst.host(), "");
    let (run, peak) = run_measured(&ws, &cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("the tag list: it goes on past"), "{run:?}");
    eprintln!("peak RSS {peak} MiB");
    assert!(peak <= 256, "peak RSS {peak} MiB");

    // an index of 70 children of almost 4 MiB each (280 MiB of manifests)
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let child = {
        let config = config.clone();
        move |i: usize| {
            let desc = json!({"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()});
            let pad = "x".repeat(4 * 1024 * 1024 - 1024);
            serde_json::to_vec(
                &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": desc, "layers": [], "annotations": {"n": i.to_string(), "pad": pad}}),
            )
            .unwrap()
        }
    };
    let children: Vec<(String, usize)> = (0..70)
        .map(|i| {
            let bytes = child(i);
            (sha256(&bytes), bytes.len())
        })
        .collect();
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children.iter().map(|(d, n)| json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": n,
            "platform": {"os": "linux", "architecture": "amd64"}})).collect::<Vec<_>>()}))
    .unwrap();
    let by_digest: std::collections::HashMap<String, usize> =
        children.iter().enumerate().map(|(i, (d, _))| (d.clone(), i)).collect();
    let index_digest = sha256(&index);
    let big = Server::start(move |req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        let reference = path.rsplit('/').next().unwrap_or("").to_string();
        let (body, media_type) = if path.ends_with("/tags/list") {
            return Response::json(200, r#"{"tags":["1.0.0"]}"#.into());
        } else if path.contains("/blobs/") {
            (config.clone(), "application/octet-stream")
        } else if reference == "1.0.0" || reference == index_digest {
            (index.clone(), "application/vnd.oci.image.index.v1+json")
        } else if let Some(i) = by_digest.get(&reference) {
            (child(*i), "application/vnd.oci.image.manifest.v1+json")
        } else {
            return Response::json(200, "{}".into());
        };
        let digest = sha256(&body);
        Response {
            status: 200,
            headers: vec![
                ("Content-Type".into(), media_type.into()),
                ("Docker-Content-Digest".into(), digest),
            ],
            body: if req.method == "HEAD" { vec![] } else { body },
        }
    });
    let out = ws.path("big-out");
    let cfg = ws.write_config(&yaml(
        &format!("127.0.0.1:{}/team/app", big.port),
        &format!("oci:{}", out.display()),
    ));
    let (run, peak) = run_measured(&ws, &cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    eprintln!("peak RSS {peak} MiB");
    assert!(peak <= 256, "peak RSS {peak} MiB");
    assert_eq!(validate_layout(&out).unwrap().len(), 1);

    // a layout whose index.json leads to /dev/zero
    let zero = ws.path("zero");
    write_layout(&zero, &[]);
    std::fs::remove_file(zero.join("index.json")).unwrap();
    symlink(Path::new("/dev/zero"), &zero.join("index.json"));
    let cfg = ws.write_config(&yaml(
        &format!("oci:{}", zero.display()),
        &format!("{}/m/z", dst.host()),
    ));
    let (run, peak) = run_measured(&ws, &cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("index.json is a symbolic link: refused"), "{run:?}");
    eprintln!("peak RSS {peak} MiB");
    assert!(peak <= 256, "peak RSS {peak} MiB");
}

#[test]
fn a_registry_that_drips_cannot_hold_a_run() {
    use std::time::{Duration, Instant};
    use testkit::http::Drip;
    let config = vec![b'{'; 1]
        .into_iter()
        .chain(format!("\"pad\":\"{}\"}}", "x".repeat(16 * 1024)).into_bytes())
        .collect::<Vec<u8>>();
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": []}))
    .unwrap();
    let server = Server::start_dripping(move |req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        let slow = |bytes| {
            Some(Drip {
                bytes,
                every: Duration::from_millis(100),
            })
        };
        if path.ends_with("/tags/list") {
            return (Response::json(200, r#"{"tags":["1.0.0"]}"#.into()), None);
        }
        if path.contains("/manifests/") {
            let r = Response {
                status: 200,
                headers: vec![
                    (
                        "Content-Type".into(),
                        "application/vnd.oci.image.manifest.v1+json".into(),
                    ),
                    ("Docker-Content-Digest".into(), sha256(&manifest)),
                ],
                body: if req.method == "HEAD" { vec![] } else { manifest.clone() },
            };
            // one byte every 100 ms: the manifest would take half a minute
            let drip = (path.starts_with("/v2/slow-manifest/") && req.method == "GET").then_some(1);
            return (r, drip.and_then(slow));
        }
        if path.contains("/blobs/") {
            // 512 bytes every 100 ms: 5 KB/s
            return (Response::json(200, String::from_utf8_lossy(&config).into()), slow(512));
        }
        (Response::json(200, "{}".into()), None)
    });
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let h = format!("127.0.0.1:{}", server.port);

    let cfg = ws.write_config(&yaml(&format!("{h}/slow-manifest"), &format!("{}/m/a", dst.host())));
    let started = Instant::now();
    let run = ws.run(&cfg, &["--response-deadline", "2", "--retries", "0"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{run:?}");
    assert!(run.stdout.contains("no complete answer within 2 s"), "{run:?}");

    let cfg = ws.write_config(&yaml(&format!("{h}/slow-blob"), &format!("{}/m/b", dst.host())));
    let started = Instant::now();
    let run = ws.run(
        &cfg,
        &["--min-transfer-rate", "50000", "--timeout", "2", "--retries", "0"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{run:?}");
    assert!(run.stdout.contains("below the minimum of 50000 B/s"), "{run:?}");
    assert!(TestClient::new(&dst.host(), None).tags("m/b").is_empty());

    // slow but steady: an upload that lasts longer than --timeout is fine
    // (the destination rightly stays silent until the body is in)
    let cfg = ws.write_config(&yaml(&format!("{h}/slow-blob"), &format!("{}/m/c", dst.host())));
    let run = ws.run(
        &cfg,
        &["--min-transfer-rate", "1000", "--timeout", "2", "--retries", "0"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        TestClient::new(&dst.host(), None).tags("m/c"),
        vec!["1.0.0".to_string()]
    );
}

#[test]
fn a_layout_takes_its_tags_in_batches() {
    let image = ImageGen::default().image(Format::Oci, &[10], &[], ("linux", "amd64"));
    let names: Vec<String> = (0..1000).map(|i| format!("1.0.{i}")).collect();
    let tags: Vec<(&str, &testkit::image::Image)> = names.iter().map(|n| (n.as_str(), &image)).collect();
    let ws = Workspace::new();
    let src = ws.path("src");
    write_layout(&src, &tags);
    let out = ws.path("out");
    let cfg = ws.write_config(&yaml(
        &format!("oci:{}", src.display()),
        &format!("oci:{}", out.display()),
    ));
    let run = ws.run(&cfg, &["--debug"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(validate_layout(&out).unwrap().len(), 1000);
    // one index.json write per batch (256 tags or a second), not per tag
    let writes = run.stderr.lines().filter(|l| l.contains("index.json written")).count();
    assert!(
        (1..=20).contains(&writes),
        "{writes} writes of index.json for 1000 tags"
    );
}

#[test]
fn random_image_graphs_copied_into_a_registry_resolve_completely() {
    // a small deterministic generator: no test dependency for randomness
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let ws = Workspace::new();
    for round in 0..4 {
        let mut generator = ImageGen::seeded(round);
        let pool: Vec<Blob> = (0..4).map(|_| generator.layer(Format::Oci, 200)).collect();
        let mut images: Vec<testkit::image::Image> = Vec::new();
        for _ in 0..5 {
            let mut layers: Vec<Blob> = (0..next(3)).map(|_| pool[next(pool.len())].clone()).collect();
            if let (Some(prev), 0) = (images.last(), next(2)) {
                // a layer whose bytes are exactly another image's manifest
                layers.push(blob(&prev.bytes));
            }
            let config = generator.image(Format::Oci, &[], &[], ("linux", "amd64")).blobs[0].clone();
            images.push(generator.manifest(Format::Oci, config, layers));
        }
        let mut indexes = Vec::new();
        for _ in 0..3 {
            let children = (0..1 + next(3)).map(|_| images[next(images.len())].clone()).collect();
            indexes.push(generator.index(Format::Oci, children));
        }
        let names: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
        let tagged: Vec<(&str, &testkit::image::Image)> = names
            .iter()
            .map(|n| match next(2) {
                0 => (n.as_str(), &images[next(images.len())]),
                _ => (n.as_str(), &indexes[next(indexes.len())]),
            })
            .collect();
        let src = ws.path(&format!("graph-{round}"));
        write_layout(&src, &tagged);
        let repo = format!("m/graph-{round}");
        let cfg = ws.write_config(&yaml(
            &format!("oci:{}", src.display()),
            &format!("{}/{repo}", dst.host()),
        ));
        let run = ws.run(&cfg, &[]);
        assert_eq!(run.code, 0, "{run:?}");
        for (tag, image) in &tagged {
            assert_eq!(dc.digest(&repo, tag).as_deref(), Some(image.digest.as_str()));
            dc.assert_complete(&repo, tag);
        }
    }
}
