//! A fault-injecting HTTP proxy to put in front of a real `docker-registry`:
//! it forwards requests and, at a chosen rate, answers an error status,
//! resets the connection mid-body, truncates a body, flips a byte, stalls,
//! or redirects blob downloads to a recording server.

use crate::accept::Acceptor;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::http::read_headers;

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status without forwarding (429 comes with Retry-After: 1).
    Status(u16),
    /// Close the connection halfway through the response body (or, for an
    /// upload, after reading part of the request body).
    Reset,
    /// Send the promised Content-Length but only half the body, then close.
    Truncate,
    /// Forward the body with one byte changed.
    Flip,
    /// Send half the body, then stall for a long time.
    Stall,
    /// Forward everything, but claim another `Docker-Content-Digest`.
    WrongDigest,
    /// Answer this status with this JSON body without forwarding.
    Answer(u16, &'static str),
    /// Close the connection halfway through a response body of more than
    /// 1 MiB (a large blob, never a config or a manifest).
    CutLarge,
    /// Read a request's whole body, forward its first half as the whole
    /// request, and close without an answer (a proxy that dies mid-upload:
    /// the client sent everything, the registry holds half).
    HalfForwarded,
}

/// What the proxy does with a download's `Range` (a server, or an object
/// store, that gets ranges wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ranges {
    #[default]
    Pass,
    /// Drops the `Range` header: the registry sends the whole blob (200).
    Ignore,
    /// Passes it, and says the 206's range starts a byte later than it does.
    Misreport,
}

/// Which requests a fault may hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Any,
    /// Only GETs of blobs and manifests (bodies to corrupt).
    Downloads,
    /// Only GETs of blobs.
    Blobs,
    /// Only the start of blob uploads (`POST …/blobs/uploads/`).
    UploadStarts,
    /// Only manifest PUTs.
    ManifestPuts,
    /// Only the `PATCH`es of chunked uploads (with `Content-Range`).
    ChunkPatches,
}

/// A handler for requests the proxy answers itself (an endpoint that lives
/// on the registry's host, like ACR's `/oauth2/exchange`).
pub type Route = Arc<dyn Fn(crate::http::Request) -> crate::http::Response + Send + Sync>;

struct Shared {
    upstream: String,
    fault: Mutex<Option<(Fault, f64, Target)>>,
    /// Faults injected at most this many more times (`None`: no end).
    times: Mutex<Option<usize>>,
    ranges: Mutex<Ranges>,
    /// `Range` headers of the blob GETs forwarded, in order.
    pub asked: Mutex<Vec<String>>,
    /// Answer blob GETs with a 307 to this `host:port` (object storage).
    redirect: Mutex<Option<String>>,
    /// Wait this long before forwarding each request (a slow registry).
    delay: Mutex<Duration>,
    /// Send response bodies at most this many bytes per second (a slow link).
    rate: Mutex<Option<u64>>,
    rng: Mutex<StdRng>,
    routes: Mutex<Vec<(String, Route)>>,
    basic: Mutex<Option<crate::token::BasicCheck>>,
    pub refused: AtomicUsize,
    pub injected: AtomicUsize,
    pub forwarded: AtomicUsize,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    _acceptor: Acceptor,
}

impl FaultProxy {
    /// A proxy to `upstream` (`127.0.0.1:<port>`), faultless until told.
    pub fn start(upstream: &str, seed: u64) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            fault: Mutex::new(None),
            times: Mutex::new(None),
            ranges: Mutex::new(Ranges::Pass),
            asked: Mutex::new(Vec::new()),
            redirect: Mutex::new(None),
            delay: Mutex::new(Duration::ZERO),
            rate: Mutex::new(None),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            routes: Mutex::new(Vec::new()),
            basic: Mutex::new(None),
            refused: AtomicUsize::new(0),
            injected: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
        });
        let s2 = shared.clone();
        let acceptor = Acceptor::start(move |conn| {
            let shared = s2.clone();
            std::thread::spawn(move || {
                // the proxy's own port, as the client reached it
                let port = conn.local_addr().map(|a| a.port()).unwrap_or(0);
                let _ = handle(conn, &shared, port);
            });
        });
        FaultProxy {
            port: acceptor.port,
            shared,
            _acceptor: acceptor,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Injects `fault` into a share `rate` (0..=1) of the targeted requests.
    pub fn set(&self, fault: Option<(Fault, f64, Target)>) {
        *self.shared.fault.lock().unwrap() = fault;
        *self.shared.times.lock().unwrap() = None;
    }

    /// Injects `fault` into the next `times` targeted requests, then none.
    pub fn set_times(&self, fault: Fault, target: Target, times: usize) {
        *self.shared.fault.lock().unwrap() = Some((fault, 1.0, target));
        *self.shared.times.lock().unwrap() = Some(times);
    }

    /// How downloads' `Range` headers are handled from now on.
    pub fn set_ranges(&self, ranges: Ranges) {
        *self.shared.ranges.lock().unwrap() = ranges;
    }

    /// The `Range` header of each blob GET forwarded (`-` for none).
    pub fn ranges_asked(&self) -> Vec<String> {
        self.shared.asked.lock().unwrap().clone()
    }

    /// Delays every request by `delay` (a slow registry).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// Sends response bodies at most `bytes_per_second` fast (a slow link).
    pub fn set_rate(&self, bytes_per_second: Option<u64>) {
        *self.shared.rate.lock().unwrap() = bytes_per_second;
    }

    /// Redirects blob downloads to `host:port`, which receives the path
    /// without `/v2` (as registries redirect to object storage).
    pub fn redirect_blobs_to(&self, target: Option<String>) {
        *self.shared.redirect.lock().unwrap() = target;
    }

    /// Answers requests whose path starts with `prefix` (or, for one
    /// method only, whose `METHOD path` does: `"DELETE /v2/a/"`) with
    /// `handler` instead of forwarding them.
    pub fn route(&self, prefix: &str, handler: Route) {
        self.shared.routes.lock().unwrap().push((prefix.to_string(), handler));
    }

    /// Lets through only requests whose Basic credentials `check` accepts,
    /// answering the others 401 with a Basic challenge (as ECR does).
    pub fn require_basic(&self, check: crate::token::BasicCheck) {
        *self.shared.basic.lock().unwrap() = Some(check);
    }

    /// Requests refused by [`FaultProxy::require_basic`].
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }
}

