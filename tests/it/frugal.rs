//! Frugality with requests, counted in the registries' own access logs:
//! a pass with nothing to do makes no manifest GET and no blob request,
//! aliases cost no second GET, a blob crosses the wire once per registry.

use crate::support::*;

/// Access-log request lines (`"METHOD /path`) since `from` lines.
fn requests(reg: &Registry, from: usize) -> Vec<String> {
    reg.log()
        .lines()
        .skip(from)
        .filter_map(|l| {
            l.split_once('"')
                .and_then(|(_, r)| r.split(" HTTP/").next())
                .map(str::to_string)
        })
        .filter(|r| r.contains(" /v2/"))
        .collect()
}

fn count(reqs: &[String], method: &str, part: &str) -> usize {
    reqs.iter()
        .filter(|r| r.starts_with(&format!("{method} ")) && r.contains(part))
        .count()
}

fn log_len(reg: &Registry) -> usize {
    reg.log().lines().count()
}

#[test]
fn aliases_are_fetched_once_and_a_no_op_pass_makes_no_manifest_or_blob_request() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut generator = ImageGen::default();
    let shared = vec![generator.layer(Format::Oci, 10_000)];
    let mut unique_manifests = 0;
    let mut unique_blobs = std::collections::HashSet::new();
    for tag in ["1.0.0", "1.1.0", "1.2.0"] {
        let img = generator.multi_arch(Format::Oci, 5_000, &shared);
        unique_manifests += 1 + img.children.len();
        unique_blobs.extend(img.all_blobs().iter().map(|b| b.digest.clone()));
        sc.push_image("team/app", &img, tag);
        if tag == "1.2.0" {
            // `latest` and `1.2` are the same image as 1.2.0
            sc.push_manifest("team/app", "latest", &img.bytes, &img.media_type);
            sc.push_manifest("team/app", "1.2", &img.bytes, &img.media_type);
        }
    }
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "images:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n    mode: all\n",
        src.host(),
        dst.host()
    ));
    let (s0, d0) = (log_len(&src), log_len(&dst));
    let run = ws.run(&cfg, &["-j", "8"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(
        &sc,
        "team/app",
        &dc,
        "mirror/app",
        &["1.0.0", "1.1.0", "1.2", "1.2.0", "latest"],
    );
    let (s, d) = (requests(&src, s0), requests(&dst, d0));
    // every manifest fetched once, by digest; tags only resolved by HEAD
    assert_eq!(count(&s, "GET", "/manifests/"), unique_manifests, "{s:#?}");
    assert_eq!(count(&s, "GET", "/manifests/sha256:"), unique_manifests, "{s:#?}");
    // every blob read once and written once
    assert_eq!(count(&s, "GET", "/blobs/"), unique_blobs.len(), "{s:#?}");
    assert_eq!(count(&d, "PUT", "/blobs/uploads/"), unique_blobs.len(), "{d:#?}");
    assert!(
        run.stdout.contains(&format!("{} transferred", unique_blobs.len())),
        "{run:?}"
    );

    // a second pass with nothing to do
    let (s0, d0) = (log_len(&src), log_len(&dst));
    let run = ws.run(&cfg, &["-j", "8"]);
    assert_eq!(run.code, 0, "{run:?}");
    let (s, d) = (requests(&src, s0), requests(&dst, d0));
    eprintln!("no-op pass: source {s:?}, destination {d:?}");
    assert_eq!(count(&s, "GET", "/manifests/"), 0, "{s:#?}");
    assert_eq!(count(&s, "GET", "/blobs/") + count(&s, "HEAD", "/blobs/"), 0, "{s:#?}");
    assert_eq!(count(&d, "GET", "/blobs/") + count(&d, "HEAD", "/blobs/"), 0, "{d:#?}");
    assert_eq!(count(&s, "GET", "/tags/list"), 1);
    assert_eq!(count(&d, "GET", "/tags/list"), 1);
    let selected = 5;
    assert!(count(&d, "HEAD", "/manifests/") <= selected, "{d:#?}");
    assert_eq!(
        count(&d, "PUT", "") + count(&d, "POST", "") + count(&d, "PATCH", ""),
        0,
        "{d:#?}"
    );

    // with replace-tag: one HEAD per existing tag on each side, still no GET
    let cfg = ws.write_config(&format!(
        "images:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n    mode: all\n    replace-tag: true\n",
        src.host(),
        dst.host()
    ));
    let (s0, d0) = (log_len(&src), log_len(&dst));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let (s, d) = (requests(&src, s0), requests(&dst, d0));
    assert_eq!(count(&s, "HEAD", "/manifests/"), selected, "{s:#?}");
    assert_eq!(count(&d, "HEAD", "/manifests/"), selected, "{d:#?}");
    assert_eq!(
        count(&s, "GET", "/manifests/") + count(&s, "GET", "/blobs/"),
        0,
        "{s:#?}"
    );
}

#[test]
fn a_blob_shared_across_repositories_crosses_the_wire_once() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut generator = ImageGen::default();
    let shared = vec![generator.layer(Format::Oci, 2 << 20)];
    let mut yaml = String::from("mode: semver\nimages:\n");
    for repo in ["a", "b", "c", "d"] {
        for tag in ["1.0.0", "1.1.0"] {
            sc.push_image(
                &format!("src/{repo}"),
                &generator.image(Format::Oci, &[1000], &shared, ("linux", "amd64")),
                tag,
            );
        }
        yaml.push_str(&format!(
            "  {repo}:\n    source: {}/src/{repo}\n    destination: {}/dst/{repo}\n",
            src.host(),
            dst.host()
        ));
    }
    let ws = Workspace::new();
    let cfg = ws.write_config(&yaml);
    let run = ws.run(&cfg, &["--jobs", "8"]);
    assert_eq!(run.code, 0, "{run:?}");
    for repo in ["a", "b", "c", "d"] {
        assert_mirror(
            &sc,
            &format!("src/{repo}"),
            &dc,
            &format!("dst/{repo}"),
            &["1.0.0", "1.1.0"],
        );
    }
    let d = requests(&dst, 0);
    let shared_digest = shared[0].digest.replace(':', "%3A");
    assert_eq!(
        count(&d, "PUT", &shared_digest),
        1,
        "the shared layer was uploaded more than once"
    );
    assert_eq!(
        count(&requests(&src, 0), "GET", &format!("/blobs/{}", shared[0].digest)),
        1
    );
    assert!(run.stdout.contains("3 mounted"), "{run:?}");
    // the summary lists images in file order whatever finished first
    let order: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains(" [ok] "))
        .map(|l| l.trim().split(' ').next().unwrap())
        .collect();
    assert_eq!(order, ["a", "b", "c", "d"]);
}

