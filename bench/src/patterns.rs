//! Fleet scale: one repository pattern over 1,000 and 10,000 repositories
//! of 2 tags each (catalog pages of 1,000, Distribution's default): the
//! planning pass (`--dry-run` into an empty destination), the cold copy,
//! and the no-op pass after it; wall time, peak RSS, and the requests
//! each registry served (its access log).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use testkit::{Auth, ImageGen, Registry, TestClient};

use super::{Counts, Sample, measure, requests_by_kind};

pub struct Patterns<'a> {
    pub replicant: &'a Path,
    pub work: &'a Path,
    pub quick: bool,
}

pub fn section(p: &Patterns, g: &mut ImageGen) -> String {
    testkit::registry::set_catalog_page(1000);
    let sizes: &[usize] = if p.quick { &[100, 1000] } else { &[1000, 10_000] };
    let mut md = String::new();
    let _ = writeln!(md, "## Fleet scale: one repository pattern\n");
    let _ = writeln!(
        md,
        "Made by `bench/run --only patterns`: a source with N repositories of 2 tags each (single-platform images \
         sharing one base layer; catalog pages of 1,000, Distribution's default), one config entry \
         `source: SRC/bench/fleet/*`, `destination: DST/mirror/*`, mode `all`, replicant's defaults, on loopback. \
         Planning is `--dry-run` into an empty destination (the catalog, then each repository's tag list on both \
         sides); then the cold copy, then the no-op pass. Requests are what each registry's access log shows \
         for that pass.\n"
    );
    let _ = writeln!(
        md,
        "| repositories | pass | wall (s) | per 1,000 repositories (s) | peak RSS (MiB) | source requests | destination requests |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---|---|");
    for &n in sizes {
        let src = Registry::start(Auth::None);
        let sc = TestClient::new(&src.host(), None);
        eprintln!("patterns: pushing {n} repositories of 2 tags...");
        super::wan::fleet(g, &sc, n, 2);
        let dst = Registry::start(Auth::None);
        let cfg = p.work.join("patterns.yaml");
        std::fs::write(
            &cfg,
            format!(
                "mode: all\nimages:\n  fleet:\n    source: {}/bench/fleet/*\n    destination: {}/mirror/*\n",
                src.host(),
                dst.host()
            ),
        )
        .expect("write the config");
        for (pass, args) in [
            ("planning (--dry-run)", &["--dry-run"][..]),
            ("cold copy", &[]),
            ("no-op", &[]),
        ] {
            let (from_src, from_dst) = (src.log().lines().count(), dst.log().lines().count());
            let mut cmd = Command::new(p.replicant);
            cmd.arg("-c")
                .arg(&cfg)
                .args(args)
                .env("DOCKER_CONFIG", p.work)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let (sample, ok): (Sample, bool) = measure(&mut cmd);
            assert!(ok, "{pass} of {n} repositories failed");
            let shown = |c: Counts| c.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ");
            let (s, d) = (requests_by_kind(&src, from_src), requests_by_kind(&dst, from_dst));
            let wall = sample.wall.as_secs_f64();
            eprintln!("  {n} {pass}: {wall:.2} s, {} MiB", sample.peak_rss_kib / 1024);
            let _ = writeln!(
                md,
                "| {n} | {pass} | {wall:.2} | {:.2} | {} | {} | {} |",
                wall * 1000.0 / n as f64,
                sample.peak_rss_kib / 1024,
                shown(s),
                shown(d)
            );
        }
    }
    md
}
