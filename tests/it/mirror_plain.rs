//! Mirroring between plain-HTTP registries: modes, filters, copy semantics.

use crate::support::*;

/// A source registry with `repo` holding `tags`; each tag its own
/// 3-platform OCI index sharing one base layer.
fn seeded(tags: &[&str], repo: &str) -> (Registry, TestClient) {
    let reg = Registry::start(Auth::None);
    let client = TestClient::new(&reg.host(), None);
    let mut generator = ImageGen::default();
    let base = vec![generator.layer(Format::Oci, 2048)];
    for tag in tags {
        let img = generator.multi_arch(Format::Oci, 1024, &base);
        client.push_image(repo, &img, tag);
    }
    (reg, client)
}

fn config(mode_line: &str, src: &Registry, dst: &Registry, extra: &str) -> String {
    format!(
        "{mode_line}images:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n{extra}",
        src.host(),
        dst.host()
    )
}

#[test]
fn semver_copies_every_multi_arch_tag_with_digests_preserved() {
    let (src, sc) = seeded(&["1.0.0", "1.1.0", "2.0.0", "latest", "2.0.0-rc1"], "team/app");
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let ws = Workspace::new();
    let cfg = ws.write_config(&config("mode: semver\n", &src, &dst, ""));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0", "2.0.0"]);
    assert!(run.stdout.contains("copied (3): 1.0.0, 1.1.0, 2.0.0"), "{run:?}");

    // A second pass changes nothing and moves no blob.
    let again = ws.run(&cfg, &[]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("already present (3)"), "{again:?}");
    assert!(
        again.stdout.contains("blobs: 0 transferred (0 B), 0 mounted"),
        "{again:?}"
    );
}

struct Pair {
    src: Registry,
    dst: Registry,
    sc: TestClient,
    dc: TestClient,
    generator: ImageGen,
    ws: Workspace,
}

impl Pair {
    fn new() -> Pair {
        let (src, dst) = (Registry::start(Auth::None), Registry::start(Auth::None));
        let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
        Pair {
            src,
            dst,
            sc,
            dc,
            generator: ImageGen::default(),
            ws: Workspace::new(),
        }
    }

    /// Pushes a small single-platform Docker image under each tag.
    fn push(&mut self, repo: &str, tags: &[&str]) {
        for tag in tags {
            let img = self.generator.image(Format::Docker, &[512], &[], ("linux", "amd64"));
            self.sc.push_image(repo, &img, tag);
        }
    }

    fn config(&self, images: &[(&str, &str, &str, &str)]) -> std::path::PathBuf {
        let mut yaml = String::from("images:\n");
        for (name, src_repo, dst_repo, extra) in images {
            yaml.push_str(&format!(
                "  {name}:\n    source: {}/{src_repo}\n    destination: {}/{dst_repo}\n",
                self.src.host(),
                self.dst.host()
            ));
            for line in extra.lines() {
                yaml.push_str(&format!("    {line}\n"));
            }
        }
        self.ws.write_config(&yaml)
    }

    fn run(&self, images: &[(&str, &str, &str, &str)], args: &[&str]) -> Run {
        let cfg = self.config(images);
        self.ws.run(&cfg, args)
    }
}

const TAGS: &[&str] = &[
    "1.0.0",
    "1.1.0",
    "1.2",
    "1.2.0",
    "v1.2.0",
    "1.3.0-alpine",
    "1.2.0-alpine",
    "2.0.0",
    "2.1.0-rc1",
    "latest",
    "20210101",
];

