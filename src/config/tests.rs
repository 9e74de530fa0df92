//! Validation of configuration files: every rule, every message.

use super::*;
use crate::model::edit_distance;

fn ok(text: &str) -> Config {
    parse(Path::new("c.yaml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(text: &str) -> Vec<String> {
    problems_in(Path::new("c.yaml"), text)
}

/// The problems of `text` read as the file `path` (whose folder holds the
/// files it names).
fn problems_in(path: &Path, text: &str) -> Vec<String> {
    match parse(path, text) {
        Ok(c) => panic!("expected problems, got {c:?}"),
        Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn a_file_written_for_the_original_is_valid() {
    let c = ok(
        "mode: higher\nimages:\n  nginx:\n    source: docker.io/library/nginx\n    destination: localhost:5000/mirror/nginx\n    mode: semver\n    compatibility: alpine\n    replace-tag: true\n    pinned-major: 1\n  redis:\n    source: redis\n    destination: gcr.io/p/redis\n",
    );
    assert_eq!(c.images.len(), 2);
    let n = &c.images[0];
    assert_eq!(n.name, "nginx");
    assert_eq!(n.mode, Mode::Semver);
    assert_eq!(n.filters.compatibility.as_deref(), Some("alpine"));
    assert_eq!(n.filters.pinned_major, Some(1));
    assert_eq!(n.replace_tag, ReplaceTag::Yes);
    let r = &c.images[1];
    assert_eq!(
        (r.name.as_str(), r.mode, r.replace_tag),
        ("redis", Mode::Higher, ReplaceTag::No)
    );
    assert_eq!(r.source.to_string(), "registry-1.docker.io/library/redis");
}

#[test]
fn default_mode_is_highest_and_order_is_kept() {
    let c =
        ok("images:\n  b:\n    source: a/b\n    destination: c.io/b\n  a:\n    source: a/a\n    destination: c.io/a\n");
    assert_eq!(c.images.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["b", "a"]);
    assert_eq!(c.images[0].mode, Mode::Highest);
}

#[test]
fn source_and_destination_must_differ() {
    let p = problems(
        "images:\n  a:\n    source: alpine\n    destination: docker.io/library/alpine\n  \
         b:\n    source: oci:lay/./out\n    destination: oci:lay/out\n  c:\n    source: http://127.0.0.1:5700/app\n    destination: x/y\n",
    );
    assert!(
        p.contains(&"c.yaml:4:18: image \"a\": key \"destination\": \"registry-1.docker.io/library/alpine\" is the source itself: an image cannot be mirrored onto itself".to_string()),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m
                .starts_with("c.yaml:7:18: image \"b\": key \"destination\": \"oci:lay/out\" is the source itself")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|m| m.contains(
            "image \"c\": key \"source\": \"http://127.0.0.1:5700/app\" is a URL: write the repository without http://"
        )),
        "{p:?}"
    );
}

#[test]
fn the_first_go_versions_key_names_get_their_new_names() {
    let p = problems("images:\n  x:\n    upstream: a/b\n    downstream: c/d\n");
    assert!(
        p.contains(&"c.yaml:3:5: image \"x\": unknown key \"upstream\" (its name in early Go versions): write \"source\" instead".to_string()),
        "{p:?}"
    );
    assert!(
        p.iter().any(|m| m
            .ends_with("unknown key \"downstream\" (its name in early Go versions): write \"destination\" instead")),
        "{p:?}"
    );
}

#[test]
fn every_problem_is_reported_with_line_image_and_key() {
    let text = "mode: Highest\nimages:\n  one:\n    source: docker.io/x/y:1.0\n    destinaton: gcr.io/p/y\n    pinned-major: -1\n    replace-tag: maybe\n  two:\n  three:\n    source: \"\"\n    destination: q.io/a\n    mode: fastest\n    compatibility: 3\n";
    let p = problems(text);
    let expect = [
        "c.yaml:1:7: key \"mode\": unknown mode \"Highest\"",
        "c.yaml:3:3: image \"one\": key \"destination\": missing",
        "c.yaml:4:13: image \"one\": key \"source\": \"docker.io/x/y:1.0\" must name a repository, not a tag",
        "c.yaml:5:5: image \"one\": unknown key \"destinaton\"; did you mean \"destination\"?",
        "c.yaml:6:19: image \"one\": key \"pinned-major\": expected a non-negative integer, found the number -1",
        "c.yaml:7:18: image \"one\": key \"replace-tag\": expected true, false or \"except-versions\"",
        "c.yaml:8:3: image \"two\": empty entry",
        "c.yaml:10:13: image \"three\": key \"source\": \"\" is empty",
        "c.yaml:12:11: image \"three\": key \"mode\": unknown mode \"fastest\"",
        "c.yaml:13:20: image \"three\": key \"compatibility\": expected a non-empty string",
    ];
    assert_eq!(p.len(), expect.len(), "{p:#?}");
    for (got, want) in p.iter().zip(expect) {
        assert!(got.starts_with(want), "got {got:?}, want prefix {want:?}");
    }
}

#[test]
fn whole_file_problems() {
    assert!(problems("")[0].contains("the file is empty"));
    assert!(problems("# only a comment\n\n")[0].contains("the file is empty"));
    let syntax = problems("images:\n  a: [\n");
    assert_eq!(
        problems("images: [\n")[0],
        "c.yaml:1:9: YAML syntax error: unclosed bracket '['"
    );
    assert!(
        syntax[0].starts_with("c.yaml:")
            && syntax[0].contains("YAML syntax error")
            && !syntax[0].contains("error: error"),
        "{syntax:?}"
    );
    assert!(problems("mode: all\n")[0].contains("key \"images\": missing"));
    assert!(problems("images:\n")[0].contains("key \"images\""));
    assert!(problems("images: {}\n")[0].contains("lists no images"));
    assert!(problems("- a\n- b\n")[0].contains("expected a mapping"));
    assert!(
        problems("imgaes: {}\n")
            .iter()
            .any(|p| p.contains("did you mean \"images\""))
    );
    let missing = load(Path::new("/nonexistent/replicant.yaml")).unwrap_err();
    assert_eq!(missing.to_string(), "/nonexistent/replicant.yaml: file not found");
}

#[test]
fn source_without_destination_and_wrong_types() {
    let p = problems("images:\n  a:\n    source: x/y\n  b:\n    source: 5\n    destination: {x: 1}\n");
    assert!(p[0].contains("image \"a\": key \"destination\": missing"), "{p:?}");
    assert!(
        p[1].contains("image \"b\": key \"source\": expected a repository name, found the number 5"),
        "{p:?}"
    );
    assert!(
        p[2].contains(
            "image \"b\": key \"destination\": expected a repository name, or a list of them, found a mapping"
        ),
        "{p:?}"
    );
}

#[test]
fn filters_with_mode_all_warn() {
    let c = ok("images:\n  a:\n    source: x/y\n    destination: q.io/y\n    mode: all\n    pinned-major: 2\n");
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0]
            .to_string()
            .contains("key \"pinned-major\": ignored with mode \"all\"")
    );
}

#[test]
fn tag_filters_version_ranges_and_keep() {
    let c = ok(r#"mode: semver
include: ['1\..*']
exclude: ['.*-rc.*']
images:
  a:
    source: x/a
    destination: q.io/a
    versions: ">=1.20, <2"
    keep: 3
  b:
    source: x/b
    destination: q.io/b
    include: 'v.*'
    mode: all
"#);
    let a = &c.images[0].filters;
    assert_eq!(a.include.iter().map(|p| p.as_str()).collect::<Vec<_>>(), [r"1\..*"]);
    assert_eq!(a.exclude.iter().map(|p| p.as_str()).collect::<Vec<_>>(), [".*-rc.*"]);
    assert_eq!(a.versions.as_ref().map(|r| r.as_str()), Some(">=1.20, <2"));
    assert_eq!(a.keep, Some(3));
    // an image's own include replaces the top level's; exclude stays
    let b = &c.images[1].filters;
    assert_eq!(b.include.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["v.*"]);
    assert_eq!(b.exclude.len(), 1);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn bad_filters_name_line_column_and_key() {
    let p = problems(
        "include: ['1.(2']\nimages:\n  a:\n    source: x/a\n    destination: q.io/a\n    exclude:\n      - ok.*\n      - '*-rc'\n      - 1.20\n    versions: '>=1.2 <2'\n    keep: 0\n",
    );
    assert_eq!(
        p,
        [
            "c.yaml:1:11: key \"include\": invalid regular expression \"1.(2\": unclosed group (at character 3)",
            "c.yaml:8:9: image \"a\": key \"exclude\": invalid regular expression \"*-rc\": repetition operator missing expression (at character 1)",
            "c.yaml:9:9: image \"a\": key \"exclude\": expected a regular expression in quotes (YAML reads 1.20 as the number 1.2), found the number 1.2",
            "c.yaml:10:15: image \"a\": key \"versions\": \">=1.2 <2\" is not a range such as \">=1.20, <2\": expected comma after minor version number, found '<'",
            "c.yaml:11:11: image \"a\": key \"keep\": expected how many versions to keep, 1 or more, found the number 0",
        ]
    );
    let p = problems("images:\n  a:\n    source: x/a\n    destination: q.io/a\n    versions: 2\n");
    assert!(p[0].contains("key \"versions\": expected a range in quotes"), "{p:?}");
}

#[test]
fn keep_and_versions_warn_where_the_mode_ignores_them() {
    let c = ok(
        "images:\n  a:\n    source: x/y\n    destination: q.io/y\n    keep: 2\n  b:\n    source: x/z\n    destination: q.io/z\n    mode: all\n    versions: '>=1'\n    include: ['1.*']\n",
    );
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("image \"a\": key \"keep\": ignored with mode \"highest\""),
        "{w:?}"
    );
    assert!(
        w[1].contains("image \"b\": key \"versions\": ignored with mode \"all\""),
        "{w:?}"
    );
}

#[test]
fn prune_keys_default_at_the_top_and_are_checked() {
    let c = ok(
        "prune: true\nimages:\n  a:\n    source: x/a\n    destination: q.io/a\n  b:\n    source: x/b\n    destination: q.io/b\n    prune: false\n    prune-max: 9\n  c:\n    source: x/c\n    destination: q.io/c\n    prune-max: 20\n",
    );
    let o: Vec<(bool, usize)> = c
        .images
        .iter()
        .map(|i| (i.options.prune, i.options.prune_max))
        .collect();
    assert_eq!(o, [(true, DEFAULT_PRUNE_MAX), (false, 9), (true, 20)]);
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "c.yaml:10:5: image \"b\": key \"prune-max\": ignored: prune is off for this image (\"prune: true\" turns it on)"
        ]
    );
    let p = problems("prune: yes please\nimages:\n  a:\n    source: x/a\n    destination: q.io/a\n    prune-max: 0\n");
    assert_eq!(
        p,
        [
            "c.yaml:1:8: key \"prune\": expected true or false, found the string \"yes please\"",
            "c.yaml:6:16: image \"a\": key \"prune-max\": expected how many tags one pass may delete at most, 1 or more, found the number 0",
        ]
    );
}

