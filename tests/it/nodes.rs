//! `replicant mirror-config`: what it writes is read by the clients that
//! use it. skopeo (the library of CRI-O and podman) pulls through the
//! generated registries.conf while the source is down; containerd's
//! hosts.toml is parsed as TOML and its mirror URLs asked as containerd
//! asks them; k3s's rewrites and OpenShift's mirror sets are read and
//! followed to the mirrored manifests.

use std::process::Command;

use crate::support::*;
use serde_json::Value;

/// A source with two repositories, mirrored into a destination under
/// `mirror/`; `odd` goes elsewhere (no common prefix).
struct Mirrored {
    src: Option<Registry>,
    src_host: String,
    dst: Registry,
    ws: Workspace,
    config: std::path::PathBuf,
    digests: Vec<(String, String)>,
}

fn mirrored() -> Mirrored {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    let mut digests = Vec::new();
    for repo in ["team/app", "team/sub/tool", "odd/app"] {
        let image = generator.image(Format::Oci, &[400], &[], ("linux", "amd64"));
        sc.push_image(repo, &image, "1.0.0");
        digests.push((repo.to_string(), image.digest.clone()));
    }
    let ws = Workspace::new();
    let config = ws.write_config(&format!(
        "images:\n  team:\n    source: {0}/team/**\n    destination: {1}/mirror/team/**\n  \
         odd:\n    source: {0}/odd/app\n    destination: {1}/elsewhere/app\n",
        src.host(),
        dst.host()
    ));
    let run = ws.run(&config, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    Mirrored {
        src_host: src.host(),
        src: Some(src),
        dst,
        ws,
        config,
        digests,
    }
}

fn mirror_config(m: &Mirrored, format: &str, extra: &[&str]) -> Run {
    let mut cmd = m.ws.command();
    cmd.arg("mirror-config")
        .args(["--format", format])
        .arg("-c")
        .arg(&m.config)
        .args(extra);
    output(cmd.output().unwrap())
}

#[test]
fn skopeo_pulls_through_the_generated_registries_conf_while_the_source_is_down() {
    let mut m = mirrored();
    let out = mirror_config(&m, "registries.conf", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let conf = m.ws.path("registries.conf");
    std::fs::write(&conf, &out.stdout).unwrap();
    drop(m.src.take());
    for (repo, digest) in &m.digests {
        let got = Command::new("skopeo")
            .arg("--registries-conf")
            .arg(&conf)
            .args(["inspect", "--no-tags", "--format", "{{.Digest}}"])
            .arg(format!("docker://{}/{repo}:1.0.0", m.src_host))
            .output()
            .unwrap();
        assert!(
            got.status.success(),
            "{repo}: {}\n{}",
            String::from_utf8_lossy(&got.stderr),
            out.stdout
        );
        assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), digest, "{repo}");
    }
    // and without it, skopeo cannot reach the source: the mirror did it
    let without = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{}/team/app:1.0.0", m.src_host))
        .output()
        .unwrap();
    assert!(!without.status.success());
}

/// A manifest's digest as a registry answers `GET url` for it.
fn digest_at(url: &str) -> Option<String> {
    let client = reqwest::blocking::Client::new();
    let got = client
        .get(url)
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .ok()?;
    got.status()
        .is_success()
        .then(|| {
            got.headers()
                .get("Docker-Content-Digest")?
                .to_str()
                .ok()
                .map(str::to_string)
        })
        .flatten()
}

