//! Reliability: faults injected by a proxy in front of real registries never
//! leave a destination tag pointing at a broken image; a clean run then
//! converges. Signals and SIGKILL leave nothing half-written under a tag.
//! Blob downloads redirected elsewhere never carry our credentials.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use testkit::proxy::{Fault, FaultProxy, Target};

const TAGS: [&str; 3] = ["1.0.0", "1.1.0", "1.2.0"];

fn seeded_source() -> (Registry, TestClient) {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    let shared = vec![generator.layer(Format::Oci, 40_000)];
    for tag in TAGS {
        sc.push_image("team/app", &generator.multi_arch(Format::Oci, 30_000, &shared), tag);
    }
    (src, sc)
}

/// Every tag in `repo` is exact (digest equals the source's, whole tree
/// present); returns how many tags were checked.
fn exact_or_absent(sc: &TestClient, dc: &TestClient, repo: &str) -> usize {
    let tags = dc.tags(repo);
    for tag in &tags {
        assert_eq!(
            dc.digest(repo, tag),
            sc.digest("team/app", tag),
            "{repo}:{tag} is not the source's image"
        );
        dc.assert_complete(repo, tag);
    }
    tags.len()
}

#[test]
fn injected_faults_never_leave_a_broken_tag_and_a_clean_run_converges() {
    let (src, sc) = seeded_source();
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let src_proxy = FaultProxy::start(&src.host(), 1);
    let dst_proxy = FaultProxy::start(&dst.host(), 2);
    let ws = Workspace::new();
    let kinds = [
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Status(429),
        Fault::Reset,
        Fault::Truncate,
        Fault::Flip,
        Fault::WrongDigest,
        Fault::Stall,
    ];
    let (mut runs, mut tags_checked, mut failed_runs) = (0, 0, 0);
    let mut repos = Vec::new();
    for round in 0..2 {
        for (k, fault) in kinds.iter().enumerate() {
            let rates: &[f64] = if *fault == Fault::Stall {
                &[0.1]
            } else {
                &[0.05, 0.2, 0.5]
            };
            for (r, rate) in rates.iter().enumerate() {
                // downloads from the source, or anything sent to the destination
                let on_source = (k + r + round) % 2 == 0;
                let (proxy, target) = if on_source {
                    (&src_proxy, Target::Downloads)
                } else {
                    (&dst_proxy, Target::Any)
                };
                proxy.set(Some((*fault, *rate, target)));
                let repo = format!("mirror/case-{round}-{k}-{r}");
                let cfg = ws.write_config(&format!(
                    "mode: semver\nimages:\n  app:\n    source: {}/team/app\n    destination: {}/{repo}\n",
                    src_proxy.host(),
                    dst_proxy.host()
                ));
                let run = ws.run(&cfg, &["--retries", "1", "--timeout", "2"]);
                proxy.set(None);
                runs += 1;
                tags_checked += exact_or_absent(&sc, &dc, &repo);
                // the exit code and the summary agree on failure
                let failed = run.stdout.contains("[FAILED]");
                assert_eq!(run.code, if failed { 1 } else { 0 }, "{fault:?} at {rate}: {run:?}");
                if failed {
                    failed_runs += 1;
                    assert!(run.stdout.contains("1 failed (app)"), "{run:?}");
                } else {
                    assert_eq!(
                        dc.tags(&repo),
                        TAGS,
                        "{fault:?} at {rate}: a run that says ok copied everything"
                    );
                }
                repos.push(repo);
            }
        }
    }
    eprintln!(
        "{runs} faulty runs, {failed_runs} reported failures, {tags_checked} destination tags checked, 0 corrupt; faults injected: {} at the source, {} at the destination",
        src_proxy.injected(),
        dst_proxy.injected()
    );
    assert!(
        src_proxy.injected() + dst_proxy.injected() > 20,
        "too few faults were injected to mean anything"
    );
    // without faults, every case converges to an exact mirror
    for repo in &repos {
        let cfg = ws.write_config(&format!(
            "mode: semver\nimages:\n  app:\n    source: {}/team/app\n    destination: {}/{repo}\n",
            src_proxy.host(),
            dst_proxy.host()
        ));
        let run = ws.run(&cfg, &[]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_mirror(&sc, "team/app", &dc, repo, &TAGS);
    }
}

#[test]
fn a_registry_that_keeps_lying_fails_the_image_with_a_clear_error() {
    let (src, sc) = seeded_source();
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let proxy = FaultProxy::start(&src.host(), 3);
    proxy.set(Some((Fault::Flip, 1.0, Target::Downloads)));
    let ws = Workspace::new();
    let cfg = ws.app_config(&proxy.host(), &dst.host(), "mode: semver\n");
    let run = ws.run(&cfg, &["--retries", "2"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("does not match its digest"), "{run:?}");
    assert!(
        dc.tags("mirror/app").is_empty(),
        "a tag was written from corrupt content"
    );
    let _ = sc;
}

#[test]
fn redirected_blob_downloads_carry_no_credentials() {
    const PW: &str = "redirect-pw-5Tq";
    let src = Registry::start(Auth::Basic(vec![("alice".into(), PW.into())]));
    let sc = TestClient::new(&src.host(), Some(("alice", PW)));
    let mut generator = ImageGen::default();
    sc.push_image("team/app", &generator.multi_arch(Format::Oci, 5000, &[]), "1.0.0");
    // object storage stand-in: records what it is sent, serves the blob
    // (path, Authorization header) of every request object storage received
    type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let upstream = src.url();
    let storage = testkit::http::Server::start(move |req| {
        seen2
            .lock()
            .unwrap()
            .push((req.target.clone(), req.headers.get("authorization").cloned()));
        testkit::crypto();
        let bytes = reqwest::blocking::Client::new()
            .get(format!("{upstream}/v2{}", req.target))
            .basic_auth("alice", Some(PW))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        testkit::http::Response {
            status: 200,
            headers: vec![],
            body: bytes.to_vec(),
        }
    });
    let proxy = FaultProxy::start(&src.host(), 4);
    proxy.redirect_blobs_to(Some(format!("127.0.0.1:{}", storage.port)));
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let ws = Workspace::new();
    ws.docker_login(&proxy.host(), "alice", PW);
    let cfg = ws.app_config(&proxy.host(), &dst.host(), "");
    let run = ws.run(&cfg, &["--debug"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &["1.0.0"]);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.len(),
        6,
        "every blob download (3 configs, 3 layers) was redirected once: {seen:?}"
    );
    assert!(
        seen.iter().all(|(_, auth)| auth.is_none()),
        "credentials followed a redirect: {seen:?}"
    );
    assert!(!run.all().contains(PW));
}

#[test]
fn sigterm_stops_starting_work_reports_and_leaves_no_broken_tag() {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    let tags: Vec<String> = (0..12).map(|i| format!("1.{i}.0")).collect();
    for tag in &tags {
        sc.push_image("team/app", &generator.multi_arch(Format::Oci, 3 << 20, &[]), tag);
    }
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let ws = Workspace::new();
    let cfg = ws.app_config(&src.host(), &dst.host(), "mode: semver\n");
    let child = ws.spawn(&cfg, &["--jobs", "1"]);
    std::thread::sleep(Duration::from_millis(400));
    sigterm(&child);
    let run = output(child.wait_with_output().unwrap());
    assert_eq!(run.code, 128 + 15, "{run:?}");
    assert!(run.stdout.contains("interrupted by a signal"), "{run:?}");
    assert!(run.stdout.contains("not started ("), "{run:?}");
    assert!(run.stderr.contains("SIGTERM: starting nothing new"), "{run:?}");
    let copied = dc.tags("mirror/app");
    assert!(
        copied.len() < tags.len(),
        "everything was copied before the signal: {run:?}"
    );
    for tag in &copied {
        assert_eq!(dc.digest("mirror/app", tag), sc.digest("team/app", tag));
        dc.assert_complete("mirror/app", tag);
    }
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let want: Vec<&str> = tags.iter().map(String::as_str).collect();
    assert_mirror(&sc, "team/app", &dc, "mirror/app", &want);
}

#[test]
fn sigkill_at_thirty_moments_never_leaves_a_tag_on_an_incomplete_image() {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    for tag in TAGS {
        sc.push_image("team/app", &generator.multi_arch(Format::Oci, 4 << 20, &[]), tag);
    }
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let ws = Workspace::new();
    let config = |repo: &str| {
        ws.write_config(&format!(
            "mode: semver\nimages:\n  app:\n    source: {}/team/app\n    destination: {}/{repo}\n",
            src.host(),
            dst.host()
        ))
    };
    let started = std::time::Instant::now();
    assert_eq!(ws.run(&config("mirror/timing"), &[]).code, 0);
    let whole = started.elapsed().as_millis() as u64;
    let (mut kills, mut runs, mut scale) = (0, 0u64, 1.0f64);
    let mut repos = std::collections::BTreeSet::new();
    // 20 kills at spread-out moments; a run that finished first shortens
    // the later delays (the machine may be busier than when timed)
    while kills < 20 && runs < 60 {
        let i = runs;
        runs += 1;
        // half the runs start a new repository, half resume a killed one
        let repo = format!("mirror/kill-{}", i / 2);
        repos.insert(repo.clone());
        let mut child = ws
            .command()
            .arg("-c")
            .arg(config(&repo))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = (whole * (3 + (i * 37) % 90) / 100) as f64 * scale;
        std::thread::sleep(Duration::from_millis(delay as u64));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        } else {
            scale *= 0.7;
        }
        child.wait().unwrap();
        // the registry finishes a request whose client died: a tag it is
        // writing is listed a moment before it resolves
        std::thread::sleep(Duration::from_millis(300));
        exact_or_absent(&sc, &dc, &repo);
    }
    eprintln!("{kills} of {runs} runs killed mid-copy (a whole copy takes {whole} ms)");
    assert!(kills >= 20, "only {kills} runs were killed mid-way");
    for repo in &repos {
        let run = ws.run(&config(repo), &[]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_mirror(&sc, "team/app", &dc, repo, &TAGS);
    }
}

#[test]
fn an_exhausted_pull_budget_stops_pulls_from_that_registry_only() {
    let (src, sc) = seeded_source();
    let other = Registry::start(Auth::None);
    let oc = TestClient::new(&other.host(), None);
    oc.push_image(
        "team/tool",
        &ImageGen::default().image(Format::Oci, &[100], &[], ("linux", "amd64")),
        "2.0.0",
    );
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let proxy = FaultProxy::start(&src.host(), 5);
    // every pull is throttled, with Retry-After: 1
    proxy.set(Some((Fault::Status(429), 1.0, Target::Downloads)));
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "mode: semver\nimages:\n  app:\n    source: {}/team/app\n    destination: {d}/mirror/app\n  tool:\n    source: {}/team/tool\n    destination: {d}/mirror/tool\n",
        proxy.host(),
        other.host(),
        d = dst.host()
    ));
    let run = ws.run(&cfg, &["--retries", "1", "--jobs", "1"]);
    assert_eq!(run.code, 1, "{run:?}");
    // the throttled registry was asked twice (one retry), then left alone
    assert_eq!(proxy.injected(), 2, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("{}: pull budget exhausted; retry after", proxy.host())),
        "{run:?}"
    );
    let refused = run
        .stdout
        .lines()
        .filter(|l| l.contains("the pull budget of") && l.contains("is exhausted"))
        .count();
    assert_eq!(refused, 2, "the two later tags were not even tried: {run:?}");
    assert!(dc.tags("mirror/app").is_empty());
    // the other registry's image was still copied
    assert_mirror(&oc, "team/tool", &dc, "mirror/tool", &["2.0.0"]);
    let _ = sc;
}

