//! Flow generator: long-lived TCP streams (and a UDP stream) whose health
//! across a failover can be measured.
//!
//! An [`EchoServer`] runs inside the server namespace; [`TcpFlows`] opens
//! connections to it from the client namespace and, on each, sends a small
//! sequence-numbered message every `interval` and waits for its echo (one
//! message in flight per flow). Each flow records bytes both ways, the last
//! echo, the longest gap between consecutive echoes (the *stall*) and how it
//! ended. [`UdpFlow`] does the same with datagrams and counts losses.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use tandem_lab::{EchoServer, Gateway, TcpFlows};
//! let gw = Gateway::new("doc")?;
//! Gateway::add_vips(&gw.a)?;
//! let _echo = EchoServer::start(&gw.server, 7000)?;
//! let server = (tandem_lab::gateway::SERVER_ADDR, 7000).into();
//! let flows = TcpFlows::start(&gw.client, server, 50, Duration::from_millis(20))?;
//! flows.mark();
//! // ... fail over ...
//! flows.wait_all_progress(Duration::from_secs(5))?;
//! assert_eq!(flows.report().alive, 50);
//! # Ok(()) }
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Netns;

/// How often blocked threads look at their stop flag and deadlines.
const POLL: Duration = Duration::from_millis(25);

/// Size of one TCP or UDP probe: magic, flow id, sequence number.
const MSG_LEN: usize = 16;

/// First bytes of every probe, so stray data is recognised.
const MAGIC: [u8; 4] = *b"tdfl";

/// Locks a mutex, ignoring poisoning (a panicking driver thread must not hide
/// the statistics it collected).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Encodes probe `seq` of flow `id`.
fn probe(id: u32, seq: u64) -> [u8; MSG_LEN] {
    let mut msg = [0u8; MSG_LEN];
    msg[..4].copy_from_slice(&MAGIC);
    msg[4..8].copy_from_slice(&id.to_be_bytes());
    msg[8..].copy_from_slice(&seq.to_be_bytes());
    msg
}

/// Decodes a probe of flow `id`; `None` for anything else.
fn parse_probe(id: u32, msg: &[u8]) -> Option<u64> {
    if msg.len() != MSG_LEN || msg[..4] != MAGIC || msg[4..8] != id.to_be_bytes() {
        return None;
    }
    Some(u64::from_be_bytes(msg[8..].try_into().ok()?))
}

/// Whether an I/O error only means "nothing yet".
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Sleeps until `until`, in steps, returning early (false) when `stop` is set.
fn sleep_until(until: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(POLL));
    }
}

/// Spawns a named thread.
fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> anyhow::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .context("spawning flow thread")
}

// ---------------------------------------------------------------------------
// Echo server

/// TCP and UDP echo on `0.0.0.0:port` inside a namespace; stops on drop.
#[derive(Debug)]
pub struct EchoServer {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    peers: Arc<Mutex<Vec<SocketAddr>>>,
}

impl EchoServer {
    /// Opens TCP and UDP sockets on `0.0.0.0:port` inside `ns` (port 0 picks
    /// a free TCP port and uses it for UDP too) and serves them from
    /// background threads.
    pub fn start(ns: &Netns, port: u16) -> anyhow::Result<EchoServer> {
        let (tcp, udp) = ns
            .enter(move || -> std::io::Result<(TcpListener, UdpSocket)> {
                let tcp = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
                let port = tcp.local_addr()?.port();
                let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
                Ok((tcp, udp))
            })?
            .with_context(|| format!("binding echo sockets on port {port} in {}", ns.name()))?;
        let port = tcp.local_addr()?.port();
        tcp.set_nonblocking(true)?;
        udp.set_read_timeout(Some(POLL))?;
        let server = EchoServer {
            port,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Arc::new(Mutex::new(Vec::new())),
            peers: Arc::new(Mutex::new(Vec::new())),
        };
        let (stop, threads, peers) = (
            server.stop.clone(),
            server.threads.clone(),
            server.peers.clone(),
        );
        let accept = spawn(format!("echo-tcp-{port}"), move || {
            accept_loop(tcp, &stop, &threads, &peers)
        })?;
        lock(&server.threads).push(accept);
        let stop = server.stop.clone();
        let udp = spawn(format!("echo-udp-{port}"), move || udp_echo(udp, &stop))?;
        lock(&server.threads).push(udp);
        Ok(server)
    }