#[test]
fn platforms_and_layout_media_types() {
    let c = ok(
        "platforms: [linux/amd64, linux/arm/v7]\nlayout-media-types: oci\nimages:\n  a:\n    source: x/a\n    destination: oci:out/a\n  b:\n    source: x/b\n    destination: q.io/b\n    platforms: linux/arm64\n",
    );
    let shown: Vec<(String, bool)> = c
        .images
        .iter()
        .map(|i| {
            (
                crate::model::platform::joined(&i.options.platforms),
                i.options.oci_media_types,
            )
        })
        .collect();
    // the top-level layout-media-types applies to the images written to layouts
    assert_eq!(
        shown,
        [
            ("linux/amd64,linux/arm/v7".to_string(), true),
            ("linux/arm64".to_string(), false)
        ]
    );
    let p = problems(
        "images:\n  a:\n    source: x/a\n    destination: q.io/a\n    platforms: [linux, 386]\n    layout-media-types: oci\n  b:\n    source: x/b\n    destination: oci:b\n    layout-media-types: docker\n",
    );
    assert_eq!(
        p,
        [
            "c.yaml:5:17: image \"a\": key \"platforms\": \"linux\" is not a platform such as linux/amd64 or linux/arm/v7 (os/architecture or os/architecture/variant, lower case)",
            "c.yaml:5:24: image \"a\": key \"platforms\": expected a platform such as linux/amd64, found the number 386",
            "c.yaml:6:25: image \"a\": key \"layout-media-types\": applies only to a layout destination (oci:PATH); \"q.io/a\" is a registry, whose copies are exact",
            "c.yaml:10:25: image \"b\": key \"layout-media-types\": expected \"verbatim\" (exact copies, the default) or \"oci\" (Docker media types made OCI), found the string \"docker\"",
        ]
    );
}

