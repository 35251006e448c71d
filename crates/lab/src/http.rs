//! A one-request HTTP/1.0 client and the server it talks to, for tests that count which real
//! server answered: the servers answer `GET /` with their name and a Content-Length.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::Netns;

/// Serves HTTP/1.0 on `bind` inside `ns` from a background thread, answering every request
/// `200 OK` with `body` (the server's name first, so that [`http_get`] tells who answered);
/// the number of requests answered so far, for tests that count each server's share.
pub fn serve_http(ns: &Netns, bind: SocketAddr, body: Vec<u8>) -> anyhow::Result<Arc<AtomicUsize>> {
    let listener = ns
        .enter(move || TcpListener::bind(bind))?
        .with_context(|| format!("binding {bind} in {}", ns.name()))?;
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
            // The client closes first, so TIME_WAIT stays with the client, which then never
            // reuses a port the server still remembers.
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    Ok(count)
}

/// `GET /` to `to` from the calling thread's namespace, from source address `from` (None:
/// the kernel's choice), with 2 s timeouts; the body.
pub fn http_get(from: Option<IpAddr>, to: SocketAddr) -> anyhow::Result<String> {
    let domain = if to.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
    if let Some(from) = from {
        socket.bind(&SocketAddr::new(from, 0).into())?;
    }
    let shown = from.map_or_else(|| "-".to_string(), |f| f.to_string());
    socket
        .connect_timeout(&to.into(), Duration::from_secs(2))
        .with_context(|| format!("connecting {shown} -> {to}"))?;
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = s.read(&mut buf)?;
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|len| body.len() >= len) && !body.is_empty() {
                return Ok(body.to_string());
            }
        }
        if n == 0 {
            bail!("no body in answer {text:?}");
        }
    }
}
