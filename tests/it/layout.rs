//! OCI image layouts as source and destination: round trips with digests
//! preserved, every mode, crash safety under SIGKILL, locking, bad input.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use testkit::layout::{layout_tags, validate_layout, write_layout};

fn yaml(source: &str, destination: &str, extra: &str) -> String {
    let mut y = format!("images:\n  app:\n    source: {source}\n    destination: {destination}\n");
    for line in extra.lines() {
        y.push_str(&format!("    {line}\n"));
    }
    y
}

#[test]
fn registry_to_layout_to_registry_preserves_every_digest() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let (sc, dc) = (TestClient::new(&src.host(), None), TestClient::new(&dst.host(), None));
    let mut generator = ImageGen::default();
    let shared = vec![generator.layer(Format::Oci, 3000)];
    sc.push_image("team/app", &generator.multi_arch(Format::Oci, 2000, &shared), "1.0.0");
    sc.push_image(
        "team/app",
        &generator.multi_arch(Format::Docker, 1500, &shared),
        "1.1.0",
    );
    sc.push_image(
        "team/app",
        &generator.image(Format::Docker, &[700], &shared, ("linux", "amd64")),
        "latest",
    );
    let ws = Workspace::new();

    // registry -> layout (relative path: resolved against the config's folder)
    let to_disk = ws.write_config(&yaml(
        &format!("{}/team/app", src.host()),
        "oci:carried/app",
        "mode: all",
    ));
    let run = ws.run(&to_disk, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let layout = ws.path("carried/app");
    let tags = validate_layout(&layout).unwrap();
    for (tag, digest) in &tags {
        assert_eq!(Some(digest.clone()), sc.digest("team/app", tag), "{tag}");
    }
    assert_eq!(tags.len(), 3);

    // layout -> registry
    let from_disk = ws.write_config(&yaml(
        &format!("oci:{}", layout.display()),
        &format!("{}/mirror/app", dst.host()),
        "mode: all",
    ));
    let run = ws.run(&from_disk, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0", "1.1.0", "latest"]);

    // a second pass into the layout changes nothing
    let run = ws.run(&to_disk, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("already present (3)") && run.stdout.contains("0 transferred"),
        "{run:?}"
    );
}

#[test]
fn every_mode_against_a_layout_source() {
    let ws = Workspace::new();
    let mut generator = ImageGen::default();
    let tags = [
        "1.0.0",
        "1.1.0",
        "1.2",
        "1.2.0",
        "2.0.0",
        "2.1.0-alpine",
        "3.0.0-rc1",
        "latest",
    ];
    let images: Vec<testkit::Image> = tags
        .iter()
        .map(|_| generator.image(Format::Oci, &[100], &[], ("linux", "amd64")))
        .collect();
    let refs: Vec<(&str, &testkit::Image)> = tags.iter().copied().zip(images.iter()).collect();
    let source = ws.path("source");
    write_layout(&source, &refs);
    let src = format!("oci:{}", source.display());
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let digest_of = |tag: &str| refs.iter().find(|(t, _)| *t == tag).map(|(_, i)| i.digest.clone());

    for (repo, extra, want) in [
        ("highest", "mode: highest", vec!["2.0.0"]),
        ("alpine", "mode: highest\ncompatibility: alpine", vec!["2.1.0-alpine"]),
        (
            "pinned",
            "mode: semver\npinned-major: 1",
            vec!["1.0.0", "1.1.0", "1.2", "1.2.0"],
        ),
        (
            "semver",
            "mode: semver",
            vec!["1.0.0", "1.1.0", "1.2", "1.2.0", "2.0.0"],
        ),
        ("all", "mode: all", tags.to_vec()),
        ("higher", "mode: higher", vec!["2.0.0"]),
    ] {
        let cfg = ws.write_config(&yaml(&src, &format!("{}/m/{repo}", dst.host()), extra));
        let run = ws.run(&cfg, &[]);
        assert_eq!(run.code, 0, "{repo}: {run:?}");
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(dc.tags(&format!("m/{repo}")), want, "{repo}");
        for tag in &want {
            assert_eq!(dc.digest(&format!("m/{repo}"), tag), digest_of(tag), "{repo}:{tag}");
        }
    }
}

#[test]
fn layout_destinations_follow_higher_replace_tag_and_dry_run() {
    let ws = Workspace::new();
    let mut generator = ImageGen::default();
    let mut make = |n| -> Vec<testkit::Image> {
        (0..n)
            .map(|_| generator.image(Format::Docker, &[64], &[], ("linux", "amd64")))
            .collect()
    };
    let v1 = make(3);
    let source = ws.path("source");
    write_layout(&source, &[("1.0.0", &v1[0]), ("latest", &v1[1]), ("1.1.0", &v1[2])]);
    let src = format!("oci:{}", source.display());
    let dest = ws.path("dest");
    let dst = format!("oci:{}", dest.display());

    // a dry run into a layout that does not exist creates nothing
    let cfg = ws.write_config(&yaml(&src, &dst, "mode: all\nreplace-tag: true"));
    let run = ws.run(&cfg, &["--dry-run"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("would copy (3): 1.0.0, 1.1.0, latest"), "{run:?}");
    assert!(!dest.exists(), "the dry run created the layout");

    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(validate_layout(&dest).unwrap().len(), 3);

    // upstream moves `latest` and adds 1.2.0
    let v2 = make(2);
    write_layout(
        &source,
        &[
            ("1.0.0", &v1[0]),
            ("latest", &v2[0]),
            ("1.1.0", &v1[2]),
            ("1.2.0", &v2[1]),
        ],
    );
    let higher = ws.write_config(&yaml(&src, &dst, "mode: higher"));
    let run = ws.run(&higher, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("copied (1): 1.2.0"), "{run:?}");
    let cfg = ws.write_config(&yaml(&src, &dst, "mode: all\nreplace-tag: true"));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("replaced (1): latest"), "{run:?}");
    let tags = validate_layout(&dest).unwrap();
    assert_eq!(tags, layout_tags(&source));

    // upstream drops 1.0.0 and 1.1.0, and 1.3.0 arrives sharing a layer
    // with 1.0.0: prune deletes the two entries, then the files only they
    // used; the shared layer stays, and so do files outside their trees
    let shared = v1[0].blobs[1].clone();
    let v3 = ImageGen::default().image(Format::Docker, &[64], std::slice::from_ref(&shared), ("linux", "amd64"));
    write_layout(&source, &[("latest", &v2[0]), ("1.2.0", &v2[1]), ("1.3.0", &v3)]);
    let file = |digest: &str| dest.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let prune = ws.write_config(&yaml(&src, &dst, "mode: all\nprune: true"));
    let run = ws.run(&prune, &["--dry-run"]);
    assert!(run.stdout.contains("would delete (2): 1.0.0, 1.1.0\n"), "{run:?}");
    assert_eq!(validate_layout(&dest).unwrap().len(), 4);
    assert!(file(&v1[0].digest).exists() && file(&v1[2].blobs[1].digest).exists());
    let run = ws.run(&prune, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("deleted (2): 1.0.0, 1.1.0\n"), "{run:?}");
    assert_eq!(validate_layout(&dest).unwrap(), layout_tags(&source));
    for gone in [&v1[0], &v1[2]] {
        assert!(!file(&gone.digest).exists());
        for b in gone.blobs.iter().filter(|b| b.digest != shared.digest) {
            assert!(
                !file(&b.digest).exists(),
                "{} of a deleted tag is still there",
                b.digest
            );
        }
    }
    assert!(file(&shared.digest).exists(), "the layer 1.3.0 shares was deleted");
    // the old `latest`, replaced earlier, was no tag's this pass: untouched
    assert!(file(&v1[1].digest).exists());
}

#[test]
fn a_kept_tag_whose_manifest_cannot_be_read_stops_the_prune_whole() {
    // 1.0.0 is gone upstream; 2.0.0 stays and shares a layer with it. When
    // what 2.0.0 needs cannot be known, nothing at all is deleted.
    let mut g = ImageGen::default();
    let old = g.image(Format::Oci, &[64], &[], ("linux", "amd64"));
    let shared = old.blobs[1].clone();
    let kept = g.image(Format::Oci, &[64], std::slice::from_ref(&shared), ("linux", "amd64"));
    let ws = Workspace::new();
    let source = ws.path("source");
    write_layout(&source, &[("2.0.0", &kept)]);
    let src = format!("oci:{}", source.display());
    let file =
        |dest: &std::path::Path, digest: &str| dest.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    type Damage<'a> = (&'a str, &'a dyn Fn(&std::path::Path));
    let damages: [Damage; 4] = [
        ("a symbolic link", &|p| {
            let copy = p.with_extension("elsewhere");
            std::fs::rename(p, &copy).unwrap();
            std::os::unix::fs::symlink(&copy, p).unwrap();
        }),
        ("over the size limit", &|p| {
            let mut bytes = std::fs::read(p).unwrap();
            bytes.resize(5 << 20, b' ');
            std::fs::write(p, bytes).unwrap();
        }),
        ("of an unknown kind", &|p| {
            std::fs::write(p, br#"{"schemaVersion":2,"mediaType":"application/x-unknown"}"#).unwrap()
        }),
        ("missing", &|p| std::fs::remove_file(p).unwrap()),
    ];
    for (what, damage) in damages {
        let dest = ws.path(&format!("dest-{}", what.replace(' ', "-")));
        write_layout(&dest, &[("1.0.0", &old), ("2.0.0", &kept)]);
        damage(&file(&dest, &kept.digest));
        let prune = ws.write_config(&yaml(
            &src,
            &format!("oci:{}", dest.display()),
            "mode: all\nprune: true",
        ));
        let run = ws.run(&prune, &[]);
        assert_eq!(run.code, 1, "{what}: {run:?}");
        assert!(
            run.stdout
                .contains("prune refused: what tag 2.0.0 needs cannot be known, so nothing was deleted"),
            "{what}: {run:?}"
        );
        assert!(
            file(&dest, &shared.digest).exists(),
            "{what}: the shared layer was deleted"
        );
        assert!(
            file(&dest, &old.digest).exists(),
            "{what}: 1.0.0's manifest was deleted"
        );
        let index = std::fs::read_to_string(dest.join("index.json")).unwrap();
        assert!(index.contains("\"1.0.0\""), "{what}: the entry was removed: {index}");
    }
}

#[test]
fn sigkill_at_any_moment_leaves_a_valid_layout_that_the_next_run_completes() {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    for tag in ["1.0.0", "1.1.0", "1.2.0"] {
        sc.push_image("team/big", &generator.multi_arch(Format::Oci, 6 << 20, &[]), tag);
    }
    let ws = Workspace::new();
    let dest = ws.path("dest");
    let cfg = ws.write_config(&yaml(
        &format!("{}/team/big", src.host()),
        &format!("oci:{}", dest.display()),
        "mode: semver",
    ));
    // how long a whole copy takes here, to spread the kills over it: the
    // shorter of two, so one slow first run (a busy machine, a cold page
    // cache) does not leave most kills after the end
    let mut whole = u64::MAX;
    for _ in 0..2 {
        std::fs::remove_dir_all(&dest).ok();
        let started = std::time::Instant::now();
        assert_eq!(ws.run(&cfg, &[]).code, 0);
        whole = whole.min(started.elapsed().as_millis() as u64);
    }
    let mut kills = 0;
    for i in 0..30u64 {
        // every other run starts from nothing; the others resume a killed one
        let fresh = i % 2 == 0;
        if fresh {
            std::fs::remove_dir_all(&dest).ok();
        }
        let share = if fresh { 3 + (i * 31) % 90 } else { 2 + (i * 7) % 25 };
        let mut child = ws
            .command()
            .arg("-c")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(whole * share / 100));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        if dest.join("oci-layout").exists() {
            let tags = validate_layout(&dest).unwrap_or_else(|e| panic!("after kill {i}: {e}"));
            for (tag, digest) in tags {
                assert_eq!(Some(digest), sc.digest("team/big", &tag), "after kill {i}, {tag}");
            }
        }
    }
    eprintln!("{kills} of 30 runs killed mid-copy (a whole copy takes {whole} ms)");
    assert!(kills >= 20, "only {kills} runs were killed mid-way");
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let tags = validate_layout(&dest).unwrap();
    assert_eq!(tags.keys().cloned().collect::<Vec<_>>(), ["1.0.0", "1.1.0", "1.2.0"]);
    assert!(!dest.join(".replicant-tmp").exists(), "temporary files left behind");
}

fn run_source(ws: &Workspace, layout: &Path, dst: &Registry) -> Run {
    let cfg = ws.write_config(&yaml(
        &format!("oci:{}", layout.display()),
        &format!("{}/m/app", dst.host()),
        "mode: all",
    ));
    ws.run(&cfg, &[])
}

fn expect_failure(run: &Run, needles: &[&str]) {
    assert_eq!(run.code, 1, "{run:?}");
    for n in needles {
        assert!(run.stdout.contains(n), "missing {n:?} in {run:?}");
    }
}

#[test]
fn bad_layouts_give_clear_errors_naming_the_path() {
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let mut generator = ImageGen::default();
    let image = generator.image(Format::Oci, &[100], &[], ("linux", "amd64"));
    let good = |name: &str| {
        let dir = ws.path(name);
        write_layout(&dir, &[("1.0.0", &image)]);
        dir
    };

    // not a layout at all
    let dir = ws.path("not-a-layout");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    expect_failure(
        &run_source(&ws, &dir, &dst),
        &[&dir.display().to_string(), "not an OCI image layout"],
    );

    // a source layout that does not exist
    let dir = ws.path("nowhere");
    expect_failure(
        &run_source(&ws, &dir, &dst),
        &[&format!("oci:{}: source layout not found", dir.display())],
    );

    // unreadable index.json
    let dir = good("bad-index");
    std::fs::write(dir.join("index.json"), "{ not json").unwrap();
    expect_failure(
        &run_source(&ws, &dir, &dst),
        &[&dir.join("index.json").display().to_string(), "is not valid JSON"],
    );

    // a blob missing
    let dir = good("missing-blob");
    let layer = &image.blobs[1].digest;
    std::fs::remove_file(dir.join("blobs/sha256").join(layer.strip_prefix("sha256:").unwrap())).unwrap();
    expect_failure(
        &run_source(&ws, &dir, &dst),
        &[&format!("blob {layer} is missing"), &dir.display().to_string()],
    );

    // a blob that does not match its digest
    let dir = good("corrupt-blob");
    let path = dir.join("blobs/sha256").join(layer.strip_prefix("sha256:").unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    expect_failure(
        &run_source(&ws, &dir, &dst),
        &[&format!("blob {layer}"), "does not match its digest"],
    );
    assert!(
        TestClient::new(&dst.host(), None).tags("m/app").is_empty(),
        "a corrupt image was tagged"
    );

    // a corrupt manifest
    let dir = good("corrupt-manifest");
    std::fs::write(
        dir.join("blobs/sha256")
            .join(image.digest.strip_prefix("sha256:").unwrap()),
        b"{}",
    )
    .unwrap();
    expect_failure(
        &run_source(&ws, &dir, &dst),
        &["does not match its digest", &dir.display().to_string()],
    );

    // a tag that is not a tag, and a digest that tries to leave blobs/
    for (name, from, to) in [
        ("bad-tag", "\"1.0.0\"", "\"not a/tag\""),
        ("escape", image.digest.as_str(), "sha256:../../../../etc/passwd"),
    ] {
        let dir = good(name);
        let index = std::fs::read_to_string(dir.join("index.json"))
            .unwrap()
            .replace(from, to);
        std::fs::write(dir.join("index.json"), index).unwrap();
        let needle = if name == "bad-tag" {
            "\"not a/tag\" is not a valid tag"
        } else {
            "invalid digest \"sha256:../../../../etc/passwd\""
        };
        expect_failure(&run_source(&ws, &dir, &dst), &[needle, &dir.display().to_string()]);
    }

    // `oci:` with no path is a config error
    let cfg = ws.write_config(&yaml("\"oci:\"", &format!("{}/m/app", dst.host()), ""));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("key \"source\": \"oci:\" names no directory"),
        "{run:?}"
    );
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
    let ws = Workspace::new();
    let mut generator = ImageGen::default();
    let image = generator.image(Format::Oci, &[100], &[], ("linux", "amd64"));
    let source = ws.path("source");
    write_layout(&source, &[("1.0.0", &image)]);
    let dest = ws.path("dest");
    write_layout(&dest, &[]);
    // another process (here: this test) is writing the destination
    let lock = std::fs::File::create(dest.join(".replicant.lock")).unwrap();
    lock.lock().unwrap();
    let cfg = ws.write_config(&yaml(
        &format!("oci:{}", source.display()),
        &format!("oci:{}", dest.display()),
        "",
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("another replicant process is writing this layout"),
        "{run:?}"
    );
    assert!(run.stdout.contains(&dest.display().to_string()), "{run:?}");
    assert!(layout_tags(&dest).is_empty());
    // once it is released, the copy goes through
    drop(lock);
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(layout_tags(&dest).keys().cloned().collect::<Vec<_>>(), ["1.0.0"]);
}

/// Runs with a deadline: a run that hangs is killed and reported.
fn run_within(ws: &Workspace, cfg: &Path, limit: Duration) -> Run {
    let mut child = ws.spawn(cfg, &[]);
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!(
                "the run hung for {limit:?}: {:?}",
                output(child.wait_with_output().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    output(child.wait_with_output().unwrap())
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn fifos_in_a_layout_are_refused_not_read() {
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let image = ImageGen::default().image(Format::Oci, &[100], &[], ("linux", "amd64"));

    // index.json is a FIFO: opening it for reading would wait forever
    let dir = ws.path("fifo-index");
    write_layout(&dir, &[("1.0.0", &image)]);
    mkfifo(&dir.join("index.json"));
    let cfg = ws.write_config(&yaml(
        &format!("oci:{}", dir.display()),
        &format!("{}/m/a", dst.host()),
        "",
    ));
    let run = run_within(&ws, &cfg, Duration::from_secs(10));
    expect_failure(
        &run,
        &[&format!("{} is not a regular file", dir.join("index.json").display())],
    );

    // a layer is a FIFO
    let dir = ws.path("fifo-blob");
    write_layout(&dir, &[("1.0.0", &image)]);
    let layer = &image.blobs[1].digest;
    let (alg, hex) = layer.split_once(':').unwrap();
    let blob = dir.join("blobs").join(alg).join(hex);
    mkfifo(&blob);
    let cfg = ws.write_config(&yaml(
        &format!("oci:{}", dir.display()),
        &format!("{}/m/b", dst.host()),
        "",
    ));
    let run = run_within(&ws, &cfg, Duration::from_secs(10));
    expect_failure(&run, &[&format!("{} is not a regular file", blob.display())]);
    assert!(TestClient::new(&dst.host(), None).tags("m/b").is_empty());
}

/// Every media type in a layout's tree under `digest`: its own, its
/// config's and layers', its children's (recursively).
fn media_types(layout: &Path, digest: &str, out: &mut Vec<String>) {
    let bytes = std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    out.extend(doc["mediaType"].as_str().map(str::to_string));
    out.extend(doc["config"]["mediaType"].as_str().map(str::to_string));
    for d in doc["layers"].as_array().into_iter().flatten() {
        out.extend(d["mediaType"].as_str().map(str::to_string));
    }
    for c in doc["manifests"].as_array().into_iter().flatten() {
        out.extend(c["mediaType"].as_str().map(str::to_string));
        media_types(layout, c["digest"].as_str().unwrap(), out);
    }
}

#[test]
fn oci_media_types_make_a_layout_skopeo_reads() {
    let src = Registry::start(Auth::None);
    let back = Registry::start(Auth::None);
    let (sc, bc) = (TestClient::new(&src.host(), None), TestClient::new(&back.host(), None));
    let mut generator = ImageGen::default();
    let list = generator.multi_arch(Format::Docker, 700, &[]);
    let single = generator.image(Format::Docker, &[500], &[], ("linux", "amd64"));
    let oci = generator.multi_arch(Format::Oci, 600, &[]);
    for (tag, image) in [("1.0.0", &list), ("1.1.0", &single), ("2.0.0", &oci)] {
        sc.push_image("team/app", image, tag);
    }
    let ws = Workspace::new();
    let layout = ws.path("oci-app");
    let cfg = ws.write_config(&yaml(
        &format!("{}/team/app", src.host()),
        &format!("oci:{}", layout.display()),
        "mode: all\nreplace-tag: true\nlayout-media-types: oci",
    ));
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let tags = validate_layout(&layout).unwrap();
    assert_eq!(tags.len(), 3);
    for (tag, digest) in &tags {
        let mut types = Vec::new();
        media_types(&layout, digest, &mut types);
        assert!(
            types.iter().all(|t| t.starts_with("application/vnd.oci.")),
            "{tag}: {types:?}"
        );
    }
    // Docker sources were converted, and say what they were made from; an
    // OCI source is copied exactly
    for (tag, source) in [("1.0.0", &list), ("1.1.0", &single)] {
        let bytes = std::fs::read(
            layout
                .join("blobs/sha256")
                .join(tags[tag].trim_start_matches("sha256:")),
        )
        .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            doc["annotations"]["dev.replicant.source.digest"],
            source.digest.as_str(),
            "{tag}"
        );
    }
    assert_eq!(tags["2.0.0"], oci.digest);
    // the next pass knows from the annotations that nothing changed
    let run = ws.run(&cfg, &[]);
    assert!(run.stdout.contains("already present (3)"), "{run:?}");

    // skopeo (Debian's 1.9.3) copies every tag into a registry, digests kept
    let skopeo = |layout: &Path, tag: &str| {
        std::process::Command::new(testkit::tools::tool("SKOPEO", "skopeo"))
            .args([
                "--insecure-policy",
                "copy",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/back/app:{tag}", back.host()))
            .output()
            .expect("run skopeo")
    };
    for (tag, digest) in &tags {
        let out = skopeo(&layout, tag);
        assert!(
            out.status.success(),
            "skopeo copy {tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(bc.digest("back/app", tag).as_ref(), Some(digest), "{tag}");
        bc.assert_complete("back/app", tag);
    }

    // the exact copy (the default) keeps Docker's media types, which this
    // skopeo cannot read from a layout: why the option exists
    let exact = ws.path("exact-app");
    let cfg = ws.write_config(&yaml(
        &format!("{}/team/app", src.host()),
        &format!("oci:{}", exact.display()),
        "mode: all",
    ));
    assert_eq!(ws.run(&cfg, &[]).code, 0);
    let out = skopeo(&exact, "1.0.0");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no descriptor found for reference"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
