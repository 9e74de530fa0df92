//! Hostile registries: what a real registry never sends (oversized or
//! malformed answers) comes from a small stand-in server, and each is a
//! clear error for that image, never a panic or unbounded memory.

use crate::support::*;
use testkit::http::{Response, Server};

/// A registry stand-in whose answers depend on the repository name.
fn hostile() -> Server {
    Server::start(|req| {
        let path = req.target.split('?').next().unwrap_or("").to_string();
        let json = |body: String| Response::json(200, body);
        if path == "/v2/" {
            return json("{}".into());
        }
        let repo = path
            .trim_start_matches("/v2/")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        if path.ends_with("/tags/list") {
            if repo == "huge-tags" {
                // 9 MiB of tag names
                let tags: Vec<String> = (0..400_000)
                    .map(|i| format!("\"1.0.{i}-{}\"", "x".repeat(10)))
                    .collect();
                return json(format!("{{\"tags\":[{}]}}", tags.join(",")));
            }
            return json("{\"tags\":[\"1.0.0\"]}".into());
        }
        let manifest = match repo.as_str() {
            "big-manifest" => format!("{{\"schemaVersion\":2,\"pad\":\"{}\"}}", "x".repeat(5 << 20)),
            _ => "{ not json".to_string(),
        };
        let digest = testkit::image::sha256(manifest.as_bytes());
        let headers = vec![
            (
                "Content-Type".to_string(),
                "application/vnd.oci.image.manifest.v1+json".to_string(),
            ),
            ("Docker-Content-Digest".to_string(), digest),
        ];
        let body = if req.method == "HEAD" {
            vec![]
        } else {
            manifest.into_bytes()
        };
        Response {
            status: 200,
            headers,
            body,
        }
    })
}

#[test]
fn oversized_and_malformed_answers_fail_the_image_clearly() {
    let server = hostile();
    let h = format!("127.0.0.1:{}", server.port);
    let bad_auth = Server::start(|_| Response {
        status: 401,
        headers: vec![("WWW-Authenticate".into(), "Bearer realm=\"unterminated".into())],
        body: vec![],
    });
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "mode: all\nimages:\n  big:\n    source: {h}/big-manifest\n    destination: {d}/m/big\n  tags:\n    source: {h}/huge-tags\n    destination: {d}/m/tags\n  json:\n    source: {h}/bad-json\n    destination: {d}/m/json\n  auth:\n    source: 127.0.0.1:{}/anything\n    destination: {d}/m/auth\n",
        bad_auth.port,
        d = dst.host()
    ));
    let run = ws.run(&cfg, &["--retries", "0"]);
    assert_eq!(run.code, 1, "{run:?}");
    for needle in [
        "big-manifest: GET manifest sha256:",
        "response body larger than 4194304 bytes",
        "huge-tags: list tags: unexpected response: response body larger than 8388608 bytes",
        "manifest is not valid JSON",
        "unusable WWW-Authenticate challenge \"Bearer realm=\"unterminated\"",
    ] {
        assert!(run.stdout.contains(needle), "missing {needle:?}: {run:?}");
    }
    assert!(run.stdout.contains("4 failed (big, tags, json, auth)"), "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
}

/// A JSON answer with a `Link` to `next`.
fn page(body: String, next: Option<String>) -> Response {
    let mut r = Response::json(200, body);
    if let Some(n) = next {
        r.headers.push(("Link".into(), format!("<{n}>; rel=\"next\"")));
    }
    r
}

