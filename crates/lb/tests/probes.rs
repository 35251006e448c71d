//! Probes against servers on loopback: the digest agrees with keepalived's
//! `genhash`, SSL_GET talks TLS to `openssl s_server`, TCP_CHECK sees a
//! closed port.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Answer, WebServer};
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use tandem_lb::check::digest::{body_digest, from_hex, to_hex};
use tandem_lb::check::probe::Probe;
use tandem_lb::check::{
    CheckKind, CheckerSpec, Connect, DnsSpec, HttpSpec, Outcome, SmtpSpec, Timing, UdpSpec, UrlSpec,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn spec(kind: CheckKind, to: SocketAddr) -> CheckerSpec {
    let mut timing = Timing::with_delay_loop(Duration::from_secs(1));
    timing.connect_timeout = Duration::from_secs(2);
    CheckerSpec {
        kind,
        connect: Connect { to, bind: None },
        timing,
    }
}

fn http(url: UrlSpec) -> HttpSpec {
    HttpSpec {
        urls: vec![url],
        virtualhost: None,
        protocol: Default::default(),
        enable_sni: false,
    }
}

fn run(spec: &CheckerSpec) -> Outcome {
    let probe = Probe::new(spec, None, Duration::from_secs(1)).unwrap();
    rt().block_on(probe.run())
}

#[test]
fn digest_matches_genhash_and_the_http_probe_accepts_it() {
    let body = "<html>tandem checker page</html>\n".repeat(50);
    let server = WebServer::start(TcpListener::bind("127.0.0.1:0").unwrap(), Answer::ok(&body));
    let ours = to_hex(&body_digest(body.as_bytes()));
    match Command::new("genhash")
        .args([
            "-s",
            "127.0.0.1",
            "-p",
            &server.addr.port().to_string(),
            "-u",
            "/index.html",
        ])
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) => {
            let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert_eq!(theirs, ours, "genhash printed {theirs:?}");
        }
        Err(e) => println!("genhash not run ({e}); keepalived's package installs it"),
    }
    let mut url = UrlSpec::path("/index.html");
    url.digest = from_hex(&ours);
    assert_eq!(
        run(&spec(CheckKind::Http(http(url.clone())), server.addr)),
        Outcome::Healthy
    );
    url.digest = Some(body_digest(b"other"));
    let outcome = run(&spec(CheckKind::Http(http(url)), server.addr));
    assert!(
        matches!(&outcome, Outcome::Failed(r) if r.contains("MD5 digest error")),
        "{outcome:?}"
    );
}

#[test]
fn http_probe_checks_status_ranges_and_regex() {
    let server = WebServer::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        Answer {
            status: 302,
            ..Answer::ok("service ready")
        },
    );
    let mut url = UrlSpec::path("/");
    assert!(!run(&spec(CheckKind::Http(http(url.clone())), server.addr)).is_healthy());
    url.status_codes = vec![(300, 399)];
    url.regex = Some("ready$".into());
    assert!(run(&spec(CheckKind::Http(http(url.clone())), server.addr)).is_healthy());
    url.regex_no_match = true;
    assert!(!run(&spec(CheckKind::Http(http(url)), server.addr)).is_healthy());
}

#[test]
fn tcp_probe_fails_on_a_closed_port_and_passes_on_an_open_one() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap();
    assert_eq!(run(&spec(CheckKind::Tcp, open)), Outcome::Healthy);
    drop(listener);
    assert!(!run(&spec(CheckKind::Tcp, open)).is_healthy());
}

