//! The transport's contract, seen from outside: one retry layer (attempts
//! counted at a fault proxy), registries that are not there fail fast and
//! once, and the messages say what to do.

use std::time::{Duration, Instant};

use crate::support::*;
use testkit::proxy::{Fault, FaultProxy, Target};

/// A source registry with `team/app:1.0.0`, a one-blob image (its config).
fn one_blob_source() -> (Registry, TestClient) {
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let img = ImageGen::default().image(Format::Oci, &[], &[], ("linux", "amd64"));
    sc.push_image("team/app", &img, "1.0.0");
    (src, sc)
}

/// A config of `n` images, each mirroring `src/team/app` to `dst/mirror/appN`.
fn many_images(ws: &Workspace, src: &str, dst: &str, n: usize) -> std::path::PathBuf {
    let mut yaml = String::from("images:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  app{i}:\n    source: {src}/team/app\n    destination: {dst}/mirror/app{i}\n"
        ));
    }
    ws.write_config(&yaml)
}

#[test]
fn retries_n_means_n_plus_one_attempts_of_an_exchange() {
    let (src, _sc) = one_blob_source();
    let dst = Registry::start(Auth::None);
    for n in [0u32, 1, 4] {
        // every blob download fails: the one blob is asked N+1 times, and
        // the copy engine does not start the transfer over again
        let proxy = FaultProxy::start(&src.host(), 7);
        proxy.set(Some((Fault::Status(503), 1.0, Target::Blobs)));
        let ws = Workspace::new();
        let cfg = ws.app_config(&proxy.host(), &dst.host(), "");
        let run = ws.run(&cfg, &["--retries", &n.to_string()]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stdout.contains("GET blob sha256:") && run.stdout.contains("HTTP 503"),
            "{run:?}"
        );
        assert_eq!(
            proxy.injected(),
            n as usize + 1,
            "blob GETs with --retries {n}: {run:?}"
        );

        // a registry whose ping always fails: N+1 pings, then it is left alone
        let dead = FaultProxy::start(&dst.host(), 8);
        dead.set(Some((Fault::Status(503), 1.0, Target::Any)));
        let cfg = many_images(&ws, &src.host(), &dead.host(), 3);
        let run = ws.run(&cfg, &["--retries", &n.to_string()]);
        assert_eq!(run.code, 1, "{run:?}");
        assert_eq!(dead.injected(), n as usize + 1, "pings with --retries {n}: {run:?}");
    }
}

