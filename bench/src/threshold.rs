//! Where chunked uploads start (`defaults::CHUNKED_FROM`): one blob of each
//! size uploaded over the 20 ms link (a latency proxy in front of a
//! Distribution v3 registry) the two ways replicant can: in one stream
//! (`POST`, then a `PUT` carrying the body) and as its resumable upload
//! (`POST`, one `PATCH` carrying the body with `Content-Range`, a closing
//! `PUT`). The second costs a round trip more; in return a break costs only
//! what was in flight, not everything sent so far. The threshold is the
//! smallest size at which that round trip costs at most a few percent.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use testkit::latency::LatencyProxy;
use testkit::{Format, ImageGen, Implementation, Registry};

pub struct Threshold {
    pub quick: bool,
    /// Rounds: each way once per size per round, alternating.
    pub runs: usize,
}

const ONE_WAY: Duration = Duration::from_millis(20);
const MIB: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Way {
    OneStream,
    Resumable,
}

pub fn section(t: &Threshold) -> String {
    testkit::crypto();
    let dst = Registry::start_implementation(Implementation::Distribution3);
    let link = LatencyProxy::start(&dst.host(), ONE_WAY);
    let host = link.host();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("an HTTP client");
    let sizes: &[usize] = if t.quick { &[4, 16] } else { &[4, 8, 16, 32, 64, 128] };
    let mut rows = Vec::new();
    let mut g = ImageGen::seeded(7);
    for &mib in sizes {
        let mut times = [Vec::new(), Vec::new()];
        for run in 0..t.runs {
            for (i, way) in [Way::OneStream, Way::Resumable].into_iter().enumerate() {
                // a new blob each time: nothing is already there
                let blob = g.layer(Format::Oci, mib * MIB);
                let started = Instant::now();
                upload(&client, &host, &blob.digest, blob.data, way);
                let wall = started.elapsed().as_secs_f64();
                eprintln!("  {mib} MiB run {run}: {} {wall:.3} s", label(way));
                times[i].push(wall);
            }
        }
        rows.push((mib, super::median(times[0].clone()), super::median(times[1].clone())));
    }
    table(&rows, t.runs)
}

fn label(way: Way) -> &'static str {
    match way {
        Way::OneStream => "one stream",
        Way::Resumable => "resumable",
    }
}

/// Uploads `data` to `mirror/threshold` at `host`, one way or the other;
/// panics unless the registry took it.
fn upload(client: &reqwest::blocking::Client, host: &str, digest: &str, data: Vec<u8>, way: Way) {
    let base = reqwest::Url::parse(&format!("http://{host}/")).expect("a URL");
    let started = client
        .post(base.join("/v2/mirror/threshold/blobs/uploads/").expect("a URL"))
        .send()
        .expect("start an upload");
    assert_eq!(started.status(), 202, "start an upload");
    let mut location = base.join(header(&started, "location")).expect("the upload's URL");
    let len = data.len();
    if way == Way::Resumable {
        let patched = client
            .patch(location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("0-{}", len - 1))
            .header("Content-Length", len)
            .body(data)
            .send()
            .expect("the PATCH");
        assert_eq!(patched.status(), 202, "the PATCH");
        location = base.join(header(&patched, "location")).expect("the upload's URL");
        location.query_pairs_mut().append_pair("digest", digest);
        let put = client
            .put(location)
            .header("Content-Length", 0)
            .send()
            .expect("the PUT");
        assert_eq!(put.status(), 201, "the closing PUT");
    } else {
        location.query_pairs_mut().append_pair("digest", digest);
        let put = client
            .put(location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len)
            .body(data)
            .send()
            .expect("the PUT");
        assert_eq!(put.status(), 201, "the PUT");
    }
}

fn header<'a>(resp: &'a reqwest::blocking::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

fn table(rows: &[(usize, f64, f64)], runs: usize) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Where chunked uploads start\n");
    let _ = writeln!(
        md,
        "Made by `bench/run --only threshold`: one new random blob of each size uploaded to Distribution v3 \
         behind a 20 ms one-way link (testkit's latency proxy, no bandwidth cap), by the bench's own HTTP client \
         (keep-alive), the two ways replicant uploads: in one stream (`POST`, a `PUT` with the body) and \
         resumable (`POST`, one `PATCH` with the body and `Content-Range`, a closing `PUT`). {runs} rounds, the two \
         ways alternating; wall time is the median. A break halfway costs the one-stream upload half the blob \
         again, the resumable one only what was in flight.\n"
    );
    let _ = writeln!(
        md,
        "| blob (MiB) | one stream (s) | resumable (s) | resumable / one stream | resumable's extra (ms) | a break halfway resends (one stream) |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
    for (mib, one, resumable) in rows {
        let _ = writeln!(
            md,
            "| {mib} | {one:.3} | {resumable:.3} | {:.2} | {:.0} | {} MiB |",
            resumable / one,
            (resumable - one) * 1000.0,
            mib / 2
        );
    }
    let _ = writeln!(
        md,
        "\nThe resumable way's extra is about one round trip whatever the size, so its share falls as blobs grow \
         but stays above a few percent up to 64 MiB on this uncapped link (on a 100 MB/s one a 64 MiB upload \
         takes 0.7 s, and the round trip is 6 % of it). replicant uploads blobs of 64 MiB and more the resumable \
         way (`defaults::CHUNKED_FROM`): as late as a break may cost, 64 MiB being the most it ever sends again \
         in full."
    );
    md
}