#[test]
fn ssl_get_speaks_tls_to_a_server_with_a_self_signed_certificate() {
    let dir = std::env::temp_dir().join(format!("tandem-lb-ssl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rs",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !made.is_ok_and(|s| s.success()) {
        println!("skipped: openssl is not installed");
        return;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    tandem_lab::wait_until(
        "s_server to listen",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || std::net::TcpStream::connect(to).ok(),
    )
    .unwrap();
    let mut url = UrlSpec::path("/");
    url.regex = Some("(?i)cipher".into());
    let mut spec = spec(CheckKind::Ssl(http(url)), to);
    if let CheckKind::Ssl(h) = &mut spec.kind {
        h.virtualhost = Some("rs.example".into());
        h.enable_sni = true;
    }
    let outcome = run(&spec);
    let plain = run(&CheckerSpec {
        kind: CheckKind::Http(http(UrlSpec::path("/"))),
        ..spec.clone()
    });
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(outcome, Outcome::Healthy);
    assert!(!plain.is_healthy(), "plain HTTP to a TLS port fails");
}

#[test]
fn unimplemented_checkers_say_so() {
    let to: SocketAddr = ([127, 0, 0, 1], 25).into();
    // FILE_CHECK has no probe at all: its track_file's values drive it (runner::FileValues).
    for keyword in ["BFD_CHECK", "NO_SUCH_CHECK"] {
        let kind = CheckKind::Other(keyword.into());
        let err = Probe::new(&spec(kind, to), None, Duration::from_secs(1)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{keyword} is not implemented")),
            "{err}"
        );
    }
}

fn udp(require_reply: bool, reply: &[u8]) -> CheckKind {
    CheckKind::Udp(UdpSpec {
        payload: b"ping?".to_vec(),
        require_reply,
        reply: reply.to_vec(),
        min_reply_length: 0,
        max_reply_length: 255,
    })
}

/// A UDP server on loopback answering every datagram with `answer`
/// (or nothing when `answer` is None); returns its address.
fn udp_server(answer: Option<&'static [u8]>) -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            assert_eq!(&buf[..len], b"ping?", "the configured payload is sent");
            if let Some(answer) = answer {
                socket.send_to(answer, from).unwrap();
            }
        }
    });
    addr
}

#[test]
fn udp_check_fails_on_port_unreachable_and_follows_require_reply() {
    // A port nobody listens on: the kernel answers with ICMP port unreachable.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let refused = run(&spec(udp(false, b""), closed_addr));
    assert!(
        matches!(&refused, Outcome::Failed(e) if e.contains("refused")),
        "{refused:?}"
    );

    let silent = udp_server(None);
    assert_eq!(run(&spec(udp(false, b""), silent)), Outcome::Healthy);
    let mut quick = spec(udp(true, b""), silent);
    quick.timing.connect_timeout = Duration::from_millis(300);
    assert!(!run(&quick).is_healthy(), "require_reply needs an answer");

    let answering = udp_server(Some(b"pong!"));
    assert_eq!(run(&spec(udp(true, b""), answering)), Outcome::Healthy);
    assert_eq!(run(&spec(udp(true, b"pong"), answering)), Outcome::Healthy);
    assert!(!run(&spec(udp(true, b"pang"), answering)).is_healthy());
}

#[test]
fn udp_reply_rule_is_keepalived_s() {
    let want = |reply: &[u8], min, max| UdpSpec {
        require_reply: true,
        reply: reply.to_vec(),
        min_reply_length: min,
        max_reply_length: max,
        ..Default::default()
    };
    use tandem_lb::check::probe::reply_matches;
    assert!(reply_matches(&want(b"", 0, 255), b"anything"));
    assert!(reply_matches(&want(b"abc", 0, 255), b"abcdef"));
    assert!(
        reply_matches(&want(b"abc", 0, 255), b"ab"),
        "only what arrived is compared"
    );
    assert!(
        !reply_matches(&want(b"abc", 3, 255), b"ab"),
        "below min_reply_length"
    );
    assert!(
        !reply_matches(&want(b"abc", 0, 4), b"abcdef"),
        "above max_reply_length"
    );
    assert!(!reply_matches(&want(b"abc", 0, 255), b"abx"));
}

/// A DNS server on loopback: first a stray datagram with another id, then
/// the response built by `answer` from the query.
fn dns_server(answer: fn(&Message) -> Message) -> SocketAddr {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let query = Message::from_vec(&buf[..len]).unwrap();
            let mut stray = answer(&query);
            stray.metadata.id = query.metadata.id.wrapping_add(1);
            socket.send_to(&stray.to_vec().unwrap(), from).unwrap();
            socket
                .send_to(&answer(&query).to_vec().unwrap(), from)
                .unwrap();
        }
    });
    addr
}