    /// The port both echo sockets listen on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Remote addresses of the TCP connections accepted so far, in order
    /// (behind the gateways' source NAT these show the internal VIP).
    pub fn peers(&self) -> Vec<SocketAddr> {
        lock(&self.peers).clone()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Joined one at a time: the accept thread may still push handles.
        while let Some(t) = {
            let next = lock(&self.threads).pop();
            next
        } {
            let _ = t.join();
        }
    }
}

/// Accepts TCP connections and serves each from its own thread.
fn accept_loop(
    listener: TcpListener,
    stop: &Arc<AtomicBool>,
    threads: &Mutex<Vec<JoinHandle<()>>>,
    peers: &Mutex<Vec<SocketAddr>>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, peer)) => {
                lock(peers).push(peer);
                let stop = stop.clone();
                if let Ok(t) = spawn(format!("echo-{peer}"), move || tcp_echo(conn, &stop)) {
                    lock(threads).push(t);
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Echoes one TCP connection until EOF, an error or `stop`.
fn tcp_echo(mut conn: TcpStream, stop: &AtomicBool) {
    let setup = conn
        .set_nonblocking(false)
        .and_then(|()| conn.set_nodelay(true))
        .and_then(|()| conn.set_read_timeout(Some(POLL)))
        .and_then(|()| conn.set_write_timeout(Some(Duration::from_secs(1))));
    if setup.is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// Echoes UDP datagrams until `stop`.
fn udp_echo(sock: UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], peer);
        }
    }
}

// ---------------------------------------------------------------------------
// TCP flows

/// Settings of [`TcpFlows`] and [`UdpFlow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowOptions {
    /// Time between probes on one flow (default 20 ms).
    pub interval: Duration,
    /// A flow without an echo for longer than this is dead (default 10 s).
    pub dead_after: Duration,
    /// Limit for opening each TCP connection (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for FlowOptions {
    fn default() -> Self {
        FlowOptions {
            interval: Duration::from_millis(20),
            dead_after: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Statistics of one TCP flow, as returned by [`TcpFlows::report`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowStat {
    /// Index of the flow, 0..n.
    pub id: usize,
    /// Local (client-side) address of the connection.
    pub local: SocketAddr,
    /// Bytes written to the connection.
    pub bytes_sent: u64,
    /// Bytes read back from it.
    pub bytes_received: u64,
    /// Number of complete echoes received.
    pub echoes: u64,
    /// When the last echo arrived (`None` before the first).
    pub last_echo: Option<Instant>,
    /// Longest gap between consecutive echoes since the start or the last
    /// [`TcpFlows::mark`], including the gap still running.
    pub longest_stall: Duration,
    /// Why the flow died (reset, EOF, timeout, ...); `None` while alive.
    pub error: Option<String>,
}

impl FlowStat {
    /// Whether the flow is still running.
    pub fn alive(&self) -> bool {
        self.error.is_none()
    }
}

/// Summary of all flows of a [`TcpFlows`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowReport {
    /// Flows still running.
    pub alive: usize,
    /// Flows started.
    pub total: usize,
    /// Longest stall of any flow (dead ones included) in the window.
    pub longest_stall: Duration,
    /// One entry per flow, by id.
    pub per_flow: Vec<FlowStat>,
}

impl FlowReport {
    /// The flows that died.
    pub fn dead(&self) -> Vec<&FlowStat> {
        self.per_flow.iter().filter(|f| !f.alive()).collect()
    }
}

impl std::fmt::Display for FlowReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} flows alive, longest stall {:?}",
            self.alive, self.total, self.longest_stall
        )?;
        let dead = self.dead();
        if let Some(first) = dead.first() {
            write!(
                f,
                "; {} dead, e.g. flow {}: {}",
                dead.len(),
                first.id,
                first.error.as_deref().unwrap_or("?")
            )?;
        }
        Ok(())
    }
}

/// Mutable state of one TCP flow, shared with its driver thread.
#[derive(Debug)]
struct FlowState {
    stat: FlowStat,
    /// Reference point of the current gap: the last echo, or the start.
    since: Instant,
}

impl FlowState {
    fn new(id: usize, local: SocketAddr, now: Instant) -> FlowState {
        FlowState {
            stat: FlowStat {
                id,
                local,
                bytes_sent: 0,
                bytes_received: 0,
                echoes: 0,
                last_echo: None,
                longest_stall: Duration::ZERO,
                error: None,
            },
            since: now,
        }
    }

    /// Records an echo at `now`.
    fn echo(&mut self, now: Instant) {
        let gap = now - self.since;
        self.stat.longest_stall = self.stat.longest_stall.max(gap);
        self.stat.echoes += 1;
        self.stat.last_echo = Some(now);
        self.since = now;
    }