#[test]
fn referrers_and_artifact_types() {
    let c = ok(
        "referrers: true\nimages:\n  a:\n    source: x/a\n    destination: q.io/a\n    artifact-types: [application/spdx+json, application/vnd.dev.cosign.artifact.sig.v1+json]\n  b:\n    source: x/b\n    destination: q.io/b\n    referrers: false\n    artifact-types: application/spdx+json\n",
    );
    let a = &c.images[0].options;
    assert!(a.referrers);
    assert_eq!(a.artifact_types.len(), 2);
    assert!(!c.images[1].options.referrers);
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "c.yaml:11:5: image \"b\": key \"artifact-types\": ignored: referrers are not copied for this image (\"referrers: true\" turns that on)"
        ]
    );
    let p = problems(
        "images:\n  a:\n    source: x/a\n    destination: q.io/a\n    referrers: 1\n    artifact-types: [spdx, 7]\n",
    );
    assert_eq!(
        p,
        [
            "c.yaml:5:16: image \"a\": key \"referrers\": expected true or false, found the number 1",
            "c.yaml:6:22: image \"a\": key \"artifact-types\": \"spdx\" is not a media type such as application/spdx+json",
            "c.yaml:6:28: image \"a\": key \"artifact-types\": expected an artifact type such as application/spdx+json, found the number 7",
        ]
    );
}

