//! replicant against the ecosystem's own tools and other registry
//! implementations: Distribution 2.8 (Debian), Distribution v3 and
//! go-containerregistry's registry (with the OCI 1.1 referrers API), each
//! as source and as destination; what replicant wrote is checked by the
//! real clients (crane, oras, regctl, cosign), not by our own reader. The Go tools come
//! from `scripts/test` (the Go module proxy); run these alone with
//! `cargo test --test it interop::`.

use crate::support::*;
use testkit::Implementation;
use testkit::tools::{interop_tool, run_tool};

/// The real clients these tests ask, when they are installed.
struct Clients {
    crane: std::path::PathBuf,
    oras: std::path::PathBuf,
    regctl: std::path::PathBuf,
}

impl Clients {
    fn get(test: &str) -> Option<Clients> {
        let crane = interop_tool("CRANE", "crane", test)?;
        let oras = interop_tool("ORAS", "oras", test)?;
        let regctl = interop_tool("REGCTL", "regctl", test)?;
        // the registries too: a test that cannot start them did not run
        interop_tool("DISTRIBUTION_REGISTRY", "distribution-registry", test)?;
        interop_tool("GGCR_REGISTRY", "ggcr-registry", test)?;
        Some(Clients { crane, oras, regctl })
    }

    /// `crane` over plain HTTP; asserts it succeeded and returns its output.
    fn crane(&self, args: &[&str]) -> String {
        let mut all = vec!["--insecure"];
        all.extend(args);
        let (code, out) = run_tool(&self.crane, &all);
        assert_eq!(code, 0, "crane {args:?}: {out}");
        out.trim().to_string()
    }

    /// `crane validate --remote` accepts the image (every blob fetched and
    /// checked against its digest and size).
    fn valid(&self, reference: &str) {
        let out = self.crane(&["validate", "--remote", reference]);
        assert!(out.contains("PASS"), "crane validate {reference}: {out}");
    }

