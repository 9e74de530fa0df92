//! Repository patterns: a source ending in `/*` or `/**` stands for every
//! repository of the source's catalog below it (every page of it), each
//! mirrored to the destination with the matched part appended.

use std::sync::Arc;

use crate::support::*;
use testkit::proxy::FaultProxy;

/// A source with `repos`, each holding `1.0.0`.
fn source(repos: &[&str]) -> (Registry, TestClient) {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    for repo in repos {
        sc.push_image(
            repo,
            &generator.image(Format::Oci, &[256], &[], ("linux", "amd64")),
            "1.0.0",
        );
    }
    (src, sc)
}

#[test]
fn a_pattern_mirrors_every_repository_it_matches_and_no_other() {
    let repos = ["team/a", "team/b", "team/sub/c", "team/skip", "teams/x", "other/y"];
    let (src, sc) = source(&repos);
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "mode: all\nimages:\n  team:\n    source: {0}/team/**\n    destination: {1}/mirror/team/**\n    \
         exclude-repositories: [skip]\n  flat:\n    source: {0}/team/*\n    destination: [{1}/flat/*, {1}/again/*]\n",
        src.host(),
        dst.host()
    ));
    // the dry run lists what matched, and writes nothing
    let dry = ws.run(&cfg, &["--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    let mut images: Vec<String> = ["team/a", "team/b", "team/sub/c"].map(String::from).to_vec();
    for to in ["flat", "again"] {
        for r in ["a", "b", "skip"] {
            images.push(format!("flat/{r} -> {}/{to}/{r}", dst.host()));
        }
    }
    for image in images {
        assert!(dry.stdout.contains(&format!("  {image} [")), "{image}: {dry:?}");
    }
    assert!(dry.stderr.contains("matches 3 of the 6 repositories"), "{dry:?}");
    assert!(dc.tags("mirror/team/a").is_empty());

    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    for (from, to) in [
        ("team/a", "mirror/team/a"),
        ("team/b", "mirror/team/b"),
        ("team/sub/c", "mirror/team/sub/c"),
        ("team/a", "flat/a"),
        ("team/b", "flat/b"),
        ("team/skip", "flat/skip"),
        ("team/a", "again/a"),
        ("team/skip", "again/skip"),
    ] {
        assert_mirror(&sc, from, &dc, to, &["1.0.0"]);
    }
    for never in [
        "mirror/team/skip",
        "mirror/teams/x",
        "mirror/other/y",
        "flat/sub/c",
        "flat/c",
    ] {
        assert!(dc.tags(never).is_empty(), "{never} was written");
    }
    // the catalog was read once per run for all entries, page by page
    // (3 a page here: n=1000 is refused, then the registry's own size)
    let log = src.log();
    assert_eq!(log.matches("\"GET /v2/_catalog?n=1000 ").count(), 2, "{log}");
    assert!(log.contains("\"GET /v2/_catalog?last="), "a Link was followed: {log}");
    assert!(run.stdout.contains("totals: 9 images, 0 failed"), "{run:?}");
}

#[test]
fn a_registry_without_a_catalog_fails_the_pattern_saying_so() {
    let (src, _) = source(&["team/a"]);
    let dst = Registry::start(Auth::None);
    let proxy = FaultProxy::start(&src.host(), 1);
    proxy.route(
        "/v2/_catalog",
        Arc::new(|_| {
            testkit::http::Response::json(
                404,
                r#"{"errors":[{"code":"UNSUPPORTED","message":"not here"}]}"#.into(),
            )
        }),
    );
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "images:\n  team:\n    source: {}/team/*\n    destination: {}/mirror/*\n  one:\n    source: {}/team/a\n    \
         destination: {}/one/a\n",
        proxy.host(),
        dst.host(),
        src.host(),
        dst.host()
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("offers no catalog to this client (HTTP 404 to GET /v2/_catalog)"),
        "{run:?}"
    );
    assert!(run.stdout.contains("team [FAILED]"), "{run:?}");
    assert!(run.stdout.contains("one [ok]"), "the other image goes on: {run:?}");
}

#[test]
fn a_pattern_on_docker_hub_or_a_mismatched_destination_is_a_config_error() {
    let ws = Workspace::new();
    let cfg = ws.write_config(
        "images:\n  hub:\n    source: docker.io/library/*\n    destination: r.example/m/*\n  \
         odd:\n    source: r.example/team/**\n    destination: s.example/m/*\n",
    );
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("Docker Hub offers no catalog"), "{run:?}");
    assert!(
        run.stderr
            .contains("must end as the source does (\"r.example/team/**\")"),
        "{run:?}"
    );
}
