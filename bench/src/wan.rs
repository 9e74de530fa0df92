//! The wide-area benchmark: both registries behind a proxy that adds a
//! one-way delay in each direction (testkit's `LatencyProxy`: every round
//! trip costs 2 × delay, a new connection one more), over plain HTTP and
//! over TLS (HTTP/2 where offered: Distribution offers it over TLS).
//!
//! For each link, every dataset is copied with replicant's defaults and
//! with hand-tuned `--jobs`/`--max-connections` settings (the sweep),
//! alternating, each run into a fresh destination registry and checked by
//! digest. The peers run on the plain 20 ms link: skopeo in the first round
//! on the small-tags set (minutes per run), regsync in every round on the
//! small-tags set, the cold 1,000-image pass and the no-op passes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::latency::LatencyProxy;
use testkit::tls::TestCa;
use testkit::{Auth, Format, ImageGen, Registry, TestClient};

use super::{Dataset, Sample, measure, median, regsync_once, requests_by_kind, verify};

/// The hand-tuned settings tried beside the defaults: the old defaults
/// (`-j 4 --max-connections 8`), then more of both.
const SWEEP: [(u16, u16); 5] = [(4, 8), (16, 32), (32, 64), (128, 128), (256, 256)];

/// A way to run replicant: its defaults, or a setting of the sweep.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Setting {
    Defaults,
    Tuned(u16, u16),
}

impl Setting {
    fn label(self) -> String {
        match self {
            Setting::Defaults => "defaults".into(),
            Setting::Tuned(j, c) => format!("`-j {j} --max-connections {c}`"),
        }
    }

    fn flags(self) -> Vec<String> {
        match self {
            Setting::Defaults => Vec::new(),
            Setting::Tuned(j, c) => vec![
                "--jobs".into(),
                j.to_string(),
                "--max-connections".into(),
                c.to_string(),
            ],
        }
    }

    fn all() -> Vec<Setting> {
        let mut v = vec![Setting::Defaults];
        v.extend(SWEEP.iter().map(|&(j, c)| Setting::Tuned(j, c)));
        v
    }

    /// The sweep without the old defaults, which take minutes on 1,000
    /// images (they are shown on the smaller sets).
    fn without_old() -> Vec<Setting> {
        Setting::all()
            .into_iter()
            .filter(|s| *s != Setting::Tuned(4, 8))
            .collect()
    }
}

/// A peer measured beside replicant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    Skopeo,
    Regsync,
}

impl Peer {
    const LABELS: [&str; 2] = ["skopeo", "regsync"];

    fn label(self) -> &'static str {
        Self::LABELS[self as usize]
    }

    /// The command as the tables name it, with the settings it ran with.
    fn described(label: &str) -> Option<&'static str> {
        match label {
            "skopeo" => Some("skopeo sync --all --preserve-digests"),
            "regsync" => Some("regsync once (`parallel`: every repository at once)"),
            _ => None,
        }
    }

    /// skopeo takes minutes per run on a WAN: once; regsync every round.
    fn in_round(self, run: usize) -> bool {
        self == Peer::Regsync || run == 0
    }
}

/// What runs in one round: a setting of replicant's, or a peer.
#[derive(Clone, Copy, Debug)]
enum Runner {
    Replicant(Setting),
    Peer(Peer),
}

impl Runner {
    fn label(self) -> String {
        match self {
            Runner::Replicant(s) => s.label(),
            Runner::Peer(p) => p.label().into(),
        }
    }
}

/// One emulated link.
#[derive(Clone, Copy, Debug)]
struct Link {
    one_way_ms: u64,
    tls: bool,
}

impl Link {
    fn label(self) -> String {
        let wire = if self.tls { "TLS (HTTP/2)" } else { "plain HTTP/1.1" };
        if self.one_way_ms == 0 {
            return format!("loopback, no proxy, {wire}");
        }
        format!("{} ms one way, {wire}", self.one_way_ms)
    }

