//! The benchmark: replicant against `skopeo sync --all` and `regsync once`
//! on the same machine,
//! in one run, alternating, each run into a fresh destination registry, every
//! result checked by comparing digests. Run it through `bench/run`, which
//! installs what it needs and builds release binaries first.
//!
//!     bench [--runs N] [--quick] [--only loopback|sweep|wan|resume|memory|threshold|patterns] [--before PATH] --replicant PATH --out BENCHMARKS.md
//!
//! `--only` runs one part (the loopback tables against skopeo, the sweep of
//! settings on loopback, the WAN tables, the resumable transfers; alone:
//! memory at the defaults, where chunked uploads start, fleet scale of a
//! repository pattern) and keeps the
//! others' from the file. `--before` is an earlier replicant, measured
//! beside this one in the resumable-transfers and memory parts.

mod patterns;
mod resume;
mod threshold;
mod wan;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::image::{Blob, Image};
use testkit::latency::LatencyProxy;
use testkit::{Auth, Format, ImageGen, Registry, TestClient};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Tool {
    Replicant,
    /// replicant comparing every tag's digest, as skopeo always does
    ReplicantReplaceTag,
    Skopeo,
    Regsync,
    CurlPipe,
}

/// The peers replicant is measured against (the curl pipe is the raw limit,
/// not a peer).
const PEERS: [Tool; 2] = [Tool::Skopeo, Tool::Regsync];

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Replicant => "replicant",
            Tool::ReplicantReplaceTag => "replicant, `replace-tag: true`",
            Tool::Skopeo => "skopeo sync --all --preserve-digests",
            Tool::Regsync => "regsync once (`parallel`: every repository at once)",
            Tool::CurlPipe => "curl GET | curl PUT",
        }
    }
}

/// What one run of a tool cost.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: i64,
}

