//! A working example of replicant's main job, with nothing but the Debian
//! package `docker-registry` installed: starts a source and a destination
//! registry on free 127.0.0.1 ports, fills the source with multi-platform
//! test images, writes a config, runs replicant, and shows the result.
//!
//! Run it with `./examples/demo.sh` (builds everything first).

use std::process::Command;

use testkit::{Auth, Format, ImageGen, Registry, TestClient};

fn main() {
    // registries stop when dropped, so exit only after `demo` returns
    let code = demo();
    std::process::exit(code);
}

fn demo() -> i32 {
    let replicant = std::env::args()
        .nth(1)
        .expect("usage: demo <path to the replicant binary>");
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut generator = ImageGen::seeded(7);
    let base = vec![generator.layer(Format::Oci, 64 * 1024)];
    for tag in ["1.0.0", "1.1.0", "1.2.0", "1.2.0-alpine", "2.0.0-rc1", "latest"] {
        sc.push_image("library/app", &generator.multi_arch(Format::Oci, 32 * 1024, &base), tag);
    }
    for tag in ["6.0.1", "6.2.0", "7.0.0"] {
        let img = generator.image(Format::Docker, &[16 * 1024], &[], ("linux", "amd64"));
        sc.push_image("tools/redis", &img, tag);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("replicant.yaml");
    let yaml = format!(
        "# the same format as the Go replicant's config\nmode: semver\nimages:\n  app:\n    source: {s}/library/app\n    destination: {d}/mirror/app\n  app-alpine:\n    source: {s}/library/app\n    destination: {d}/mirror/app\n    mode: highest\n    compatibility: alpine\n  redis-6:\n    source: {s}/tools/redis\n    destination: {d}/mirror/redis\n    mode: highest\n    pinned-major: 6\n",
        s = src.host(),
        d = dst.host()
    );
    std::fs::write(&config, &yaml).expect("write config");
    println!("== config ({})\n{yaml}", config.display());
    println!("== replicant -c {}", config.display());
    let status = Command::new(&replicant)
        .arg("-c")
        .arg(&config)
        .env("DOCKER_CONFIG", dir.path())
        .status()
        .expect("run replicant");
    println!("== exit code {}", status.code().unwrap_or(-1));
    println!("== destination, read back through the registry API");
    for repo in ["mirror/app", "mirror/redis"] {
        for tag in dc.tags(repo) {
            let (d, s) = (
                dc.digest(repo, &tag),
                sc.digest(
                    if repo == "mirror/app" {
                        "library/app"
                    } else {
                        "tools/redis"
                    },
                    &tag,
                ),
            );
            let same = if d == s {
                "same digest as the source"
            } else {
                "DIFFERENT digest"
            };
            println!("{repo}:{tag}  {}  {same}", d.unwrap_or_default());
        }
    }
    status.code().unwrap_or(1)
}
