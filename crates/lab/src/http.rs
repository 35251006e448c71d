//! A one-request HTTP/1.0 client for tests that count which real server answered: the
//! servers the labs start answer `GET /` with their name and a Content-Length.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

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
