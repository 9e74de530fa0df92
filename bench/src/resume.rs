//! Resumable transfers: one large layer over the 20 ms link (a latency
//! proxy in front of each registry), once clean and once with the
//! connection cut twice on each side (at 30 % and 70 % of the blob read
//! from the source, at 40 % and 80 % of it sent to the destination). For
//! each tool: wall time, the bytes that crossed each side's link, peak RSS,
//! and whether the blob arrived whole. The destination is Distribution v3,
//! which keeps what arrived of a broken upload request.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::latency::{LatencyProxy, Way};
use testkit::{Auth, Implementation, Registry, TestClient};

use super::{Sample, measure};

pub struct Resume<'a> {
    pub replicant: &'a Path,
    /// replicant as it was before resumable transfers, when given.
    pub before: Option<&'a Path>,
    pub work: &'a Path,
    pub quick: bool,
    /// Rounds: each tool once per round, alternating.
    pub runs: usize,
}

const ONE_WAY: Duration = Duration::from_millis(20);

#[derive(Clone, Copy)]
enum Tool {
    Replicant,
    Before,
    Skopeo,
    CurlPipe,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Replicant => "replicant",
            Tool::Before => "replicant before (restarts from byte 0)",
            Tool::Skopeo => "skopeo copy",
            Tool::CurlPipe => "curl GET \\| curl PUT",
        }
    }
}

struct Row {
    cut: bool,
    tool: Tool,
    samples: Vec<Sample>,
    /// Bytes across each link, the largest of the runs.
    down: u64,
    up: u64,
    /// Runs in which the blob arrived whole.
    arrived: usize,
}

pub fn section(r: &Resume) -> String {
    let size: u64 = if r.quick { 256 << 20 } else { 2 << 30 };
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let layer = sc.push_big_layer_image("bench/huge", "1.0.0", size, r.work);
    let manifest = sc.digest("bench/huge", "1.0.0").expect("the source's manifest");
    let mut tools = vec![Tool::Replicant];
    if r.before.is_some() {
        tools.push(Tool::Before);
    }
    tools.extend([Tool::Skopeo, Tool::CurlPipe]);
    let mut rows: Vec<Row> = Vec::new();
    // BENCH_RESUME_CLEAN=1: the clean rows only (to compare builds quickly)
    let links: &[bool] = match std::env::var_os("BENCH_RESUME_CLEAN") {
        Some(_) => &[false],
        None => &[false, true],
    };
    for &cut in links {
        let first = rows.len();
        for _round in 0..r.runs {
            for (i, &tool) in tools.iter().enumerate() {
                let dst = Registry::start_implementation(Implementation::Distribution3);
                let far = LatencyProxy::start(&src.host(), ONE_WAY);
                let near = LatencyProxy::start(&dst.host(), ONE_WAY);
                if cut {
                    far.link.cut(Way::Down, &[size * 3 / 10, size * 7 / 10]);
                    near.link.cut(Way::Up, &[size * 4 / 10, size * 8 / 10]);
                }
                let mut cmd = command(r, tool, &far.host(), &near.host(), &layer);
                let (sample, ok) = measure(&mut cmd);
                let dc = TestClient::new(&dst.host(), None);
                let arrived = ok
                    && match tool {
                        Tool::CurlPipe => dc.blob_exists("mirror/huge", &layer),
                        _ => dc.digest("mirror/huge", "1.0.0").as_deref() == Some(manifest.as_str()),
                    };
                let (down, up) = (far.link.bytes(Way::Down), near.link.bytes(Way::Up));
                eprintln!(
                    "resume: {} {}: {:.1} s, {} MiB down, {} MiB up, {}",
                    if cut { "cut" } else { "clean" },
                    tool.label(),
                    sample.wall.as_secs_f64(),
                    down >> 20,
                    up >> 20,
                    if arrived { "arrived" } else { "failed" }
                );
                if rows.len() <= first + i {
                    rows.push(Row {
                        cut,
                        tool,
                        samples: Vec::new(),
                        down: 0,
                        up: 0,
                        arrived: 0,
                    });
                }
                let row = &mut rows[first + i];
                row.samples.push(sample);
                row.down = row.down.max(down);
                row.up = row.up.max(up);
                row.arrived += usize::from(arrived);
            }
        }
    }
    table(&rows, size)
}