fn dns(query_type: &str, name: &str) -> CheckKind {
    CheckKind::Dns(DnsSpec {
        query_type: query_type.into(),
        name: name.into(),
    })
}

#[test]
fn dns_check_needs_a_noerror_response_with_the_query_s_id() {
    fn ok(query: &Message) -> Message {
        assert_eq!(query.queries[0].query_type(), RecordType::A);
        assert_eq!(query.queries[0].name().to_ascii(), "www.example.org.");
        assert!(query.metadata.recursion_desired);
        let mut response = Message::response(query.metadata.id, OpCode::Query);
        response.add_queries(query.queries.clone());
        response
    }
    fn refused(query: &Message) -> Message {
        let mut response = Message::response(query.metadata.id, OpCode::Query);
        response.metadata.response_code = ResponseCode::Refused;
        response
    }
    assert_eq!(
        run(&spec(dns("A", "www.example.org"), dns_server(ok))),
        Outcome::Healthy
    );
    let failed = run(&spec(dns("A", "www.example.org"), dns_server(refused)));
    assert!(!failed.is_healthy(), "{failed:?}");

    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut quick = spec(dns("SOA", ""), silent.local_addr().unwrap());
    quick.timing.connect_timeout = Duration::from_millis(300);
    assert!(!run(&quick).is_healthy(), "no response is a failure");

    let bad = Probe::new(
        &spec(dns("NOPE", ""), silent.local_addr().unwrap()),
        None,
        Duration::ZERO,
    );
    assert!(bad.is_err(), "an unknown type is refused before any check");
}

/// An SMTP server on loopback speaking `greeting`, then answering HELO with
/// `helo_reply`; it hands back the HELO line it received.
fn smtp_server(
    greeting: &'static str,
    helo_reply: &'static str,
) -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut write = stream.try_clone().unwrap();
        let mut read = BufReader::new(stream);
        write.write_all(greeting.as_bytes()).unwrap();
        for reply in [helo_reply, "221 bye\r\n"] {
            let mut line = String::new();
            if read.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let _ = seen.send(line.trim_end().to_string());
            let _ = write.write_all(reply.as_bytes());
        }
    });
    (addr, heard)
}

fn smtp() -> CheckKind {
    CheckKind::Smtp(SmtpSpec {
        helo_name: "checker.tandem.test".into(),
    })
}

#[test]
fn smtp_check_follows_greeting_helo_quit() {
    let (good, heard) = smtp_server("220 mx.test ESMTP\r\n", "250 mx.test\r\n");
    assert_eq!(run(&spec(smtp(), good)), Outcome::Healthy);
    assert_eq!(heard.recv().unwrap(), "HELO checker.tandem.test");
    assert_eq!(heard.recv().unwrap(), "QUIT");

    let (busy, _) = smtp_server("554 no service\r\n", "250 mx.test\r\n");
    let failed = run(&spec(smtp(), busy));
    assert!(
        matches!(&failed, Outcome::Failed(e) if e.contains("greeting")),
        "{failed:?}"
    );

    let (refusing, _) = smtp_server("220 mx.test\r\n", "501 who are you\r\n");
    let failed = run(&spec(smtp(), refusing));
    assert!(
        matches!(&failed, Outcome::Failed(e) if e.contains("HELO")),
        "{failed:?}"
    );

    let (mute, _) = smtp_server("", "");
    let mut quick = spec(smtp(), mute);
    quick.timing.connect_timeout = Duration::from_millis(300);
    assert!(
        !run(&quick).is_healthy(),
        "no greeting within connect_timeout"
    );
}

#[test]
fn ping_check_answers_on_loopback_for_both_families() {
    for to in ["127.0.0.1:0", "[::1]:0"] {
        let outcome = run(&spec(CheckKind::Ping, to.parse().unwrap()));
        assert_eq!(outcome, Outcome::Healthy, "{to}");
    }
}
