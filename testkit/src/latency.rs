//! A TCP proxy that adds a one-way delay in each direction, with no
//! bandwidth cap: what a wide-area link looks like to a registry client,
//! on loopback. Each round trip through it costs 2 × delay, and a new
//! connection one round trip more (its handshake: the client's first bytes
//! are held until a round trip after it connected). Bytes pass untouched, so
//! TLS and HTTP/2 go through as they are.
//!
//! It also counts the bytes that cross it each way, and can break the
//! connection that carries the byte at a given offset of a direction (the
//! offsets count every connection's bytes that way, in order): a link that
//! breaks mid-transfer, at a known place.

use crate::accept::Acceptor;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct LatencyProxy {
    pub port: u16,
    /// What crossed it, and where it breaks.
    pub link: Arc<Link>,
    _acceptor: Acceptor,
}

/// A direction across the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Client to server: requests, uploads.
    Up,
    /// Server to client: answers, downloads.
    Down,
}

/// The bytes that crossed a proxy each way, and the offsets (in those
/// counts) at which the connection carrying them is to break.
#[derive(Default)]
pub struct Link {
    up: AtomicU64,
    down: AtomicU64,
    cuts: Mutex<(Vec<u64>, Vec<u64>)>,
    made: AtomicUsize,
}

impl Link {
    /// Bytes that crossed `way` so far.
    pub fn bytes(&self, way: Way) -> u64 {
        self.counter(way).load(Ordering::SeqCst)
    }

    /// Breaks (both ends closed, mid-stream) the connection carrying byte
    /// `offset` of `way`, for each offset (counted from the bytes that have
    /// crossed so far).
    pub fn cut(&self, way: Way, offsets: &[u64]) {
        let now = self.bytes(way);
        let mut cuts = self.cuts.lock().unwrap();
        let list = match way {
            Way::Up => &mut cuts.0,
            Way::Down => &mut cuts.1,
        };
        list.extend(offsets.iter().map(|o| now + o));
        list.sort_unstable();
    }

    /// Connections broken so far.
    pub fn cuts_made(&self) -> usize {
        self.made.load(Ordering::SeqCst)
    }

    fn counter(&self, way: Way) -> &AtomicU64 {
        match way {
            Way::Up => &self.up,
            Way::Down => &self.down,
        }
    }

    /// Counts `n` bytes read from `way`; how many of them to pass on before
    /// breaking the connection, if it is to break within them.
    fn crossed(&self, way: Way, n: u64) -> Option<u64> {
        let mut cuts = self.cuts.lock().unwrap();
        let before = self.counter(way).load(Ordering::SeqCst);
        let list = match way {
            Way::Up => &mut cuts.0,
            Way::Down => &mut cuts.1,
        };
        match list.first().copied() {
            Some(at) if at < before + n => {
                list.remove(0);
                let pass = at.saturating_sub(before);
                self.counter(way).fetch_add(pass, Ordering::SeqCst);
                self.made.fetch_add(1, Ordering::SeqCst);
                Some(pass)
            }
            _ => {
                self.counter(way).fetch_add(n, Ordering::SeqCst);
                None
            }
        }
    }
}

