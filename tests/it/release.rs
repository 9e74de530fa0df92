//! The release: its GitHub workflow checked against the workflow schema
//! (offline, check-jsonschema), every script it runs present and run here
//! where it can be (versions, notes, chart packaging and push, the GitHub
//! release with a stand-in `gh`); the image scripts run in tests/it/image.rs.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use testkit::container::repo_root;
use testkit::tools::tool;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const WORKFLOW: &str = ".github/workflows/release.yml";

fn script(name: &str) -> Command {
    Command::new(repo_root().join("scripts/release").join(name))
}

fn check_workflow(path: &Path) -> Run {
    output(
        Command::new(tool("CHECK_JSONSCHEMA", "check-jsonschema"))
            .args(["--builtin-schema", "vendor.github-workflows"])
            .arg(path)
            .output()
            .expect("run check-jsonschema"),
    )
}

#[test]
fn release_workflow_is_a_valid_github_workflow() {
    let path = repo_root().join(WORKFLOW);
    let run = check_workflow(&path);
    assert_eq!(run.code, 0, "{run:?}");
    // and the check does catch a broken workflow
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("release.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &broken,
        text.replacen("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1),
    )
    .unwrap();
    assert_ne!(check_workflow(&broken).code, 0, "a job without runs-on passed");
}

#[test]
fn every_script_the_workflow_runs_is_in_the_repository() {
    let text = std::fs::read_to_string(repo_root().join(WORKFLOW)).unwrap();
    let workflow: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let mut scripts = Vec::new();
    for (job, spec) in workflow["jobs"].as_object().unwrap() {
        for step in spec["steps"].as_array().unwrap() {
            let Some(run) = step["run"].as_str() else { continue };
            for word in run.split_whitespace().filter(|w| w.starts_with("scripts/")) {
                let path = repo_root().join(word);
                let mode = std::os::unix::fs::PermissionsExt::mode(
                    &std::fs::metadata(&path)
                        .unwrap_or_else(|_| panic!("job {job} runs {word}, which does not exist"))
                        .permissions(),
                );
                assert!(mode & 0o111 != 0, "{word} is not executable");
                scripts.push(word.to_string());
            }
        }
    }
    for expected in [
        "scripts/release/check-version",
        "scripts/release/build-binary",
        "scripts/release/publish-image",
        "scripts/release/package-chart",
        "scripts/release/publish-chart",
        "scripts/release/github-release",
    ] {
        assert!(
            scripts.iter().any(|s| s == expected),
            "the workflow does not run {expected}: {scripts:?}"
        );
    }
}

#[test]
fn one_version_everywhere() {
    let run = output(script("check-version").output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    // the binary says the same version the chart runs
    let version = output(
        Command::new(env!("CARGO_BIN_EXE_replicant"))
            .arg("--version")
            .output()
            .unwrap(),
    );
    assert_eq!(version.stdout.trim(), format!("replicant {VERSION}"));
    let chart = std::fs::read_to_string(repo_root().join("charts/replicant/Chart.yaml")).unwrap();
    assert!(chart.contains(&format!("appVersion: \"{VERSION}\"")), "{chart}");

    // a tag for another version, and an undated CHANGELOG entry, are refused
    let run = output(script("check-version").arg("v9.9.9").output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!("tag 'v9.9.9' is not v{VERSION}")),
        "{run:?}"
    );

    // a chart that drifted is named
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "Cargo.toml",
        "CHANGELOG.md",
        "charts/replicant/Chart.yaml",
        "scripts/release/check-version",
    ] {
        let to = dir.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo_root().join(f), &to).unwrap();
    }
    let chart_file = dir.path().join("charts/replicant/Chart.yaml");
    std::fs::write(
        &chart_file,
        chart.replace(&format!("appVersion: \"{VERSION}\""), "appVersion: \"0.0.1\""),
    )
    .unwrap();
    let run = output(
        Command::new(dir.path().join("scripts/release/check-version"))
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("charts/replicant/Chart.yaml appVersion is '0.0.1'"),
        "{run:?}"
    );
}

#[test]
fn release_notes_come_from_the_changelog() {
    let run = output(script("notes").arg(VERSION).output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("### Added"), "{run:?}");
    assert!(
        !run.stdout.contains(&format!("## [{VERSION}]")),
        "the heading is the release's title: {run:?}"
    );
    let run = output(script("notes").arg("9.9.9").output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
}

#[test]
fn chart_is_packaged_pushed_as_an_oci_artifact_and_mirrored_by_replicant() {
    let out = tempfile::tempdir().unwrap();
    let helm = tool("HELM", "helm");
    let run = output(
        script("package-chart")
            .args(["--out"])
            .arg(out.path())
            .args(["--image", "registry.example.com/tools/replicant"])
            .env("HELM", &helm)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let package = out.path().join(format!("replicant-{VERSION}.tgz"));
    assert!(package.is_file(), "{run:?}");
    // the packaged default image is the published one
    let values = output(
        Command::new(&helm)
            .args(["show", "values"])
            .arg(&package)
            .output()
            .unwrap(),
    );
    assert!(values.stdout.contains("registry: registry.example.com\n"), "{values:?}");
    assert!(values.stdout.contains("repository: tools/replicant\n"), "{values:?}");

    let charts = Registry::start(Auth::None);
    let mirror = Registry::start(Auth::None);
    let helm_home = tempfile::tempdir().unwrap();
    let run = output(
        script("publish-chart")
            .arg(&package)
            .arg(format!("oci://{}/charts", charts.host()))
            .env("HELM", &helm)
            .env("PLAIN_HTTP", "1")
            .env("HELM_CONFIG_HOME", helm_home.path())
            .env("HELM_CACHE_HOME", helm_home.path())
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let cc = TestClient::new(&charts.host(), None);
    assert_eq!(cc.tags("charts/replicant"), [VERSION]);
    let (bytes, _) = cc.manifest("charts/replicant", VERSION).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.cncf.helm.config.v1+json"
    );

    // replicant copies the chart like any image, digest-exact
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "images:\n  chart:\n    source: {}/charts/replicant\n    destination: {}/charts/replicant\n    mode: all\n",
        charts.host(),
        mirror.host()
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let mc = TestClient::new(&mirror.host(), None);
    assert_mirror(&cc, "charts/replicant", &mc, "charts/replicant", &[VERSION]);
}

#[test]
fn github_release_uploads_binaries_checksums_and_notes() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    for arch in ["amd64", "arm64"] {
        std::fs::write(
            dist.join(format!("replicant-{VERSION}-linux-{arch}")),
            format!("binary for {arch}"),
        )
        .unwrap();
    }
    // a stand-in for the GitHub CLI (GitHub is not reachable here): it
    // records its arguments and the notes it was given
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.path().join("gh.log");
    std::fs::write(
        bin.join("gh"),
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\nwhile [ $# -gt 0 ]; do [ \"$1\" = --notes-file ] && cp \"$2\" {log}.notes; shift; done\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("gh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = output(
        script("github-release")
            .arg(format!("v{VERSION}"))
            .arg(&dist)
            .env("PATH", path)
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.starts_with(&format!("release\ncreate\nv{VERSION}\n")), "{args}");
    assert!(args.contains("linux-arm64\n") && args.contains("SHA256SUMS"), "{args}");
    let notes = std::fs::read_to_string(format!("{}.notes", log.display())).unwrap();
    assert!(notes.contains("### Added"), "{notes}");
    let check = Command::new("sha256sum")
        .args(["--check", "SHA256SUMS"])
        .current_dir(&dist)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 2, "{sums}");
}