fn command(r: &Resume, tool: Tool, src: &str, dst: &str, layer: &str) -> Command {
    match tool {
        Tool::Replicant | Tool::Before => {
            let yaml = format!("images:\n  huge:\n    source: {src}/bench/huge\n    destination: {dst}/mirror/huge\n");
            let cfg = r.work.join("resume.yaml");
            std::fs::write(&cfg, yaml).expect("write config");
            let binary = match tool {
                Tool::Before => r.before.expect("the earlier replicant"),
                _ => r.replicant,
            };
            let mut cmd = Command::new(binary);
            cmd.arg("-c")
                .arg(cfg)
                .env("DOCKER_CONFIG", r.work)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // BENCH_LOGS=DIR keeps each run's debug log there
            if let Some(dir) = std::env::var_os("BENCH_LOGS") {
                let name = format!(
                    "resume-{}-{}.log",
                    tool.label().split(' ').collect::<Vec<_>>().join("-"),
                    dst
                );
                let log = std::fs::File::create(Path::new(&dir).join(name)).expect("log file");
                cmd.arg("--debug").stderr(log);
            }
            cmd
        }
        Tool::Skopeo => {
            let mut cmd = Command::new("skopeo");
            cmd.args([
                "copy",
                "--all",
                "--preserve-digests",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg(format!("docker://{src}/bench/huge:1.0.0"))
            .arg(format!("docker://{dst}/mirror/huge:1.0.0"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            cmd
        }
        Tool::CurlPipe => {
            testkit::crypto();
            let resp = reqwest::blocking::Client::new()
                .post(format!("http://{dst}/v2/mirror/huge/blobs/uploads/"))
                .send()
                .expect("start an upload");
            let loc = resp.headers()["location"].to_str().expect("a location").to_string();
            let mut put = reqwest::Url::parse(&format!("http://{dst}/"))
                .and_then(|u| u.join(&loc))
                .expect("the upload's URL");
            put.query_pairs_mut().append_pair("digest", layer);
            let script = format!(
                "curl -sSf http://{src}/v2/bench/huge/blobs/{layer} | \
                 curl -sSf -X PUT -H 'Content-Type: application/octet-stream' -T - '{put}'"
            );
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(script).stdout(Stdio::null()).stderr(Stdio::null());
            cmd
        }
    }
}

fn table(rows: &[Row], size: u64) -> String {
    let runs = rows.first().map_or(0, |r| r.samples.len());
    let mut md = String::new();
    let _ = writeln!(md, "## Resumable transfers\n");
    let _ = writeln!(
        md,
        "Made by `bench/run --only resume --before REV`: one layer of {} MiB from a Distribution 2.8 source to a \
         Distribution v3 destination, each behind its own 20 ms one-way link (testkit's latency proxy, which also \
         counts the bytes that cross it and breaks the connection at a given byte). \"cut 2 + 2\": the connection \
         breaks at 30 % and 70 % of the blob read from the source and at 40 % and 80 % of it sent to the \
         destination. \"replicant before\" is the revision before resumable transfers (REV), which restarts a broken \
         blob from byte 0. {runs} rounds, each tool once per round, alternating, each into a fresh destination; wall \
         time is the median, bytes the most that crossed each link in a run (requests included) as a multiple of \
         the layer's size, peak RSS the largest.\n",
        size >> 20
    );
    let _ = writeln!(
        md,
        "| link | tool | wall (s) | vs replicant's clean run | read from the source | sent to the destination | peak RSS (MiB) | blob arrived |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---|");
    let median = |r: &Row| super::median(r.samples.iter().map(|s| s.wall.as_secs_f64()).collect());
    let base = rows
        .iter()
        .find(|r| !r.cut && matches!(r.tool, Tool::Replicant))
        .map(median);
    for r in rows {
        let wall = median(r);
        let vs = base.map_or(String::new(), |b| format!("{:.2}", wall / b));
        let peak = r.samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
        let _ = writeln!(
            md,
            "| {} | {} | {wall:.1} | {vs} | {:.2}× | {:.2}× | {} | {} of {} |",
            if r.cut { "cut 2 + 2" } else { "clean" },
            r.tool.label(),
            r.down as f64 / size as f64,
            r.up as f64 / size as f64,
            peak / 1024,
            r.arrived,
            r.samples.len()
        );
    }
    let _ = writeln!(md, "\nThe pipe's peak RSS is the shell's, not curl's.");
    md
}