struct Args {
    replicant: PathBuf,
    out: PathBuf,
    runs: usize,
    quick: bool,
    only: Option<String>,
    /// replicant before resumable transfers, for the resume section.
    before: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        replicant: "target/release/replicant".into(),
        out: "BENCHMARKS.md".into(),
        runs: 3,
        quick: false,
        only: None,
        before: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--replicant" => args.replicant = it.next().expect("--replicant PATH").into(),
            "--out" => args.out = it.next().expect("--out PATH").into(),
            "--runs" => args.runs = it.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            "--quick" => args.quick = true,
            "--only" => {
                args.only = Some(
                    it.next()
                        .expect("--only loopback|sweep|wan|resume|memory|threshold|patterns"),
                )
            }
            "--before" => args.before = Some(it.next().expect("--before PATH").into()),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// Runs a command: wall time, CPU time (wait4, the child and what it
/// waited for) and peak RSS. The peak is the child's own `VmHWM`, polled
/// while it runs: wait4's `ru_maxrss` would include the memory this forking
/// process had.
fn measure(cmd: &mut Command) -> (Sample, bool) {
    let started = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below
    let child = cmd.spawn().expect("spawn");
    let pid = child.id();
    let peak = testkit::measure::PeakRss::watch(pid);
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with pointers to locals.
    unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    let peak_rss_kib = peak.stop();
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (
        Sample {
            wall,
            cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
            peak_rss_kib,
        },
        ok,
    )
}

/// One dataset: repositories (paths) in the source registry.
struct Dataset {
    name: &'static str,
    repos: Vec<String>,
    unique_bytes: u64,
}

fn push_all(client: &TestClient, repo: &str, images: &[(String, Image)]) {
    for (tag, image) in images {
        client.push_image(repo, image, tag);
    }
}

fn realistic(g: &mut ImageGen, client: &TestClient, quick: bool) -> Dataset {
    let mut unique = 0u64;
    // a pool of base layers (1-20 MiB) shared across tags and repositories
    let pool: Vec<Blob> = (0..10u64)
        .map(|i| g.layer(Format::Oci, ((1 + i * 2) << 20) as usize))
        .collect();
    unique += pool.iter().map(|b| b.data.len() as u64).sum::<u64>();
    let tags = if quick { 4 } else { 20 };
    let mut repos = Vec::new();
    for r in 0..3usize {
        let repo = format!("bench/realistic-{r}");
        for t in 0..tags {
            let children: Vec<Image> = ["amd64", "arm64", "s390x"]
                .iter()
                .enumerate()
                .map(|(p, arch)| {
                    let base = [pool[(r + p) % 10].clone(), pool[(r + p + t) % 10].clone()];
                    let own = (1 + (r * 7 + t * 3 + p * 5) % 10) << 20;
                    unique += own as u64;
                    g.image(Format::Oci, &[own], &base, ("linux", arch))
                })
                .collect();
            let index = g.index(Format::Oci, children);
            push_all(client, &repo, &[(format!("1.{t}.0"), index)]);
        }
        repos.push(repo);
    }
    Dataset {
        name: "realistic",
        repos,
        unique_bytes: unique,
    }
}

fn many_small(g: &mut ImageGen, client: &TestClient, quick: bool) -> Dataset {
    let base = vec![g.layer(Format::Oci, 30 * 1024)];
    let mut unique = 30 * 1024;
    let tags = if quick { 40 } else { 200 };
    for t in 0..tags {
        let children = ["amd64", "arm64"]
            .iter()
            .map(|arch| {
                let own = (10 + (t * 7) % 40) * 1024;
                unique += own as u64;
                g.image(Format::Oci, &[own], &base, ("linux", arch))
            })
            .collect();
        let index = g.index(Format::Oci, children);
        client.push_image("bench/small", &index, &format!("0.{t}.0"));
    }
    Dataset {
        name: "many small",
        repos: vec!["bench/small".into()],
        unique_bytes: unique,
    }
}

/// One layer of `size` bytes, written to a file and pushed from it.
fn one_big(client: &TestClient, dir: &Path, size: u64) -> (Dataset, String) {
    let digest = client.push_big_layer_image("bench/big", "1.0.0", size, dir);
    let data = Dataset {
        name: "one big layer",
        repos: vec!["bench/big".into()],
        unique_bytes: size,
    };
    (data, digest)
}

/// Where a source repository lands: `mirror/<last path component>`, which
/// is what `skopeo sync` does (it drops the namespace).
fn mirror_of(repo: &str) -> String {
    format!("mirror/{}", repo.rsplit('/').next().unwrap_or(repo))
}

/// Every tag of every repository has the source's digest in its mirror.
fn verify(src: &TestClient, dst: &TestClient, data: &Dataset) -> Result<usize, String> {
    let mut checked = 0;
    for repo in &data.repos {
        let tags = src.tags(repo);
        let mirror = mirror_of(repo);
        if dst.tags(&mirror) != tags {
            return Err(format!("{mirror}: tags differ"));
        }
        for tag in &tags {
            if dst.digest(&mirror, tag) != src.digest(repo, tag) {
                return Err(format!("{mirror}:{tag}: digest differs"));
            }
            checked += dst.assert_complete(&mirror, tag);
        }
    }
    Ok(checked)
}

struct Bench {
    args: Args,
    work: tempfile::TempDir,
    src: Registry,
    sc: TestClient,
}

/// The `images:` part of a replicant config copying every repository of
/// `data` from `src` to its mirror in `dst` (comparing every tag's digest
/// when `replace_tag`).
fn images_yaml(data: &Dataset, src: &str, dst: &str, replace_tag: bool) -> String {
    let mut yaml = String::from("images:\n");
    for repo in &data.repos {
        let _ = writeln!(
            yaml,
            "  {repo}:\n    source: {src}/{repo}\n    destination: {dst}/{}",
            mirror_of(repo)
        );
        if replace_tag {
            yaml.push_str("    replace-tag: true\n");
        }
    }
    yaml
}

/// `regsync once` with every repository a sync entry into its mirror, all
/// run at once (`defaults.parallel`: regsync's one setting for concurrency
/// between entries), requests per registry at regclient's default
/// (`reqConcurrent` 3); plain HTTP at both ends.
fn regsync_once(work: &Path, src: &str, dst: &str, repos: &[String]) -> Command {
    let mut yaml = format!(
        "version: 1\ncreds:\n  - registry: {src}\n    tls: disabled\n  - registry: {dst}\n    tls: disabled\ndefaults:\n  parallel: {}\nsync:\n",
        repos.len()
    );
    for repo in repos {
        let _ = writeln!(
            yaml,
            "  - source: {src}/{repo}\n    target: {dst}/{}\n    type: repository",
            mirror_of(repo)
        );
    }
    let file = work.join("regsync.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut cmd = Command::new(testkit::tools::tool("REGSYNC", "regsync"));
    cmd.args(["once", "-c"])
        .arg(file)
        .env("HOME", work)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// `skopeo sync --all --preserve-digests` of a sync file into `dest`.
fn skopeo_sync(work: &Path, file: &Path, dest: &str) -> Command {
    let policy = work.join("policy.json");
    std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
    let mut cmd = Command::new("skopeo");
    cmd.arg("--policy")
        .arg(policy)
        .args([
            "sync",
            "--all",
            "--preserve-digests",
            "--src",
            "yaml",
            "--dest",
            "docker",
        ])
        .arg(file)
        .arg(dest)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

impl Bench {
    fn replicant(&self, data: &Dataset, dst: &Registry) -> Command {
        self.replicant_with(data, dst, false)
    }

    /// replicant, comparing every tag's digest when `replace_tag`.
    fn replicant_with(&self, data: &Dataset, dst: &Registry, replace_tag: bool) -> Command {
        self.replicant_binary(&self.args.replicant, data, dst, replace_tag)
    }

    fn replicant_binary(&self, binary: &Path, data: &Dataset, dst: &Registry, replace_tag: bool) -> Command {
        self.replicant_between(binary, data, &self.src.host(), &dst.host(), replace_tag)
    }

    /// `binary` from the registry at `src` to the one at `dst` (`host:port`).
    fn replicant_between(&self, binary: &Path, data: &Dataset, src: &str, dst: &str, replace_tag: bool) -> Command {
        let yaml = format!("mode: all\n{}", images_yaml(data, src, dst, replace_tag));
        let cfg = self.work.path().join("replicant.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        // BENCH_WRAP="heaptrack -o DIR/run" runs replicant under a profiler
        // (its peak RSS is then the profiler's too)
        let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut cmd = Command::new(program);
                cmd.args(words).arg(binary);
                cmd
            }
            None => Command::new(binary),
        };
        cmd.arg("-c")
            .arg(cfg)
            .env("DOCKER_CONFIG", self.work.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn skopeo(&self, data: &Dataset, dst: &Registry) -> Command {
        let mut yaml = format!("{}:\n  tls-verify: false\n  images-by-tag-regex:\n", self.src.host());
        for repo in &data.repos {
            let _ = writeln!(yaml, "    {repo}: \".*\"");
        }
        let src_file = self.work.path().join("skopeo-sync.yaml");
        std::fs::write(&src_file, yaml).unwrap();
        let mut cmd = skopeo_sync(self.work.path(), &src_file, &format!("{}/mirror", dst.host()));
        cmd.arg("--dest-tls-verify=false");
        cmd
    }

    /// `regsync once` over `data` into `dst` (see [`regsync_once`]).
    fn regsync(&self, data: &Dataset, dst: &Registry) -> Command {
        regsync_once(self.work.path(), &self.src.host(), &dst.host(), &data.repos)
    }

    /// Alternates the tools, each run into a fresh destination registry. A
    /// peer that fails or leaves a wrong copy is noted (with why), not
    /// timed; replicant failing stops the benchmark.
    fn cold(&self, data: &Dataset, tools: &[Tool], raw: Option<&str>) -> (BTreeMap<Tool, Vec<Sample>>, Failures) {
        let mut out: BTreeMap<Tool, Vec<Sample>> = BTreeMap::new();
        let mut failed = Failures::new();
        for run in 0..self.args.runs {
            for &tool in tools {
                if failed.contains_key(&tool) {
                    continue;
                }
                let dst = Registry::start(Auth::None);
                let (sample, ok) = match tool {
                    Tool::Replicant => measure(&mut self.replicant(data, &dst)),
                    Tool::ReplicantReplaceTag => measure(&mut self.replicant_with(data, &dst, true)),
                    Tool::Skopeo => measure(&mut self.skopeo(data, &dst)),
                    Tool::Regsync => measure(&mut self.regsync(data, &dst)),
                    Tool::CurlPipe => measure(&mut self.curl_pipe(&dst, raw.expect("digest"))),
                };
                let checked = match (ok, tool) {
                    (false, Tool::Skopeo | Tool::Regsync) => Err("exited with an error".to_string()),
                    (false, _) => panic!("{} failed on {}", tool.name(), data.name),
                    (true, Tool::CurlPipe) => Ok(0),
                    (true, _) => verify(&self.sc, &TestClient::new(&dst.host(), None), data),
                };
                let checked = match checked {
                    Ok(n) => n,
                    Err(e) if PEERS.contains(&tool) => {
                        eprintln!("  run {run}: {} on {}: {e}", tool.name(), data.name);
                        failed.insert(tool, e);
                        continue;
                    }
                    Err(e) => panic!("{} on {}: {e}", tool.name(), data.name),
                };
                if tool != Tool::CurlPipe {
                    eprintln!(
                        "  run {run}: {:<22} {:>8.2} s  ({checked} objects verified)",
                        tool.name(),
                        sample.wall.as_secs_f64()
                    );
                } else {
                    eprintln!("  run {run}: {:<22} {:>8.2} s", tool.name(), sample.wall.as_secs_f64());
                }
                out.entry(tool).or_default().push(sample);
            }
        }
        (out, failed)
    }

    /// The raw limit: the blob streamed from one registry into the other by curl.
    fn curl_pipe(&self, dst: &Registry, digest: &str) -> Command {
        testkit::crypto();
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/v2/{}/blobs/uploads/", dst.url(), mirror_of("bench/big")))
            .send()
            .unwrap();
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        let mut put = reqwest::Url::parse(&dst.url()).unwrap().join(&loc).unwrap();
        put.query_pairs_mut().append_pair("digest", digest);
        let script = format!(
            "curl -sSf {}/v2/bench/big/blobs/{digest} | curl -sSf -X PUT -H 'Content-Type: application/octet-stream' -T - '{put}'",
            self.src.url()
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).stdout(Stdio::null());
        cmd
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn summary(samples: &[Sample]) -> (f64, f64, i64) {
    let wall = median(samples.iter().map(|s| s.wall.as_secs_f64()).collect());
    let cpu = median(samples.iter().map(|s| s.cpu.as_secs_f64()).collect());
    let rss = samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
    (wall, cpu, rss)
}

/// Requests by "METHOD kind".
type Counts = BTreeMap<String, usize>;

/// Peers that failed on a dataset, with why.
type Failures = BTreeMap<Tool, String>;

/// The fastest peer that did not fail, and its median wall time.
fn best_peer(results: &BTreeMap<Tool, Vec<Sample>>) -> Option<(Tool, f64)> {
    PEERS
        .iter()
        .filter_map(|p| results.get(p).map(|s| (*p, summary(s).0)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

fn requests_by_kind(reg: &Registry, from: usize) -> Counts {
    let mut out = BTreeMap::new();
    for line in reg.log().lines().skip(from) {
        let Some(req) = line.split_once('"').and_then(|(_, r)| r.split(" HTTP/").next()) else {
            continue;
        };
        let Some((method, path)) = req.split_once(' ') else {
            continue;
        };
        if !path.starts_with("/v2/") {
            continue;
        }
        let kind = if path == "/v2/" {
            "ping"
        } else if path.starts_with("/v2/_catalog") {
            "catalog page"
        } else if path.contains("/tags/list") {
            "tag list"
        } else if path.contains("/manifests/") {
            "manifest"
        } else if path.contains("/blobs/") {
            "blob"
        } else {
            "other"
        };
        *out.entry(format!("{method} {kind}")).or_default() += 1;
    }
    out
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(|_| "not found".into())
}

fn main() {
    let args = parse_args();
    let work = tempfile::tempdir().expect("tempdir");
    let src = Registry::start(Auth::None);
    let sc = TestClient::new(&src.host(), None);
    let bench = Bench { args, work, src, sc };
    let quick = bench.args.quick;
    let mut g = ImageGen::seeded(99);
    let previous = std::fs::read_to_string(&bench.args.out).unwrap_or_default();
    let only = bench.args.only.clone();
    let loopback = if only.as_deref().is_none_or(|o| o == "loopback") {
        bench.loopback(&mut g)
    } else {
        kept(&previous, "loopback")
    };
    // the WAN and loopback sweeps share their settings and CA
    let w = wan::Wan {
        replicant: &bench.args.replicant,
        work: bench.work.path(),
        runs: bench.args.runs,
        quick,
        src: &bench.src,
        sc: &bench.sc,
        ca: testkit::tls::TestCa::new(),
    };
    let wan = if only.as_deref().is_none_or(|o| o == "wan") {
        marked("wan", &wan::section(&w, &mut g))
    } else {
        kept(&previous, "wan")
    };
    let sweep = if only.as_deref().is_none_or(|o| o == "sweep") {
        marked("sweep", &wan::loopback_section(&w, &mut g))
    } else {
        kept(&previous, "sweep")
    };
    let resume = if only.as_deref().is_none_or(|o| o == "resume") {
        let r = resume::Resume {
            replicant: &bench.args.replicant,
            before: bench.args.before.as_deref(),
            work: bench.work.path(),
            quick,
            runs: bench.args.runs,
        };
        marked("resume", &resume::section(&r))
    } else {
        kept(&previous, "resume")
    };
    // the parts run only when asked for alone
    let alone = |name: &str, make: &mut dyn FnMut() -> String| {
        if only.as_deref() == Some(name) {
            marked(name, &make())
        } else {
            kept(&previous, name)
        }
    };
    let memory = alone("memory", &mut || bench.memory(&mut g));
    let threshold = alone("threshold", &mut || {
        threshold::section(&threshold::Threshold {
            quick,
            runs: bench.args.runs,
        })
    });
    let fleet = alone("patterns", &mut || {
        let p = patterns::Patterns {
            replicant: &bench.args.replicant,
            work: bench.work.path(),
            quick,
        };
        patterns::section(&p, &mut g)
    });
    let mut md = format!("{loopback}\n{sweep}\n{wan}\n{resume}");
    for part in [memory, threshold, fleet] {
        if !part.is_empty() {
            let _ = writeln!(md, "\n{part}");
        }
    }
    // sections other scripts write (bench/build-time) stay
    let build = kept(&previous, "build-time");
    if !build.is_empty() {
        let _ = writeln!(md, "\n{build}");
    }
    println!("{md}");
    std::fs::write(&bench.args.out, md).expect("write the report");
    eprintln!("written to {}", bench.args.out.display());
}

/// A section between `<!-- NAME:start -->` and `<!-- NAME:end -->`.
fn marked(name: &str, text: &str) -> String {
    format!("<!-- {name}:start -->\n{}\n<!-- {name}:end -->", text.trim_end())
}

/// The marked section `name` of a previous report (empty if none).
fn kept(previous: &str, name: &str) -> String {
    let (start, end) = (format!("<!-- {name}:start -->"), format!("<!-- {name}:end -->"));
    match (previous.find(&start), previous.find(&end)) {
        (Some(a), Some(b)) if a < b => previous[a..b + end.len()].to_string(),
        _ => String::new(),
    }
}

impl Bench {
    /// Peak RSS and wall time of replicant at its defaults on the realistic
    /// set (and of the earlier replicant, `--before`), alternating, each run
    /// into a fresh registry, on loopback and over a 20 ms link (both
    /// registries behind a `LatencyProxy`); run alone (`--only memory`).
    fn memory(&self, g: &mut ImageGen) -> String {
        let data = realistic(g, &self.sc, self.args.quick);
        let mut binaries = vec![("replicant", self.args.replicant.clone())];
        if let Some(before) = &self.args.before {
            binaries.push(("replicant before", before.clone()));
        }
        let links = [
            ("loopback", Duration::ZERO),
            ("20 ms one way", Duration::from_millis(20)),
        ];
        let mut samples: BTreeMap<(&str, &str), Vec<Sample>> = BTreeMap::new();
        for run in 0..self.args.runs {
            for (link, delay) in links {
                for (name, binary) in &binaries {
                    let dst = Registry::start(Auth::None);
                    let (src_hop, dst_hop) = if delay.is_zero() {
                        (None, None)
                    } else {
                        (
                            Some(LatencyProxy::start(&self.src.host(), delay)),
                            Some(LatencyProxy::start(&dst.host(), delay)),
                        )
                    };
                    let host = |hop: &Option<LatencyProxy>, direct: String| hop.as_ref().map_or(direct, |p| p.host());
                    let (src, to) = (host(&src_hop, self.src.host()), host(&dst_hop, dst.host()));
                    let (sample, ok) = measure(&mut self.replicant_between(binary, &data, &src, &to, false));
                    let verified = verify(&self.sc, &TestClient::new(&dst.host(), None), &data);
                    assert!(ok && verified.is_ok(), "{name} on {} ({link}): {verified:?}", data.name);
                    eprintln!(
                        "  run {run}: {link:<14} {name:<18} {:>7.2} s {:>6} MiB",
                        sample.wall.as_secs_f64(),
                        sample.peak_rss_kib / 1024
                    );
                    samples.entry((link, name)).or_default().push(sample);
                }
            }
        }
        let mut md = String::new();
        let _ = writeln!(md, "## Memory at the defaults\n");
        let _ = writeln!(
            md,
            "Made by `bench/run --only memory{}`: the realistic set ({} MiB unique), replicant with its defaults, \
             {} runs alternating, each into a fresh registry, every copy verified; on loopback, and with both \
             registries behind testkit's `LatencyProxy` (20 ms each way, no bandwidth cap). Peak RSS is the \
             largest of the runs, wall time the median.\n",
            if self.args.before.is_some() {
                " --before REV"
            } else {
                ""
            },
            data.unique_bytes >> 20,
            self.args.runs
        );
        let _ = writeln!(
            md,
            "| link | replicant | wall (s) | CPU (s) | peak RSS (MiB) | each run's peak (MiB) |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---|");
        for (link, _) in links {
            for (name, _) in &binaries {
                let runs = &samples[&(link, *name)];
                let (wall, cpu, rss) = summary(runs);
                let each: Vec<String> = runs.iter().map(|s| (s.peak_rss_kib / 1024).to_string()).collect();
                let _ = writeln!(
                    md,
                    "| {link} | {name} | {wall:.2} | {cpu:.2} | {} | {} |",
                    rss / 1024,
                    each.join(", ")
                );
            }
        }
        md
    }

    /// The loopback tables: every dataset, then the no-op passes.
    fn loopback(&self, g: &mut ImageGen) -> String {
        let bench = self;
        let quick = bench.args.quick;
        eprintln!("generating datasets in the source registry...");
        let real = realistic(g, &bench.sc, quick);
        let small = many_small(g, &bench.sc, quick);
        let big_size = if quick { 256 << 20 } else { 1 << 30 };
        let (big, big_digest) = one_big(&bench.sc, bench.work.path(), big_size);

        let mut md = String::new();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_default();
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Made by `bench/run{}{}` on {}.\n",
            if quick { " --quick" } else { "" },
            bench
                .args
                .only
                .as_deref()
                .map(|o| format!(" --only {o}"))
                .unwrap_or_default(),
            command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        );
        let _ = writeln!(
            md,
            "Machine: {} cores ({cpu}), {} GiB memory; `{}`; skopeo: `{}`; regsync: `{}`; registry: `{}` (filesystem storage, loopback, plain HTTP).\n",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            command_output("awk", &["/MemTotal/ {printf \"%d\", $2/1048576}", "/proc/meminfo"]),
            command_output("uname", &["-sr"]),
            command_output("skopeo", &["--version"]),
            regsync_version(),
            command_output("docker-registry", &["--version"]),
        );
        let _ = writeln!(
            md,
            "Each tool runs {} times per dataset, alternating, each run into a fresh destination registry; every run is checked by comparing every tag's digest and walking the destination tree. Times are medians, peak RSS the largest seen. replicant runs with its defaults; skopeo as `sync --all --preserve-digests`; regsync as `regsync once` with every repository a sync entry and `defaults.parallel` set to their number (all at once: its one setting for concurrency between entries; requests per registry stay at regclient's default `reqConcurrent` of 3). The ratio is replicant's wall time over the best peer's in that row (the fastest of skopeo and regsync that copied correctly). The source and destination registries run on the same 2 cores as the tools, so ratios, not absolute times, are the result.\n",
            bench.args.runs
        );
        let _ = writeln!(
            md,
            "| dataset | tool | wall (s) | CPU (s) | peak RSS (MiB) | wall ratio replicant / reference |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");

        for (data, tools) in [
            (&real, vec![Tool::Replicant, Tool::Skopeo, Tool::Regsync]),
            (&small, vec![Tool::Replicant, Tool::Skopeo, Tool::Regsync]),
            (&big, vec![Tool::Replicant, Tool::Skopeo, Tool::Regsync, Tool::CurlPipe]),
        ] {
            eprintln!("{} ({} MiB unique):", data.name, data.unique_bytes >> 20);
            let (results, failed) = bench.cold(data, &tools, Some(&big_digest));
            let best = best_peer(&results);
            for (tool, samples) in &results {
                let (wall, cpu, rss) = summary(samples);
                let mut ratio = String::new();
                if *tool == Tool::Replicant {
                    if let Some((peer, peer_wall)) = best {
                        ratio = format!("**{:.2}** (vs {})", wall / peer_wall, peer.name().replace('|', "\\|"));
                    }
                    if let Some(raw) = results.get(&Tool::CurlPipe) {
                        let raw_wall = summary(raw).0;
                        ratio.push_str(&format!("; {:.2} vs the raw `curl` pipe", wall / raw_wall));
                    }
                }
                // the pipe's peak is the shell's, not curl's: not comparable
                let rss = if *tool == Tool::CurlPipe {
                    "n/a".to_string()
                } else {
                    format!("{:.1}", rss as f64 / 1024.0)
                };
                let _ = writeln!(
                    md,
                    "| {} ({} MiB) | {} | {wall:.2} | {cpu:.2} | {rss} | {ratio} |",
                    data.name,
                    data.unique_bytes >> 20,
                    tool.name().replace('|', "\\|"),
                );
            }
            for (tool, why) in &failed {
                let _ = writeln!(
                    md,
                    "| {} ({} MiB) | {} | failed: {why} | | | |",
                    data.name,
                    data.unique_bytes >> 20,
                    tool.name()
                );
            }
        }

        // the no-op pass: a second pass over the realistic set, nothing changed
        eprintln!("no-op pass over the realistic set:");
        let mut noop: BTreeMap<Tool, Vec<Sample>> = BTreeMap::new();
        let mut counts: BTreeMap<Tool, (Counts, Counts)> = BTreeMap::new();
        let command = |tool: Tool, dst: &Registry| match tool {
            Tool::ReplicantReplaceTag => bench.replicant_with(&real, dst, true),
            Tool::Skopeo => bench.skopeo(&real, dst),
            Tool::Regsync => bench.regsync(&real, dst),
            _ => bench.replicant(&real, dst),
        };
        for &tool in &[Tool::Replicant, Tool::ReplicantReplaceTag, Tool::Skopeo, Tool::Regsync] {
            let dst = Registry::start(Auth::None);
            assert!(measure(&mut command(tool, &dst)).1, "first pass failed");
            for run in 0..bench.args.runs {
                let (s0, d0) = (bench.src.log().lines().count(), dst.log().lines().count());
                let mut cmd = command(tool, &dst);
                let (sample, ok) = measure(&mut cmd);
                assert!(ok, "no-op pass of {} failed", tool.name());
                // count before checking: the check makes requests of its own
                counts.insert(tool, (requests_by_kind(&bench.src, s0), requests_by_kind(&dst, d0)));
                verify(&bench.sc, &TestClient::new(&dst.host(), None), &real).expect("no-op result");
                eprintln!("  run {run}: {:<22} {:>8.2} s", tool.name(), sample.wall.as_secs_f64());
                noop.entry(tool).or_default().push(sample);
            }
        }
        let best = best_peer(&noop);
        for (tool, samples) in &noop {
            let (wall, cpu, rss) = summary(samples);
            let ratio = match best {
                Some((peer, peer_wall)) if !PEERS.contains(tool) => {
                    format!("**{:.2}** (vs {})", wall / peer_wall, peer.name())
                }
                _ => String::new(),
            };
            let _ = writeln!(
                md,
                "| no-op pass (realistic) | {} | {wall:.2} | {cpu:.2} | {:.1} | {ratio} |",
                tool.name(),
                rss as f64 / 1024.0
            );
        }
        let _ = writeln!(
            md,
            "\nRequests in one no-op pass, from the registries' access logs (method and kind):\n"
        );
        let _ = writeln!(md, "| tool | source registry | destination registry |");
        let _ = writeln!(md, "|---|---|---|");
        for (tool, (s, d)) in &counts {
            let fmt = |m: &BTreeMap<String, usize>| {
                m.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(md, "| {} | {} | {} |", tool.name(), fmt(s), fmt(d));
        }
        marked("loopback", &md)
    }
}

/// `regsync version`'s first line naming the version.
fn regsync_version() -> String {
    let program = testkit::tools::tool("REGSYNC", "regsync");
    Command::new(program)
        .arg("version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.contains("VCSTag") || l.contains("Version"))
                .unwrap_or_default()
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(|_| "not found".into())
}