proptest::proptest! {
    /// Arbitrary text, and YAML-shaped text with random keys and values:
    /// always a Config or a list of located problems, never a panic.
    #[test]
    fn parse_never_panics(text in "\\PC{0,200}") {
        let _ = parse(Path::new("f.yaml"), &text);
    }

    #[test]
    fn yaml_shaped_input_never_panics(
        keys in proptest::collection::vec("(source|destination|mode|compatibility|replace-tag|pinned-major|[a-z-]{1,8})", 0..6),
        values in proptest::collection::vec("(\"\"|~|-?[0-9]{1,22}|true|[a-z0-9./:@-]{0,30}|\\[\\]|\\{\\})", 0..6),
    ) {
        let mut text = String::from("images:\n  a:\n");
        for (k, v) in keys.iter().zip(values.iter()) {
            text.push_str(&format!("    {k}: {v}\n"));
        }
        match parse(Path::new("f.yaml"), &text) {
            Ok(c) => proptest::prop_assert_eq!(c.images.len(), 1),
            Err(e) => proptest::prop_assert!(e.problems().iter().all(|p| p.line > 0 || p.message.contains("YAML"))),
        }
    }
}

#[test]
fn registries_section_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    // a PEM block (what it holds is checked when the run builds its client)
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    let cfg = dir.path().join("c.yaml");
    let text = "registries:\n  registry.example.com:5000:\n    ca-file: ca.pem\n  10.0.0.1:5000:\n    insecure: true\nimages:\n  a:\n    source: x/y\n    destination: registry.example.com:5000/y\n";
    let c = parse(&cfg, text).unwrap();
    let r = &c.registries["registry.example.com:5000"];
    assert_eq!(r.ca_file.as_deref(), Some(ca.as_path()));
    assert!(r.uses_tls(false));
    assert!(c.registries["10.0.0.1:5000"].insecure);
    assert!(c.warnings[0].to_string().contains("not verified"));
    let bad = "registries:\n  r.io:\n    ca-file: missing.pem\n    insecure: maybe\n    cert-file: ca.pem\n    colour: red\n  nohost:\n    tls: true\nimages:\n  a:\n    source: x/y\n    destination: q.io/y\n";
    let p = problems_in(&cfg, bad);
    assert!(
        p.iter()
            .any(|m| m.contains("key \"registries.r.io.ca-file\"") && m.contains("missing.pem is not a readable file")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("registries.r.io.insecure") && m.contains("expected true or false")),
        "{p:#?}"
    );
    assert!(
        p.iter().any(|m| m.contains("cert-file and key-file go together")),
        "{p:#?}"
    );
    assert!(p.iter().any(|m| m.contains("unknown key \"colour\"")), "{p:#?}");
    assert!(
        p.iter().any(|m| m.contains("\"nohost\" is not a registry host")),
        "{p:#?}"
    );
    assert!(RegistryOptions::default().uses_tls(false) && !RegistryOptions::default().uses_tls(true));
}

#[test]
fn did_you_mean_is_only_offered_when_close() {
    assert_eq!(edit_distance("replace_tag", "replace-tag"), 1);
    let p = problems("images:\n  a:\n    source: x/y\n    destination: q.io/y\n    colour: red\n");
    assert!(p[0].contains("known keys are"), "{p:?}");
}

