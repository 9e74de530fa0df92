//! Scale-out as a Kubernetes Indexed Job: `--shard I/N` (or
//! `JOB_COMPLETION_INDEX` with `REPLICANT_SHARDS`) runs only the images whose
//! stable hash of the name falls in shard I. N shards run at once on one
//! config; each image is mirrored by exactly one of them.

use std::collections::BTreeMap;

use crate::support::*;

const IMAGES: usize = 12;

/// A source with 12 repositories of one tag each, and the config mirroring
/// all of them into `dst`.
fn setup(ws: &Workspace, src: &Registry, dst: &Registry) -> (TestClient, std::path::PathBuf) {
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    let mut yaml = String::from("images:\n");
    for i in 0..IMAGES {
        sc.push_image(
            &format!("team/app{i}"),
            &generator.image(Format::Oci, &[300], &[], ("linux", "amd64")),
            "1.0.0",
        );
        yaml.push_str(&format!(
            "  app{i}:\n    source: {}/team/app{i}\n    destination: {}/mirror/app{i}\n",
            src.host(),
            dst.host()
        ));
    }
    (sc, ws.write_config(&yaml))
}

/// Runs `count` shards at once (by flag, or as an Indexed Job would by
/// environment); returns each shard's summary: image name -> tags copied.
fn run_shards(
    ws: &Workspace,
    cfg: &std::path::Path,
    count: u32,
    indexed_job: bool,
    of: usize,
) -> Vec<BTreeMap<String, Vec<String>>> {
    let children: Vec<_> = (0..count)
        .map(|i| {
            let mut cmd = ws.command();
            cmd.arg("-c").arg(cfg).args(["--log-format", "json"]);
            if indexed_job {
                cmd.env("JOB_COMPLETION_INDEX", i.to_string())
                    .env("REPLICANT_SHARDS", count.to_string());
            } else {
                cmd.env("REPLICANT_SHARD", format!("{i}/{count}"));
            }
            cmd.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().expect("start a shard")
        })
        .collect();
    children
        .into_iter()
        .enumerate()
        .map(|(i, child)| {
            let out = output(child.wait_with_output().expect("wait for a shard"));
            assert_eq!(out.code, 0, "shard {i}/{count}: {out:?}");
            let report: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON summary");
            assert_eq!(report["shard"]["index"], i, "{out:?}");
            assert_eq!(report["shard"]["count"], count);
            assert_eq!(report["shard"]["of"], of);
            let images = report["images"].as_array().unwrap();
            assert_eq!(report["shard"]["images"], images.len());
            images
                .iter()
                .map(|img| {
                    let copied = img["copied"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap().to_string());
                    (img["name"].as_str().unwrap().to_string(), copied.collect())
                })
                .collect()
        })
        .collect()
}

#[test]
fn concurrent_shards_mirror_each_image_exactly_once_and_together_all_of_them() {
    let src = Registry::start(Auth::None);
    for (count, indexed_job) in [(1, false), (2, false), (3, true)] {
        let dst = Registry::start(Auth::None);
        let ws = Workspace::new();
        let (sc, cfg) = setup(&ws, &src, &dst);
        let shards = run_shards(&ws, &cfg, count, indexed_job, IMAGES);
        let mut seen = BTreeMap::new();
        for (i, shard) in shards.iter().enumerate() {
            for (name, copied) in shard {
                assert_eq!(copied, &["1.0.0"], "{name} in shard {i}/{count}");
                assert!(
                    seen.insert(name.clone(), i).is_none(),
                    "{name} in two shards of {count}"
                );
            }
        }
        assert_eq!(
            seen.len(),
            IMAGES,
            "the union of {count} shards is the whole config: {seen:?}"
        );
        if count > 1 {
            assert!(
                shards.iter().filter(|s| !s.is_empty()).count() > 1,
                "the work was spread: {seen:?}"
            );
        }
        let dc = TestClient::new(&dst.host(), None);
        for i in 0..IMAGES {
            assert_mirror(&sc, &format!("team/app{i}"), &dc, &format!("mirror/app{i}"), &["1.0.0"]);
        }
    }
}

#[test]
fn every_destination_of_a_source_is_in_the_same_shard() {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let ws = Workspace::new();
    let (_, cfg) = setup(&ws, &src, &dst);
    // each entry into two repositories: "destination" as a list
    let yaml = std::fs::read_to_string(&cfg).unwrap();
    let mut two = String::new();
    for line in yaml.lines() {
        match line.strip_prefix("    destination: ") {
            Some(d) => two.push_str(&format!(
                "    destination: [{d}, {}]\n",
                d.replace("/mirror/", "/second/")
            )),
            None => two.push_str(&format!("{line}\n")),
        }
    }
    let cfg = ws.write_config(&two);
    let shards = run_shards(&ws, &cfg, 3, false, 2 * IMAGES);
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, shard) in shards.iter().enumerate() {
        for (name, copied) in shard {
            assert_eq!(copied, &["1.0.0"], "{name} in shard {i}");
            let entry = name.split(" -> ").next().unwrap().to_string();
            seen.entry(entry).or_default().push(i);
        }
    }
    assert_eq!(seen.len(), IMAGES, "{seen:?}");
    for (entry, in_shards) in &seen {
        assert_eq!(in_shards.len(), 2, "{entry}: {seen:?}");
        assert_eq!(
            in_shards[0], in_shards[1],
            "{entry}'s destinations in two shards: {seen:?}"
        );
    }
    assert!(shards.iter().filter(|s| !s.is_empty()).count() > 1, "{seen:?}");
}

#[test]
fn a_bad_shard_is_a_usage_error_naming_where_it_came_from() {
    let ws = Workspace::new();
    let cfg = ws.write_config("images:\n  a:\n    source: 127.0.0.1:1/x/y\n    destination: 127.0.0.1:1/z/y\n");
    let out = ws.run(&cfg, &["--shard", "3/3"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.all().contains("not below the number of shards"), "{out:?}");

    let mut cmd = ws.command();
    cmd.arg("-c").arg(&cfg).env("REPLICANT_SHARDS", "4");
    let out = output(cmd.output().unwrap());
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.all()
            .contains("REPLICANT_SHARDS is set but JOB_COMPLETION_INDEX is not"),
        "{out:?}"
    );
}
