//! What protects a cluster from its upstream: tags that move upstream are
//! told of (and full versions are not followed), replaced tags are kept
//! under a backup tag.

use crate::support::*;

/// Today's UTC date as `backup-tag` writes it.
fn today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y%m%d"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn sorted(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags
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