#[test]
fn cloud_auth_settings_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    let text = "registries:\n  ecr.internal.example.com:\n    auth: ecr\n    region: eu-west-1\n    registry-id: \"012345678901\"\n    create-repositories: true\n  mirror.example.com:\n    auth: anonymous\nimages:\n  a:\n    source: x/y\n    destination: ecr.internal.example.com/y\n";
    let c = parse(&cfg, text).unwrap();
    let r = &c.registries["ecr.internal.example.com"];
    assert_eq!(r.auth, Some(AuthChoice::Ecr));
    assert_eq!(r.region.as_deref(), Some("eu-west-1"));
    assert_eq!(r.registry_id.as_deref(), Some("012345678901"));
    assert!(r.create_repositories);
    assert_eq!(c.registries["mirror.example.com"].auth, Some(AuthChoice::Anonymous));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // ECR-only settings elsewhere are named, not silently ignored
    let elsewhere = "registries:\n  r.example.com:\n    create-repositories: true\n  123456789012.dkr.ecr.us-east-1.amazonaws.com:\n    create-repositories: true\nimages:\n  a:\n    source: x/y\n    destination: r.example.com/y\n";
    let c = parse(&cfg, elsewhere).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].to_string().contains("key \"registries.r.example.com\""),
        "{}",
        c.warnings[0]
    );
    assert!(c.warnings[0].to_string().contains("apply only to ECR registries"));
    let key = dir.path().join("key.json");
    std::fs::write(&key, "{}").unwrap();
    let google = "registries:\n  gcr.io:\n    google-credentials: key.json\n  q.io:\n    google-credentials: key.json\n    aws-profile: prod\nimages:\n  a:\n    source: x/y\n    destination: gcr.io/p/y\n";
    let c = parse(&cfg, google).unwrap();
    assert_eq!(
        c.registries["gcr.io"].google_credentials.as_deref(),
        Some(key.as_path())
    );
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w.iter().all(|m| m.contains("key \"registries.q.io\"")), "{w:?}");

    let bad = "registries:\n  r.io:\n    auth: gcr\n    region: Europe\n    registry-id: 12345\n    create-repositories: yes please\n    aws-profile: two words\n    google-credentials: nowhere.json\nimages:\n  a:\n    source: x/y\n    destination: q.io/y\n";
    let p = problems_in(&cfg, bad);
    let has = |key: &str, text: &str| p.iter().any(|m| m.contains(key) && m.contains(text));
    assert!(
        has(
            "registries.r.io.auth",
            "unknown auth \"gcr\"; expected one of: google, ecr, ecr-public, azure, docker, anonymous"
        ),
        "{p:#?}"
    );
    assert!(
        has("registries.r.io.region", "expected an AWS region such as us-east-1"),
        "{p:#?}"
    );
    assert!(has("registries.r.io.registry-id", "12-digit AWS account id"), "{p:#?}");
    assert!(
        has("registries.r.io.create-repositories", "expected true or false"),
        "{p:#?}"
    );
    assert!(
        has("registries.r.io.aws-profile", "expected the name of a profile"),
        "{p:#?}"
    );
    assert!(
        has(
            "registries.r.io.google-credentials",
            "nowhere.json is not a readable file"
        ),
        "{p:#?}"
    );
    // every problem names its line
    assert!(p.iter().all(|m| m.contains("c.yaml:")), "{p:#?}");
}

#[test]
fn a_destination_shared_with_a_pruning_image_is_refused_naming_both() {
    let p = problems(
        "images:\n  a:\n    source: x/a\n    destination: r.io/m/app\n    prune: true\n  \
         b:\n    source: x/b\n    destination: r.io/m/app\n  \
         c:\n    source: x/c\n    destination: oci:lay/./out\n    prune: true\n  \
         d:\n    source: x/d\n    destination: oci:lay/sub/../out\n",
    );
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with(
            "c.yaml:6:3: image \"b\": key \"destination\": writes the same destination r.io/m/app as image \"a\" (line 2), which has prune: true"
        ),
        "{p:?}"
    );
    assert!(p[1].starts_with("c.yaml:13:3: image \"d\""), "{p:?}");
    // without prune, several images may share a destination
    ok(
        "images:\n  a:\n    source: x/a\n    destination: r.io/m/app\n  b:\n    source: x/b\n    destination: r.io/m/app\n",
    );
}

proptest::proptest! {
    #[test]
    fn no_config_lets_a_pruning_image_share_its_destination(
        images in proptest::collection::vec((0usize..3, proptest::prelude::any::<bool>()), 1..5),
    ) {
        let mut yaml = String::from("images:\n");
        for (i, (dst, prune)) in images.iter().enumerate() {
            yaml.push_str(&format!("  i{i}:\n    source: s.io/i{i}\n    destination: d.io/x{dst}\n    prune: {prune}\n"));
        }
        let shared_with_prune = (0..3).any(|d| {
            let on: Vec<_> = images.iter().filter(|(x, _)| *x == d).collect();
            on.len() > 1 && on.iter().any(|(_, p)| *p)
        });
        proptest::prop_assert_eq!(parse(Path::new("c.yaml"), &yaml).is_err(), shared_with_prune);
    }
}

