//! A TCP proxy that adds a one-way delay in each direction, with no
//! bandwidth cap: what a wide-area link looks like to a registry client,
//! on loopback. Each round trip through it costs 2 × delay, and a new
//! connection one round trip more (its handshake: the client's first bytes
//! are held until a round trip after it connected). Bytes pass untouched, so
//! TLS and HTTP/2 go through as they are.

use crate::accept::Acceptor;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct LatencyProxy {
    pub port: u16,
    _acceptor: Acceptor,
}

impl LatencyProxy {
    /// A proxy on a free 127.0.0.1 port to `upstream` (`host:port`), adding
    /// `one_way` to every byte in each direction.
    pub fn start(upstream: &str, one_way: Duration) -> LatencyProxy {
        let upstream = upstream.to_string();
        let acceptor = Acceptor::start(move |client| {
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let _ = connect(client, &upstream, one_way);
            });
        });
        LatencyProxy {
            port: acceptor.port,
            _acceptor: acceptor,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn connect(client: TcpStream, upstream: &str, one_way: Duration) -> std::io::Result<()> {
    let accepted = Instant::now();
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    // the handshake's round trip: nothing the client sends leaves before it
    let up = delayed(
        client.try_clone()?,
        server.try_clone()?,
        one_way,
        accepted + 2 * one_way,
    );
    let down = delayed(server, client, one_way, accepted);
    let _ = up.join();
    let _ = down.join();
    Ok(())
}

/// Copies `from` to `to`, each chunk written `delay` after it was read (and
/// not before `not_before`); closes `to`'s write side at the end.
fn delayed(mut from: TcpStream, to: TcpStream, delay: Duration, not_before: Instant) -> JoinHandle<()> {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        let mut to = to;
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if chunk.is_empty() || to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let due = Instant::now().max(not_before) + delay;
            if tx.send((due, buf[..n].to_vec())).is_err() || n == 0 {
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
}