/// The lines of a `--debug` log where a registry's concurrency changed, as
/// (registry, from, to).
fn concurrency_changes(log: &str, registry: &str) -> Vec<(usize, usize)> {
    log.lines()
        .filter(|l| l.contains(registry) && l.contains("concurrency "))
        .filter_map(|l| {
            let rest = &l[l.find("concurrency ")? + "concurrency ".len()..];
            let (from, rest) = rest.split_once(" -> ")?;
            let to = rest.split_whitespace().next()?;
            Some((from.parse().ok()?, to.parse().ok()?))
        })
        .collect()
}

/// Concurrency adapts per registry: on a clean link it grows past where it
/// starts; a burst of 429s halves it, and the copies wait and retry instead
/// of failing.
#[test]
fn concurrency_grows_on_a_clean_link_and_backs_off_under_429s() {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    let shared = vec![generator.layer(Format::Oci, 20_000)];
    let tags: Vec<String> = (0..12).map(|t| format!("1.{t}.0")).collect();
    for tag in &tags {
        sc.push_image("team/app", &generator.multi_arch(Format::Oci, 10_000, &shared), tag);
    }
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let dst = Registry::start(Auth::None);
    let dc = TestClient::new(&dst.host(), None);
    let proxy = FaultProxy::start(&dst.host(), 7);
    let ws = Workspace::new();
    let config = |repo: &str| {
        ws.write_config(&format!(
            "mode: all\nimages:\n  app:\n    source: {}/team/app\n    destination: {}/{repo}\n",
            src.host(),
            proxy.host()
        ))
    };

    // clean: the source's limit grows from 8 (slow start: it doubles)
    let run = ws.run(&config("mirror/clean"), &["--debug"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/clean", &tags);
    let grew = concurrency_changes(&run.stderr, &src.host());
    assert!(
        grew.contains(&(8, 16)),
        "no growth logged for {}: {grew:?}\n{}",
        src.host(),
        run.stderr
    );

    // a burst of 429s (with Retry-After: 1) on most upload starts at the
    // destination for two and a half seconds: its limit is cut, and every
    // tag still arrives (a start is tried at most three times in the burst,
    // and five times in all)
    proxy.set(Some((Fault::Status(429), 0.7, Target::UploadStarts)));
    let clear = {
        let proxy = &proxy;
        move || {
            std::thread::sleep(Duration::from_millis(2500));
            proxy.set(None);
        }
    };
    let run = std::thread::scope(|s| {
        s.spawn(clear);
        ws.run(&config("mirror/throttled"), &["--debug"])
    });
    assert!(proxy.injected() > 0, "no 429 was injected");
    assert_eq!(run.code, 0, "429s must be waited out, not fail tags: {run:?}");
    assert_mirror(&sc, "team/app", &dc, "mirror/throttled", &tags);
    let changes = concurrency_changes(&run.stderr, &proxy.host());
    assert!(
        changes
            .iter()
            .any(|(from, to)| to < from && run.stderr.contains("answered 429 or 503")),
        "no cut logged for {}: {changes:?}\n{}",
        proxy.host(),
        run.stderr
    );
}