    /// What stands in front of a registry at `host` on this link: a latency
    /// proxy, or nothing on loopback; and the address to use.
    fn front(self, host: &str) -> (Option<LatencyProxy>, String) {
        if self.one_way_ms == 0 {
            return (None, host.to_string());
        }
        let proxy = LatencyProxy::start(host, self.delay());
        let front = proxy.host();
        (Some(proxy), front)
    }

    fn delay(self) -> Duration {
        Duration::from_millis(self.one_way_ms)
    }
}

/// A destination for one run: a fresh registry behind its own proxy.
struct Destination {
    registry: Registry,
    /// Kept for as long as the destination is used.
    _proxy: Option<LatencyProxy>,
    host: String,
}

pub struct Wan<'a> {
    pub replicant: &'a Path,
    pub work: &'a Path,
    pub runs: usize,
    pub quick: bool,
    pub src: &'a Registry,
    pub sc: &'a TestClient,
    pub ca: TestCa,
}

/// The 1,000-image set: `n` repositories of `tags` single-platform images
/// each, sharing one base layer, each with its own config and small layer.
pub fn fleet(g: &mut ImageGen, client: &TestClient, n: usize, tags: usize) -> Dataset {
    let base = vec![g.layer(Format::Oci, 20 * 1024)];
    let images: Vec<(String, String, testkit::Image)> = (0..n)
        .flat_map(|r| (0..tags).map(move |t| (r, t)))
        .map(|(r, t)| {
            let image = g.image(Format::Oci, &[1024 + r % 512], &base, ("linux", "amd64"));
            (format!("bench/fleet/app-{r:04}"), format!("1.{t}.0"), image)
        })
        .collect();
    // pushed from a few threads: 1,000 repositories one by one take long
    let chunk = images.len().div_ceil(4).max(1);
    std::thread::scope(|s| {
        for part in images.chunks(chunk) {
            s.spawn(move || {
                for (repo, tag, image) in part {
                    client.push_image(repo, image, tag);
                }
            });
        }
    });
    let unique = 20 * 1024
        + images
            .iter()
            .map(|(_, _, i)| i.all_blobs().iter().map(|b| b.data.len() as u64).sum::<u64>())
            .sum::<u64>();
    let mut repos: Vec<String> = images.into_iter().map(|(r, _, _)| r).collect();
    repos.dedup();
    Dataset {
        name: "fleet",
        repos,
        unique_bytes: unique,
    }
}

/// 3 repositories × `tags` tags × 2 platforms of small layers (the shape
/// measured in issue 13).
pub fn small_tags(g: &mut ImageGen, client: &TestClient, tags: usize) -> Dataset {
    let base = vec![g.layer(Format::Oci, 200 * 1024)];
    let mut unique = 200 * 1024;
    let mut repos = Vec::new();
    for r in 0..3 {
        let repo = format!("bench/wan-small-{r}");
        for t in 0..tags {
            let children = ["amd64", "arm64"]
                .iter()
                .map(|arch| {
                    let own = (64 + (r * 31 + t * 7) % 256) * 1024;
                    unique += own as u64;
                    g.image(Format::Oci, &[own, own / 2], &base, ("linux", arch))
                })
                .collect();
            let index = g.index(Format::Oci, children);
            client.push_image(&repo, &index, &format!("0.{t}.0"));
        }
        repos.push(repo);
    }
    Dataset {
        name: "small tags",
        repos,
        unique_bytes: unique,
    }
}

/// A subset of a dataset's repositories, as a dataset of its own.
fn first(data: &Dataset, n: usize, name: &'static str) -> Dataset {
    Dataset {
        name,
        repos: data.repos.iter().take(n).cloned().collect(),
        unique_bytes: 0,
    }
}

