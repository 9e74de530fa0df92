//! A minimal HTTP/1.1 server on a thread, enough for a token issuer and
//! fault-free test endpoints. One request per connection.

use crate::accept::Acceptor;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub struct Request {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn query(&self) -> Vec<(String, String)> {
        let q = self.target.split_once('?').map(|(_, q)| q).unwrap_or("");
        url_decode_pairs(q)
    }
}

pub fn url_decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Send `bytes` of the body, then wait `every`, until it is all sent.
#[derive(Debug, Clone, Copy)]
pub struct Drip {
    pub bytes: usize,
    pub every: std::time::Duration,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into_bytes(),
        }
    }
}

/// A server on 127.0.0.1:<free port>, stopped on drop.
pub struct Server {
    pub port: u16,
    _acceptor: Acceptor,
}

impl Server {
    pub fn start(handler: impl Fn(Request) -> Response + Send + Sync + 'static) -> Server {
        Server::start_dripping(move |req| (handler(req), None))
    }

    /// A server whose answers may trickle: with a [`Drip`], the body goes
    /// out a few bytes at a time (a slow or hostile registry).
    pub fn start_dripping(handler: impl Fn(Request) -> (Response, Option<Drip>) + Send + Sync + 'static) -> Server {
        let handler = Arc::new(handler);
        let acceptor = Acceptor::start(move |conn| {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let _ = serve(conn, &*handler);
            });
        });
        Server {
            port: acceptor.port,
            _acceptor: acceptor,
        }
    }
}

/// A listener on 127.0.0.1 that accepts connections and never answers
/// (a registry that hangs). Counts the connections it accepted.
pub struct Silent {
    pub port: u16,
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    _acceptor: Acceptor,
}

impl Silent {
    pub fn start() -> Silent {
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let mut held = Vec::new();
        let acceptor = Acceptor::start(move |conn| {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(conn);
        });
        Silent {
            port: acceptor.port,
            accepted,
            _acceptor: acceptor,
        }
    }
}

/// Header lines up to the blank line, in order, names as sent.
pub(crate) fn read_headers(reader: &mut impl BufRead) -> std::io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            return Ok(headers);
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

fn serve(conn: TcpStream, handler: &dyn Fn(Request) -> (Response, Option<Drip>)) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers: HashMap<String, String> = read_headers(&mut reader)?
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let (resp, drip) = handler(Request {
        method,
        target,
        headers,
        body,
    });
    let mut out = conn;
    write_head(&mut out, &resp)?;
    match drip {
        None => out.write_all(&resp.body)?,
        Some(d) => {
            for chunk in resp.body.chunks(d.bytes.max(1)) {
                out.write_all(chunk)?;
                out.flush()?;
                std::thread::sleep(d.every);
            }
        }
    }
    out.flush()
}

/// The status line and headers of `resp`, up to the blank line; the
/// connection closes after the body.
pub(crate) fn write_head(out: &mut impl Write, resp: &Response) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    )?;
    for (k, v) in &resp.headers {
        write!(out, "{k}: {v}\r\n")?;
    }
    out.write_all(b"\r\n")
}