    /// The digests of the referrers `regctl artifact list` finds for
    /// `reference` on `host` (plain HTTP; the referrers API, or the tag
    /// schema where the registry has no API).
    fn regctl_referrers(&self, host: &str, reference: &str) -> Vec<String> {
        let tls = format!("reg={host},tls=disabled");
        let run = std::process::Command::new(&self.regctl)
            .args([
                "--host",
                &tls,
                "artifact",
                "list",
                "--format",
                "{{json .Manifest}}",
                reference,
            ])
            .output()
            .unwrap_or_else(|e| panic!("run regctl: {e}"));
        let out = String::from_utf8_lossy(&run.stdout);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "regctl artifact list {reference}: {out}{err}");
        let doc: serde_json::Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("regctl artifact list {reference}: {e}: {out}"));
        let mut digests: Vec<String> = doc["manifests"]
            .as_array()
            .unwrap_or_else(|| panic!("regctl artifact list {reference}: {doc}"))
            .iter()
            .map(|d| d["digest"].as_str().unwrap_or_default().to_string())
            .collect();
        digests.sort();
        digests
    }

    /// `oras` in `dir` (it takes only relative file paths).
    fn oras(&self, dir: &std::path::Path, args: &[&str]) -> String {
        let out = std::process::Command::new(&self.oras)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("run oras: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "oras {args:?}: {text}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Every implementation once as source and once as destination.
const PAIRS: [(Implementation, Implementation); 3] = [
    (Implementation::Distribution2, Implementation::Distribution3),
    (Implementation::Distribution3, Implementation::Ggcr),
    (Implementation::Ggcr, Implementation::Distribution2),
];

/// A source and a destination of these implementations, what to call the
/// pair in messages, and a client of the source.
fn start(from: Implementation, to: Implementation) -> (String, Registry, Registry, TestClient) {
    let what = format!("{} -> {}", from.name(), to.name());
    let src = Registry::start_implementation(from);
    let dst = Registry::start_implementation(to);
    let sc = TestClient::new(&src.host(), None);
    (what, src, dst, sc)
}

fn config(ws: &Workspace, src: &Registry, dst: &Registry, images: &[(&str, &str)]) -> std::path::PathBuf {
    let mut yaml = String::from("images:\n");
    for (name, extra) in images {
        yaml.push_str(&format!(
            "  {name}:\n    source: {}/src/app\n    destination: {}/dst/{name}\n",
            src.host(),
            dst.host()
        ));
        for line in extra.lines() {
            yaml.push_str(&format!("    {line}\n"));
        }
    }
    ws.write_config(&yaml)
}

#[test]
fn core_scenarios_on_every_registry_implementation_checked_by_crane() {
    let Some(clients) = Clients::get("core_scenarios_on_every_registry_implementation_checked_by_crane") else {
        return;
    };
    for (from, to) in PAIRS {
        let (what, src, dst, sc) = start(from, to);
        let mut g = ImageGen::default();
        for tag in ["1.0.0", "1.1.0"] {
            sc.push_image("src/app", &g.real_multi_arch(Format::Oci, 2000), tag);
        }
        let ws = Workspace::new();
        let app = "mode: semver\nreplace-tag: true\nprune: true";
        let cfg = config(
            &ws,
            &src,
            &dst,
            &[("app", app), ("arm", "mode: semver\nplatforms: [linux/arm64]")],
        );

        // a multi-platform copy, exact where asked
        let run = ws.run(&cfg, &[]);
        let cfg = {
            let kept = ws.path("core.yaml");
            std::fs::copy(&cfg, &kept).unwrap();
            kept
        };
        assert_eq!(run.code, 0, "{what}: {run:?}");
        for tag in ["1.0.0", "1.1.0"] {
            let (s, d) = (
                format!("{}/src/app:{tag}", src.host()),
                format!("{}/dst/app:{tag}", dst.host()),
            );
            clients.valid(&d);
            assert_eq!(
                clients.crane(&["digest", &s]),
                clients.crane(&["digest", &d]),
                "{what} {tag}"
            );
            // platforms: an index of arm64 only, whole
            let arm = format!("{}/dst/arm:{tag}", dst.host());
            clients.valid(&arm);
            let index: serde_json::Value = serde_json::from_str(&clients.crane(&["manifest", &arm])).unwrap();
            let platforms: Vec<&str> = index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["platform"]["architecture"].as_str())
                .collect();
            assert_eq!(platforms, ["arm64"], "{what}: {index}");
        }

        // out into an OCI layout, and from it into the source's kind of
        // registry: every digest kept
        let layout = ws.path("layout");
        for (name, from_, to_) in [
            (
                "out",
                format!("{}/dst/app", dst.host()),
                format!("oci:{}", layout.display()),
            ),
            (
                "back",
                format!("oci:{}", layout.display()),
                format!("{}/back/app", src.host()),
            ),
        ] {
            let yaml = format!("images:\n  {name}:\n    source: {from_}\n    destination: {to_}\n    mode: semver\n");
            let file = ws.path(&format!("{name}.yaml"));
            std::fs::write(&file, yaml).unwrap();
            let run = ws.run(&file, &[]);
            assert_eq!(run.code, 0, "{what}: {name}: {run:?}");
        }
        for tag in ["1.0.0", "1.1.0"] {
            let back = format!("{}/back/app:{tag}", src.host());
            clients.valid(&back);
            let s = format!("{}/src/app:{tag}", src.host());
            assert_eq!(
                clients.crane(&["digest", &s]),
                clients.crane(&["digest", &back]),
                "{what} {tag}"
            );
        }

        // the no-op pass copies nothing
        let run = ws.run(&cfg, &[]);
        assert_eq!(run.code, 0, "{what}: {run:?}");
        assert!(!run.stdout.contains("copied ("), "{what}: {run:?}");

        // replace-tag follows a moved tag; prune follows a deleted one
        sc.push_image("src/app", &g.real_multi_arch(Format::Docker, 2000), "1.1.0");
        match from {
            // it deletes only the reference it is given: the tag stays when its digest goes
            Implementation::Ggcr => sc.delete_reference("src/app", "1.0.0"),
            _ => sc.delete_tag("src/app", "1.0.0"),
        }
        let run = ws.run(&cfg, &[]);
        assert_eq!(run.code, 0, "{what}: {run:?}");
        assert!(run.stdout.contains("replaced (1): 1.1.0"), "{what}: {run:?}");
        assert!(run.stdout.contains("deleted (1): 1.0.0"), "{what}: {run:?}");
        let d = format!("{}/dst/app:1.1.0", dst.host());
        clients.valid(&d);
        assert_eq!(
            clients.crane(&["digest", &format!("{}/src/app:1.1.0", src.host())]),
            clients.crane(&["digest", &d]),
            "{what}"
        );
        assert_eq!(
            clients.crane(&["ls", &format!("{}/dst/app", dst.host())]),
            "1.1.0",
            "{what}"
        );
    }
}

#[test]
fn oras_attached_referrers_are_discovered_and_pulled_at_the_destination() {
    let Some(clients) = Clients::get("oras_attached_referrers_are_discovered_and_pulled_at_the_destination") else {
        return;
    };
    for (from, to) in PAIRS {
        let (what, src, dst, sc) = start(from, to);
        let image = ImageGen::default().real_multi_arch(Format::Oci, 500);
        sc.push_image("src/app", &image, "1.0.0");
        let ws = Workspace::new();
        let sbom = ws.path("sbom.json");
        let payload = format!(r#"{{"spdxVersion":"SPDX-2.3","name":"{what}"}}"#);
        std::fs::write(&sbom, &payload).unwrap();
        let subject = format!("{}/src/app:1.0.0", src.host());
        // oras picks the referrers API or the tag schema as the registry allows
        clients.oras(
            ws.dir.path(),
            &[
                "attach",
                "--plain-http",
                "--artifact-type",
                "application/spdx+json",
                &subject,
                "sbom.json:application/spdx+json",
            ],
        );
        // artifact-types: decided on the referrer's own type, whatever the
        // registry's list says of it
        let cfg = config(
            &ws,
            &src,
            &dst,
            &[(
                "app",
                "mode: all\nreferrers: true\nartifact-types: [application/spdx+json]",
            )],
        );
        let run = ws.run(&cfg, &[]);
        assert_eq!(run.code, 0, "{what}: {run:?}");
        assert!(run.stdout.contains("referrers copied (1)"), "{what}: {run:?}");

        let target = format!("{}/dst/app:1.0.0", dst.host());
        let listed = |reference: &str| -> Vec<(String, String)> {
            let out = clients.oras(
                ws.dir.path(),
                &["discover", "--plain-http", "--format", "json", reference],
            );
            let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"));
            let mut found: Vec<(String, String)> = doc["referrers"]
                .as_array()
                .or_else(|| doc["manifests"].as_array())
                .unwrap_or_else(|| panic!("{what}: {doc}"))
                .iter()
                .map(|r| {
                    (
                        r["digest"].as_str().unwrap().to_string(),
                        r["artifactType"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            found.sort();
            found
        };
        let at_source = listed(&subject);
        assert_eq!(at_source.len(), 1, "{what}: {at_source:?}");
        let at_destination = listed(&target);
        let digests = |l: &[(String, String)]| l.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>();
        assert_eq!(
            digests(&at_destination),
            digests(&at_source),
            "{what}: the same referrers, digests kept"
        );
        // regclient's reader finds them too, by the API or the tag schema
        assert_eq!(
            clients.regctl_referrers(&dst.host(), &target),
            digests(&at_source),
            "{what}: regctl artifact list at the destination"
        );
        // go-containerregistry's registry lists a referrer's config media
        // type, not its `artifactType` (docs/registries.md); the others list
        // what the manifest says
        for (found, by) in [(&at_source, from), (&at_destination, to)] {
            let expected = match by {
                Implementation::Ggcr => "application/vnd.oci.empty.v1+json",
                _ => "application/spdx+json",
            };
            assert_eq!(found[0].1, expected, "{what}: as {} lists it", by.name());
        }
        let manifest = clients.crane(&["manifest", &format!("{}/dst/app@{}", dst.host(), at_source[0].0)]);
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(manifest["artifactType"], "application/spdx+json", "{what}");
        let out = ws.path("pulled");
        clients.oras(
            ws.dir.path(),
            &[
                "pull",
                "--plain-http",
                "-o",
                "pulled",
                &format!("{}/dst/app@{}", dst.host(), at_source[0].0),
            ],
        );
        assert_eq!(
            std::fs::read_to_string(out.join("sbom.json")).unwrap(),
            payload,
            "{what}"
        );
    }
}

/// `cosign` offline: a key pair, no transparency log, plain HTTP.
struct Cosign {
    program: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Cosign {
    fn get(test: &str, ws: &Workspace) -> Option<Cosign> {
        let program = interop_tool("COSIGN", "cosign", test)?;
        let cosign = Cosign {
            program,
            dir: ws.dir.path().to_path_buf(),
        };
        let (code, out) = cosign.run(&["generate-key-pair"]);
        assert_eq!(code, 0, "cosign generate-key-pair: {out}");
        Some(cosign)
    }

    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = std::process::Command::new(&self.program)
            .args(args)
            .current_dir(&self.dir)
            .env("COSIGN_PASSWORD", "")
            .env("COSIGN_EXPERIMENTAL", "1")
            .env("HOME", &self.dir)
            .output()
            .unwrap_or_else(|e| panic!("run cosign: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out) = self.run(args);
        assert_eq!(code, 0, "cosign {args:?}: {out}");
        out
    }

    /// Signs `reference` (by digest); `api`: as an OCI 1.1 referrer.
    fn sign(&self, reference: &str, api: bool) {
        let mut args = vec![
            "sign",
            "--key",
            "cosign.key",
            "--tlog-upload=false",
            "--allow-http-registry",
            "-y",
        ];
        if api {
            args.push("--registry-referrers-mode=oci-1-1");
        }
        args.push(reference);
        self.ok(&args);
    }

    fn attest(&self, reference: &str) {
        std::fs::write(self.dir.join("predicate.json"), r#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
        self.ok(&[
            "attest",
            "--key",
            "cosign.key",
            "--type",
            "spdxjson",
            "--predicate",
            "predicate.json",
            "--tlog-upload=false",
            "--allow-http-registry",
            "-y",
            reference,
        ]);
    }

    /// `cosign verify` (`api`: the signature is an OCI 1.1 referrer).
    fn verify(&self, reference: &str, api: bool) -> (i32, String) {
        let mut args = vec![
            "verify",
            "--key",
            "cosign.pub",
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
        ];
        if api {
            args.push("--experimental-oci11");
        }
        args.push(reference);
        self.run(&args)
    }
}

#[test]
fn cosign_verifies_signatures_and_attestations_at_the_destination() {
    let test = "cosign_verifies_signatures_and_attestations_at_the_destination";
    let Some(clients) = Clients::get(test) else {
        return;
    };
    // and the referrers API at both ends
    let pairs = PAIRS.into_iter().chain([(Implementation::Ggcr, Implementation::Ggcr)]);
    for (from, to) in pairs {
        let ws = Workspace::new();
        let Some(cosign) = Cosign::get(test, &ws) else {
            return;
        };
        let (what, src, dst, sc) = start(from, to);
        let image = ImageGen::default().real_multi_arch(Format::Oci, 500);
        sc.push_image("src/app", &image, "1.0.0");
        let arm64 = image.children[1].digest.clone();
        let at = |registry: &Registry, repo: &str, reference: &str| {
            let sep = if reference.starts_with("sha256:") { "@" } else { ":" };
            format!("{}/{repo}{sep}{reference}", registry.host())
        };
        // a signature and an attestation of the index (cosign's tags), and
        // a signature of the arm64 image; where the source has the
        // referrers API, one more signature stored through it
        cosign.sign(&at(&src, "src/app", &image.digest), false);
        cosign.attest(&at(&src, "src/app", &image.digest));
        cosign.sign(&at(&src, "src/app", &arm64), false);
        let api = from == Implementation::Ggcr;
        if api {
            cosign.sign(&at(&src, "src/app", &image.digest), true);
        }
        let cfg = config(
            &ws,
            &src,
            &dst,
            &[
                ("app", "mode: semver\nreferrers: true"),
                ("arm", "mode: semver\nreferrers: true\nplatforms: [linux/arm64]"),
            ],
        );
        let run = ws.run(&cfg, &[]);
        assert_eq!(run.code, 0, "{what}: {run:?}");
        assert!(
            run.stderr.contains("image \"arm\"") && run.stderr.contains("signatures of the source's index"),
            "{what}: the platforms warning: {run:?}"
        );
        let target = at(&dst, "dst/app", "1.0.0");
        let (code, out) = cosign.verify(&target, false);
        assert_eq!(code, 0, "{what}: cosign verify {target}: {out}");
        assert!(out.contains(&image.digest), "{what}: {out}");
        let (code, out) = cosign.run(&[
            "verify-attestation",
            "--key",
            "cosign.pub",
            "--type",
            "spdxjson",
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            &target,
        ]);
        assert_eq!(code, 0, "{what}: cosign verify-attestation {target}: {out}");
        if api {
            let (code, out) = cosign.verify(&target, true);
            assert_eq!(code, 0, "{what}: cosign verify --experimental-oci11 {target}: {out}");
        }
        // platforms: the reduced index is not what was signed; its arm64
        // image is, and its signature verifies
        let reduced = at(&dst, "dst/arm", "1.0.0");
        clients.valid(&reduced);
        let (code, out) = cosign.verify(&reduced, false);
        assert_ne!(code, 0, "{what}: the reduced index verified: {out}");
        let (code, out) = cosign.verify(&at(&dst, "dst/arm", &arm64), false);
        assert_eq!(code, 0, "{what}: the arm64 image's signature: {out}");
    }
}