#[test]
fn containerd_hosts_toml_maps_a_prefix_and_names_what_it_cannot() {
    let m = mirrored();
    let dir = m.ws.path("certs.d");
    let out = mirror_config(&m, "containerd", &["--output", dir.to_str().unwrap()]);
    // odd/app -> elsewhere/app keeps no common prefix with team/**
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("odd: not in the output:"), "{out:?}");
    assert!(
        out.stderr.contains("keep the source's path below one prefix"),
        "{out:?}"
    );
    let file = dir.join(&m.src_host).join("hosts.toml");
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(parsed.status.success(), "{}", String::from_utf8_lossy(&parsed.stderr));
    let toml: Value = serde_json::from_slice(&parsed.stdout).unwrap();
    assert_eq!(toml["server"], format!("http://{}", m.src_host));
    let hosts = toml["host"].as_object().unwrap();
    assert_eq!(hosts.len(), 1, "{toml}");
    let (url, host) = hosts.iter().next().unwrap();
    assert_eq!(url, &format!("http://{}/v2/mirror", m.dst.host()));
    assert_eq!(host["override_path"], true);
    assert_eq!(host["capabilities"], serde_json::json!(["pull", "resolve"]));
    // containerd asks `<url>/<repository>/manifests/<tag>` when the path is overridden
    for (repo, digest) in m.digests.iter().filter(|(r, _)| r.starts_with("team/")) {
        assert_eq!(
            digest_at(&format!("{url}/{repo}/manifests/1.0.0")).as_ref(),
            Some(digest),
            "{repo}"
        );
    }
}

#[test]
fn k3s_rewrites_and_openshift_mirror_sets_lead_to_the_mirrored_manifests() {
    let m = mirrored();
    let out = mirror_config(&m, "k3s", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let yaml: Value = serde_saphyr::from_str(&out.stdout).unwrap();
    let mirror = &yaml["mirrors"][m.src_host.as_str()];
    let endpoints = mirror["endpoint"].as_array().unwrap();
    assert_eq!(endpoints, &[Value::from(format!("http://{}", m.dst.host()))]);
    let rewrites = mirror["rewrite"].as_object().unwrap();
    for (repo, digest) in &m.digests {
        // k3s applies the first rewrite that matches
        let rewritten = rewrites
            .iter()
            .find_map(|(from, to)| {
                let re = regex::Regex::new(from).unwrap();
                re.is_match(repo).then(|| {
                    re.replace(repo, to.as_str().unwrap().replace("$1", "${1}"))
                        .into_owned()
                })
            })
            .unwrap_or_else(|| panic!("no rewrite for {repo}: {rewrites:?}"));
        let url = format!("http://{}/v2/{rewritten}/manifests/1.0.0", m.dst.host());
        assert_eq!(digest_at(&url).as_ref(), Some(digest), "{repo} -> {rewritten}");
    }

    for (format, kind, list) in [
        ("idms", "ImageDigestMirrorSet", "imageDigestMirrors"),
        ("itms", "ImageTagMirrorSet", "imageTagMirrors"),
    ] {
        let out = mirror_config(&m, format, &[]);
        assert_eq!(out.code, 0, "{out:?}");
        let doc: Value = serde_saphyr::from_str(&out.stdout).unwrap();
        assert_eq!(doc["apiVersion"], "config.openshift.io/v1");
        assert_eq!(doc["kind"], kind);
        assert_eq!(doc["metadata"]["name"], "replicant");
        let sets = doc["spec"][list].as_array().unwrap();
        for (repo, digest) in &m.digests {
            let name = format!("{}/{repo}", m.src_host);
            // a source names a repository or a namespace above it
            let set = sets
                .iter()
                .find(|s| {
                    name == s["source"].as_str().unwrap()
                        || name.starts_with(&format!("{}/", s["source"].as_str().unwrap()))
                })
                .unwrap_or_else(|| panic!("{format}: no source for {name}"));
            let source = set["source"].as_str().unwrap();
            let mirror = set["mirrors"][0].as_str().unwrap();
            let moved = format!("{mirror}{}", &name[source.len()..]);
            let (host, path) = moved.split_once('/').unwrap();
            let by_digest = format!("http://{host}/v2/{path}/manifests/{digest}");
            assert_eq!(
                digest_at(&by_digest).as_ref(),
                Some(digest),
                "{format}: {name} -> {moved}"
            );
        }
    }
}
