//! Helpers for the lb tests: a tiny web server whose answers the test
//! changes while it runs, the checker runner driven from a namespace, and
//! `nft` run in a namespace.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tandem_lb::check::{runner, Action, VirtualServerSpec};

/// What the web server answers.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
    /// Hold the connection without answering (a hung server).
    pub stall: bool,
}

impl Answer {
    /// 200 with `body`.
    pub fn ok(body: &str) -> Answer {
        Answer {
            status: 200,
            body: body.as_bytes().to_vec(),
            stall: false,
        }
    }
}

/// A web server on one listener; answers per [`Answer`], changeable live.
/// It only reads up to the blank line of a request: the checker under test
/// is the HTTP client, this is just a fixture.
pub struct WebServer {
    pub addr: SocketAddr,
    pub answer: Arc<Mutex<Answer>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WebServer {
    /// Serves on `listener` (already bound, possibly in a namespace).
    pub fn start(listener: TcpListener, answer: Answer) -> WebServer {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (answer, stop) = (answer.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (answer, stop) = (answer.clone(), stop.clone());
                            std::thread::spawn(move || serve(conn, &answer, &stop));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        WebServer {
            addr,
            answer,
            stop,
            thread: Some(thread),
        }
    }

    /// Changes the answer from now on.
    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, answer: &Mutex<Answer>, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let a = answer.lock().unwrap().clone();
    if a.stall {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    let head = format!(
        "HTTP/1.0 {} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        a.status,
        a.body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&a.body);
}

/// The checker runner on a current-thread tokio runtime inside a
/// namespace; every action arrives on `events` with the time it was sent,
/// after its notify script (if any) was started.
pub struct Checking {
    pub events: mpsc::Receiver<(Instant, Action)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checking {
    /// Starts checking `specs` from namespace `ns`.
    pub fn start(ns: &tandem_lab::Netns, specs: Vec<VirtualServerSpec>) -> Checking {
        let (tx, events) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let ns = ns.clone();
        let thread = std::thread::spawn(move || {
            ns.enter(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let (specs, probes, skipped) = runner::prepare(specs);
                    assert!(skipped.is_empty(), "{skipped:?}");
                    let (atx, mut arx) = tokio::sync::mpsc::unbounded_channel();
                    let running = runner::start(specs, probes, 42, runner::FileValues::none(), atx);
                    let forward = async {
                        while let Some(action) = arx.recv().await {
                            if let Action::Notify(n) = &action {
                                runner::run_notify(n).await.unwrap();
                            }
                            if tx.send((Instant::now(), action)).is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = forward => {}
                        _ = stop_rx => {}
                    }
                    running.stop().await;
                });
            })
            .unwrap();
        });
        Checking {
            events,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Waits up to `deadline` for an action matching `f`; returns when it came.
    pub fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        mut f: impl FnMut(&Action) -> bool,
    ) -> Instant {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok((at, action)) if f(&action) => return at,
                Ok(_) => {}
                Err(_) => panic!("timed out after {deadline:?} waiting for {what}"),
            }
        }
    }
}

impl Drop for Checking {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The addresses and weights of a `SetPool` action for virtual server 0.
pub fn pool(action: &Action) -> Option<Vec<(SocketAddr, u32)>> {
    match action {
        Action::SetPool {
            vs: 0,
            destinations,
        } => Some(destinations.iter().map(|d| (d.addr, d.weight)).collect()),
        _ => None,
    }
}

/// Runs `nft` with `args` as one argument (nft splits it itself) in `ns`;
/// stdout, or an error with nft's stderr when it fails.
pub fn nft(ns: &tandem_lab::Netns, args: &str) -> anyhow::Result<String> {
    let out = ns.exec(&["nft", args])?;
    if !out.status.success() {
        anyhow::bail!(
            "nft {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
