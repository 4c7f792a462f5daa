//! A minimal TFTP client for what the real clients cannot do (abort after
//! the OACK as a Raspberry Pi does, reuse a port, drop blocks), and helpers
//! to make and compare test files. Shared by the TFTP and Pi boot tests.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A file of `len` pseudo-random bytes (xorshift: no two blocks alike, so a
/// duplicated or skipped block cannot go unnoticed).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Asserts that `got` is byte-identical to `want`, saying where it differs.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: {} bytes received, {} expected, first difference at byte {at}",
            got.len(),
            want.len()
        );
    }
}

pub fn rrq(name: &[u8], mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut p = vec![0, 1];
    p.extend_from_slice(name);
    p.push(0);
    p.extend_from_slice(mode.as_bytes());
    p.push(0);
    for (k, v) in opts {
        p.extend_from_slice(k.as_bytes());
        p.push(0);
        p.extend_from_slice(v.as_bytes());
        p.push(0);
    }
    p
}

pub fn ack(block: u16) -> Vec<u8> {
    let mut p = vec![0, 4];
    p.extend_from_slice(&block.to_be_bytes());
    p
}

#[derive(Debug, PartialEq)]
pub enum Reply {
    Data(u16, Vec<u8>),
    Oack(Vec<(String, String)>),
    Error(u16, String),
    Other(Vec<u8>),
}

pub fn decode(p: &[u8]) -> Reply {
    let op = u16::from_be_bytes([p[0], p[1]]);
    match op {
        3 => Reply::Data(u16::from_be_bytes([p[2], p[3]]), p[4..].to_vec()),
        5 => Reply::Error(
            u16::from_be_bytes([p[2], p[3]]),
            String::from_utf8_lossy(&p[4..])
                .trim_end_matches('\0')
                .to_string(),
        ),
        6 => {
            let parts: Vec<String> = p[2..]
                .split(|b| *b == 0)
                .map(|s| String::from_utf8_lossy(s).to_lowercase())
                .collect();
            Reply::Oack(
                parts
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect(),
            )
        }
        _ => Reply::Other(p.to_vec()),
    }
}

pub fn recv(sock: &UdpSocket) -> Option<(Reply, SocketAddr)> {
    let mut buf = vec![0u8; 65536];
    match sock.recv_from(&mut buf) {
        Ok((n, from)) if n >= 4 => Some((decode(&buf[..n]), from)),
        Ok((n, from)) => Some((Reply::Other(buf[..n].to_vec()), from)),
        Err(_) => None,
    }
}

pub fn client_socket(timeout: Duration) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s
}

/// Fetches `name` in lock-step (RFC 1350, with RFC 2347 options when given).
/// `Err` carries the server's ERROR (code, message), or code 0xffff on timeout.
pub fn fetch(
    server: SocketAddr,
    name: &str,
    opts: &[(&str, &str)],
    timeout: Duration,
) -> Result<Vec<u8>, (u16, String)> {
    let sock = client_socket(timeout);
    fetch_on(&sock, server, name, opts, None)
}

/// `fetch` from a given socket (so a test can reuse a client port).
/// Packets from `ignore_from` (an earlier transfer's port) are skipped.
pub fn fetch_on(
    sock: &UdpSocket,
    server: SocketAddr,
    name: &str,
    opts: &[(&str, &str)],
    ignore_from: Option<SocketAddr>,
) -> Result<Vec<u8>, (u16, String)> {
    sock.send_to(&rrq(name.as_bytes(), "octet", opts), server)
        .unwrap();
    let mut blksize = 512;
    let mut out = Vec::new();
    let mut expect: u16 = 1;
    loop {
        let Some((reply, from)) = recv(sock) else {
            return Err((0xffff, "timeout".into()));
        };
        if Some(from) == ignore_from {
            continue;
        }
        match reply {
            Reply::Oack(o) if expect == 1 => {
                if let Some((_, v)) = o.iter().find(|(k, _)| k == "blksize") {
                    blksize = v.parse().unwrap();
                }
                sock.send_to(&ack(0), from).unwrap();
            }
            Reply::Data(b, d) if b == expect => {
                out.extend_from_slice(&d);
                sock.send_to(&ack(b), from).unwrap();
                expect = expect.wrapping_add(1);
                if d.len() < blksize {
                    return Ok(out);
                }
            }
            Reply::Data(..) => {}
            Reply::Error(c, m) => return Err((c, m)),
            other => panic!("unexpected reply {other:?}"),
        }
    }
}