    /// Records the flow's death.
    fn die(&mut self, why: String) {
        if self.stat.error.is_none() {
            let gap = self.since.elapsed();
            self.stat.longest_stall = self.stat.longest_stall.max(gap);
            self.stat.error = Some(why);
        }
    }

    /// The statistics as of now (the running gap counts for a live flow).
    fn snapshot(&self, now: Instant) -> FlowStat {
        let mut stat = self.stat.clone();
        if stat.alive() {
            stat.longest_stall = stat
                .longest_stall
                .max(now.saturating_duration_since(self.since));
        }
        stat
    }
}

/// `n` TCP connections from one namespace to an [`EchoServer`], each probed
/// every `interval` by its own thread; stops on drop.
#[derive(Debug)]
pub struct TcpFlows {
    flows: Vec<Arc<Mutex<FlowState>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    opts: FlowOptions,
}

impl TcpFlows {
    /// Opens `n` connections from `ns` to `server` and probes each every
    /// `interval`; other settings are [`FlowOptions::default`].
    pub fn start(
        ns: &Netns,
        server: SocketAddr,
        n: usize,
        interval: Duration,
    ) -> anyhow::Result<TcpFlows> {
        let opts = FlowOptions {
            interval,
            ..FlowOptions::default()
        };
        TcpFlows::start_with(ns, server, n, opts)
    }