#[test]
fn referrers_with_platforms_warn_that_index_signatures_will_not_verify() {
    let c = ok(
        "referrers: true\nimages:\n  arm:\n    source: x/a\n    destination: r.io/a\n    platforms: [linux/arm64]\n",
    );
    let warnings: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "c.yaml:3:3: image \"arm\": key \"platforms\": signatures of the source's index do not verify"
        ),
        "{warnings:?}"
    );
}

#[test]
fn every_key_of_the_table_is_read_where_it_may_appear() {
    use super::keys::{KEYS, Section};
    for key in KEYS {
        for &section in key.sections {
            // any value: a wrong one is a problem of its own, never "unknown key"
            let name = key.name;
            let text = match section {
                Section::Top => format!("{name}: 7\nimages:\n  a:\n    source: x/y\n    destination: q.io/y\n"),
                Section::Image => format!("images:\n  a:\n    source: x/y\n    destination: q.io/y\n    {name}: 7\n"),
                Section::Registry => {
                    format!(
                        "registries:\n  q.io:\n    {name}: 7\nimages:\n  a:\n    source: x/y\n    destination: q.io/y\n"
                    )
                }
            };
            let said = match parse(Path::new("c.yaml"), &text) {
                Ok(_) => Vec::new(),
                Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
            };
            assert!(
                said.iter().all(|p| !p.contains("unknown key")),
                "{name} in {section:?} is in the table but not read there: {said:?}"
            );
        }
    }
    // and what the table does not have is unknown everywhere, named with
    // the section's keys from the table
    let p = problems("images:\n  a:\n    source: x/y\n    destination: q.io/y\n    zzzzzz: 1\n");
    let listed = p[0].split("known keys are ").nth(1).unwrap_or_default();
    assert_eq!(listed, super::keys::names(Section::Image).join(", "), "{p:?}");
}

/// The environment of the variable tests.
fn vars_env(name: &str) -> Option<String> {
    match name {
        "SRC" => Some("src.example".into()),
        "STAGE" => Some("staging".into()),
        "PRUNE" => Some("true".into()),
        "MAX" => Some("7".into()),
        "PROFILE" => Some("s3cr3t profile".into()),
        _ => None,
    }
}

fn with_vars(text: &str) -> Result<Config, Vec<String>> {
    parse_with(Path::new("c.yaml"), text, &vars_env).map_err(|e| e.problems().iter().map(|p| p.to_string()).collect())
}

#[test]
fn variables_are_read_in_values_with_defaults() {
    let c = with_vars(
        "prune: ${PRUNE}\nprune-max: ${MAX:-3}\nimages:\n  app:\n    source: ${SRC}/team/app\n    \
         destination: ${DST:-dst.example}/${STAGE}/app\n    include: ['^v$$']\n    referrers: ${REFS:-false}\n",
    )
    .unwrap();
    let app = &c.images[0];
    assert_eq!(app.source.to_string(), "src.example/team/app");
    assert_eq!(app.destination.to_string(), "dst.example/staging/app");
    // a variable's text is read as the value it stands for
    assert!(app.options.prune);
    assert_eq!(app.options.prune_max, 7);
    assert!(!app.options.referrers);
    // `$$` is a literal `$`
    assert_eq!(app.filters.include[0].to_string(), "^v$");
}

#[test]
fn an_unset_variable_is_named_with_its_place() {
    let p = with_vars("images:\n  app:\n    source: ${SRC}/app\n    destination: ${MIRROR}/app\n").unwrap_err();
    assert_eq!(
        p,
        [
            "c.yaml:4:18: the environment variable MIRROR is not set (give a default with ${MIRROR:-default}, \
          or write $$ for a literal $)"
        ]
    );
    let p = with_vars("images:\n  app:\n    source: ${SRC/app\n    destination: x.io/app\n").unwrap_err();
    assert!(
        p[0].starts_with("c.yaml:3:13: \"${\" without its closing \"}\""),
        "{p:?}"
    );
}

#[test]
fn a_value_from_the_environment_is_never_shown_in_a_message() {
    let p = with_vars(
        "registries:\n  x.io:\n    aws-profile: ${PROFILE}\n    insecure: ${STAGE}\nimages:\n  app:\n    \
         source: ${SRC}/app\n    destination: x.io/app\n",
    )
    .unwrap_err();
    assert_eq!(p.len(), 2, "{p:?}");
    for m in &p {
        assert!(!m.contains("s3cr3t") && !m.contains("staging"), "{m}");
        assert!(m.ends_with("(a value from the environment, not shown)"), "{m}");
    }
    assert!(p[1].contains("found the string \"${STAGE}\""), "{p:?}");
}

