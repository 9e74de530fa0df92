//! `--report PATH`: the versioned JSON run report, validated against its
//! published schema (docs/report.schema.json), written atomically whatever
//! the outcome: success, failures, an unusable config, an interruption.

use std::time::Duration;

use crate::support::*;
use testkit::proxy::FaultProxy;

#[test]
fn the_report_says_per_tag_what_happened_and_validates() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let dc = TestClient::new(&dst.host(), None);
    let mut generator = ImageGen::default();
    sc.push_image("team/app", &generator.multi_arch(Format::Oci, 3000, &[]), "1.0.0");
    sc.push_image("team/app", &generator.multi_arch(Format::Oci, 3000, &[]), "1.1.0");
    dc.push_image("mirror/app", &generator.multi_arch(Format::Oci, 100, &[]), "1.0.0");
    let ws = Workspace::new();
    let cfg = ws.mixed_config("mixed.yaml", &src.host(), &dst.host());
    let out = ws.dir.path().join("reports");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join("run.json");
    let run = ws.run(&cfg, &["--report", path.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    let r = valid_report(&path);
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["exit_code"], 1);
    let app = &r["images"][0];
    assert_eq!(app["name"], "app");
    let tags = app["tags"].as_array().unwrap();
    let copied = tags.iter().find(|t| t["tag"] == "1.1.0").unwrap();
    assert_eq!(copied["action"], "copied");
    assert_eq!(copied["source_digest"], sc.digest("team/app", "1.1.0").unwrap());
    assert_eq!(copied["destination_digest"], dc.digest("mirror/app", "1.1.0").unwrap());
    assert!(copied["bytes"].as_u64().unwrap() >= 6000, "{copied}");
    assert!(copied["duration_seconds"].as_f64().unwrap() > 0.0);
    let present = tags.iter().find(|t| t["tag"] == "1.0.0").unwrap();
    assert_eq!(present["action"], "present");
    assert_eq!(r["images"][1]["error_category"], "not-found");
    let attention = r["images"][2]["attention"].as_str().unwrap();
    assert!(
        attention.contains("compatibility \"alpnie\" matches none"),
        "{attention}"
    );
    assert!(r["totals"]["bytes_moved"].as_u64().unwrap() >= 6000);
}

#[test]
fn an_unusable_config_and_an_interrupted_run_are_reported_too() {
    let ws = Workspace::new();
    let path = ws.path("report.json");
    let cfg = ws.write_config("images:\n  a:\n    source: http://r.example.com/a\n    destination: q.example.com/a\n");
    let run = ws.run(&cfg, &["--report", path.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    let r = valid_report(&path);
    assert_eq!(r["exit_code"], 2);
    assert_eq!(r["config_problems"][0]["line"], 3);
    assert_eq!(r["config_problems"][0]["key"], "source");
    assert_eq!(r["images"].as_array().unwrap().len(), 0);

    // a long copy stopped by SIGTERM still leaves its report
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    TestClient::new(&src.host(), None).push_big_layer_image("team/big", "1.0.0", 16 << 20, ws.dir.path());
    let link = FaultProxy::start(&src.host(), 1);
    link.set_rate(Some(4 << 20));
    let cfg = ws.write_config(&format!(
        "images:\n  big:\n    source: {}/team/big\n    destination: {}/mirror/big\n",
        link.host(),
        dst.host()
    ));
    let child = ws.spawn(&cfg, &["--report", path.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(&child);
    let run = output(child.wait_with_output().unwrap());
    assert_eq!(run.code, 143, "{run:?}");
    let r = valid_report(&path);
    assert_eq!(r["exit_code"], 143);
    assert_eq!(r["interrupted"], true);
}

#[test]
fn a_report_that_cannot_be_written_fails_the_run() {
    let ws = Workspace::new();
    let cfg = ws.write_config("images:\n  q:\n    source: oci:layout\n    destination: oci:out\n");
    testkit::quickstart::write(&ws.path("layout"));
    let run = ws.run(&cfg, &["--report", "/proc/replicant-report.json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("cannot write the run report /proc/replicant-report.json"),
        "{run:?}"
    );
}

#[test]
fn check_lists_what_a_run_would_change_writes_nothing_and_passes_once_complete() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut generator = ImageGen::default();
    for tag in ["1.0.0", "1.1.0", "1.2.0"] {
        let img = generator.image(Format::Oci, &[700], &[], ("linux", "amd64"));
        sc.push_image("team/app", &img, tag);
        if tag == "1.0.0" {
            dc.push_image("mirror/app", &img, tag);
        }
    }
    // 1.1.0 is another image at the destination; 0.9.0 is gone upstream
    let other = generator.image(Format::Oci, &[800], &[], ("linux", "amd64"));
    dc.push_image("mirror/app", &other, "1.1.0");
    dc.push_image(
        "mirror/app",
        &generator.image(Format::Oci, &[900], &[], ("linux", "amd64")),
        "0.9.0",
    );
    let before = {
        let mut t = dc.tags("mirror/app");
        t.sort();
        t
    };
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "images:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n    mode: semver\n    replace-tag: true\n    prune: true\n",
        src.host(),
        dst.host()
    ));
    let report = ws.path("check.json");
    let run = ws.run(&cfg, &["--check", "--report", report.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    for line in [
        "check: app 1.2.0: missing at the destination (a run would copy it)",
        "check: app 1.1.0: at the destination with another digest than the source's (a run would replace it)",
        "check: app 0.9.0: gone upstream, still at the destination (a run would delete it)",
        "check: not complete: 3 differences",
    ] {
        assert!(run.stdout.contains(line), "{line}: {run:?}");
    }
    let json = valid_report(&report);
    assert_eq!(json["check"]["complete"], false);
    let actions: Vec<(&str, &str)> = json["check"]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["tag"].as_str().unwrap(), d["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("1.2.0", "copy"), ("1.1.0", "replace"), ("0.9.0", "delete")]);
    let mut after = dc.tags("mirror/app");
    after.sort();
    assert_eq!(after, before, "a check writes nothing");
    assert_eq!(dc.digest("mirror/app", "1.1.0").as_deref(), Some(other.digest.as_str()));

    // a run makes it complete; the check (here from the environment) says so
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut cmd = ws.command();
    cmd.arg("-c").arg(&cfg).env("REPLICANT_CHECK", "true");
    let run = output(cmd.output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("check: complete"), "{run:?}");
    assert!(!run.stdout.contains("check: app"), "{run:?}");
}