    /// Like [`TcpFlows::start`] with all settings given.
    pub fn start_with(
        ns: &Netns,
        server: SocketAddr,
        n: usize,
        opts: FlowOptions,
    ) -> anyhow::Result<TcpFlows> {
        anyhow::ensure!(!opts.interval.is_zero(), "flow interval must not be zero");
        let timeout = opts.connect_timeout;
        let streams = ns
            .enter(move || -> std::io::Result<Vec<TcpStream>> {
                (0..n)
                    .map(|_| TcpStream::connect_timeout(&server, timeout))
                    .collect()
            })?
            .with_context(|| format!("connecting {n} flows from {} to {server}", ns.name()))?;
        let mut flows = TcpFlows {
            flows: Vec::with_capacity(n),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::with_capacity(n),
            opts,
        };
        let start = Instant::now();
        for (id, stream) in streams.into_iter().enumerate() {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(POLL))?;
            stream.set_write_timeout(Some(POLL))?;
            let state = Arc::new(Mutex::new(FlowState::new(id, stream.local_addr()?, start)));
            flows.flows.push(state.clone());
            let stop = flows.stop.clone();
            flows.threads.push(spawn(format!("flow-{id}"), move || {
                let why = drive_tcp(id as u32, stream, &state, &stop, opts);
                if let Some(why) = why {
                    lock(&state).die(why);
                }
            })?);
        }
        Ok(flows)
    }

    /// Number of flows started.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow was started.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The settings in use.
    pub fn options(&self) -> FlowOptions {
        self.opts
    }

    /// Current statistics of all flows.
    pub fn report(&self) -> FlowReport {
        let now = Instant::now();
        let per_flow: Vec<FlowStat> = self.flows.iter().map(|f| lock(f).snapshot(now)).collect();
        FlowReport {
            alive: per_flow.iter().filter(|f| f.alive()).count(),
            total: per_flow.len(),
            longest_stall: per_flow
                .iter()
                .map(|f| f.longest_stall)
                .max()
                .unwrap_or_default(),
            per_flow,
        }
    }

    /// Starts a new stall measurement window: forgets the longest stall so
    /// far (a gap running at this moment still counts in full).
    pub fn mark(&self) {
        for f in &self.flows {
            lock(f).stat.longest_stall = Duration::ZERO;
        }
    }

    /// Waits until every flow has received at least one more echo than at
    /// the time of the call, proving data flows both ways; the error names
    /// the flows that did not (dead ones with their error).
    pub fn wait_all_progress(&self, deadline: Duration) -> anyhow::Result<()> {
        let before: Vec<u64> = self.flows.iter().map(|f| lock(f).stat.echoes).collect();
        let start = Instant::now();
        loop {
            let stuck: Vec<FlowStat> = self
                .flows
                .iter()
                .zip(&before)
                .map(|(f, &b)| (lock(f).snapshot(Instant::now()), b))
                .filter(|(s, b)| s.echoes <= *b)
                .map(|(s, _)| s)
                .collect();
            if stuck.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= deadline || stuck.iter().all(|s| !s.alive()) {
                let names: Vec<String> = stuck
                    .iter()
                    .map(|s| match &s.error {
                        Some(e) => format!("{} ({e})", s.id),
                        None => s.id.to_string(),
                    })
                    .collect();
                anyhow::bail!(
                    "{} of {} flows made no progress within {deadline:?}: {}",
                    stuck.len(),
                    self.flows.len(),
                    names.join(", ")
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops all flows (closing the connections) and returns the final report.
    pub fn stop(mut self) -> FlowReport {
        self.shutdown();
        self.report()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for TcpFlows {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Probes one connection until it fails or `stop` is set; returns why it
/// died (`None` when stopped).
fn drive_tcp(
    id: u32,
    mut stream: TcpStream,
    state: &Mutex<FlowState>,
    stop: &AtomicBool,
    opts: FlowOptions,
) -> Option<String> {
    let mut next_send = Instant::now();
    let mut seq = 0u64;
    let mut buf = [0u8; MSG_LEN];
    loop {
        if !sleep_until(next_send, stop) {
            return None;
        }
        let msg = probe(id, seq);
        let sent_at = Instant::now();
        let mut written = 0;
        while written < MSG_LEN {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            match stream.write(&msg[written..]) {
                Ok(0) => return Some("connection closed while writing".into()),
                Ok(n) => {
                    written += n;
                    lock(state).stat.bytes_sent += n as u64;
                }
                Err(e) if is_timeout(&e) => {
                    if lock(state).since.elapsed() > opts.dead_after {
                        return Some(format!("no echo for {:?} (send blocked)", opts.dead_after));
                    }
                }
                Err(e) => return Some(format!("write: {e}")),
            }
        }
        let mut got = 0;
        while got < MSG_LEN {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            match stream.read(&mut buf[got..]) {
                Ok(0) => return Some("EOF".into()),
                Ok(n) => {
                    got += n;
                    lock(state).stat.bytes_received += n as u64;
                }
                Err(e) if is_timeout(&e) => {
                    if lock(state).since.elapsed() > opts.dead_after {
                        return Some(format!("no echo for {:?}", opts.dead_after));
                    }
                }
                Err(e) => return Some(format!("read: {e}")),
            }
        }
        if parse_probe(id, &buf) != Some(seq) {
            return Some(format!("bad echo for probe {seq}: {buf:02x?}"));
        }
        lock(state).echo(Instant::now());
        seq += 1;
        next_send = sent_at + opts.interval;
    }
}

// ---------------------------------------------------------------------------
// UDP flow

/// Statistics of a [`UdpFlow`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpReport {
    /// Probes sent since the start.
    pub sent: u64,
    /// Echoes received since the start.
    pub received: u64,
    /// Probes sent since the last [`UdpFlow::mark`] (or the start), older
    /// than the loss grace time (`max(dead_after/10, 5 × interval)`),
    /// without an echo.
    pub lost: u64,
    /// Longest gap between consecutive echoes in the window, including the
    /// gap still running.
    pub longest_gap: Duration,
    /// When the last echo arrived.
    pub last_echo: Option<Instant>,
    /// Send or receive errors (e.g. ICMP port unreachable); not fatal.
    pub errors: u64,
    /// Whether an echo came within `dead_after`.
    pub alive: bool,
}

#[derive(Debug)]
struct UdpState {
    /// Send time and whether the echo came, by sequence number.
    probes: Vec<(Instant, bool)>,
    received: u64,
    errors: u64,
    since: Instant,
    last_echo: Option<Instant>,
    longest_gap: Duration,
    /// First sequence number of the loss window.
    mark_seq: usize,
}

/// One UDP stream from a namespace to an [`EchoServer`]: a datagram every
/// `interval`, echoes counted; stops on drop.
#[derive(Debug)]
pub struct UdpFlow {
    state: Arc<Mutex<UdpState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    opts: FlowOptions,
}

impl UdpFlow {
    /// Opens a UDP socket in `ns` towards `server` and sends a probe every
    /// `interval`; other settings are [`FlowOptions::default`].
    pub fn start(ns: &Netns, server: SocketAddr, interval: Duration) -> anyhow::Result<UdpFlow> {
        let opts = FlowOptions {
            interval,
            ..FlowOptions::default()
        };
        UdpFlow::start_with(ns, server, opts)
    }

    /// Like [`UdpFlow::start`] with all settings given.
    pub fn start_with(
        ns: &Netns,
        server: SocketAddr,
        opts: FlowOptions,
    ) -> anyhow::Result<UdpFlow> {
        anyhow::ensure!(!opts.interval.is_zero(), "flow interval must not be zero");
        let sock = ns
            .enter(move || -> std::io::Result<UdpSocket> {
                let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                sock.connect(server)?;
                Ok(sock)
            })?
            .with_context(|| format!("opening a UDP flow from {} to {server}", ns.name()))?;
        let state = Arc::new(Mutex::new(UdpState {
            probes: Vec::new(),
            received: 0,
            errors: 0,
            since: Instant::now(),
            last_echo: None,
            longest_gap: Duration::ZERO,
            mark_seq: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = spawn("udp-flow".into(), move || drive_udp(&sock, &st, &sp, opts))?;
        Ok(UdpFlow {
            state,
            stop,
            thread: Some(thread),
            opts,
        })
    }

    /// Current statistics.
    pub fn report(&self) -> UdpReport {
        let now = Instant::now();
        let grace = (self.opts.dead_after / 10).max(self.opts.interval * 5);
        let st = lock(&self.state);
        let gap = now.saturating_duration_since(st.since);
        UdpReport {
            sent: st.probes.len() as u64,
            received: st.received,
            lost: st.probes[st.mark_seq.min(st.probes.len())..]
                .iter()
                .filter(|(at, echoed)| !echoed && now.saturating_duration_since(*at) > grace)
                .count() as u64,
            longest_gap: st.longest_gap.max(gap),
            last_echo: st.last_echo,
            errors: st.errors,
            alive: gap <= self.opts.dead_after,
        }
    }

    /// Starts a new measurement window for `longest_gap` and `lost`.
    pub fn mark(&self) {
        let mut st = lock(&self.state);
        st.longest_gap = Duration::ZERO;
        st.mark_seq = st.probes.len();
    }

    /// Waits until at least one more echo than at the time of the call came
    /// back.
    pub fn wait_progress(&self, deadline: Duration) -> anyhow::Result<()> {
        let before = lock(&self.state).received;
        crate::wait_until(
            "an echo on the UDP flow",
            deadline,
            Duration::from_millis(5),
            || (lock(&self.state).received > before).then_some(()),
        )
    }

    /// Stops the flow and returns the final report.
    pub fn stop(mut self) -> UdpReport {
        self.shutdown();
        self.report()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for UdpFlow {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends a probe every `interval` and counts echoes until `stop`.
fn drive_udp(sock: &UdpSocket, state: &Mutex<UdpState>, stop: &AtomicBool, opts: FlowOptions) {
    const ID: u32 = u32::MAX;
    let mut next_send = Instant::now();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_send {
            let mut st = lock(state);
            let seq = st.probes.len() as u64;
            st.probes.push((now, false));
            if sock.send(&probe(ID, seq)).is_err() {
                st.errors += 1;
            }
            next_send += opts.interval;
            if next_send < now {
                next_send = now + opts.interval;
            }
        }
        let wait = next_send
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), POLL);
        if sock.set_read_timeout(Some(wait)).is_err() {
            lock(state).errors += 1;
            std::thread::sleep(wait);
            continue;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                let Some(seq) = parse_probe(ID, &buf[..n]) else {
                    continue;
                };
                let now = Instant::now();
                let mut st = lock(state);
                match st.probes.get_mut(seq as usize) {
                    Some((_, echoed)) if !*echoed => *echoed = true,
                    _ => continue,
                }
                st.received += 1;
                let gap = now - st.since;
                st.longest_gap = st.longest_gap.max(gap);
                st.since = now;
                st.last_echo = Some(now);
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => lock(state).errors += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_round_trip() {
        let msg = probe(7, 123_456);
        assert_eq!(parse_probe(7, &msg), Some(123_456));
        assert_eq!(parse_probe(8, &msg), None);
        assert_eq!(parse_probe(7, &msg[..15]), None);
        let mut bad = msg;
        bad[0] = b'x';
        assert_eq!(parse_probe(7, &bad), None);
    }

    #[test]
    fn stall_includes_running_gap_and_death() {
        let t0 = Instant::now();
        let local: SocketAddr = "10.1.0.100:40000".parse().unwrap();
        let mut st = FlowState::new(0, local, t0);
        st.echo(t0 + Duration::from_millis(20));
        st.echo(t0 + Duration::from_millis(120));
        assert_eq!(st.stat.longest_stall, Duration::from_millis(100));
        let snap = st.snapshot(t0 + Duration::from_millis(420));
        assert_eq!(snap.longest_stall, Duration::from_millis(300));
        assert!(snap.alive());
        st.die("EOF".into());
        assert!(!st.snapshot(Instant::now()).alive());
    }
}
