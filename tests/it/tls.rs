//! TLS: a registry with a certificate from a private CA is refused until the
//! `registries:` section names the CA (or marks it insecure); bad TLS files
//! are configuration errors.

use crate::support::*;
use testkit::tls::TestCa;

fn setup() -> (Registry, TestClient, Registry, TestClient, TestCa) {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    sc.push_image(
        "team/app",
        &ImageGen::default().multi_arch(Format::Oci, 1000, &[]),
        "1.0.0",
    );
    let ca = TestCa::new();
    let dst = Registry::start_tls(Auth::None, &ca);
    let dc = TestClient::https(&dst.host(), &ca.ca_pem);
    (src, sc, dst, dc, ca)
}

fn config(ws: &Workspace, src: &Registry, dst: &Registry, registries: &str) -> std::path::PathBuf {
    ws.write_config(&format!(
        "{registries}images:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n",
        src.host(),
        dst.host()
    ))
}

#[test]
fn a_private_ca_is_refused_until_configured() {
    let (src, sc, dst, dc, ca) = setup();
    let ws = Workspace::new();
    std::fs::write(ws.path("ca.pem"), &ca.ca_pem).unwrap();
    let h = dst.host();

    // TLS to a loopback registry, verified against the system roots only:
    // refused at once (a certificate problem is not retried), and the
    // message names the settings that fix it
    let started = std::time::Instant::now();
    let run = ws.run(
        &config(&ws, &src, &dst, &format!("registries:\n  {h}:\n    tls: true\n")),
        &[],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() < std::time::Duration::from_millis(1500), "{run:?}");
    assert!(
        run.stdout.contains(&format!("{h}: GET /v2/")) && run.stdout.to_lowercase().contains("certificate"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("with ca-file") && run.stdout.contains("insecure: true"),
        "{run:?}"
    );
    assert!(dc.tags("mirror/app").is_empty());

    // with the CA named (relative to the config file), it works
    let run = ws.run(
        &config(&ws, &src, &dst, &format!("registries:\n  {h}:\n    ca-file: ca.pem\n")),
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0"]);

    // insecure: no verification, with a warning
    let run = ws.run(
        &config(&ws, &src, &dst, &format!("registries:\n  {h}:\n    insecure: true\n")),
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("not verified"), "{run:?}");
}

#[test]
fn tls_files_that_are_not_pem_are_configuration_errors() {
    let (src, _sc, dst, _dc, _ca) = setup();
    let ws = Workspace::new();
    std::fs::write(ws.path("garbage.pem"), "not a certificate").unwrap();
    let h = dst.host();
    let run = ws.run(
        &config(
            &ws,
            &src,
            &dst,
            &format!("registries:\n  {h}:\n    ca-file: garbage.pem\n"),
        ),
        &[],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("ca-file") && run.stderr.contains("garbage.pem"),
        "{run:?}"
    );
    let run = ws.run(
        &config(
            &ws,
            &src,
            &dst,
            &format!("registries:\n  {h}:\n    ca-file: nowhere.pem\n"),
        ),
        &[],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("nowhere.pem is not a readable file"), "{run:?}");

    // found with every other problem of the file, where it is written
    std::fs::write(ws.path("key.pem"), "no key either").unwrap();
    let cfg = ws.write_config(&format!(
        "registries:\n  {h}:\n    ca-file: garbage.pem\n    cert-file: garbage.pem\n    key-file: key.pem\nimages:\n  app:\n    source: {}/team/app\n    destination: {h}/mirror/app\n    mode: sometimes\n",
        src.host()
    ));
    let report = ws.path("report.json");
    let run = ws.run(&cfg, &["--report", report.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    let file = cfg.display();
    for line in [
        format!("{file}:3:14: key \"registries.{h}.ca-file\": "),
        format!("{file}:4:16: key \"registries.{h}.cert-file\": "),
        format!("{file}:5:15: key \"registries.{h}.key-file\": "),
        format!("{file}:10:11: image \"app\": key \"mode\": "),
    ] {
        assert!(run.stderr.contains(&line), "{line}: {run:?}");
    }
    assert!(run.stderr.contains("garbage.pem: holds no PEM certificate"), "{run:?}");
    assert!(run.stderr.contains("key.pem: holds no PEM private key"), "{run:?}");
    let json = valid_report(&report);
    let problems = json["config_problems"].as_array().unwrap();
    assert_eq!(problems.len(), 4, "{json:#}");
    assert!(
        problems
            .iter()
            .all(|p| p["line"].as_u64().unwrap() > 0 && !p["key"].is_null()),
        "{json:#}"
    );
}

#[test]
fn client_certificates_for_mutual_tls() {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    sc.push_image(
        "team/app",
        &ImageGen::default().image(Format::Oci, &[500], &[], ("linux", "amd64")),
        "1.0.0",
    );
    let ca = TestCa::new();
    let dst = Registry::start_mtls(Auth::None, &ca);
    let dc = TestClient::mtls(&dst.host(), &ca);
    let ws = Workspace::new();
    std::fs::write(ws.path("ca.pem"), &ca.ca_pem).unwrap();
    std::fs::write(ws.path("client.pem"), &ca.client_cert_pem).unwrap();
    std::fs::write(ws.path("client-key.pem"), &ca.client_key_pem).unwrap();
    let h = dst.host();

    // the CA alone is not enough: the registry wants a client certificate
    let run = ws.run(
        &config(&ws, &src, &dst, &format!("registries:\n  {h}:\n    ca-file: ca.pem\n")),
        &["--retries", "0"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(dc.tags("mirror/app").is_empty());

    let with_cert =
        format!("registries:\n  {h}:\n    ca-file: ca.pem\n    cert-file: client.pem\n    key-file: client-key.pem\n");
    let run = ws.run(&config(&ws, &src, &dst, &with_cert), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0"]);
}

/// Distribution speaks HTTP/2 over TLS and may end a body with an empty
/// DATA frame after the content; over a link with latency that frame
/// arrives on its own. Layers read that way copy exactly (they were once
/// refused as "blob is longer than declared").
#[test]
fn layers_of_many_http2_frames_copy_from_a_far_tls_source() {
    let ca = TestCa::new();
    let src = Registry::start_tls(Auth::None, &ca);
    let sc = TestClient::https(&src.host(), &ca.ca_pem);
    let mut generator = ImageGen::default();
    let shared = vec![generator.layer(Format::Oci, 700_000)];
    sc.push_image(
        "team/app",
        &generator.multi_arch(Format::Oci, 300_000, &shared),
        "1.0.0",
    );
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let ws = Workspace::new();
    std::fs::write(ws.path("ca.pem"), &ca.ca_pem).unwrap();
    let far = testkit::latency::LatencyProxy::start(&src.host(), std::time::Duration::from_millis(20));
    let registries = format!("registries:\n  {}:\n    tls: true\n    ca-file: ca.pem\n", far.host());
    let cfg = ws.write_config(&format!(
        "{registries}images:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n",
        far.host(),
        dst.host()
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0"]);
}