/// Results of one dataset on one link: samples by setting or peer, and the
/// peers that failed or left a wrong copy (with why).
#[derive(Default)]
struct Results {
    samples: BTreeMap<String, Vec<Sample>>,
    failed: BTreeMap<String, String>,
}

impl Wan<'_> {
    fn ca_file(&self) -> PathBuf {
        let path = self.work.join("wan-ca.pem");
        std::fs::write(&path, &self.ca.ca_pem).expect("write CA");
        path
    }

    fn destination(&self, link: Link) -> Destination {
        let registry = if link.tls {
            Registry::start_tls(Auth::None, &self.ca)
        } else {
            Registry::start(Auth::None)
        };
        let (proxy, host) = link.front(&registry.host());
        Destination {
            registry,
            _proxy: proxy,
            host,
        }
    }

    fn dst_client(&self, d: &Destination) -> TestClient {
        if d.registry.tls {
            TestClient::https(&d.registry.host(), &self.ca.ca_pem)
        } else {
            TestClient::new(&d.registry.host(), None)
        }
    }

    fn replicant(
        &self,
        data: &Dataset,
        src: &str,
        dst: &str,
        tls: bool,
        replace_tag: bool,
        setting: Setting,
    ) -> Command {
        let mut yaml = String::from("mode: all\n");
        if tls {
            let ca = self.ca_file();
            let _ = writeln!(yaml, "registries:");
            for host in [src, dst] {
                let _ = writeln!(yaml, "  \"{host}\":\n    tls: true\n    ca-file: {}", ca.display());
            }
        }
        yaml.push_str(&super::images_yaml(data, src, dst, replace_tag));
        let cfg = self.work.join("wan.yaml");
        std::fs::write(&cfg, yaml).expect("write config");
        let mut cmd = Command::new(self.replicant);
        cmd.arg("-c")
            .arg(cfg)
            .args(setting.flags())
            .env("DOCKER_CONFIG", self.work)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log()).expect("log file"));
        cmd
    }

    /// Where the last replicant run's log is (shown when a run fails).
    fn log(&self) -> PathBuf {
        self.work.join("wan-replicant.log")
    }

    fn failed(&self, what: &str) -> ! {
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("{what}; the end of its log:\n{}", tail.join("\n"));
    }

    fn skopeo(&self, data: &Dataset, src: &str, dst: &str, tls: bool) -> Command {
        let certs = self.work.join("wan-certs");
        std::fs::create_dir_all(&certs).expect("cert dir");
        std::fs::write(certs.join("ca.crt"), &self.ca.ca_pem).expect("write CA");
        let mut yaml = format!(
            "{src}:\n  tls-verify: {tls}\n  cert-dir: {}\n  images-by-tag-regex:\n",
            certs.display()
        );
        for repo in &data.repos {
            let _ = writeln!(yaml, "    {repo}: \".*\"");
        }
        let file = self.work.join("wan-skopeo.yaml");
        std::fs::write(&file, yaml).expect("write skopeo config");
        let mut cmd = super::skopeo_sync(self.work, &file, &format!("{dst}/mirror"));
        cmd.arg(format!("--dest-tls-verify={tls}"))
            .arg("--dest-cert-dir")
            .arg(&certs);
        cmd
    }

    /// The command of one run of `runner` copying `data` from `src` to `dst`.
    fn command(&self, runner: Runner, data: &Dataset, src: &str, dst: &str, tls: bool, replace_tag: bool) -> Command {
        match runner {
            Runner::Replicant(s) => self.replicant(data, src, dst, tls, replace_tag, s),
            Runner::Peer(Peer::Skopeo) => self.skopeo(data, src, dst, tls),
            Runner::Peer(Peer::Regsync) => {
                assert!(!tls, "regsync runs on plain links only");
                regsync_once(self.work, src, dst, &data.repos)
            }
        }
    }

    /// Cold copies of `data` over `link`: every setting and every peer
    /// (see [`Peer::in_round`]), alternating, `runs` rounds. A peer that
    /// fails or leaves a wrong copy is noted in the results, not timed.
    fn cold(
        &self,
        link: Link,
        src: &str,
        data: &Dataset,
        runs: usize,
        settings: &[Setting],
        peers: &[Peer],
    ) -> Results {
        let mut out = Results::default();
        for run in 0..runs {
            let mut runners: Vec<Runner> = settings.iter().copied().map(Runner::Replicant).collect();
            runners.extend(peers.iter().filter(|p| p.in_round(run)).map(|&p| Runner::Peer(p)));
            for runner in runners {
                let label = runner.label();
                if out.failed.contains_key(&label) {
                    continue;
                }
                let d = self.destination(link);
                let dst = d.host.clone();
                let (sample, ok) = measure(&mut self.command(runner, data, src, &dst, link.tls, false));
                let checked = match ok {
                    true => verify(self.sc, &self.dst_client(&d), data),
                    false => Err("exited with an error".to_string()),
                };
                let checked = match (checked, runner) {
                    (Ok(n), _) => n,
                    (Err(e), Runner::Peer(_)) => {
                        eprintln!("  {label} on {} over {}: {e}", data.name, link.label());
                        out.failed.insert(label, e);
                        continue;
                    }
                    (Err(e), Runner::Replicant(_)) if !ok => {
                        self.failed(&format!("{label} failed on {} over {}: {e}", data.name, link.label()))
                    }
                    (Err(e), Runner::Replicant(_)) => panic!("{label} on {} over {}: {e}", data.name, link.label()),
                };
                eprintln!(
                    "  {} / {} run {run}: {label:<34} {:>7.2} s ({checked} objects verified)",
                    link.label(),
                    data.name,
                    sample.wall.as_secs_f64()
                );
                out.samples.entry(label).or_default().push(sample);
            }
        }
        out
    }

    /// No-op passes of `data` over `link` into one destination that already
    /// has everything, without and with `replace-tag`: every setting and
    /// peer, two rounds; also the requests one pass of replicant's defaults
    /// and of each peer made of each registry. A peer has one no-op pass (it
    /// compares every tag's digest, as `replace-tag` does): its samples show
    /// in both tables.
    fn noop(
        &self,
        settings: &[Setting],
        peers: &[Peer],
        link: Link,
        src: &Registry,
        src_host: &str,
        data: &Dataset,
    ) -> ([Results; 2], Requests) {
        let d = self.destination(link);
        let dst = d.host.clone();
        if !measure(&mut self.replicant(data, src_host, &dst, link.tls, false, Setting::Defaults)).1 {
            self.failed("the first pass before the no-op passes failed");
        }
        let mut out = [Results::default(), Results::default()];
        let mut requests = Requests::new();
        let mut runners: Vec<(Runner, bool)> = settings
            .iter()
            .flat_map(|&s| [(Runner::Replicant(s), false), (Runner::Replicant(s), true)])
            .collect();
        runners.extend(peers.iter().map(|&p| (Runner::Peer(p), false)));
        for run in 0..self.runs.min(2) {
            for &(runner, replace_tag) in &runners {
                let label = runner.label();
                let (s0, d0) = (src.log().lines().count(), d.registry.log().lines().count());
                let (sample, ok) = measure(&mut self.command(runner, data, src_host, &dst, link.tls, replace_tag));
                if !ok {
                    self.failed(&format!("no-op pass with {label} failed"));
                }
                if !replace_tag && matches!(runner, Runner::Replicant(Setting::Defaults) | Runner::Peer(_)) {
                    let count = |m: BTreeMap<String, usize>| m.values().sum::<usize>();
                    let made = (
                        count(requests_by_kind(src, s0)),
                        count(requests_by_kind(&d.registry, d0)),
                    );
                    requests.insert(label.clone(), made);
                }
                eprintln!(
                    "  {} / no-op{} {} run {run}: {label:<34} {:>7.2} s",
                    link.label(),
                    if replace_tag { " (replace-tag)" } else { "" },
                    data.name,
                    sample.wall.as_secs_f64()
                );
                let tables: &[usize] = match runner {
                    Runner::Peer(_) => &[0, 1],
                    Runner::Replicant(_) => &[usize::from(replace_tag)],
                };
                for &t in tables {
                    out[t].samples.entry(label.clone()).or_default().push(sample);
                }
            }
        }
        verify(self.sc, &self.dst_client(&d), data).expect("no-op result");
        (out, requests)
    }
}

