//! Prometheus metrics of a run: the textfile-collector file checked by a
//! real `promtool check metrics`, and a push to a real Pushgateway read
//! back from its /metrics. Last successes survive a failed run.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use testkit::tools::tool;

/// `name{labels}` -> value, from metrics text (only samples, only ours).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("replicant_"))
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_string(), v.parse().unwrap())))
        .collect()
}

fn promtool_accepts(text: &str) {
    let mut check = Command::new(tool("PROMTOOL", "promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pair() -> (Registry, Registry, TestClient) {
    let src = Registry::start(Auth::None);
    let dst = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let mut generator = ImageGen::default();
    sc.push_image("team/app", &generator.multi_arch(Format::Oci, 1000, &[]), "1.0.0");
    sc.push_image("team/app", &generator.multi_arch(Format::Oci, 1000, &[]), "1.1.0");
    (src, dst, sc)
}

/// A config mirroring `team/app` (semver), the tests' good run.
fn app_config(ws: &Workspace, src: &Registry, dst: &Registry) -> std::path::PathBuf {
    ws.write_config(&format!(
        "mode: semver\nimages:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n",
        src.host(),
        dst.host()
    ))
}

/// A config (`bad.yaml`) whose one image has no source: a failed run.
fn ghost_config(ws: &Workspace, src: &Registry, dst: &Registry) -> std::path::PathBuf {
    let bad = ws.path("bad.yaml");
    let yaml = format!(
        "images:\n  ghost:\n    source: {}/team/ghost\n    destination: {}/mirror/ghost\n",
        src.host(),
        dst.host()
    );
    std::fs::write(&bad, yaml).unwrap();
    bad
}

#[test]
fn the_metrics_file_passes_promtool_and_keeps_the_last_success() {
    let (src, dst, _) = pair();
    let ws = Workspace::new();
    let file = ws.path("replicant.prom");
    let good = app_config(&ws, &src, &dst);
    let run = ws.run(&good, &["--metrics-file", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    promtool_accepts(&text);
    let m = samples(&text);
    assert_eq!(m["replicant_run_tags{image=\"app\",result=\"copied\"}"], 2.0, "{text}");
    assert_eq!(m["replicant_run_exit_code"], 0.0);
    assert_eq!(m["replicant_image_success{image=\"app\"}"], 1.0);
    assert!(m["replicant_run_blobs{outcome=\"transferred\"}"] > 0.0, "{text}");
    assert!(
        m["replicant_run_blob_bytes{outcome=\"transferred\"}"] > 2000.0,
        "{text}"
    );
    assert_eq!(m["replicant_run_blob_bytes{outcome=\"present\"}"], 0.0, "{text}");
    let gets = format!(
        "replicant_run_registry_requests{{registry=\"{}\",method=\"GET\",status_class=\"2xx\"}}",
        src.host()
    );
    assert!(m[&gets] > 0.0, "{text}");
    let puts = format!(
        "replicant_run_registry_requests{{registry=\"{}\",method=\"PUT\",status_class=\"2xx\"}}",
        dst.host()
    );
    assert!(m[&puts] > 0.0, "{text}");
    let success = m["replicant_last_success_timestamp_seconds"];
    assert_eq!(success, m["replicant_last_run_timestamp_seconds"]);
    let app_success = m["replicant_image_last_success_timestamp_seconds{image=\"app\"}"];

    // a failed run: its own numbers, the last successes carried over
    std::thread::sleep(Duration::from_millis(1100));
    let bad = ws.mixed_config("bad.yaml", &src.host(), &dst.host());
    let run = ws.run(&bad, &["--metrics-file", file.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    promtool_accepts(&text);
    let m = samples(&text);
    assert_eq!(m["replicant_run_exit_code"], 1.0);
    assert_eq!(m["replicant_last_success_timestamp_seconds"], success, "{text}");
    assert!(m["replicant_last_run_timestamp_seconds"] > success);
    assert_eq!(m["replicant_image_success{image=\"ghost\"}"], 0.0);
    assert_eq!(m["replicant_image_selects_nothing{image=\"typo\"}"], 1.0);
    assert_eq!(m["replicant_image_success{image=\"typo\"}"], 0.0);
    // app succeeded again (everything present): renewed
    assert!(m["replicant_image_last_success_timestamp_seconds{image=\"app\"}"] > app_success);
    // ghost never succeeded: its series says so (0), so an alert on its
    // age fires
    assert_eq!(
        m["replicant_image_last_success_timestamp_seconds{image=\"ghost\"}"], 0.0,
        "{text}"
    );
    assert!(
        !ws.dir
            .path()
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp"))
    );
}

/// A real Pushgateway on a free loopback port, stopped when dropped.
struct Pushgateway {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Pushgateway {
    fn start() -> Pushgateway {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(tool("PUSHGATEWAY", "prometheus-pushgateway"))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir(dir.path())
            .spawn()
            .expect("start prometheus-pushgateway");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the pushgateway did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Pushgateway { child, port, _dir: dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn metrics(&self) -> String {
        testkit::crypto();
        reqwest::blocking::get(format!("{}/metrics", self.url()))
            .unwrap()
            .text()
            .unwrap()
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn metrics_pushed_to_a_pushgateway_are_read_back_grouped_by_shard() {
    let (src, dst, _) = pair();
    let gateway = Pushgateway::start();
    let ws = Workspace::new();
    let cfg = app_config(&ws, &src, &dst);
    let run = ws.run(&cfg, &["--pushgateway", &gateway.url()]);
    assert_eq!(run.code, 0, "{run:?}");
    let m = samples(&gateway.metrics());
    assert_eq!(
        m["replicant_run_tags{image=\"app\",instance=\"\",job=\"replicant\",result=\"copied\"}"], 2.0,
        "{m:?}"
    );
    let success = m["replicant_last_success_timestamp_seconds{instance=\"\",job=\"replicant\"}"];
    assert!(success > 1.7e9, "{m:?}");

    // a sharded run is its own group; a failed one keeps the last success
    std::thread::sleep(Duration::from_millis(1100));
    let bad = ghost_config(&ws, &src, &dst);
    let run = ws.run(&bad, &["--pushgateway", &gateway.url()]);
    assert_eq!(run.code, 1, "{run:?}");
    let run = ws.run(&cfg, &["--pushgateway", &gateway.url(), "--shard", "0/1"]);
    assert_eq!(run.code, 0, "{run:?}");
    let m = samples(&gateway.metrics());
    assert_eq!(
        m["replicant_run_exit_code{instance=\"\",job=\"replicant\"}"], 1.0,
        "{m:?}"
    );
    assert_eq!(
        m["replicant_last_success_timestamp_seconds{instance=\"\",job=\"replicant\"}"], success,
        "{m:?}"
    );
    assert_eq!(
        m["replicant_run_exit_code{instance=\"\",job=\"replicant\",shard=\"0\"}"], 0.0,
        "{m:?}"
    );

    // a pushgateway that is not there fails the run, saying so
    drop(gateway);
    let run = ws.run(&cfg, &["--pushgateway", "http://127.0.0.1:9"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("cannot push the metrics to http://127.0.0.1:9/metrics/job/replicant"),
        "{run:?}"
    );
}

#[test]
fn pushgateway_credentials_never_show_and_each_release_has_its_own_group() {
    use testkit::http::{Response, Server};
    let (src, dst, _) = pair();
    let ws = Workspace::new();
    let cfg = app_config(&ws, &src, &dst);
    // a gateway that refuses the push: what it was sent, what the run says
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let refusing = Server::start(move |req| {
        s.lock().unwrap().push((
            req.method.clone(),
            req.target.clone(),
            req.headers.get("authorization").cloned(),
        ));
        match req.method.as_str() {
            "GET" => Response::json(200, String::new()),
            _ => Response::json(500, "{}".into()),
        }
    });
    let url = format!("http://alice:s3cr3t@127.0.0.1:{}", refusing.port);
    let run = ws.run(&cfg, &["--pushgateway", &url, "--pushgateway-grouping", "release=prod"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.all().contains("s3cr3t"), "{run:?}");
    let group = format!("http://127.0.0.1:{}/metrics/job/replicant/release/prod", refusing.port);
    assert!(
        run.stderr
            .contains(&format!("cannot push the metrics to {group}: HTTP 500")),
        "{run:?}"
    );
    let basic = |user: &str, password: &str| {
        use base64::Engine as _;
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ))
    };
    let sent = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter().all(|(_, _, auth)| *auth == basic("alice", "s3cr3t")),
        "{sent:?}"
    );
    assert_eq!(sent[1].1, "/metrics/job/replicant/release/prod");
    // from the environment and a file, as a Secret would give them
    std::fs::write(ws.path("pw"), "from-file\n").unwrap();
    let mut cmd = ws.command();
    cmd.arg("-c")
        .arg(&cfg)
        .env("REPLICANT_PUSHGATEWAY", format!("http://127.0.0.1:{}", refusing.port))
        .env("REPLICANT_PUSHGATEWAY_USERNAME", "bob")
        .env("REPLICANT_PUSHGATEWAY_PASSWORD_FILE", ws.path("pw"));
    let run = output(cmd.output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
    assert!(!run.all().contains("from-file"), "{run:?}");
    let sent = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        sent.iter().all(|(_, _, auth)| *auth == basic("bob", "from-file")),
        "{sent:?}"
    );
    // a grouping that would collide with job or shard is a usage error
    let run = ws.run(&cfg, &["--pushgateway", &url, "--pushgateway-grouping", "job=x"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("--pushgateway-grouping"), "{run:?}");

    // two releases on one real gateway: a failing one cannot hide behind,
    // or overwrite, a healthy one
    let gateway = Pushgateway::start();
    let run = ws.run(
        &cfg,
        &["--pushgateway", &gateway.url(), "--pushgateway-grouping", "release=a"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let bad = ghost_config(&ws, &src, &dst);
    let run = ws.run(
        &bad,
        &["--pushgateway", &gateway.url(), "--pushgateway-grouping", "release=b"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let m = samples(&gateway.metrics());
    assert_eq!(
        m["replicant_run_exit_code{instance=\"\",job=\"replicant\",release=\"a\"}"], 0.0,
        "{m:?}"
    );
    assert_eq!(
        m["replicant_run_exit_code{instance=\"\",job=\"replicant\",release=\"b\"}"], 1.0,
        "{m:?}"
    );
    assert!(m.contains_key("replicant_last_success_timestamp_seconds{instance=\"\",job=\"replicant\",release=\"a\"}"));
    assert_eq!(
        m["replicant_last_success_timestamp_seconds{instance=\"\",job=\"replicant\",release=\"b\"}"], 0.0,
        "release b never succeeded: {m:?}"
    );
}

/// `promtool ARGS` in `dir`: whether it passed, and what it said.
pub fn promtool(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(tool("PROMTOOL", "promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The alert rules of docs/metrics.md.
pub fn documented_alerts() -> String {
    let doc = std::fs::read_to_string(testkit::container::repo_root().join("docs/metrics.md")).unwrap();
    let start = doc.find("```yaml\ngroups:").expect("the alerts block") + "```yaml\n".len();
    doc[start..start + doc[start..].find("```").unwrap()].to_string()
}

#[test]
fn the_documented_alerts_are_valid_prometheus_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), documented_alerts()).unwrap();
    let (passed, said) = promtool(&["check", "rules", "rules.yml"], dir.path());
    assert!(passed, "{said}");
    assert!(said.contains("7 rules found"), "{said}");
}

/// What the alerts must do, as `promtool test rules` checks it: series as
/// replicant writes them, one sample a minute.
const ALERT_TESTS: &str = r#"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'replicant_last_success_timestamp_seconds{job="replicant"}'
        values: '0+0x1800'
      - series: 'replicant_last_run_timestamp_seconds{job="replicant"}'
        values: '0+60x1800'
      - series: 'replicant_image_last_success_timestamp_seconds{image="app"}'
        values: '0+0x1800'
      - series: 'replicant_image_last_success_timestamp_seconds{image="fine"}'
        values: '0+60x1800'
      - series: 'replicant_image_oldest_missing_age_seconds{image="app"}'
        values: '259200+0x1800'
      - series: 'replicant_image_oldest_missing_age_seconds{image="fresh"}'
        values: '3600+0x1800'
      - series: 'replicant_image_moved_tags{image="app",kind="version"}'
        values: '0+0x120 1+0x1700'
      - series: 'replicant_image_moved_tags{image="app",kind="other"}'
        values: '3+0x1800'
    alert_rule_test:
      - eval_time: 20h
        alertname: MirrorNotSucceeding
      - eval_time: 27h
        alertname: MirrorNotSucceeding
        exp_alerts:
          - exp_labels: { severity: warning, job: replicant }
            exp_annotations: { summary: "replicant has not succeeded for 1d 3h 0m 0s" }
      - eval_time: 27h
        alertname: MirrorImageFailing
        exp_alerts:
          - exp_labels: { image: app }
            exp_annotations: { summary: "image app has not been mirrored for a day" }
      - eval_time: 27h
        alertname: MirrorNotRunning
      - eval_time: 30m
        alertname: MirrorFallingBehind
      - eval_time: 5h
        alertname: MirrorFallingBehind
        exp_alerts:
          - exp_labels: { image: app }
            exp_annotations: { summary: "image app lacks a version made 3d 0h 0m 0s ago" }
      - eval_time: 1h
        alertname: MirrorVersionTagMoved
      - eval_time: 3h
        alertname: MirrorVersionTagMoved
        exp_alerts:
          - exp_labels: { severity: critical, image: app, kind: version }
            exp_annotations: { summary: "a release tag of app moved upstream; see the run's warning" }
"#;

#[test]
fn the_documented_alerts_fire_when_they_should_and_the_chart_ships_them_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yml"), documented_alerts()).unwrap();
    std::fs::write(dir.path().join("tests.yml"), ALERT_TESTS).unwrap();
    let (passed, said) = promtool(&["test", "rules", "tests.yml"], dir.path());
    assert!(passed, "{said}");
    // a rule that never fires would pass a test that expects nothing: the
    // same tests against rules that do not alert must fail
    let silent = documented_alerts().replace("> 2 * 86400", "> 2000 * 86400");
    std::fs::write(dir.path().join("rules.yml"), silent).unwrap();
    let (passed, _) = promtool(&["test", "rules", "tests.yml"], dir.path());
    assert!(!passed, "a silenced alert passed its test");
    let shipped =
        std::fs::read_to_string(testkit::container::repo_root().join("charts/replicant/files/alerts.yaml")).unwrap();
    let shipped: String = shipped
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        shipped,
        documented_alerts(),
        "charts/replicant/files/alerts.yaml differs from docs/metrics.md"
    );
}
