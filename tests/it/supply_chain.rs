//! What protects a cluster from its upstream: tags that move upstream are
//! told of (and full versions are not followed), replaced tags are kept
//! under a backup tag, versions wait for `min-age`, and each image says
//! how far behind its source it is.

use crate::support::*;
use serde_json::Value;
use testkit::proxy::{Fault, FaultProxy, Target};

/// Today's UTC date as `backup-tag` writes it.
fn today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y%m%d"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_tag_moved_upstream_is_told_a_full_version_is_not_followed_and_a_replaced_one_is_kept() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut generator = ImageGen::default();
    let first = generator.image(Format::Oci, &[1000], &[], ("linux", "amd64"));
    for tag in ["1.0.0", "1.0", "latest"] {
        sc.push_image("team/app", &first, tag);
    }
    let ws = Workspace::new();
    let config = |replace: &str| {
        ws.write_config(&format!(
            "images:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n    mode: all\n    prune: true\n    \
             {replace}\n    backup-tag: \"{{tag}}-replaced-{{date}}\"\n",
            src.host(),
            dst.host()
        ))
    };
    let except_versions = config("replace-tag: except-versions");
    let run = ws.run(&except_versions, &[]);
    assert_eq!(run.code, 0, "{run:?}");

    // upstream re-releases all three
    let second = generator.image(Format::Oci, &[1100], &[], ("linux", "amd64"));
    for tag in ["1.0.0", "1.0", "latest"] {
        sc.push_image("team/app", &second, tag);
    }
    let (report, metrics) = (ws.path("report.json"), ws.path("metrics.prom"));
    let outputs = [
        "--report",
        report.to_str().unwrap(),
        "--metrics-file",
        metrics.to_str().unwrap(),
    ];
    let run = ws.run(&except_versions, &outputs);
    assert_eq!(run.code, 0, "{run:?}");
    let date = today();
    // the floating tags follow upstream, their old image kept; 1.0.0 does not
    assert_eq!(dc.digest("mirror/app", "1.0").as_deref(), Some(second.digest.as_str()));
    assert_eq!(
        dc.digest("mirror/app", "latest").as_deref(),
        Some(second.digest.as_str())
    );
    assert_eq!(dc.digest("mirror/app", "1.0.0").as_deref(), Some(first.digest.as_str()));
    for backup in [format!("1.0-replaced-{date}"), format!("latest-replaced-{date}")] {
        assert_eq!(
            dc.digest("mirror/app", &backup).as_deref(),
            Some(first.digest.as_str()),
            "{backup}"
        );
    }
    let warning = format!(
        "moved upstream: 1.0.0 from {} to {} (left as it was: a release tag should never move, check upstream)",
        first.digest, second.digest
    );
    assert!(run.stderr.contains(&warning), "{run:?}");
    assert!(run.stdout.contains(&warning), "{run:?}");
    let json = valid_report(&report);
    let moved: Vec<(&str, bool, bool)> = json["images"][0]["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["tag"].as_str().unwrap(),
                m["replaced"].as_bool().unwrap(),
                m["version"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moved,
        [("1.0", true, false), ("1.0.0", false, true), ("latest", true, false)]
    );
    assert_eq!(json["images"][0]["moved"][1]["from"], first.digest.as_str());
    assert_eq!(json["images"][0]["moved"][1]["to"], second.digest.as_str());
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    for line in [
        "replicant_image_moved_tags{image=\"app\",kind=\"version\"} 1",
        "replicant_image_moved_tags{image=\"app\",kind=\"other\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // detect-changes alone tells, replaces nothing; prune leaves the backups
    let detect = config("detect-changes: true");
    let before = sorted(dc.tags("mirror/app"));
    let run = ws.run(&detect, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("moved upstream: 1.0.0 from"), "{run:?}");
    assert_eq!(sorted(dc.tags("mirror/app")), before, "{run:?}");

    // replace-tag: true takes 1.0.0 too, backed up; a tag replaced again
    // the same day would lose its backup, so it is not replaced
    let third = generator.image(Format::Oci, &[1200], &[], ("linux", "amd64"));
    sc.push_image("team/app", &third, "latest");
    let run = ws.run(&config("replace-tag: true"), &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        dc.digest("mirror/app", "1.0.0").as_deref(),
        Some(second.digest.as_str())
    );
    let kept = format!("1.0.0-replaced-{date}");
    assert_eq!(dc.digest("mirror/app", &kept).as_deref(), Some(first.digest.as_str()));
    assert_eq!(
        dc.digest("mirror/app", "latest").as_deref(),
        Some(second.digest.as_str())
    );
    assert!(
        run.stdout.contains(&format!(
            "its backup tag latest-replaced-{date} already holds another manifest"
        )),
        "{run:?}"
    );
}

/// RFC 3339 for `ago` seconds before now.
fn ago(seconds: u64) -> String {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - seconds;
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{at}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn min_age_holds_young_and_unknown_versions_and_highest_takes_the_newest_old_enough() {
    const DAY: u64 = 86_400;
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut generator = ImageGen::default();
    let (old, young) = (ago(10 * DAY), ago(3600));
    let images = [
        ("1.0.0", generator.image_made(Format::Oci, Some(&old), None)),
        // the annotation is what counts: 5 days
        (
            "1.1.0",
            generator.image_made(Format::Oci, Some(&young), Some(&ago(5 * DAY))),
        ),
        ("1.2.0", generator.image_made(Format::Docker, Some(&young), None)),
        ("1.3.0", generator.image_made(Format::Oci, None, None)),
        (
            "1.4.0",
            generator.image_made(Format::Oci, Some("1970-01-01T00:00:00Z"), None),
        ),
    ];
    for (tag, image) in &images {
        sc.push_image("team/app", image, tag);
    }
    let ws = Workspace::new();
    let yaml = |images: &str| format!("min-age: 3d\nimages:\n{images}",);
    let high = format!(
        "  high:\n    source: {0}/team/app\n    destination: {1}/mirror/high\n    mode: highest\n",
        src.host(),
        dst.host()
    );
    let all = format!(
        "  all:\n    source: {0}/team/app\n    destination: {1}/mirror/all\n    mode: semver\n    min-age-unknown: allow\n",
        src.host(),
        dst.host()
    );
    let cfg = ws.write_config(&yaml(&format!("{high}{all}")));
    let dry_report = ws.path("dry.json");
    let dry = ws.run(&cfg, &["--dry-run", "--report", dry_report.to_str().unwrap()]);
    assert_eq!(dry.code, 0, "{dry:?}");
    // freshness of a dry run: what would be copied is missing too; its
    // ages are not asked (a dry run would ask for everything), the held
    // one's is known
    let json = valid_report(&dry_report);
    let fresh = &json["images"][1]["freshness"];
    assert_eq!(fresh["missing"], 5, "{fresh}");
    let oldest = fresh["oldest_missing_age_seconds"].as_u64().unwrap();
    assert!((3600..4200).contains(&oldest), "{fresh}");
    assert!(
        dry.stdout.contains("held (3): 1.4.0 (states no creation time"),
        "{dry:?}"
    );
    assert!(
        dry.stdout.contains("1.2.0 (1h old, younger than min-age 3d: held)"),
        "{dry:?}"
    );
    assert!(
        dry.stderr.contains("min-age-unknown: allow lets such images through"),
        "{dry:?}"
    );
    assert!(dc.tags("mirror/high").is_empty());

    let (report, metrics) = (ws.path("report.json"), ws.path("metrics.prom"));
    let run = ws.run(
        &cfg,
        &[
            "--report",
            report.to_str().unwrap(),
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    // highest: the highest version old enough
    assert_eq!(dc.tags("mirror/high"), ["1.1.0"], "{run:?}");
    assert_eq!(
        sorted(dc.tags("mirror/all")),
        ["1.0.0", "1.1.0", "1.3.0", "1.4.0"],
        "{run:?}"
    );
    let json = valid_report(&report);
    assert_eq!(
        json["images"][0]["held"],
        serde_json::json!(["1.4.0", "1.3.0", "1.2.0"])
    );
    assert_eq!(json["images"][1]["held"], serde_json::json!(["1.2.0"]));
    assert!(run.stdout.contains("[ok] "), "held is not a failure: {run:?}");
    // freshness: high lacks the three held versions, the oldest known of
    // them 1.2.0 (1h); 1.4.0 is the newest upstream, 1.1.0 mirrored
    let fresh = &json["images"][0]["freshness"];
    assert_eq!(fresh["missing"], 3, "{fresh}");
    assert_eq!(fresh["newest_source"], "1.4.0");
    assert_eq!(fresh["newest_mirrored"], "1.1.0");
    let oldest = fresh["oldest_missing_age_seconds"].as_u64().unwrap();
    assert!((3600..4200).contains(&oldest), "{fresh}");
    assert_eq!(json["images"][1]["freshness"]["newest_mirrored"], "1.4.0");
    assert!(
        run.stdout.contains(
            "behind: 3 missing; newest version upstream 1.4.0, mirrored 1.1.0; the oldest missing was made 1h ago"
        ),
        "{run:?}"
    );
    let metrics = std::fs::read_to_string(&metrics).unwrap();
    for line in [
        "replicant_run_tags{image=\"high\",result=\"held\"} 3",
        "replicant_image_missing_tags{image=\"high\"} 3",
        "replicant_image_missing_tags{image=\"all\"} 1",
        "replicant_image_newest_version_info{image=\"high\",source=\"1.4.0\",mirrored=\"1.1.0\"} 1",
        "replicant_image_behind{image=\"high\"} 1",
        "replicant_image_behind{image=\"all\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(
        metrics.contains("replicant_image_oldest_missing_age_seconds{image=\"high\"} 36"),
        "{metrics}"
    );

    // the next pass asks the age of what the destination lacks only
    let only_all = ws.write_config(&yaml(&all));
    let before = src.log().lines().count();
    let run = ws.run(&only_all, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let log: Vec<String> = src.log().lines().skip(before).map(str::to_string).collect();
    let gets: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("\"GET /v2/team/app/manifests/") || l.contains("\"GET /v2/team/app/blobs/"))
        .collect();
    assert_eq!(gets.len(), 2, "the manifest and config of 1.2.0 only: {gets:#?}");
    assert!(gets.iter().any(|l| l.contains("/manifests/1.2.0 ")), "{gets:#?}");
}

#[test]
fn freshness_tells_how_old_the_oldest_version_that_did_not_arrive_is() {
    const DAY: u64 = 86_400;
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    // the destination refuses every manifest: nothing arrives
    let proxy = FaultProxy::start(&dst.host(), 1);
    proxy.set(Some((
        Fault::Answer(400, r#"{"errors":[{"code":"MANIFEST_INVALID","message":"refused"}]}"#),
        1.0,
        Target::ManifestPuts,
    )));
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    sc.push_image(
        "team/app",
        &generator.image_made(Format::Oci, Some(&ago(10 * DAY)), None),
        "1.0.0",
    );
    sc.push_image(
        "team/app",
        &generator.image_made(Format::Oci, None, Some(&ago(5 * DAY))),
        "1.1.0",
    );
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "images:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n    mode: semver\n",
        src.host(),
        proxy.host()
    ));
    let report = ws.path("report.json");
    let run = ws.run(&cfg, &["--report", report.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    let json = valid_report(&report);
    let fresh = &json["images"][0]["freshness"];
    assert_eq!(fresh["missing"], 2, "{fresh}");
    assert_eq!(fresh["newest_source"], "1.1.0");
    assert_eq!(fresh["newest_mirrored"], Value::Null);
    let oldest = fresh["oldest_missing_age_seconds"].as_u64().unwrap();
    assert!((10 * DAY..10 * DAY + 600).contains(&oldest), "{fresh}");
    assert!(
        run.stdout.contains(
            "behind: 2 missing; newest version upstream 1.1.0, mirrored none; the oldest missing was made 10d ago"
        ),
        "{run:?}"
    );
}