/// Requests one no-op pass made, by who made it: (to the source, to the
/// destination).
type Requests = BTreeMap<String, (usize, usize)>;

/// What one dataset on one link says in the summary: the defaults' wall
/// time over the best setting's, and over the best peer's where one ran.
struct Headline {
    what: String,
    link: Link,
    vs_best: f64,
    vs_peer: Option<(f64, &'static str)>,
}

/// One table row per setting and peer: median wall, peak RSS, and the ratio
/// to the best setting of replicant's; a failed peer says why.
fn rows(md: &mut String, what: &str, link: Link, results: &Results) -> Headline {
    let walls: BTreeMap<&String, f64> = results
        .samples
        .iter()
        .map(|(k, v)| (k, median(v.iter().map(|s| s.wall.as_secs_f64()).collect())))
        .collect();
    let best = walls
        .iter()
        .filter(|(k, _)| Peer::described(k).is_none())
        .map(|(_, w)| *w)
        .fold(f64::INFINITY, f64::min);
    let defaults = walls.get(&"defaults".to_string()).copied().unwrap_or(f64::NAN);
    let best_peer = Peer::LABELS
        .iter()
        .filter_map(|&p| walls.get(&p.to_string()).map(|&w| (w, p)))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    // rows in sweep order, the defaults first, the peers last
    let mut order: Vec<String> = Setting::all().into_iter().map(Setting::label).collect();
    order.extend(Peer::LABELS.iter().map(|p| p.to_string()));
    for label in order.iter().filter(|l| results.samples.contains_key(*l)) {
        let samples = &results.samples[label];
        let wall = walls[label];
        let rss = samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
        let ratio = wall / best;
        let shown = if label == "defaults" {
            format!("**{ratio:.2}**")
        } else {
            format!("{ratio:.2}")
        };
        let tool = Peer::described(label).map_or_else(|| format!("replicant {label}"), str::to_string);
        let _ = writeln!(
            md,
            "| {what} | {} | {tool} | {wall:.2} | {rss:.1} | {shown} |",
            link.label()
        );
    }
    for (label, why) in &results.failed {
        let tool = Peer::described(label).unwrap_or(label);
        let _ = writeln!(md, "| {what} | {} | {tool} | failed: {why} | | |", link.label());
    }
    Headline {
        what: what.to_string(),
        link,
        vs_best: defaults / best,
        vs_peer: best_peer.map(|(w, p)| (defaults / w, p)),
    }
}

/// The WAN tables: 20 and 50 ms one way, plain and TLS, and how a pass
/// grows with the number of images.
pub fn section(w: &Wan, g: &mut ImageGen) -> String {
    let links: Vec<Link> = [20, 50]
        .iter()
        .flat_map(|&ms| [false, true].map(|tls| Link { one_way_ms: ms, tls }))
        .collect();
    sweep(w, g, &links, true)
}

/// The same sweep on loopback, without proxies: the defaults against
/// hand-tuned settings where round trips cost nothing.
pub fn loopback_section(w: &Wan, g: &mut ImageGen) -> String {
    sweep(
        w,
        g,
        &[Link {
            one_way_ms: 0,
            tls: false,
        }],
        false,
    )
}

fn sweep(w: &Wan, g: &mut ImageGen, links: &[Link], wan: bool) -> String {
    eprintln!("sweep datasets...");
    let (small_n, fleet_n, fleet_tags) = if w.quick { (5, 100, 2) } else { (25, 1000, 2) };
    let small = small_tags(g, w.sc, small_n);
    let fleet_all = fleet(g, w.sc, fleet_n, fleet_tags);
    let tls_src = Registry::start_tls_over(w.src, &w.ca);
    let mut md = String::new();
    if wan {
        let _ = writeln!(md, "## Over a wide-area link\n");
        let date = super::command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
        let _ = writeln!(md, "Made by `bench/run --only wan` on {date}.\n");
    } else {
        let _ = writeln!(
            md,
            "## The defaults against a sweep, on loopback\n\nThe WAN section's datasets and sweep, with no proxy in front of the registries (round trips cost nothing; the registries' own hashing and disk writes, on the same 2 cores, are the limit).\n"
        );
    }
    if wan {
        let _ = write!(
            md,
            "Both registries behind testkit's `LatencyProxy`, which delays every byte by the one-way time in each direction (a round trip costs twice that, a new connection a round trip more; no bandwidth cap). Plain HTTP/1.1, and TLS, where Distribution offers HTTP/2 and replicant uses it. "
        );
    }
    let _ = writeln!(
        md,
        "Each row is replicant with its defaults or with a hand-tuned `--jobs`/`--max-connections` (the sweep), or a peer, alternating, each run into a fresh destination registry, every copy checked by digest and the destination tree walked; \"vs best\" is the median wall time over the best replicant setting's in the same rounds (the defaults' ratio in bold). The peers run on the plain 20 ms link: skopeo (`sync --all --preserve-digests`) in the first round on the small-tags set (minutes per run); regsync (`regsync once`, every repository a sync entry, `defaults.parallel` set to their number, regclient's default `reqConcurrent` of 3 per registry) in every round on the small-tags set, the cold 1,000-image pass and the no-op passes (it has one no-op behaviour, comparing every tag's digest as `replace-tag` does: its samples show in both no-op rows). The old defaults (`-j 4 --max-connections 8`) are left out of the 1,000-image rows, where they take minutes per run; the cold 1,000-image pass runs once per setting and only at 20 ms, the no-op passes twice.\n"
    );
    let _ = writeln!(md, "| dataset | link | tool | wall (s) | peak RSS (MiB) | vs best |");
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|");
    let mut headline: Vec<Headline> = Vec::new();
    let fleet_name = format!("{} images × {fleet_tags} tags", fleet_all.repos.len());
    let small_label = format!("small tags (3 × {small_n} × 2 platforms)");
    for link in links {
        let src = if link.tls { &tls_src } else { w.src };
        let small = (&small, small_label.as_str());
        let fleet = (&fleet_all, fleet_name.as_str());
        link_rows(w, *link, src, small, fleet, &mut md, &mut headline);
    }
    let _ = writeln!(
        md,
        "\nThe defaults' wall time over the best setting's (target: at most 1.25) and over the best peer's where peers ran, per dataset and link:\n"
    );
    let _ = writeln!(
        md,
        "| dataset | link | defaults / best setting | defaults / best peer |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|");
    for h in &headline {
        let peer = h
            .vs_peer
            .map(|(r, p)| format!("**{r:.2}** (vs {p})"))
            .unwrap_or_default();
        let _ = writeln!(md, "| {} | {} | {:.2} | {peer} |", h.what, h.link.label(), h.vs_best);
    }
    if wan {
        md.push_str(&scale(w, g, &fleet_all));
    }
    md
}

/// The rows of one link: the small-tags set (every setting; the peers on
/// the plain 20 ms link), the 1,000-image set cold (at 20 ms; regsync on
/// the plain link) and no-op.
fn link_rows(
    w: &Wan,
    link: Link,
    src: &Registry,
    (small, small_label): (&Dataset, &str),
    (fleet, fleet_name): (&Dataset, &str),
    md: &mut String,
    headline: &mut Vec<Headline>,
) {
    let (_proxy, host) = link.front(&src.host());
    let with_peers = link.one_way_ms == 20 && !link.tls;
    let (peers, regsync): (&[Peer], &[Peer]) = match with_peers {
        true => (&[Peer::Skopeo, Peer::Regsync], &[Peer::Regsync]),
        false => (&[], &[]),
    };
    let r = w.cold(link, &host, small, w.runs, &Setting::all(), peers);
    headline.push(rows(md, small_label, link, &r));
    // the cold 1,000-image pass takes minutes per setting: not at 50 ms
    if link.one_way_ms <= 20 {
        let r = w.cold(link, &host, fleet, 1, &Setting::without_old(), regsync);
        headline.push(rows(md, &format!("{fleet_name}, cold"), link, &r));
    }
    let ([r, replacing], requests) = w.noop(&Setting::without_old(), regsync, link, src, &host, fleet);
    headline.push(rows(md, &format!("{fleet_name}, no-op"), link, &r));
    let label = format!("{fleet_name}, no-op with `replace-tag: true`");
    headline.push(rows(md, &label, link, &replacing));
    let n = fleet.repos.len() as f64;
    for (who, (s, d)) in &requests {
        eprintln!(
            "  no-op requests of {who}: {s} to the source, {d} to the destination ({:.2} per image)",
            (s + d) as f64 / n
        );
        let who = Peer::described(who).map_or_else(|| format!("replicant {who}"), str::to_string);
        let _ = writeln!(
            md,
            "| (requests in one no-op pass, {}) | | {who}: {s} to the source, {d} to the destination, {:.2} per image | | | |",
            link.label(),
            (s + d) as f64 / n
        );
    }
}

/// How a cold pass and a no-op pass grow with the number of images, at 20
/// ms one way, plain, defaults.
fn scale(w: &Wan, _g: &mut ImageGen, fleet: &Dataset) -> String {
    let link = Link {
        one_way_ms: 20,
        tls: false,
    };
    let proxy = LatencyProxy::start(&w.src.host(), link.delay());
    let host = proxy.host();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\nHow time and memory grow with the number of images (20 ms one way, plain, defaults, medians of {} runs):\n",
        w.runs
    );
    let _ = writeln!(
        md,
        "| images | cold wall (s) | cold peak RSS (MiB) | no-op wall (s) | no-op peak RSS (MiB) |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
    let mut sizes = vec![10, 100, fleet.repos.len()];
    sizes.dedup();
    for n in sizes {
        let data = first(fleet, n, "fleet subset");
        let (mut cold, mut noop) = (Vec::new(), Vec::new());
        for _ in 0..w.runs {
            let d = w.destination(link);
            let dst = d.host.clone();
            let (s, ok) = measure(&mut w.replicant(&data, &host, &dst, false, false, Setting::Defaults));
            assert!(ok, "cold pass of {n} images failed");
            cold.push(s);
            let (s, ok) = measure(&mut w.replicant(&data, &host, &dst, false, false, Setting::Defaults));
            assert!(ok, "no-op pass of {n} images failed");
            noop.push(s);
            verify(w.sc, &w.dst_client(&d), &data).expect("scale result");
        }
        let wall = |v: &[Sample]| median(v.iter().map(|s| s.wall.as_secs_f64()).collect());
        let rss = |v: &[Sample]| v.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
        eprintln!("  scale {n}: cold {:.2} s, no-op {:.2} s", wall(&cold), wall(&noop));
        let _ = writeln!(
            md,
            "| {n} | {:.2} | {:.1} | {:.2} | {:.1} |",
            wall(&cold),
            rss(&cold),
            wall(&noop),
            rss(&noop)
        );
    }
    md
}