impl LatencyProxy {
    /// A proxy on a free 127.0.0.1 port to `upstream` (`host:port`), adding
    /// `one_way` to every byte in each direction (`Duration::ZERO`: a
    /// counting, breakable proxy only).
    pub fn start(upstream: &str, one_way: Duration) -> LatencyProxy {
        let upstream = upstream.to_string();
        let link = Arc::new(Link::default());
        let shared = link.clone();
        let acceptor = Acceptor::start(move |client| {
            let upstream = upstream.clone();
            let link = shared.clone();
            std::thread::spawn(move || {
                let _ = connect(client, &upstream, one_way, link);
            });
        });
        LatencyProxy {
            port: acceptor.port,
            link,
            _acceptor: acceptor,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn connect(client: TcpStream, upstream: &str, one_way: Duration, link: Arc<Link>) -> std::io::Result<()> {
    let accepted = Instant::now();
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    for end in [&client, &server] {
        bound_buffers(end)?;
    }
    // the handshake's round trip: nothing the client sends leaves before it
    let ends = [client.try_clone()?, server.try_clone()?];
    let up = delayed(
        client.try_clone()?,
        server.try_clone()?,
        one_way,
        accepted + 2 * one_way,
        Way::Up,
        (link.clone(), clone_both(&ends)?),
    );
    let down = delayed(server, client, one_way, accepted, Way::Down, (link, ends));
    let _ = up.join();
    let _ = down.join();
    Ok(())
}

/// A link's sockets hold a bounded amount (the kernel would otherwise
/// grow their buffers to many MiB on loopback): what is in flight when it
/// breaks is what a real link has in flight, not what a loaded machine's
/// buffers took in.
fn bound_buffers(end: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 128 * 1024;
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a valid socket, an option of `c_int`, its size
        let done = unsafe {
            libc::setsockopt(
                end.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn clone_both(ends: &[TcpStream; 2]) -> std::io::Result<[TcpStream; 2]> {
    Ok([ends[0].try_clone()?, ends[1].try_clone()?])
}

/// What a chunk read from one side becomes on the other.
enum Piece {
    Bytes(Instant, Vec<u8>),
    /// The connection breaks here.
    Cut(Instant),
    End,
}

/// Copies `from` to `to`, each chunk written `delay` after it was read (and
/// not before `not_before`), counting the bytes on `link` as `way`; closes
/// `to`'s write side at the end, or both ends of the connection where the
/// link is to break.
fn delayed(
    mut from: TcpStream,
    to: TcpStream,
    delay: Duration,
    not_before: Instant,
    way: Way,
    (link, ends): (Arc<Link>, [TcpStream; 2]),
) -> JoinHandle<()> {
    // a link holds a bounded amount in flight: what a round trip carries
    // at loopback speed, or a little when there is no delay
    let in_flight = if delay.is_zero() { 16 } else { 256 };
    let (tx, rx) = mpsc::sync_channel::<Piece>(in_flight);
    let writer = std::thread::spawn(move || {
        let mut to = to;
        for piece in rx {
            match piece {
                Piece::Bytes(due, chunk) => {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    if to.write_all(&chunk).is_err() {
                        break;
                    }
                }
                Piece::Cut(due) => {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    for end in &ends {
                        let _ = end.shutdown(Shutdown::Both);
                    }
                    return;
                }
                Piece::End => break,
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let due = Instant::now().max(not_before) + delay;
            if n == 0 {
                let _ = tx.send(Piece::End);
                break;
            }
            let pieces = match link.crossed(way, n as u64) {
                None => vec![Piece::Bytes(due, buf[..n].to_vec())],
                Some(pass) => vec![Piece::Bytes(due, buf[..pass as usize].to_vec()), Piece::Cut(due)],
            };
            let cut = pieces.len() > 1;
            if pieces.into_iter().any(|p| tx.send(p).is_err()) || cut {
                break;
            }
        }
        drop(tx);
        let _ = writer.join();
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers each line it reads with the same line.
    fn echo() -> Acceptor {
        Acceptor::start(|mut c| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        })
    }

    #[test]
    fn a_round_trip_costs_two_delays_and_a_new_connection_one_more() {
        let delay = Duration::from_millis(40);
        let upstream = echo();
        let proxy = LatencyProxy::start(&format!("127.0.0.1:{}", upstream.port), delay);
        let mut c = TcpStream::connect(proxy.host()).unwrap();
        let mut buf = [0u8; 5];
        let first = Instant::now();
        c.write_all(b"hello").unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        // the handshake's round trip, then the exchange's
        assert!(first.elapsed() >= 4 * delay, "{:?}", first.elapsed());
        let second = Instant::now();
        c.write_all(b"again").unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"again");
        assert!(second.elapsed() >= 2 * delay, "{:?}", second.elapsed());
        // a closed connection is closed on the other side too
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn a_link_counts_what_crosses_it_and_breaks_where_told() {
        let upstream = echo();
        let proxy = LatencyProxy::start(&format!("127.0.0.1:{}", upstream.port), Duration::ZERO);
        proxy.link.cut(Way::Up, &[12]);
        let mut c = TcpStream::connect(proxy.host()).unwrap();
        let mut buf = [0u8; 10];
        c.write_all(b"0123456789").unwrap();
        c.read_exact(&mut buf).unwrap();
        assert_eq!((proxy.link.bytes(Way::Up), proxy.link.bytes(Way::Down)), (10, 10));
        // the 13th byte up breaks the connection: two more pass
        c.write_all(b"abcdefghij").unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        assert!(
            b"ab".starts_with(&got),
            "at most what passed came back before the break: {got:?}"
        );
        assert_eq!(proxy.link.bytes(Way::Up), 12);
        assert_eq!(proxy.link.cuts_made(), 1);
        // the next connection is whole
        let mut c = TcpStream::connect(proxy.host()).unwrap();
        c.write_all(b"again").unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"again");
    }
}
