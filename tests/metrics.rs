//! Prometheus metrics of a run: the textfile-collector file checked by a
//! real `promtool check metrics`, and a push to a real Pushgateway read
//! back from its /metrics. Last successes survive a failed run.

mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;
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

#[test]
fn the_metrics_file_passes_promtool_and_keeps_the_last_success() {
    let (src, dst, _) = pair();
    let ws = Workspace::new();
    let file = ws.path("replicant.prom");
    let good = ws.write_config(&format!(
        "mode: semver\nimages:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n",
        src.host(),
        dst.host()
    ));
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
    assert!(!m.contains_key("replicant_image_last_success_timestamp_seconds{image=\"ghost\"}"));
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
    let cfg = ws.write_config(&format!(
        "mode: semver\nimages:\n  app:\n    source: {}/team/app\n    destination: {}/mirror/app\n",
        src.host(),
        dst.host()
    ));
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
    let bad = ws.path("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "images:\n  ghost:\n    source: {}/team/ghost\n    destination: {}/mirror/ghost\n",
            src.host(),
            dst.host()
        ),
    )
    .unwrap();
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
fn the_documented_alerts_are_valid_prometheus_rules() {
    let doc = std::fs::read_to_string(testkit::container::repo_root().join("docs/metrics.md")).unwrap();
    let start = doc.find("```yaml\ngroups:").expect("the alerts block") + "```yaml\n".len();
    let rules = &doc[start..start + doc[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yml");
    std::fs::write(&file, rules).unwrap();
    let out = Command::new(tool("PROMTOOL", "promtool"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 rules found"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