#[test]
fn listed_tags_and_digests() {
    let d = format!("sha256:{}", "a".repeat(64));
    let c = ok(&format!(
        "mode: semver\nimages:\n  only:\n    source: a/b\n    destination: c.io/b\n    tags: [stable, \"1.27\", stable]\n    \
         digests: [{d}]\n  more:\n    source: a/c\n    destination: c.io/c\n    mode: higher\n    tags: stable\n"
    ));
    let (only, more) = (&c.images[0], &c.images[1]);
    // no mode of its own (the top level's does not count): only the list
    assert_eq!(only.mode, Mode::Listed);
    assert_eq!(only.tags, ["stable", "1.27"]);
    assert_eq!(only.digests, [crate::model::Digest::parse(&d).unwrap()]);
    assert_eq!(
        (more.mode, more.tags.as_slice()),
        (Mode::Higher, &["stable".to_string()][..])
    );

    let p = problems(
        "images:\n  a:\n    source: a/b\n    destination: c.io/b\n    tags: [1.20, \"-x\"]\n    digests: [sha256:abc, 7]\n",
    );
    assert_eq!(
        p,
        [
            "c.yaml:5:12: image \"a\": key \"tags\": expected a tag in quotes (YAML reads 1.20 as the number 1.2), found the number 1.2",
            "c.yaml:5:18: image \"a\": key \"tags\": \"-x\" is not a tag (letters, digits, _ . and -, at most 128, not starting with . or -)",
            "c.yaml:6:15: image \"a\": key \"digests\": invalid digest \"sha256:abc\" (expected sha256:<64 hex> or sha512:<128 hex>)",
            "c.yaml:6:27: image \"a\": key \"digests\": expected a list of digests such as [sha256:<64 hex digits>], found the number 7",
        ]
    );
}

#[test]
fn filters_of_an_entry_with_only_listed_tags_warn() {
    let c = ok("images:\n  a:\n    source: a/b\n    destination: c.io/b\n    tags: [stable]\n    versions: \">=1\"\n");
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        [
            "c.yaml:6:5: image \"a\": key \"versions\": ignored: this image sets no mode, so it copies only its \"tags\" and \"digests\" (a mode of its own selects more tags)"
        ]
    );
}