#[test]
fn a_closed_port_fails_every_image_within_one_ping_budget() {
    let (src, _sc) = one_blob_source();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("127.0.0.1:{closed}");
    let ws = Workspace::new();
    let cfg = many_images(&ws, &src.host(), &dead, 8);
    let started = Instant::now();
    let run = ws.run(&cfg, &[]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{run:?}");
    // one ping with 4 retries backs off at most 0.25+0.5+1+2 s
    assert!(took < Duration::from_secs(10), "took {took:?}: {run:?}");
    let names: Vec<String> = (0..8).map(|i| format!("app{i}")).collect();
    let line = format!("registry {dead} unreachable: {dead}: GET /v2/: network error");
    let summary = run.stdout.lines().find(|l| l.starts_with(&line));
    let summary = summary.unwrap_or_else(|| panic!("no grouped line: {run:?}"));
    assert!(
        summary.ends_with(&format!("; images {} not copied", names.join(", "))),
        "{summary}"
    );
    assert!(run.stdout.contains("8 failed"), "{run:?}");
    // the first failure is named once at warning level, not eight times
    let warned = run
        .stderr
        .lines()
        .filter(|l| l.contains("unreachable for the rest of this run"))
        .count();
    assert_eq!(warned, 1, "{run:?}");
}

#[test]
fn a_registry_that_never_answers_costs_one_timeout_budget_not_one_per_image() {
    let (src, _sc) = one_blob_source();
    let silent = testkit::http::Silent::start();
    let dead = format!("127.0.0.1:{}", silent.port);
    let ws = Workspace::new();
    let cfg = many_images(&ws, &src.host(), &dead, 8);
    let started = Instant::now();
    let run = ws.run(&cfg, &["--timeout", "1", "--retries", "1"]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{run:?}");
    // one budget: 2 attempts of 1 s plus one backoff (< 0.5 s); eight would be > 16 s
    assert!(took < Duration::from_secs(6), "took {took:?}: {run:?}");
    assert_eq!(silent.accepted.load(std::sync::atomic::Ordering::SeqCst), 2, "{run:?}");
    assert!(run.stdout.contains(&format!("registry {dead} unreachable")), "{run:?}");
    assert!(
        run.stdout.contains("timed out") || run.stdout.contains("timeout"),
        "{run:?}"
    );

    // the response deadline bounds each ping too, and the ping is still
    // remembered: two attempts in all, however many images wait on it
    let silent = testkit::http::Silent::start();
    let dead = format!("127.0.0.1:{}", silent.port);
    let cfg = many_images(&ws, &src.host(), &dead, 8);
    let started = Instant::now();
    let run = ws.run(&cfg, &["--timeout", "30", "--response-deadline", "1", "--retries", "1"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "{run:?}");
    assert_eq!(silent.accepted.load(std::sync::atomic::Ordering::SeqCst), 2, "{run:?}");
    assert!(run.stdout.contains("no complete answer within 1 s"), "{run:?}");
}

#[test]
fn plain_http_answered_on_tls_says_to_set_tls_false_and_is_not_retried() {
    let (src, _sc) = one_blob_source();
    let dst = Registry::start(Auth::None);
    let h = dst.host();
    let ws = Workspace::new();
    let cfg = ws.write_config(&format!(
        "registries:\n  {h}:\n    tls: true\nimages:\n  app:\n    source: {}/team/app\n    destination: {h}/mirror/app\n",
        src.host()
    ));
    let report = ws.path("report.json");
    let started = Instant::now();
    let run = ws.run(&cfg, &["--report", report.to_str().unwrap()]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "{h} answered in plain HTTP on a TLS connection; if that is intended, set `registries: {h}: tls: false`"
        )),
        "{run:?}"
    );
    // four retries would back off for at least 1.9 s
    assert!(took < Duration::from_millis(1500), "took {took:?}: {run:?}");
    // a TLS failure is one, also when it ends the registry for the run
    assert!(run.stdout.contains("error (tls): "), "{run:?}");
    assert!(!run.stdout.contains("unreachable"), "{run:?}");
    let json = valid_report(&report);
    assert_eq!(json["images"][0]["error_category"], "tls", "{json:#}");
    assert_eq!(json["registries"][0]["category"], "tls", "{json:#}");
}

#[test]
fn an_unknown_host_is_one_line_naming_it() {
    let (src, _sc) = one_blob_source();
    let ws = Workspace::new();
    let cfg = ws.app_config(&src.host(), "no-such-registry.invalid", "");
    let started = Instant::now();
    let run = ws.run(&cfg, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{run:?}");
    assert!(
        run.stdout
            .contains("the host name no-such-registry.invalid does not resolve"),
        "{run:?}"
    );
}

#[test]
fn sigterm_while_planning_ends_the_run_at_once() {
    let (src, _sc) = one_blob_source();
    // the destination's tag list takes two minutes to come
    let slow = FaultProxy::start(&src.host(), 9);
    slow.set_delay(Duration::from_secs(120));
    let ws = Workspace::new();
    let cfg = ws.app_config(&src.host(), &slow.host(), "");
    let child = ws.spawn(&cfg, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    sigterm(&child);
    let run = output(child.wait_with_output().unwrap());
    let took = signalled.elapsed();
    assert_eq!(run.code, 128 + 15, "{run:?}");
    // planning only reads: it is abandoned at once, not after the grace period
    assert!(took < Duration::from_secs(5), "took {took:?} after SIGTERM: {run:?}");
    assert!(run.stdout.contains("not processed"), "{run:?}");
    assert!(run.stdout.contains("interrupted by a signal"), "{run:?}");
}