#[test]
fn highest_picks_one_tag_with_and_without_filters() {
    let mut p = Pair::new();
    p.push("src/app", TAGS);
    let run = p.run(
        &[
            ("plain", "src/app", "dst/plain", "mode: highest"),
            ("alpine", "src/app", "dst/alpine", "compatibility: alpine"),
            ("major1", "src/app", "dst/major1", "pinned-major: 1"),
            (
                "alpine1",
                "src/app",
                "dst/alpine1",
                "pinned-major: 1\ncompatibility: alpine",
            ),
            ("major9", "src/app", "dst/major9", "pinned-major: 9"),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/plain", &["2.0.0"]);
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/alpine", &["1.3.0-alpine"]);
    // among the aliases 1.2, 1.2.0 and v1.2.0, the most specific without `v`
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/major1", &["1.2.0"]);
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/alpine1", &["1.3.0-alpine"]);
    assert!(p.dc.tags("dst/major9").is_empty());
    // selecting nothing from a source with tags is not silent
    assert!(run.stdout.contains("major9 [needs attention]"), "{run:?}");
    assert!(
        run.stdout
            .contains("needs attention: major9 (selects no tags; --fail-on-empty makes this a failure)"),
        "{run:?}"
    );
    let why = "selects no tags: pinned-major 9 matches none of the source's";
    assert_eq!(run.stderr.matches(why).count(), 1, "warned once: {run:?}");

    // --fail-on-empty (or REPLICANT_FAIL_ON_EMPTY) makes it a failure
    let run = p.run(
        &[("major9", "src/app", "dst/major9", "pinned-major: 9")],
        &["--fail-on-empty"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("major9 [FAILED]"), "{run:?}");
    assert!(run.stdout.contains(&format!("    error (selection): {why}")), "{run:?}");
}

#[test]
fn include_exclude_versions_and_keep_choose_the_tags_copied() {
    let mut p = Pair::new();
    let first = [
        "1.19.0",
        "1.20.0",
        "1.21.0",
        "1.22.0",
        "1.22.1",
        "2.0.0",
        "1.22.0-rc1",
        "1.21.0-alpine",
        "1.22.0-alpine",
        "latest",
        "stable",
        "edge",
    ];
    p.push("src/app", &first);
    let images = [
        (
            "ranged",
            "src/app",
            "dst/ranged",
            "mode: semver\nversions: '>=1.20, <2'\nkeep: 2",
        ),
        (
            "named",
            "src/app",
            "dst/named",
            "mode: all\ninclude: ['stable', 'latest', '1\\.2.*']\nexclude: ['.*-rc.*', '.*-alpine']",
        ),
        (
            "alpine",
            "src/app",
            "dst/alpine",
            "mode: higher\ncompatibility: alpine\nversions: '~1.21'",
        ),
        ("nothing", "src/app", "dst/nothing", "mode: all\ninclude: ['9\\..*']"),
    ];
    // --dry-run shows what the rules select, and writes nothing
    let dry = p.run(&images, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would copy (2): 1.22.0, 1.22.1"), "{dry:?}");
    assert!(
        dry.stdout
            .contains("would copy (6): 1.20.0, 1.21.0, 1.22.0, 1.22.1, latest, stable"),
        "{dry:?}"
    );
    assert!(dry.stdout.contains("would copy (1): 1.21.0-alpine"), "{dry:?}");
    assert!(p.dc.tags("dst/ranged").is_empty());

    let run = p.run(&images, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/ranged", &["1.22.0", "1.22.1"]);
    assert_mirror(
        &p.sc,
        "src/app",
        &p.dc,
        "dst/named",
        &["1.20.0", "1.21.0", "1.22.0", "1.22.1", "latest", "stable"],
    );
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/alpine", &["1.21.0-alpine"]);
    assert!(p.dc.tags("dst/nothing").is_empty());
    assert!(
        run.stderr
            .contains("selects no tags: include lets none of the source's 12 tags through"),
        "{run:?}"
    );

    // upstream moves on: keep 2 copies the two newest, and leaves the
    // older copies alone
    p.push("src/app", &["1.23.0", "1.24.0", "1.25.0"]);
    let run = p.run(&images[..1], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(
        &p.sc,
        "src/app",
        &p.dc,
        "dst/ranged",
        &["1.22.0", "1.22.1", "1.24.0", "1.25.0"],
    );

    // top-level include/exclude are the defaults of every image; an
    // image's own replaces them
    let yaml = format!(
        "mode: all\ninclude: ['1\\..*']\nexclude: ['.*-.*']\nimages:\n  a:\n    source: {src}/src/app\n    destination: {dst}/dst/top\n  b:\n    source: {src}/src/app\n    destination: {dst}/dst/own\n    include: ['edge']\n",
        src = p.src.host(),
        dst = p.dst.host()
    );
    let run = p.ws.run(&p.ws.write_config(&yaml), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(
        &p.sc,
        "src/app",
        &p.dc,
        "dst/top",
        &[
            "1.19.0", "1.20.0", "1.21.0", "1.22.0", "1.22.1", "1.23.0", "1.24.0", "1.25.0",
        ],
    );
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/own", &["edge"]);
}

#[test]
fn a_mistyped_compatibility_names_the_value_it_probably_meant() {
    let mut p = Pair::new();
    p.push("src/app", TAGS);
    let run = p.run(
        &[("typo", "src/app", "dst/typo", "compatibility: alpnie")],
        &["--log-format", "json"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let attention = report["images"][0]["attention"].as_str().unwrap();
    assert!(
        attention.starts_with("selects no tags: compatibility \"alpnie\" matches none of the source's"),
        "{attention}"
    );
    assert!(attention.ends_with("did you mean \"alpine\"?"), "{attention}");
    assert!(run.stderr.contains("did you mean \\\"alpine\\\"?"), "{run:?}");
}

#[test]
fn semver_mode_with_filters() {
    let mut p = Pair::new();
    p.push("src/app", TAGS);
    let run = p.run(
        &[
            ("all-versions", "src/app", "dst/a", "mode: semver"),
            ("alpine", "src/app", "dst/b", "mode: semver\ncompatibility: alpine"),
            ("major1", "src/app", "dst/c", "mode: semver\npinned-major: 1"),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(
        &p.sc,
        "src/app",
        &p.dc,
        "dst/a",
        &["1.0.0", "1.1.0", "1.2", "1.2.0", "v1.2.0", "2.0.0"],
    );
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/b", &["1.2.0-alpine", "1.3.0-alpine"]);
    assert_mirror(
        &p.sc,
        "src/app",
        &p.dc,
        "dst/c",
        &["1.0.0", "1.1.0", "1.2", "1.2.0", "v1.2.0"],
    );
}

#[test]
fn higher_seeds_an_empty_destination_then_copies_only_newer_tags() {
    let mut p = Pair::new();
    p.push("src/app", &["1.0.0", "1.1.0", "latest"]);
    let higher = [("app", "src/app", "dst/app", "mode: higher")];
    // the destination repository does not exist yet: seeded with the highest
    let run = p.run(&higher, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/app", &["1.1.0"]);
    // new upstream versions, one older than the destination's highest
    p.push("src/app", &["1.0.5", "1.2.0", "2.0.0", "2.0.1-alpine"]);
    let run = p.run(&higher, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/app", &["1.1.0", "1.2.0", "2.0.0"]);
    // with filters on both sides
    let run = p.run(
        &[("app", "src/app", "dst/app", "mode: higher\ncompatibility: alpine")],
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(p.dc.tags("dst/app").contains(&"2.0.1-alpine".to_string()));
}

#[test]
fn all_mode_copies_every_tag_and_warns_about_filters() {
    let mut p = Pair::new();
    p.push("src/app", &["latest", "edge", "1.0.0", "20210101"]);
    let run = p.run(&[("app", "src/app", "dst/app", "mode: all\npinned-major: 1")], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(
        &p.sc,
        "src/app",
        &p.dc,
        "dst/app",
        &["1.0.0", "20210101", "edge", "latest"],
    );
    assert!(
        run.stderr.contains("key \"pinned-major\": ignored with mode \"all\""),
        "{run:?}"
    );
}

#[test]
fn replace_tag_overwrites_only_changed_tags() {
    let mut p = Pair::new();
    p.push("src/app", &["latest", "stable"]);
    let with_replace = [("app", "src/app", "dst/app", "mode: all\nreplace-tag: true")];
    let without = [("app", "src/app", "dst/app", "mode: all")];
    assert_eq!(p.run(&without, &[]).code, 0);
    let stable_before = p.dc.digest("dst/app", "stable");
    // upstream moves `latest`
    p.push("src/app", &["latest"]);
    let new_latest = p.sc.digest("src/app", "latest");
    assert_ne!(p.dc.digest("dst/app", "latest"), new_latest);

    // without replace-tag, the destination keeps its copy
    let run = p.run(&without, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_ne!(p.dc.digest("dst/app", "latest"), new_latest);
    assert!(run.stdout.contains("already present (2): latest, stable"), "{run:?}");

    // with it, the changed tag is replaced and the unchanged one left alone
    let run = p.run(&with_replace, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("replaced (1): latest"), "{run:?}");
    assert!(run.stdout.contains("already present (1): stable"), "{run:?}");
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/app", &["latest", "stable"]);
    assert_eq!(p.dc.digest("dst/app", "stable"), stable_before);
}

#[test]
fn a_missing_source_fails_that_image_only() {
    let mut p = Pair::new();
    p.push("src/app", &["1.0.0"]);
    let images = [
        ("ghost", "src/does-not-exist", "dst/ghost", ""),
        ("app", "src/app", "dst/app", ""),
    ];
    let run = p.run(&images, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_mirror(&p.sc, "src/app", &p.dc, "dst/app", &["1.0.0"]);
    assert!(run.stdout.contains("ghost [FAILED]"), "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "{}/src/does-not-exist: source repository not found",
            p.src.host()
        )),
        "{run:?}"
    );
    assert!(run.stdout.contains("1 failed (ghost)"), "{run:?}");

    // -e stops at the first failure: the next image is not processed
    let run = p.run(
        &[
            ("ghost", "src/does-not-exist", "dst/ghost", ""),
            ("app", "src/app", "dst/other", ""),
        ],
        &["-e"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(p.dc.tags("dst/other").is_empty());
    assert!(run.stdout.contains("stopped at the first error"), "{run:?}");
    assert!(run.stdout.contains("  app [not run] "), "{run:?}");
}

#[test]
fn dry_run_lists_the_plan_and_writes_nothing() {
    let mut p = Pair::new();
    p.push("src/app", &["1.0.0", "1.1.0", "latest"]);
    assert_eq!(p.run(&[("app", "src/app", "dst/app", "mode: all")], &[]).code, 0);
    p.push("src/app", &["1.2.0", "latest"]);
    let before: Vec<_> = ["1.0.0", "1.1.0", "latest"]
        .iter()
        .map(|t| p.dc.digest("dst/app", t))
        .collect();
    let log_before = p
        .dst
        .log()
        .lines()
        .filter(|l| l.contains("\"PUT ") || l.contains("\"POST "))
        .count();
    let images = [
        ("app", "src/app", "dst/app", "mode: semver"),
        ("moving", "src/app", "dst/app", "mode: all\nreplace-tag: true"),
        ("fresh", "src/app", "dst/fresh", "mode: highest"),
    ];
    let run = p.run(&images, &["--dry-run"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("dry run: nothing was written"), "{run:?}");
    assert!(run.stdout.contains("would copy (1): 1.2.0"), "{run:?}");
    assert!(run.stdout.contains("would replace (1): latest"), "{run:?}");
    assert!(
        run.stdout
            .contains("tags: 3 to copy, 1 to replace, 4 already present, 0 failed"),
        "{run:?}"
    );
    // the log says what was planned, not "done"
    assert!(
        run.stderr.contains("planned: would copy 1.2.0; 2 already present"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("planned: would copy 1.2.0; would replace latest; 2 already present"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("done"), "{run:?}");
    assert_eq!(p.dc.tags("dst/app"), ["1.0.0", "1.1.0", "latest"]);
    assert!(p.dc.tags("dst/fresh").is_empty());
    let after: Vec<_> = ["1.0.0", "1.1.0", "latest"]
        .iter()
        .map(|t| p.dc.digest("dst/app", t))
        .collect();
    assert_eq!(before, after);
    let log_after = p
        .dst
        .log()
        .lines()
        .filter(|l| l.contains("\"PUT ") || l.contains("\"POST "))
        .count();
    assert_eq!(log_before, log_after, "the dry run wrote to the destination");
    // REPLICANT_DRY_RUN works the same
    let cfg = p.config(&images[..1]);
    let mut cmd = p.ws.command();
    cmd.env("REPLICANT_DRY_RUN", "yes").arg("-c").arg(&cfg);
    let run = output(cmd.output().unwrap());
    assert!(run.stdout.contains("would copy (1): 1.2.0"), "{run:?}");
    assert_eq!(p.dc.tags("dst/app"), ["1.0.0", "1.1.0", "latest"]);
}

#[test]
fn docker_lists_oci_artifacts_and_shared_layers_are_copied_exactly() {
    let mut p = Pair::new();
    let shared = vec![p.generator.layer(Format::Docker, 4096)];
    let docker_list = p.generator.multi_arch(Format::Docker, 1000, &shared);
    p.sc.push_image("src/mixed", &docker_list, "1.0.0");
    let oci_single = p
        .generator
        .image(Format::Oci, &[100, 200, 300], &shared, ("linux", "arm64"));
    p.sc.push_image("src/mixed", &oci_single, "1.1.0");
    // an artifact: an unusual config media type and an empty layer list
    let config = testkit::image::Blob {
        digest: testkit::image::sha256(b"{}"),
        data: b"{}".to_vec(),
        media_type: "application/vnd.example.sbom.config.v1+json".into(),
    };
    let payload = p.generator.layer(Format::Oci, 64);
    let artifact = p.generator.manifest(Format::Oci, config, vec![payload]);
    p.sc.push_image("src/mixed", &artifact, "1.2.0");
    // a nested index (an index of an index)
    let inner = p.generator.multi_arch(Format::Oci, 10, &[]);
    let outer = p.generator.index(Format::Oci, vec![inner]);
    p.sc.push_image("src/mixed", &outer, "1.3.0");

    let run = p.run(&[("mixed", "src/mixed", "dst/mixed", "mode: semver")], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(
        &p.sc,
        "src/mixed",
        &p.dc,
        "dst/mixed",
        &["1.0.0", "1.1.0", "1.2.0", "1.3.0"],
    );
    // every child of the Docker list kept its digest
    for child in &docker_list.children {
        assert_eq!(
            p.dc.digest("dst/mixed", &child.digest).as_deref(),
            Some(child.digest.as_str())
        );
    }
    // the shared layer crossed the wire once
    let uploads_of_shared = p
        .dst
        .log()
        .lines()
        .filter(|l| l.contains("\"PUT ") && l.contains(&shared[0].digest.replace(':', "%3A")))
        .count();
    assert_eq!(uploads_of_shared, 1, "shared layer uploaded {uploads_of_shared} times");
}

#[test]
fn blobs_already_in_the_destination_registry_are_mounted() {
    let mut p = Pair::new();
    let shared = vec![p.generator.layer(Format::Oci, 50_000)];
    let a = p.generator.image(Format::Oci, &[10], &shared, ("linux", "amd64"));
    let b = p.generator.image(Format::Oci, &[20], &shared, ("linux", "amd64"));
    p.sc.push_image("src/a", &a, "1.0.0");
    p.sc.push_image("src/b", &b, "1.0.0");
    let run = p.run(&[("a", "src/a", "dst/a", ""), ("b", "src/b", "dst/b", "")], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&p.sc, "src/a", &p.dc, "dst/a", &["1.0.0"]);
    assert_mirror(&p.sc, "src/b", &p.dc, "dst/b", &["1.0.0"]);
    assert!(run.stdout.contains("1 mounted"), "{run:?}");
    assert!(
        p.dst
            .log()
            .contains(&format!("mount={}", shared[0].digest.replace(':', "%3A"))),
        "no mount request in the registry log"
    );

    // within one registry (source and destination the same), mount too
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "images:\n  copy:\n    source: {h}/src/a\n    destination: {h}/copies/a\n",
        h = p.src.host()
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&p.sc, "src/a", &p.sc, "copies/a", &["1.0.0"]);
    assert!(run.stdout.contains("0 transferred (0 B), 3 mounted"), "{run:?}");
}

#[test]
fn json_output_is_machine_readable() {
    let mut p = Pair::new();
    p.push("src/app", &["1.0.0"]);
    let run = p.run(&[("app", "src/app", "dst/app", "")], &["--log-format", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("summary is one JSON object");
    assert_eq!(summary["images"][0]["name"], "app");
    assert_eq!(summary["images"][0]["copied"][0], "1.0.0");
    assert_eq!(summary["totals"]["blobs_transferred"], 2);
    for line in run.stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("log line {line:?}: {e}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
    }
}

#[test]
fn foreign_layers_are_referenced_not_copied() {
    let mut p = Pair::new();
    let mut img = p.generator.image(Format::Docker, &[300], &[], ("windows", "amd64"));
    // add a foreign layer the source registry does not hold (like Windows base layers)
    let foreign_digest = testkit::image::sha256(b"not here");
    let manifest = String::from_utf8(img.bytes.clone()).unwrap().replace(
        "\"layers\":[",
        &format!(
            "\"layers\":[{{\"mediaType\":\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\"digest\":\"{foreign_digest}\",\"size\":8,\"urls\":[\"https://example.invalid/layer\"]}},"
        ),
    );
    img.bytes = manifest.into_bytes();
    img.digest = testkit::image::sha256(&img.bytes);
    p.sc.push_image("src/win", &img, "1.0.0");
    let run = p.run(&[("win", "src/win", "dst/win", "")], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&p.sc, "src/win", &p.dc, "dst/win", &["1.0.0"]);
    assert!(!p.dc.blob_exists("dst/win", &foreign_digest));
    assert!(
        !p.src.log().contains(&format!("GET /v2/src/win/blobs/{foreign_digest}")),
        "the foreign layer was fetched"
    );
}

#[test]
fn prune_deletes_what_the_dry_run_listed_and_its_guard_rails_hold() {
    let mut p = Pair::new();
    p.push("src/app", &["1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0", "2.2.0"]);
    let images = [("app", "src/app", "dst/app", "mode: semver\nprune: true\nprune-max: 2")];
    let run = p.run(&images, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    // tags someone else put in the destination: `local` is no version, so
    // the image's rules never wrote it; `pinned` shares 1.0.0's manifest
    let (bytes, media_type) = p.dc.manifest("dst/app", "1.0.0").unwrap();
    p.dc.push_manifest("dst/app", "pinned", &bytes, &media_type);
    let (bytes, media_type) = p.dc.manifest("dst/app", "2.2.0").unwrap();
    p.dc.push_manifest("dst/app", "local", &bytes, &media_type);
    let gone_digest = p.dc.digest("dst/app", "1.1.0").unwrap();

    p.sc.delete_tag("src/app", "1.0.0");
    p.sc.delete_tag("src/app", "1.1.0");
    let before = p.dc.tags("dst/app");
    let dry = p.run(&images, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would delete (1): 1.1.0\n"), "{dry:?}");
    // Distribution 2.8 deletes a tag only with its manifest, which
    // `pinned` needs: 1.0.0 stays, and the run says why
    let left = "prune left 1.0.0: tag pinned needs its manifest";
    assert!(dry.stdout.contains(left), "{dry:?}");
    assert_eq!(p.dc.tags("dst/app"), before, "a dry run deletes nothing");

    let report = p.ws.path("report.json");
    let run = p.run(&images, &["--report", report.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("deleted (1): 1.1.0\n"), "{run:?}");
    let image = &valid_report(&report)["images"][0];
    assert_eq!(image["deleted"], serde_json::json!(["1.1.0"]));
    let actions: Vec<(&str, &str)> = image["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tag"].as_str().unwrap(), t["action"].as_str().unwrap()))
        .filter(|(_, a)| a.contains("delete"))
        .collect();
    assert_eq!(actions, [("1.0.0", "not-deleted"), ("1.1.0", "deleted")]);
    assert!(run.stdout.contains(left), "{run:?}");
    assert!(run.stdout.contains("app [needs attention]"), "{run:?}");
    assert!(run.stdout.contains(", 1 deleted, "), "{run:?}");
    assert_eq!(
        p.dc.tags("dst/app"),
        ["1.0.0", "1.2.0", "2.0.0", "2.1.0", "2.2.0", "local", "pinned"]
    );
    assert_eq!(p.dc.manifest("dst/app", &gone_digest), None);
    p.dc.assert_complete("dst/app", "pinned");
    p.dc.assert_complete("dst/app", "local");

    // more tags gone at once than prune-max: nothing is deleted
    for tag in ["1.2.0", "2.0.0", "2.1.0"] {
        p.sc.delete_tag("src/app", tag);
    }
    let run = p.run(&images, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("prune refused: 4 tags are gone upstream, more than prune-max 2 (1.0.0, 1.2.0, 2.0.0, 2.1.0)"),
        "{run:?}"
    );
    assert_eq!(p.dc.tags("dst/app").len(), 7);

    // an upstream with no tags left is more likely broken than emptied
    p.sc.delete_tag("src/app", "2.2.0");
    let images = [("app", "src/app", "dst/app", "mode: semver\nprune: true\nprune-max: 100")];
    let run = p.run(&images, &[]);
    assert_eq!(p.dc.tags("dst/app").len(), 7, "{run:?}");
    assert!(
        run.stdout.contains("prune refused: the source lists no tags"),
        "{run:?}"
    );
    // and one whose listing fails deletes nothing either
    let images = [(
        "app",
        "src/gone",
        "dst/app",
        "mode: semver\nprune: true\nprune-max: 100",
    )];
    let run = p.run(&images, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("source repository not found"), "{run:?}");
    assert_eq!(p.dc.tags("dst/app").len(), 7, "{run:?}");
}

/// The platforms (`os/architecture`) of an index's children, in order.
fn platforms_of(client: &TestClient, repo: &str, tag: &str) -> Vec<String> {
    let (bytes, _) = client.manifest(repo, tag).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    doc["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}/{}",
                c["platform"]["os"].as_str().unwrap(),
                c["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn platforms_copy_only_those_and_record_the_source_digest() {
    let mut p = Pair::new();
    let g = &mut p.generator;
    let oci = g.multi_arch(Format::Oci, 300, &[]);
    let docker = g.multi_arch(Format::Docker, 300, &[]);
    let two = [("linux", "amd64"), ("linux", "arm64")].map(|pl| g.image(Format::Oci, &[200], &[], pl));
    let two = g.index(Format::Oci, two.to_vec());
    let amd64 = g.image(Format::Docker, &[200], &[], ("linux", "amd64"));
    let s390x = g.image(Format::Docker, &[200], &[], ("linux", "s390x"));
    for (tag, image) in [
        ("1.0.0", &oci),
        ("1.1.0", &docker),
        ("1.2.0", &two),
        ("1.3.0", &amd64),
        ("1.4.0", &s390x),
    ] {
        p.sc.push_image("src/app", image, tag);
    }
    let images = [
        (
            "app",
            "src/app",
            "dst/app",
            "mode: all\nreplace-tag: true\nplatforms: [linux/amd64, linux/arm64]",
        ),
        (
            "arm",
            "src/app",
            "dst/arm",
            "mode: all\ninclude: '1\\.0\\.0'\nplatforms: [linux/arm/v7]",
        ),
    ];
    let run = p.run(&images, &[]);
    assert_eq!(run.code, 0, "skips are not failures: {run:?}");
    assert!(
        run.stdout.contains("copied (4): 1.0.0, 1.1.0, 1.2.0, 1.3.0\n"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("skipped, none of the platforms asked for (1): 1.4.0"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("1.4.0")
            && run
                .stderr
                .contains("is a single-platform image for linux/s390x, not one asked for (linux/amd64,linux/arm64)"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("has none of the platforms asked for (linux/arm/v7), only linux/amd64, linux/arm64, linux/s390x"),
        "{run:?}"
    );
    assert!(p.dc.tags("dst/arm").is_empty());
    // reduced indexes: two children, the source's digest recorded
    for (tag, source) in [("1.0.0", &oci), ("1.1.0", &docker)] {
        assert_eq!(platforms_of(&p.dc, "dst/app", tag), ["linux/amd64", "linux/arm64"]);
        let (bytes, media_type) = p.dc.manifest("dst/app", tag).unwrap();
        assert_eq!(media_type, source.media_type, "{tag} keeps its media type");
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            doc["annotations"]["dev.replicant.source.digest"],
            source.digest.as_str()
        );
        assert_eq!(doc["annotations"]["dev.replicant.platforms"], "linux/amd64,linux/arm64");
        assert_ne!(p.dc.digest("dst/app", tag).unwrap(), source.digest);
        p.dc.assert_complete("dst/app", tag);
        // the child left out was not copied
        assert_eq!(p.dc.manifest("dst/app", &source.children[2].digest), None);
        assert!(!p.dc.blob_exists("dst/app", &source.children[2].blobs[1].digest));
    }
    // nothing to leave out, or a single image of a platform asked for: exact
    for tag in ["1.2.0", "1.3.0"] {
        assert_eq!(p.dc.digest("dst/app", tag), p.sc.digest("src/app", tag), "{tag}");
    }

    // the next pass sees from the annotation that nothing changed upstream
    let run = p.run(&images[..1], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("already present (4)"), "{run:?}");
    assert!(!run.stdout.contains("replaced ("), "{run:?}");

    // upstream moves 1.0.0: replaced, reduced again
    let moved = p.generator.multi_arch(Format::Oci, 300, &[]);
    p.sc.push_image("src/app", &moved, "1.0.0");
    let run = p.run(&images[..1], &[]);
    assert!(run.stdout.contains("replaced (1): 1.0.0"), "{run:?}");
    let (bytes, _) = p.dc.manifest("dst/app", "1.0.0").unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains(&moved.digest));

    // fewer platforms asked for: the reduced indexes are made again (an
    // exact copy stays until upstream changes it: its digest is the
    // source's, and telling more would cost a GET at the source)
    let fewer = [(
        "app",
        "src/app",
        "dst/app",
        "mode: all\nreplace-tag: true\nplatforms: linux/arm64",
    )];
    let run = p.run(&fewer, &[]);
    assert!(run.stdout.contains("replaced (2): 1.0.0, 1.1.0\n"), "{run:?}");
    assert_eq!(platforms_of(&p.dc, "dst/app", "1.1.0"), ["linux/arm64"]);
}

#[test]
fn referrers_travel_with_their_images_through_the_tag_schema() {
    use testkit::referrers::{artifact, cosign_signature, schema_tag, tag_schema_index};
    let mut p = Pair::new();
    let v1 = p.generator.multi_arch(Format::Oci, 300, &[]);
    let v2 = p.generator.image(Format::Docker, &[300], &[], ("linux", "amd64"));
    p.sc.push_image("src/app", &v1, "1.0.0");
    p.sc.push_image("src/app", &v2, "2.0.0");
    // cosign's signatures of both; an SBOM of 1.0.0 stored as an OCI 1.1
    // artifact, listed in the tag schema's index (no referrers API here)
    let (h1, h2) = (schema_tag(&v1), schema_tag(&v2));
    p.sc.push_image("src/app", &cosign_signature(&v1, 1), &format!("{h1}.sig"));
    p.sc.push_image("src/app", &cosign_signature(&v2, 2), &format!("{h2}.sig"));
    let sbom = artifact(&v1, "application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#);
    let attestation = artifact(&v1, "application/vnd.in-toto+json", br#"{"_type":"x"}"#);
    let listed = tag_schema_index(&[&sbom, &attestation]);
    p.sc.push_image("src/app", &listed, &h1);
    let images = [
        (
            "app",
            "src/app",
            "dst/app",
            "mode: semver\ninclude: '1\\..*'\nreferrers: true",
        ),
        (
            "sbom",
            "src/app",
            "dst/sbom",
            "mode: semver\ninclude: '1\\..*'\nreferrers: true\nartifact-types: [application/spdx+json]",
        ),
    ];
    let dry = p.run(&images, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains(&format!("referrers to copy (2): {h1}, {h1}.sig\n")),
        "{dry:?}"
    );
    assert!(
        dry.stdout.contains(&format!("referrers to copy (1): {h1}\n")),
        "{dry:?}"
    );
    assert!(p.dc.tags("dst/app").is_empty());

    let run = p.run(&images, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!("referrers copied (2): {h1}, {h1}.sig\n")),
        "{run:?}"
    );
    // digest-exact, walked: the signature, the index, the SBOM under it;
    // 2.0.0 was not selected, so neither is its signature
    assert_mirror(
        &p.sc,
        "src/app",
        &p.dc,
        "dst/app",
        &["1.0.0", &h1, &format!("{h1}.sig")],
    );
    assert_eq!(
        p.dc.digest("dst/app", &sbom.digest).as_deref(),
        Some(sbom.digest.as_str())
    );
    // artifact-types: the index lists the SBOM only, and says what it was
    // made from; the attestation did not travel
    assert_eq!(p.dc.tags("dst/sbom"), ["1.0.0", h1.as_str()]);
    let (bytes, _) = p.dc.manifest("dst/sbom", &h1).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], sbom.digest.as_str());
    assert_eq!(
        index["annotations"]["dev.replicant.source.digest"],
        listed.digest.as_str()
    );
    p.dc.assert_complete("dst/sbom", &h1);
    assert_eq!(p.dc.manifest("dst/sbom", &attestation.digest), None);

    // nothing new upstream: nothing copied; a new signature: copied
    let run = p.run(&images, &[]);
    assert!(!run.stdout.contains("referrers copied"), "{run:?}");
    let resigned = cosign_signature(&v1, 3);
    p.sc.push_image("src/app", &resigned, &format!("{h1}.sig"));
    let run = p.run(&images, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(&format!("referrers copied (1): {h1}.sig\n")),
        "{run:?}"
    );
    assert_eq!(
        p.dc.digest("dst/app", &format!("{h1}.sig")),
        Some(resigned.digest.clone())
    );
    assert!(!p.dc.tags("dst/sbom").contains(&format!("{h1}.sig")));
}

#[test]
fn referrers_through_the_api_land_in_the_api_or_the_tag_schema() {
    use testkit::referrers::{artifact, referrers_by_api, schema_tag};
    let test = "referrers_through_the_api_land_in_the_api_or_the_tag_schema";
    let Some((source, sc)) = api_registry(test) else { return };
    let Some((api_dst, ac)) = api_registry(test) else {
        return;
    };
    let mut p = Pair::new();
    let v1 = p.generator.multi_arch(Format::Oci, 300, &[]);
    sc.push_image("src/app", &v1, "1.0.0");
    let sbom = artifact(&v1, "application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#);
    let provenance = artifact(&v1, "application/vnd.in-toto+json", br#"{"_type":"x"}"#);
    for a in [&sbom, &provenance] {
        sc.push_image("src/app", a, &a.digest);
    }
    let yaml = format!(
        "mode: semver\nreferrers: true\nimages:\n  plain:\n    source: {s}/src/app\n    destination: {d}/dst/app\n  api:\n    source: {s}/src/app\n    destination: {a}/dst/app\n    artifact-types: application/spdx+json\n",
        s = source.host(),
        d = p.dst.host(),
        a = api_dst.host()
    );
    let cfg = p.ws.write_config(&yaml);
    let run = p.ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("referrers copied (2)"), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("referrers copied (1): {} (about 1.0.0)", sbom.digest)),
        "{run:?}"
    );
    // a destination without the API: both by digest, listed in the tag
    // schema's index
    for a in [&sbom, &provenance] {
        assert_eq!(p.dc.digest("dst/app", &a.digest), Some(a.digest.clone()));
        p.dc.assert_complete("dst/app", &a.digest);
    }
    let (bytes, _) = p.dc.manifest("dst/app", &schema_tag(&v1)).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, ["application/spdx+json", "application/vnd.in-toto+json"]);
    // a destination with the API: the SBOM only (artifact-types), found by
    // its API, no tag schema tag
    assert_eq!(ac.tags("dst/app"), ["1.0.0"]);
    let found = referrers_by_api(&api_dst.host(), "dst/app", &v1.digest);
    assert_eq!(found["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(found["manifests"][0]["digest"], sbom.digest.as_str());

    // the next pass finds nothing new to copy; then a new SBOM arrives
    // for the image both destinations already have
    let run = p.ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stdout.contains("referrers copied"), "{run:?}");
    let newer = artifact(&v1, "application/spdx+json", br#"{"spdxVersion":"SPDX-2.3","n":2}"#);
    sc.push_image("src/app", &newer, &newer.digest);
    let run = p.ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let line = format!("referrers copied (1): {} (about 1.0.0)", newer.digest);
    assert_eq!(run.stdout.matches(&line).count(), 2, "{run:?}");
    let found = referrers_by_api(&api_dst.host(), "dst/app", &v1.digest);
    assert_eq!(found["manifests"].as_array().unwrap().len(), 2);
    let (bytes, _) = p.dc.manifest("dst/app", &schema_tag(&v1)).unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains(&newer.digest));
}

/// A pair whose destination is reached through a fault proxy, with one
/// image `app` (semver, prune) copied once: 1.0.0, 1.1.0 and `pinned`, a
/// tag someone put on 1.0.0's manifest. 1.0.0 is then deleted upstream.
fn pruned_through_a_proxy() -> (Pair, testkit::proxy::FaultProxy, std::path::PathBuf) {
    let mut p = Pair::new();
    p.push("src/app", &["1.0.0", "1.1.0", "1.2.0"]);
    let proxy = testkit::proxy::FaultProxy::start(&p.dst.host(), 7);
    let yaml = format!(
        "mode: semver\nprune: true\nimages:\n  app:\n    source: {}/src/app\n    destination: {}/dst/app\n",
        p.src.host(),
        proxy.host()
    );
    let cfg = p.ws.write_config(&yaml);
    let run = p.ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let (bytes, media_type) = p.dc.manifest("dst/app", "1.1.0").unwrap();
    p.dc.push_manifest("dst/app", "pinned", &bytes, &media_type);
    p.sc.delete_tag("src/app", "1.0.0");
    (p, proxy, cfg)
}

fn counting(status: u16, count: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> testkit::proxy::Route {
    let count = count.clone();
    std::sync::Arc::new(move |_| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        testkit::http::Response::json(
            status,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.into(),
        )
    })
}

#[test]
fn a_delete_answered_404_is_no_deletion_and_a_dry_run_sends_no_delete() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (p, proxy, cfg) = pruned_through_a_proxy();
    let deletes = std::sync::Arc::new(AtomicUsize::new(0));
    proxy.route("DELETE /v2/dst/app/manifests/", counting(404, &deletes));
    let dry = p.ws.run(&cfg, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would delete (1): 1.0.0\n"), "{dry:?}");
    assert_eq!(deletes.load(Ordering::SeqCst), 0, "the dry run sent a DELETE: {dry:?}");
    assert!(dry.stderr.contains("no DELETE was sent"), "{dry:?}");

    let run = p.ws.run(&cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(deletes.load(Ordering::SeqCst) >= 1);
    assert!(!run.stdout.contains("deleted (1)"), "{run:?}");
    assert!(
        run.stdout
            .contains("the registry answered 404 Not Found for what it had just listed: not deleted"),
        "{run:?}"
    );
    assert!(p.dc.tags("dst/app").contains(&"1.0.0".to_string()));
}

#[test]
fn prune_decides_fail_closed_on_a_staying_tag_it_cannot_read() {
    // `pinned` shares 1.1.0's manifest; 1.1.0 goes upstream. If what
    // `pinned` needs cannot be read, deleting 1.1.0's manifest (which on
    // Distribution takes `pinned` along) must not happen.
    use std::sync::atomic::AtomicUsize;
    let (p, proxy, cfg) = pruned_through_a_proxy();
    p.sc.delete_tag("src/app", "1.1.0");
    let hidden = std::sync::Arc::new(AtomicUsize::new(0));
    proxy.route("GET /v2/dst/app/manifests/pinned", counting(404, &hidden));
    for args in [&["--dry-run"][..], &[]] {
        let run = p.ws.run(&cfg, args);
        assert!(
            run.stdout
                .contains("prune refused: could not check what it would delete: what tag pinned needs cannot be known"),
            "{run:?}"
        );
        assert!(!run.stdout.contains("deleted ("), "{run:?}");
    }
    assert_eq!(p.dc.tags("dst/app"), ["1.0.0", "1.1.0", "1.2.0", "pinned"]);

    // the listing at delete time (after the copies) is not found: nothing
    // is deleted either (planning saw the repository; deleting does not)
    let lists = std::sync::Arc::new(AtomicUsize::new(0));
    let l = lists.clone();
    let tags = serde_json::json!({"name": "dst/app", "tags": ["1.0.0", "1.1.0", "1.2.0", "pinned"]}).to_string();
    let fresh = testkit::proxy::FaultProxy::start(&p.dst.host(), 8);
    fresh.route(
        "GET /v2/dst/app/tags/list",
        std::sync::Arc::new(move |_| match l.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => testkit::http::Response::json(200, tags.clone()),
            _ => testkit::http::Response::json(404, r#"{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}"#.into()),
        }),
    );
    let only_100 = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&proxy.host(), &fresh.host())
        .replace("prune: true", "prune: true\ninclude: '1\\.0\\.0'");
    let run = p.ws.run(&p.ws.write_config(&only_100), &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("the repository is not found any more: nothing deleted"),
        "{run:?}"
    );
    assert_eq!(p.dc.tags("dst/app"), ["1.0.0", "1.1.0", "1.2.0", "pinned"]);
}

#[test]
fn prune_never_deletes_what_referrers_wrote_nor_a_shared_destination() {
    use testkit::referrers::{artifact, schema_tag};
    let Some((source, sc)) = api_registry("prune_never_deletes_what_referrers_wrote_nor_a_shared_destination") else {
        return;
    };
    let mut p = Pair::new();
    // the source has the referrers API, the destination does not: replicant
    // writes the tag schema index `sha256-<hex>` there, which is absent
    // upstream by nature
    let v1 = p.generator.multi_arch(Format::Oci, 300, &[]);
    sc.push_image("src/app", &v1, "1.0.0");
    sc.push_image(
        "src/app",
        &p.generator.image(Format::Oci, &[200], &[], ("linux", "amd64")),
        "old",
    );
    let sbom = artifact(&v1, "application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#);
    sc.push_image("src/app", &sbom, &sbom.digest);
    let yaml = format!(
        "mode: all\nreferrers: true\nprune: true\nimages:\n  app:\n    source: {}/src/app\n    destination: {}/dst/app\n",
        source.host(),
        p.dst.host()
    );
    let cfg = p.ws.write_config(&yaml);
    let run = p.ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let index_tag = schema_tag(&v1);
    assert!(p.dc.tags("dst/app").contains(&index_tag), "{run:?}");
    sc.delete_reference("src/app", "old");
    for _ in 0..2 {
        let run = p.ws.run(&cfg, &[]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(!run.stdout.contains(&index_tag), "{run:?}");
        assert!(
            p.dc.tags("dst/app").contains(&index_tag),
            "the referrers index was pruned: {run:?}"
        );
    }
    assert!(!p.dc.tags("dst/app").contains(&"old".to_string()));

    // two images that write one destination, one of them pruning: refused
    // before any traffic, both named
    let images = [
        ("a", "src/app", "dst/shared", "mode: all\nprune: true"),
        ("b", "src/other", "dst/shared", "mode: all"),
    ];
    let run = p.run(&images, &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("image \"b\": key \"destination\": writes the same destination")
            && run.stderr.contains("as image \"a\" (line 2), which has prune: true"),
        "{run:?}"
    );
    assert!(p.dc.tags("dst/shared").is_empty());
}

/// A go-containerregistry registry, which has the OCI 1.1 referrers API,
/// and a client of it; `None` where `scripts/test` could not build it (said).
fn api_registry(test: &str) -> Option<(Registry, TestClient)> {
    testkit::tools::interop_tool("GGCR_REGISTRY", "ggcr-registry", test)?;
    let registry = Registry::start_implementation(testkit::Implementation::Ggcr);
    let client = TestClient::new(&registry.host(), None);
    Some((registry, client))
}

/// `tags` copies exactly the tags listed (only those when the entry sets
/// no mode), a listed tag the source lacks fails; `digests` copies a
/// manifest by digest with no tag; prune deletes neither.
#[test]
fn listed_tags_and_pinned_digests_are_copied_and_never_pruned() {
    let mut p = Pair::new();
    p.push("src/app", &["1.0.0", "1.1.0", "2.0.0", "stable", "old"]);
    let old = p.sc.digest("src/app", "old").unwrap();
    let pinned = p.sc.digest("src/app", "2.0.0").unwrap();

    // no mode: only what is listed; one listed tag is missing upstream
    let listed = format!("tags: [stable, \"1.0.0\", \"9.9.9\"]\ndigests: [{pinned}]");
    let images = [("app", "src/app", "dst/app", listed.as_str())];
    let run = p.run(&images, &[]);
    assert_eq!(run.code, 1, "a missing listed tag fails: {run:?}");
    assert!(
        run.stdout
            .contains("listed in \"tags\", but the source has no tag 9.9.9"),
        "{run:?}"
    );
    assert_eq!(p.dc.tags("dst/app"), ["1.0.0", "stable"]);
    for tag in ["1.0.0", "stable"] {
        assert_eq!(p.dc.digest("dst/app", tag), p.sc.digest("src/app", tag));
    }
    // the pinned manifest resolves by digest at the destination, whole
    assert_eq!(p.dc.digest("dst/app", &pinned).as_ref(), Some(&pinned));
    p.dc.assert_complete("dst/app", &pinned);

    // a mode, prune, and upstream deletions: the listed tag and the pinned
    // digests stay (Distribution deletes a tag only with its manifest)
    let semver = format!("mode: semver\ndigests: [{old}]");
    let run = p.run(&[("app", "src/app", "dst/app", semver.as_str())], &[]);
    assert_eq!(run.code, 0, "{run:?}");
    // someone tags the pinned manifest in the destination
    let (bytes, media_type) = p.sc.manifest("src/app", "old").unwrap();
    p.dc.push_manifest("dst/app", "0.9.0", &bytes, &media_type);
    for tag in ["1.0.0", "1.1.0", "old"] {
        p.sc.delete_tag("src/app", tag);
    }
    let rules = format!("mode: semver\nprune: true\ntags: [\"1.0.0\"]\ndigests: [{old}, {pinned}]");
    let images = [("app", "src/app", "dst/app", rules.as_str())];
    let dry = p.run(&images, &["--dry-run"]);
    assert!(dry.stdout.contains("would delete (1): 1.1.0\n"), "{dry:?}");
    let run = p.run(&images, &[]);
    assert_eq!(run.code, 1, "1.0.0 is listed and gone upstream: {run:?}");
    assert!(run.stdout.contains("deleted (1): 1.1.0\n"), "{run:?}");
    assert!(
        run.stdout.contains("prune left 0.9.0: ") && run.stdout.contains(&old),
        "the pinned digest's tag stays, saying why: {run:?}"
    );
    assert_eq!(p.dc.tags("dst/app"), ["0.9.0", "1.0.0", "2.0.0", "stable"]);
    assert_eq!(p.dc.digest("dst/app", &old).as_ref(), Some(&old));
    assert_eq!(p.dc.digest("dst/app", &pinned).as_ref(), Some(&pinned));
}

/// The referrers a summary lists under `label` ("referrers to copy",
/// "referrers copied"), sorted.
fn referrers_listed(stdout: &str, label: &str) -> Vec<String> {
    let Some(line) = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{label} (")))
    else {
        return Vec::new();
    };
    let list = line.split_once("): ").map_or("", |(_, l)| l);
    sorted(list.split(", ").map(str::to_string).collect())
}

#[test]
fn a_dry_run_lists_exactly_the_referrers_the_run_copies() {
    use testkit::referrers::{cosign_signature, schema_tag};
    for (platforms, signed) in [("", vec![0, 1, 2, 3]), ("platforms: linux/amd64\n", vec![1])] {
        let mut p = Pair::new();
        let index = p.generator.multi_arch(Format::Oci, 300, &[]);
        p.sc.push_image("src/app", &index, "1.0.0");
        // signatures of the index (0) and of each platform image (1..)
        let subjects: Vec<&testkit::Image> = std::iter::once(&index).chain(&index.children).collect();
        for (n, subject) in subjects.iter().enumerate() {
            p.sc.push_image(
                "src/app",
                &cosign_signature(subject, n as u64),
                &format!("{}.sig", schema_tag(subject)),
            );
        }
        let expected: Vec<String> = sorted(
            signed
                .iter()
                .map(|n| format!("{}.sig", schema_tag(subjects[*n])))
                .collect(),
        );
        let extra = format!("mode: all\nreferrers: true\n{platforms}");
        let images = [("app", "src/app", "dst/app", extra.as_str())];
        let dry = p.run(&images, &["--dry-run"]);
        assert_eq!(dry.code, 0, "{dry:?}");
        let run = p.run(&images, &[]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(
            referrers_listed(&run.stdout, "referrers copied"),
            expected,
            "{platforms}{run:?}"
        );
        assert_eq!(
            referrers_listed(&dry.stdout, "referrers to copy"),
            expected,
            "{platforms}{dry:?}"
        );
    }
}
