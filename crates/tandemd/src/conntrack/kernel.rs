//! The kernel's conntrack table, reached from the async daemon without blocking it: a thread
//! owns the request socket (dumps and batched creates of a million entries take seconds) and
//! another reads events.

use std::sync::mpsc as std_mpsc;
use std::thread;

use anyhow::{anyhow, Context, Result};
use tandem_ctnetlink::{Conntrack, Event, Events, Groups, PauseHandle};
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce(&mut Conntrack) + Send>;

/// Handle to the request thread.
#[derive(Clone)]
pub struct Kernel {
    jobs: std_mpsc::Sender<Job>,
    port: u32,
    pause: PauseHandle,
}

impl Kernel {
    /// Opens the sockets in the caller's network namespace and starts both threads.
    /// Events arrive in batches on the returned channel.
    pub fn start(strict_tcp: bool) -> Result<(Kernel, mpsc::Receiver<Vec<Event>>)> {
        let mut conntrack = Conntrack::open().context("opening ctnetlink")?;
        conntrack.set_strict_tcp(strict_tcp);
        let port = conntrack.port_id();
        let events = Events::subscribe(Groups::ALL).context("subscribing to conntrack events")?;
        if let Err(e) = events.ignore_origin(port) {
            // Still correct without it: the service skips its own events, at some CPU cost.
            tracing::warn!("conntrack events: {e}; own changes are filtered in user space");
        }
        let pause = events.pause_handle();
        let (jobs, queue) = std_mpsc::channel::<Job>();
        thread::Builder::new()
            .name("ct-requests".into())
            .spawn(move || {
                for job in queue {
                    job(&mut conntrack);
                }
            })
            .context("starting the conntrack request thread")?;
        let (tx, rx) = mpsc::channel(1024);
        thread::Builder::new()
            .name("ct-events".into())
            .spawn(move || read_events(events, tx))
            .context("starting the conntrack event thread")?;
        Ok((Kernel { jobs, port, pause }, rx))
    }

    /// Netlink port id of the request socket: events carrying it are our own changes.
    pub fn port_id(&self) -> u32 {
        self.port
    }

    /// Pauses and resumes the event socket's NEW and UPDATE subscriptions (big commits).
    pub fn pause_handle(&self) -> PauseHandle {
        self.pause.clone()
    }

    /// Queues `f` on the request thread without waiting for it (it reports back itself).
    pub fn submit(&self, f: impl FnOnce(&mut Conntrack) + Send + 'static) -> Result<()> {
        self.jobs
            .send(Box::new(f))
            .map_err(|_| anyhow!("conntrack request thread has stopped"))
    }

    /// Runs `f` on the request thread and waits for its result without blocking the runtime.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conntrack) -> Result<T, tandem_ctnetlink::Error> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |ct| {
                let _ = tx.send(f(ct));
            }))
            .map_err(|_| anyhow!("conntrack request thread has stopped"))?;
        rx.await
            .map_err(|_| anyhow!("conntrack request thread dropped a request"))?
            .map_err(Into::into)
    }
}

/// Reads events and hands them over in batches. After the kernel reports lost events
/// (ENOBUFS) it keeps reading, without blocking, until the socket is drained, and only then
/// asks for a resync: the kernel reports only the first loss while the socket stays
/// congested, so a dump taken earlier could miss events dropped after it, unreported.
fn read_events(mut events: Events, tx: mpsc::Sender<Vec<Event>>) {
    let mut draining = false;
    loop {
        let mut batch = Vec::new();
        let result = events.recv_into(&mut batch);
        let mut lost = batch.iter().any(|e| matches!(e, Event::Overflow));
        batch.retain(|e| !matches!(e, Event::Overflow));
        let mut drained = false;
        match result {
            Ok(()) => {}
            Err(tandem_ctnetlink::Error::Io { source, .. })
                if draining && source.kind() == std::io::ErrorKind::WouldBlock =>
            {
                drained = true;
            }
            Err(e) => {
                tracing::warn!("conntrack events: {e}");
                lost = true;
                // Back off so a socket that keeps failing does not spin a core.
                thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        if lost && !draining {
            draining = true;
            let _ = events.set_nonblocking(true);
        }
        if drained {
            // The kernel reports the next loss again, and a dump from now on is complete.
            draining = false;
            let _ = events.set_nonblocking(false);
            batch.push(Event::Overflow);
        }
        if !batch.is_empty() && tx.blocking_send(batch).is_err() {
            return;
        }
    }
}