#[test]
fn hostile_listings_are_bounded_and_hold_no_other_image_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use testkit::proxy::FaultProxy;
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut g = ImageGen::default();
    for repo in ["src/app", "src/many", "src/ok"] {
        sc.push_image(repo, &g.image(Format::Oci, &[200], &[], ("linux", "amd64")), "1.0.0");
    }
    let proxy = FaultProxy::start(&src.host(), 3);
    // pages just under 4 MiB of empty objects, each linking to a new page
    let empty = Arc::new(format!("{{\"manifests\":[{}{{}}]}}", "{},".repeat(1_300_000)));
    let asked = Arc::new(AtomicUsize::new(0));
    let (e, a) = (empty.clone(), asked.clone());
    proxy.route(
        "/v2/src/app/referrers/",
        Arc::new(move |req| {
            let n = a.fetch_add(1, Ordering::SeqCst);
            page(
                e.to_string(),
                Some(format!("{}?page={n}", req.target.split('?').next().unwrap())),
            )
        }),
    );
    // 3 MiB pages of well-formed descriptors
    let one = format!(r#"{{"mediaType":"x","digest":"sha256:{}","size":1}},"#, "a".repeat(64));
    let many = Arc::new(format!(
        "{{\"manifests\":[{}{}]}}",
        one.repeat((3 << 20) / one.len()),
        one.trim_end_matches(',')
    ));
    let m = many.clone();
    proxy.route("/v2/src/many/referrers/", Arc::new(move |_| page(m.to_string(), None)));
    // tag lists that page forever: a page that links to itself, and empty
    // pages that each link to a new one
    proxy.route(
        "/v2/src/self/tags/list",
        Arc::new(|req| page(r#"{"tags":["1.0.0"]}"#.into(), Some(req.target.clone()))),
    );
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    proxy.route(
        "/v2/src/empty/tags/list",
        Arc::new(move |_| {
            let n = h.fetch_add(1, Ordering::SeqCst);
            page("{}".into(), Some(format!("/v2/src/empty/tags/list?last={n}")))
        }),
    );
    let mut yaml = String::from("mode: all\nimages:\n");
    for (name, repo, extra) in [
        ("app", "src/app", "    referrers: true\n"),
        ("many", "src/many", "    referrers: true\n"),
        ("self", "src/self", ""),
        ("empty", "src/empty", ""),
        ("ok", "src/ok", ""),
    ] {
        yaml.push_str(&format!(
            "  {name}:\n    source: {}/{repo}\n    destination: {}/dst/{name}\n{extra}",
            proxy.host(),
            dst.host()
        ));
    }
    let ws = Workspace::new();
    let cfg = ws.write_config(&yaml);
    let mut cmd = ws.command();
    cmd.arg("-c").arg(&cfg);
    let started = std::time::Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watch = testkit::measure::PeakRss::watch(child.id());
    let run = output(child.wait_with_output().unwrap());
    let peak_kib = watch.stop();
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{run:?}");
    println!(
        "peak RSS {} MiB, {:.1} s, referrer pages asked {}, empty tag pages {}",
        peak_kib >> 10,
        took.as_secs_f64(),
        asked.load(Ordering::SeqCst),
        hits.load(Ordering::SeqCst)
    );
    assert!(peak_kib < 256 * 1024, "peak RSS {peak_kib} KiB: {run:?}");
    assert!(
        run.stdout.contains("bad referrers list") || run.stdout.contains("missing field `digest`"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("the referrers list: it goes on past 1000 entries"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("the tag list: its Link leads back to a page already read"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("the tag list: page 1 is empty yet links to another"),
        "{run:?}"
    );
    assert!(hits.load(Ordering::SeqCst) <= 2, "empty pages followed");
    // the unrelated image, and the images whose referrers failed, arrived
    for name in ["ok", "app", "many"] {
        assert_eq!(dc.tags(&format!("dst/{name}")), ["1.0.0"], "{name}: {run:?}");
    }
    assert!(took < std::time::Duration::from_secs(60), "{took:?}");
}

#[test]
fn referrer_descriptors_are_written_from_the_referrers_own_manifests() {
    use std::sync::Arc;
    use testkit::proxy::FaultProxy;
    use testkit::referrers::{artifact, schema_tag};
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut g = ImageGen::default();
    let v1 = g.image(Format::Oci, &[200], &[], ("linux", "amd64"));
    let v2 = g.image(Format::Oci, &[200], &[], ("linux", "amd64"));
    sc.push_image("src/app", &v1, "1.0.0");
    sc.push_image("src/app", &v2, "2.0.0");
    let sbom = artifact(&v1, "application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#);
    let provenance = artifact(&v1, "application/vnd.in-toto+json", br#"{"_type":"x"}"#);
    let elsewhere = artifact(&v2, "application/spdx+json", br#"{"spdxVersion":"SPDX-2.3","n":2}"#);
    for a in [&sbom, &provenance, &elsewhere] {
        sc.push_image("src/app", a, &a.digest);
    }
    // what the source's referrers API claims: a wrong size and an injected
    // annotation for the SBOM, the provenance passed off as an SBOM, and
    // (later) an SBOM of another image
    let lie = |a: &testkit::Image, size: usize| {
        serde_json::json!({"mediaType": a.media_type, "digest": a.digest, "size": size,
            "artifactType": "application/spdx+json", "annotations": {"injected": "by the peer"}})
    };
    let listed = Arc::new(std::sync::Mutex::new(vec![
        lie(&sbom, 1),
        lie(&provenance, provenance.bytes.len()),
    ]));
    let proxy = FaultProxy::start(&src.host(), 5);
    let (l, about) = (listed.clone(), v1.digest.clone());
    proxy.route(
        "/v2/src/app/referrers/",
        Arc::new(move |req| {
            let list = match req.target.contains(&about) {
                true => l.lock().unwrap().clone(),
                false => vec![],
            };
            let body = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": list});
            Response::json(200, body.to_string())
        }),
    );
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "mode: all\nreferrers: true\nartifact-types: [application/spdx+json]\nimages:\n  app:\n    source: {}/src/app\n    destination: {}/dst/app\n",
        proxy.host(),
        dst.host()
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let (bytes, _) = dc.manifest("dst/app", &schema_tag(&v1)).expect("the tag schema index");
    let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "only the real SBOM: {index}");
    let e = &entries[0];
    assert_eq!(e["digest"], sbom.digest.as_str());
    assert_eq!(e["size"], sbom.bytes.len());
    assert_eq!(e["artifactType"], "application/spdx+json");
    assert!(e["annotations"].get("injected").is_none(), "{e}");
    assert_eq!(
        e["annotations"]["org.opencontainers.image.created"],
        "2026-12-02T00:00:00Z"
    );
    assert_eq!(
        dc.digest("dst/app", &provenance.digest),
        None,
        "artifact-types bypassed"
    );

    // a referrer of another image listed for this one is refused
    listed.lock().unwrap().push(lie(&elsewhere, elsewhere.bytes.len()));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "{} is listed among the referrers of {}, but its manifest names {} as its subject",
            elsewhere.digest, v1.digest, v2.digest
        )),
        "{run:?}"
    );
    assert_eq!(dc.digest("dst/app", &elsewhere.digest), None);
}