#[test]
fn repository_patterns() {
    let c = ok(
        "images:\n  team:\n    source: src.example/team/**\n    destination: dst.example/mirror/team/**\n    \
                exclude-repositories: ['old/.*']\n  all:\n    source: 127.0.0.1:5000/*\n    destination: dst.example/m/*\n",
    );
    let spec = c.images[0].pattern.as_ref().unwrap();
    let (rest, from, to) = spec.map("team/a/b").unwrap();
    assert_eq!(
        (rest.as_str(), from.to_string(), to.to_string()),
        (
            "a/b",
            "src.example/team/a/b".into(),
            "dst.example/mirror/team/a/b".into()
        )
    );
    assert_eq!(spec.map("team/old/x"), None, "excluded");
    assert_eq!(spec.map("other/a"), None, "outside the pattern");
    let root = c.images[1].pattern.as_ref().unwrap();
    assert_eq!(root.map("x").unwrap().2.to_string(), "dst.example/m/x");
    assert_eq!(root.map("x/y"), None, "/* is one level");

    let p = problems(
        "images:\n  a:\n    source: src.example/team/*\n    destination: dst.example/m/app\n  \
         b:\n    source: src.example/app\n    destination: dst.example/m/**\n  c:\n    source: src.example/app\n    \
         destination: dst.example/m/app\n    exclude-repositories: [x]\n",
    );
    assert_eq!(
        p,
        [
            "c.yaml:4:18: image \"a\": key \"destination\": must end in /* or /** as the source does (\"src.example/team/*\"): the matched part is appended to it",
            "c.yaml:7:18: image \"b\": key \"destination\": \"dst.example/m/**\" is a pattern, but the source is one repository",
        ]
    );
    let c = ok(
        "images:\n  c:\n    source: src.example/app\n    destination: dst.example/m/app\n    exclude-repositories: [x]\n",
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
}

#[test]
fn several_destinations_are_an_image_each() {
    let c = ok(
        "images:\n  app:\n    source: src.example/app\n    destination:\n      - eu.example/m/app\n      - oci:out\n    \
         mode: all\n    layout-media-types: oci\n  one:\n    source: src.example/one\n    destination: [eu.example/one]\n",
    );
    let names: Vec<(&str, &str)> = c.images.iter().map(|i| (i.name.as_str(), i.entry.as_str())).collect();
    assert_eq!(
        names,
        [
            ("app -> eu.example/m/app", "app"),
            ("app -> oci:out", "app"),
            ("one", "one")
        ]
    );
    assert!(c.images.iter().take(2).all(|i| i.mode == Mode::All));
    // layout-media-types is for the layouts of the list
    assert!(!c.images[0].options.oci_media_types);
    assert!(c.images[1].options.oci_media_types);

    let p = problems(
        "images:\n  a:\n    source: s.io/a\n    destination: [d.io/a, e.io/a, d.io/a]\n  \
         b:\n    source: s.io/b\n    destination: []\n  c:\n    source: s.io/c\n    destination: [d.io/c, s.io/c]\n  \
         d:\n    source: s.io/team/*\n    destination: [d.io/team/*, d.io/x]\n",
    );
    assert_eq!(p.len(), 4, "{p:?}");
    assert!(
        p[0].contains(":4:35: image \"a\": key \"destination\": is listed twice (line 4)"),
        "{p:?}"
    );
    assert!(
        p[1].contains("image \"b\": key \"destination\": lists no destination"),
        "{p:?}"
    );
    assert!(
        p[2].contains("image \"c\": key \"destination\": \"s.io/c\" is the source itself"),
        "{p:?}"
    );
    assert!(
        p[3].contains(":13:32: image \"d\": key \"destination\": must end in /* or /**"),
        "{p:?}"
    );
}

#[test]
fn replace_tag_detect_changes_and_backup_tag() {
    let c = ok(
        "detect-changes: true\nbackup-tag: \"{tag}-replaced-{date}\"\nimages:\n  a:\n    source: s.io/a\n    destination: d.io/a\n    replace-tag: except-versions\n  b:\n    source: s.io/b\n    destination: d.io/b\n    detect-changes: false\n    replace-tag: yes\n",
    );
    let (a, b) = (&c.images[0], &c.images[1]);
    assert_eq!(
        (a.replace_tag, a.options.detect_changes),
        (ReplaceTag::ExceptVersions, true)
    );
    assert_eq!((b.replace_tag, b.options.detect_changes), (ReplaceTag::Yes, false));
    let backup = a.options.backup_tag.as_ref().unwrap();
    assert_eq!(
        backup.render("1.27", "20261203").as_deref(),
        Some("1.27-replaced-20261203")
    );
    assert!(backup.made("1.27-replaced-20261203"));
    assert!(!backup.made("1.27-replaced-2026"));
    assert!(!backup.made("1.27"));
    assert_eq!(backup.render(&"x".repeat(120), "20261203"), None, "too long for a tag");
    // full versions never move; floating tags do
    for (tag, version) in [
        ("1.27.3", true),
        ("v2.0.0-rc.1", true),
        ("1.27", false),
        ("latest", false),
        ("1", false),
    ] {
        assert_eq!(is_full_version(tag), version, "{tag}");
        assert_eq!(ReplaceTag::ExceptVersions.replaces(tag), !version, "{tag}");
    }

    let p = problems(
        "images:\n  a:\n    source: s.io/a\n    destination: d.io/a\n    replace-tag: sometimes\n    \
         backup-tag: old\n  b:\n    source: s.io/b\n    destination: d.io/b\n    backup-tag: \"{tag}-{when}\"\n  \
         c:\n    source: s.io/c\n    destination: d.io/c\n    backup-tag: \"{tag}/x\"\n",
    );
    assert_eq!(p.len(), 4, "{p:?}");
    assert!(
        p[0].contains("key \"replace-tag\": expected true, false or \"except-versions\", found"),
        "{p:?}"
    );
    assert!(p[1].contains("key \"backup-tag\": \"old\" must contain {tag}"), "{p:?}");
    assert!(p[2].contains("knows only the placeholders {tag} and {date}"), "{p:?}");
    assert!(p[3].contains("does not make a valid tag"), "{p:?}");
}

#[test]
fn a_name_yaml_reads_as_a_boolean_says_to_quote_it() {
    for name in ["yes", "n", "1.0", "null"] {
        let p = problems(&format!(
            "images:\n  {name}:\n    source: s.io/a\n    destination: d.io/a\n"
        ));
        assert!(p[0].contains("quote the name"), "{name}: {p:?}");
    }
    let c = ok("images:\n  \"yes\":\n    source: s.io/a\n    destination: d.io/a\n");
    assert_eq!(c.images[0].name, "yes");
}
