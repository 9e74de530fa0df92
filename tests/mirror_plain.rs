//! Mirroring between plain-HTTP registries: modes, filters, copy semantics.

mod support;

use support::*;

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