struct Head {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers = read_headers(reader)?;
    Ok(Some(Head {
        method,
        target,
        headers,
    }))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads a request body: Content-Length or chunked.
fn read_body(reader: &mut impl BufRead, headers: &[(String, String)]) -> std::io::Result<Vec<u8>> {
    if let Some(len) = header(headers, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        return Ok(body);
    }
    let mut body = Vec::new();
    if header(headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(body)
}

/// Whether a fault may still be injected (and, if so, counts one).
fn take_one(shared: &Shared) -> bool {
    let mut times = shared.times.lock().unwrap();
    match times.as_mut() {
        None => true,
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
    }
}

fn handle(conn: TcpStream, shared: &Shared, port: u16) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let is_blob = head.method == "GET" && head.target.contains("/blobs/sha");
    let is_download = is_blob || (head.method == "GET" && head.target.contains("/manifests/"));
    let redirect = shared.redirect.lock().unwrap().clone();
    if let Some(to) = redirect.filter(|_| head.method == "GET" && head.target.contains("/blobs/sha")) {
        let path = head.target.strip_prefix("/v2").unwrap_or(&head.target);
        write!(
            out,
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{to}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return out.flush();
    }
    let route = {
        let routes = shared.routes.lock().unwrap();
        routes
            .iter()
            .find(|(prefix, _)| {
                head.target.starts_with(prefix.as_str())
                    || format!("{} {}", head.method, head.target).starts_with(prefix.as_str())
            })
            .map(|(_, r)| r.clone())
    };
    if let Some(route) = route {
        let body = read_body(&mut reader, &head.headers)?;
        let request = crate::http::Request {
            method: head.method.clone(),
            target: head.target.clone(),
            headers: head
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            body,
        };
        let resp = route(request);
        crate::http::write_head(&mut out, &resp)?;
        out.write_all(&resp.body)?;
        return out.flush();
    }
    let gate = shared.basic.lock().unwrap().clone();
    if let Some(check) = gate {
        use base64::Engine as _;
        let credentials = head
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let allowed = credentials
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .is_some_and(|(u, p)| check(u, p));
        if !allowed {
            if credentials.is_some() {
                shared.refused.fetch_add(1, Ordering::SeqCst);
            }
            let _ = read_body(&mut reader, &head.headers);
            write!(
                out,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return out.flush();
        }
    }
    let fault = {
        let f = *shared.fault.lock().unwrap();
        f.filter(|(_, rate, target)| {
            let hit = match target {
                Target::Any => true,
                Target::Downloads => is_download,
                Target::Blobs => is_blob,
                Target::UploadStarts => head.method == "POST" && head.target.contains("/blobs/uploads/"),
                Target::ManifestPuts => head.method == "PUT" && head.target.contains("/manifests/"),
                Target::ChunkPatches => head.method == "PATCH" && header(&head.headers, "content-range").is_some(),
            };
            hit && shared.rng.lock().unwrap().random_bool(rate.clamp(0.0, 1.0))
        })
        .map(|(f, _, _)| f)
        // a large body's cut is counted when there is one
        .filter(|f| *f == Fault::CutLarge || take_one(shared))
    };
    if let Some(f) = fault.filter(|f| *f != Fault::CutLarge) {
        shared.injected.fetch_add(1, Ordering::SeqCst);
        match f {
            Fault::Status(code) => {
                let _ = read_body(&mut reader, &head.headers);
                let extra = if code == 429 { "Retry-After: 1\r\n" } else { "" };
                write!(
                    out,
                    "HTTP/1.1 {code} Fault\r\nContent-Length: 0\r\n{extra}Connection: close\r\n\r\n"
                )?;
                return out.flush();
            }
            Fault::Answer(code, body) => {
                let _ = read_body(&mut reader, &head.headers);
                write!(
                    out,
                    "HTTP/1.1 {code} Fault\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
                return out.flush();
            }
            Fault::Reset if !is_download => {
                // read a little of the upload, then drop the connection
                let mut some = [0u8; 1024];
                let _ = reader.read(&mut some);
                return Ok(());
            }
            _ => {}
        }
    }
    let mut body = read_body(&mut reader, &head.headers)?;
    if fault == Some(Fault::HalfForwarded) {
        body.truncate(body.len() / 2);
    }
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let delay = *shared.delay.lock().unwrap();
    std::thread::sleep(delay);
    // forward, byte for byte, to the registry
    let mut up = TcpStream::connect(&shared.upstream)?;
    write!(up, "{} {} HTTP/1.1\r\n", head.method, head.target)?;
    let ranges = *shared.ranges.lock().unwrap();
    if is_blob {
        let asked = header(&head.headers, "range").unwrap_or("-").to_string();
        shared.asked.lock().unwrap().push(asked);
    }
    for (k, v) in &head.headers {
        if k.eq_ignore_ascii_case("connection")
            || k.eq_ignore_ascii_case("transfer-encoding")
            || k.eq_ignore_ascii_case("content-length")
            || (k.eq_ignore_ascii_case("range") && ranges == Ranges::Ignore)
            || (k.eq_ignore_ascii_case("content-range") && fault == Some(Fault::HalfForwarded))
        {
            continue;
        }
        write!(up, "{k}: {v}\r\n")?;
    }
    write!(up, "Content-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    up.write_all(&body)?;
    up.flush()?;
    let mut up_reader = BufReader::new(up);
    let mut status_line = String::new();
    up_reader.read_line(&mut status_line)?;
    let headers = read_headers(&mut up_reader)?;
    let mut resp_body = Vec::new();
    if head.method != "HEAD" {
        match header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok()) {
            Some(len) => {
                resp_body = vec![0; len];
                up_reader.read_exact(&mut resp_body)?;
            }
            None => {
                up_reader.read_to_end(&mut resp_body)?;
            }
        }
    }
    if fault == Some(Fault::HalfForwarded) {
        return Ok(());
    }
    // the registry builds absolute upload locations from the Host header
    let me = format!("127.0.0.1:{port}");
    write!(out, "{}", status_line)?;
    for (k, v) in &headers {
        if k.eq_ignore_ascii_case("connection")
            || k.eq_ignore_ascii_case("content-length")
            || k.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        let v = if fault == Some(Fault::WrongDigest) && k.eq_ignore_ascii_case("docker-content-digest") {
            // a well-formed digest of other content
            format!("sha256:{}", "0".repeat(64))
        } else if ranges == Ranges::Misreport && k.eq_ignore_ascii_case("content-range") {
            misreported(v)
        } else {
            v.replace(&shared.upstream, &me)
        };
        write!(out, "{k}: {v}\r\n")?;
    }
    let declared = if head.method == "HEAD" {
        header(&headers, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    } else {
        resp_body.len()
    };
    write!(out, "Content-Length: {declared}\r\nConnection: close\r\n\r\n")?;
    let half = resp_body.len() / 2;
    if fault == Some(Fault::CutLarge) && resp_body.len() > 1024 * 1024 && take_one(shared) {
        shared.injected.fetch_add(1, Ordering::SeqCst);
        out.write_all(&resp_body[..half])?;
        out.flush()?;
        return Ok(());
    }
    match fault {
        Some(Fault::Reset) | Some(Fault::Truncate) if !resp_body.is_empty() => {
            out.write_all(&resp_body[..half])?;
            out.flush()?;
            return Ok(());
        }
        Some(Fault::Flip) if !resp_body.is_empty() => {
            resp_body[half] ^= 0x40;
        }
        Some(Fault::Stall) if !resp_body.is_empty() => {
            out.write_all(&resp_body[..half])?;
            out.flush()?;
            std::thread::sleep(Duration::from_secs(30));
            return Ok(());
        }
        _ => {}
    }
    let rate = *shared.rate.lock().unwrap();
    match rate {
        Some(rate) if rate > 0 => {
            // in tenths of a second's worth, each on time
            let chunk = (rate / 10).max(1) as usize;
            let start = std::time::Instant::now();
            for (n, part) in resp_body.chunks(chunk).enumerate() {
                out.write_all(part)?;
                out.flush()?;
                let due = start + Duration::from_millis(100 * (n as u64 + 1));
                std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
            }
            Ok(())
        }
        _ => {
            out.write_all(&resp_body)?;
            out.flush()
        }
    }
}

/// `bytes FIRST-LAST/TOTAL` with FIRST one more (the range a confused
/// server claims).
fn misreported(value: &str) -> String {
    let parsed = value
        .strip_prefix("bytes ")
        .and_then(|r| r.split_once('-'))
        .and_then(|(first, rest)| Some((first.parse::<u64>().ok()?, rest)));
    match parsed {
        Some((first, rest)) => format!("bytes {}-{rest}", first + 1),
        None => value.to_string(),
    }
}