/// The port of nothing: a destination that cannot be reached.
fn closed_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", l.local_addr().unwrap().port())
}

#[test]
fn three_destinations_read_the_source_as_one_does_and_one_failing_stops_no_other() {
    let src = Registry::start(Auth::None);
    let (alone, d1, d2) = (
        Registry::start(Auth::None),
        Registry::start(Auth::None),
        Registry::start(Auth::None),
    );
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    let shared = vec![generator.layer(Format::Oci, 300_000)];
    let mut blobs = std::collections::HashSet::new();
    for tag in ["1.0.0", "1.1.0"] {
        let img = generator.multi_arch(Format::Oci, 50_000, &shared);
        blobs.extend(img.all_blobs().iter().map(|b| b.digest.clone()));
        sc.push_image("team/app", &img, tag);
        if tag == "1.1.0" {
            sc.push_manifest("team/app", "latest", &img.bytes, &img.media_type);
        }
    }
    let tags = ["1.0.0", "1.1.0", "latest"];
    let ws = Workspace::new();
    // the cold pass into one destination...
    let one = ws.write_config(&format!(
        "images:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n    mode: all\n",
        src.host(),
        alone.host()
    ));
    let s0 = log_len(&src);
    let run = ws.run(&one, &["-j", "8"]);
    assert_eq!(run.code, 0, "{run:?}");
    let into_one = requests(&src, s0);
    // ...and into three, one of which is down
    let dead = closed_address();
    let three = ws.write_config(&format!(
        "images:\n  app:\n    source: {}/team/app\n    destination:\n      - {}/mirror/app\n      - {dead}/mirror/app\n      - {}/mirror/app\n    mode: all\n",
        src.host(),
        d1.host(),
        d2.host()
    ));
    let report = ws.path("report.json");
    let metrics = ws.path("metrics.prom");
    let s0 = log_len(&src);
    let run = ws.run(
        &three,
        &[
            "-j",
            "8",
            "--report",
            report.to_str().unwrap(),
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let into_three = requests(&src, s0);
    assert_eq!(sorted(into_three.clone()), sorted(into_one.clone()), "{run:?}");
    assert_eq!(count(&into_three, "GET", "/blobs/"), blobs.len());
    // both live destinations are whole copies, each blob written once
    for d in [&d1, &d2] {
        let dc = TestClient::new(&d.host(), None);
        assert_mirror(&sc, "team/app", &dc, "mirror/app", &tags);
        assert_eq!(count(&requests(d, 0), "PUT", "/blobs/uploads/"), blobs.len());
    }
    // each destination is an image of its own, in file order
    let names = [
        format!("app -> {}/mirror/app", d1.host()),
        format!("app -> {dead}/mirror/app"),
        format!("app -> {}/mirror/app", d2.host()),
    ];
    let report = valid_report(&report);
    let images = report["images"].as_array().unwrap();
    let listed: Vec<&str> = images.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(listed, names.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(images[0]["copied"].as_array().unwrap().len(), tags.len(), "{report:#}");
    assert_eq!(images[2]["copied"].as_array().unwrap().len(), tags.len(), "{report:#}");
    assert!(
        images[1]["error"].as_str().unwrap().contains("unreachable"),
        "{report:#}"
    );
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    for (name, success) in names.iter().zip([1, 0, 1]) {
        let line = format!("replicant_image_success{{image=\"{name}\"}} {success}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    assert!(run.stdout.contains(&names[1]), "{run:?}");
}

#[test]
fn each_destination_has_its_own_baseline_and_its_own_prune() {
    let src = Registry::start(Auth::None);
    let (d1, d2) = (Registry::start(Auth::None), Registry::start(Auth::None));
    let (sc, c1, c2) = (
        TestClient::new(&src.host(), None),
        TestClient::new(&d1.host(), None),
        TestClient::new(&d2.host(), None),
    );
    let mut generator = ImageGen::default();
    for tag in ["1.0.0", "1.1.0", "2.0.0"] {
        let img = generator.image(Format::Oci, &[2000], &[], ("linux", "amd64"));
        sc.push_image("team/app", &img, tag);
        // d1 is at 1.1.0 (and holds a release gone upstream); d2 is empty
        if tag == "1.1.0" {
            c1.push_image("mirror/app", &img, tag);
        }
    }
    c1.push_image(
        "mirror/app",
        &generator.image(Format::Oci, &[1500], &[], ("linux", "amd64")),
        "0.9.0",
    );
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "images:\n  app:\n    source: {}/team/app\n    destination: [{}/mirror/app, {}/mirror/app]\n    mode: higher\n    prune: true\n",
        src.host(),
        d1.host(),
        d2.host()
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut t1 = c1.tags("mirror/app");
    t1.sort();
    // above d1's own 1.1.0, and 0.9.0 pruned there
    assert_eq!(t1, ["1.1.0", "2.0.0"], "{run:?}");
    // d2 had nothing: the highest only, nothing pruned
    assert_eq!(c2.tags("mirror/app"), ["2.0.0"], "{run:?}");
    assert_eq!(c2.digest("mirror/app", "2.0.0"), sc.digest("team/app", "2.0.0"));
}
