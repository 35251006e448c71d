//! One HTTP/1.x exchange on a fresh connection, as a checker needs it: the
//! request written in one go, the response head parsed by `httparse`, the
//! body read per its framing (Content-Length, chunked, or up to the close).
//!
//! A checker opens a connection per check and drops it afterwards, so a
//! general client (connection task, pool, header map) is pure overhead
//! here: at a thousand checks a second it cost more CPU than HAProxy's
//! whole checker. This reads into one buffer and allocates little else.

use std::fmt::Write as _;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::check::spec::HttpProtocol;

/// The most headers a response head may carry (hyper's default, too).
const MAX_HEADERS: usize = 100;
/// The longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Read granularity.
const READ_CHUNK: usize = 4096;

/// keepalived's request: `GET`, its `User-Agent`, `Connection: close` for
/// `1.0C` and `1.1`, then `Host`.
pub(super) fn request(path: &str, host: &str, protocol: HttpProtocol) -> Vec<u8> {
    let (version, close) = match protocol {
        HttpProtocol::Http10 => ("1.0", false),
        HttpProtocol::Http10Close => ("1.0", true),
        HttpProtocol::Http11 => ("1.1", true),
    };
    let mut text = String::with_capacity(96 + path.len() + host.len());
    let _ = write!(
        text,
        "GET {path} HTTP/{version}\r\nUser-Agent: KeepAliveClient\r\n"
    );
    if close {
        text.push_str("Connection: close\r\n");
    }
    let _ = write!(text, "Host: {host}\r\n\r\n");
    text.into_bytes()
}

/// How the body after the head ends.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// No body (1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Up to the end of the connection.
    UntilClose,
}

/// Writes `request`, reads the answer: its status code and decoded body.
pub(super) async fn exchange<T>(mut io: T, request: &[u8]) -> Result<(u16, Vec<u8>), String>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(request)
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    io.flush()
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let (status, framing) = loop {
        let (status, framing, head_len) = match parse_head(&buf)? {
            Some(head) => head,
            None => {
                if buf.len() >= MAX_HEAD {
                    return Err(format!("response head longer than {MAX_HEAD} bytes"));
                }
                if fill(&mut io, &mut buf).await? == 0 {
                    return Err("connection closed before the response head".into());
                }
                continue;
            }
        };
        buf.drain(..head_len);
        // An interim answer (100 Continue...) precedes the real one.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        break (status, framing);
    };
    let body = match framing {
        Framing::Empty => Vec::new(),
        Framing::Length(len) => {
            while (buf.len() as u64) < len {
                if fill(&mut io, &mut buf).await? == 0 {
                    return Err(format!(
                        "connection closed after {} of {len} body bytes",
                        buf.len()
                    ));
                }
            }
            buf.truncate(len as usize);
            buf
        }
        Framing::UntilClose => {
            while fill(&mut io, &mut buf).await? != 0 {}
            buf
        }
        Framing::Chunked => dechunk(&mut io, buf).await?,
    };
    Ok((status, body))
}

/// Reads what is available into `buf`'s spare room; 0 at the end.
async fn fill<T: AsyncRead + Unpin>(io: &mut T, buf: &mut Vec<u8>) -> Result<usize, String> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    io.read_buf(buf)
        .await
        .map_err(|e| format!("reading the response: {e}"))
}

/// The status, framing and length of a complete head at the start of
/// `buf`, or None while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(u16, Framing, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid response head: {e}")),
    };
    let status = response.code.unwrap_or_default();
    let framing = framing(status, response.headers)?;
    Ok(Some((status, framing, head_len)))
}

/// The body's framing per RFC 9112 section 6.3.
fn framing(status: u16, headers: &[httparse::Header<'_>]) -> Result<Framing, String> {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked only when it is the last coding applied.
            let value = String::from_utf8_lossy(header.value);
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != value) {
                return Err("conflicting Content-Length headers".into());
            }
            length = Some(value);
        }
    }
    Ok(match (chunked, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::UntilClose,
        (None, Some(len)) => Framing::Length(len),
        (None, None) => Framing::UntilClose,
    })
}

/// Decodes a chunked body, `raw` holding what was read after the head;
/// chunk sizes are parsed by `httparse`, trailers are not needed.
async fn dechunk<T: AsyncRead + Unpin>(io: &mut T, mut raw: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let (size_len, size) = loop {
            match httparse::parse_chunk_size(&raw[pos..]) {
                Ok(httparse::Status::Complete(found)) => break found,
                Ok(httparse::Status::Partial) => more(io, &mut raw).await?,
                Err(_) => return Err("invalid chunk size".into()),
            }
        };
        pos += size_len;
        if size == 0 {
            return Ok(body);
        }
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .and_then(|e| e.checked_add(2))
            .ok_or("chunk too large")?;
        while raw.len() < end {
            more(io, &mut raw).await?;
        }
        if &raw[end - 2..end] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        body.extend_from_slice(&raw[pos..end - 2]);
        pos = end;
    }
}

/// Reads more of a chunked body, which must not end here.
async fn more<T: AsyncRead + Unpin>(io: &mut T, raw: &mut Vec<u8>) -> Result<(), String> {
    match fill(io, raw).await? {
        0 => Err("connection closed inside a chunked body".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one exchange against a canned answer delivered in `pieces`.
    fn answer(pieces: &[&[u8]]) -> Result<(u16, Vec<u8>), String> {
        let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let feed = async move {
                let mut server = server;
                let mut req = [0u8; 256];
                let _ = server.read(&mut req).await;
                for piece in pieces {
                    server.write_all(&piece).await.unwrap();
                    server.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            };
            let (result, ()) = tokio::join!(exchange(client, b"GET / HTTP/1.0\r\n\r\n"), feed);
            result
        })
    }

    #[test]
    fn request_follows_keepalived_per_protocol() {
        assert_eq!(
            request("/x", "h:80", HttpProtocol::Http10),
            b"GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: h:80\r\n\r\n"
        );
        assert_eq!(
            request("/", "h", HttpProtocol::Http10Close),
            b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: h\r\n\r\n"
        );
        assert_eq!(
            request("/", "h", HttpProtocol::Http11),
            b"GET / HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: h\r\n\r\n"
        );
    }

    #[test]
    fn content_length_bounds_the_body_across_reads() {
        let got = answer(&[
            b"HTTP/1.1 200 OK\r\nContent-Le",
            b"ngth: 5\r\n\r\nhe",
            b"lloEXTRA",
        ]);
        assert_eq!(got, Ok((200, b"hello".to_vec())));
    }

    #[test]
    fn no_length_reads_to_the_close() {
        let got = answer(&[b"HTTP/1.0 404 Not Found\r\n\r\nab", b"cd"]);
        assert_eq!(got, Ok((404, b"abcd".to_vec())));
    }

    #[test]
    fn chunked_body_is_decoded() {
        let got = answer(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
            b"c\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
        ]);
        assert_eq!(got, Ok((200, b"abcde".to_vec())));
    }

    #[test]
    fn interim_answer_is_skipped_and_204_has_no_body() {
        let got = answer(&[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"]);
        assert_eq!(got, Ok((204, Vec::new())));
    }

    #[test]
    fn truncated_or_malformed_answers_fail() {
        assert!(answer(&[b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"]).is_err());
        assert!(
            answer(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"]).is_err()
        );
        assert!(answer(&[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]).is_err());
        assert!(answer(&[b"garbage\r\n\r\n"]).is_err());
        assert!(answer(&[b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"]).is_err());
        assert!(answer(&[b"HTTP/1.1 200 OK\r\n"]).is_err());
    }
}
