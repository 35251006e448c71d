//! The control socket: one request line in, a text reply out, then the connection closes.
//! `tandemctl` speaks it; so can `socat - UNIX-CONNECT:PATH`.
//!
//! Who may do what: the socket file is mode 0660, owned by root and the control group, so
//! only root and that group can connect. The daemon then checks each peer's credentials
//! (SO_PEERCRED): verbs that only read ([`Access::ReadOnly`]) answer anyone connected,
//! verbs that change the caches or the kernel table need uid 0.
//!
//! Limits, so a local user cannot exhaust the daemon: a request line is at most
//! [`MAX_REQUEST`] bytes (read through a bounded reader, a longer one gets an error and the
//! connection closes), a client has [`READ_TIMEOUT`] to send it, at most [`MAX_CONNECTIONS`]
//! are served at once, and a failing `accept` (EMFILE) is retried after a pause instead of in
//! a busy loop. When all slots are taken, a new connection takes the slot of the oldest one
//! still waiting for its request line (that one is closed at once); with no such connection
//! the new one is closed. Idle connections therefore cannot lock `tandemctl status` out: it
//! sends its line as soon as it connects.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Group};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, warn};

use crate::log_limit::LogLimiter;

/// Longest request line accepted, newline excluded.
pub const MAX_REQUEST: usize = 4096;
/// How long a client has to send its request line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one write of the reply may stall (a client that stops reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// Pause after a failed `accept` (out of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The socket file's mode: owner and group read and write, nobody else.
const SOCKET_MODE: u32 = 0o660;
/// The group that gets access by default, when it exists.
pub const DEFAULT_GROUP: &str = "tandem";

/// A request from a client, answered by the daemon loop.
pub struct Request {
    /// The command line the client sent, trimmed.
    pub command: String,
    /// Where the reply goes.
    pub reply: oneshot::Sender<String>,
}

pub use tandem_control::{access, Access};

/// Removes the socket file when the daemon exits.
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The group owning the socket: `name` when given (it must exist), else `tandem` when that
/// group exists, else the daemon's own group (root's, so only root gets in).
pub fn control_group(name: Option<&str>) -> Result<Gid> {
    match name {
        Some(name) => {
            if let Ok(gid) = name.parse::<u32>() {
                return Ok(Gid::from_raw(gid));
            }
            match Group::from_name(name) {
                Ok(Some(group)) => Ok(group.gid),
                Ok(None) => bail!("--control-group {name}: no such group"),
                Err(e) => bail!("--control-group {name}: looking up the group: {e}"),
            }
        }
        None => Ok(match Group::from_name(DEFAULT_GROUP) {
            Ok(Some(group)) => group.gid,
            _ => nix::unistd::getegid(),
        }),
    }
}

/// Listens on `path` (mode 0660, group `group`) and forwards requests to `to_daemon`.
pub fn listen(path: &Path, group: Gid, to_daemon: mpsc::Sender<Request>) -> Result<ControlSocket> {
    // A socket file left by a killed daemon would make bind fail.
    let _ = std::fs::remove_file(path);
    // The file is created with the process umask: make it at most 0660 from the start, so
    // no one else can connect between the bind and the chmod below.
    let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o117));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.with_context(|| format!("binding control socket {}", path.display()))?;
    let socket = ControlSocket {
        path: path.to_path_buf(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    if let Err(e) = std::os::unix::fs::chown(path, None, Some(group.as_raw())) {
        // Without CAP_CHOWN the file keeps the daemon's group: only root gets in.
        warn!(
            "control socket {}: giving it group {group}: {e}; only root can use it",
            path.display()
        );
    }
    tokio::spawn(serve(listener, to_daemon));
    Ok(socket)
}

/// Connections still waiting for their request line, oldest first, each with the switch
/// that closes it when a new connection needs its slot.
#[derive(Default)]
struct Idle {
    next: u64,
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// Takes a connection out of [`Idle`] when it stops waiting, however it stops.
struct IdleEntry {
    idle: Arc<Mutex<Idle>>,
    id: u64,
}

impl Drop for IdleEntry {
    fn drop(&mut self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.waiting.retain(|(id, _)| *id != self.id);
        }
    }
}

/// Accepts connections, each served on a task of its own, at most [`MAX_CONNECTIONS`] at once.
async fn serve(listener: UnixListener, to_daemon: mpsc::Sender<Request>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let idle = Arc::new(Mutex::new(Idle::default()));
    let mut accept_log = LogLimiter::default();
    let mut full_log = LogLimiter::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                if let Some(n) = accept_log.hit(Instant::now(), 1) {
                    warn!("control socket: accept failed: {e} ({n} failures since the last line)");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let evicted = (idle.lock().ok())
                    .and_then(|mut idle| idle.waiting.pop_front())
                    .map(|(_, close)| close.send(()));
                // The closed connection's task gives its slot back as soon as it runs.
                let freed = match evicted {
                    Some(_) => {
                        tokio::time::timeout(ACCEPT_BACKOFF, Arc::clone(&slots).acquire_owned())
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                    None => None,
                };
                if let Some(n) = full_log.hit(Instant::now(), 1) {
                    warn!(
                        "control socket: {MAX_CONNECTIONS} connections open, closing the \
                         oldest idle one or the new one ({n} closed since the last line)"
                    );
                }
                match freed {
                    Some(slot) => slot,
                    None => {
                        let _ = stream.try_write(b"error: too many connections, try again\n");
                        continue;
                    }
                }
            }
        };
        let (close, closed) = oneshot::channel();
        let entry = match idle.lock() {
            Ok(mut list) => {
                list.next += 1;
                let id = list.next;
                list.waiting.push_back((id, close));
                IdleEntry {
                    idle: Arc::clone(&idle),
                    id,
                }
            }
            Err(_) => continue,
        };
        let to_daemon = to_daemon.clone();
        tokio::spawn(async move {
            serve_one(stream, entry, closed, to_daemon).await;
            drop(slot);
        });
    }
}

/// Why a request line could not be read.
#[derive(Debug, PartialEq, Eq)]
enum LineError {
    /// Longer than [`MAX_REQUEST`].
    TooLong,
    /// Not UTF-8.
    NotText,
    /// The connection failed.
    Io,
}

/// Reads one request line, holding at most [`MAX_REQUEST`] + 1 bytes of it in memory.
/// End of input ends the line too (`printf status | socat ...`).
async fn read_request<R: tokio::io::AsyncRead + Unpin>(read: R) -> Result<String, LineError> {
    let mut limited = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let mut line = Vec::new();
    limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|_| LineError::Io)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.len() > MAX_REQUEST {
        return Err(LineError::TooLong);
    }
    String::from_utf8(line).map_err(|_| LineError::NotText)
}

/// One connection: the request line, the credential check, the daemon's answer.
async fn serve_one(
    stream: UnixStream,
    idle: IdleEntry,
    closed: oneshot::Receiver<()>,
    to_daemon: mpsc::Sender<Request>,
) {
    // Unknown credentials count as the least privileged.
    let uid = stream.peer_cred().ok().map(|c| c.uid());
    let (read, mut write) = stream.into_split();
    let read = tokio::select! {
        read = tokio::time::timeout(READ_TIMEOUT, read_request(read)) => read,
        _ = closed => {
            let _ = write_reply(&mut write, "error: too many connections, try again\n").await;
            return;
        }
    };
    drop(idle);
    let text = match read {
        Err(_) => {
            debug!("control socket: no request within {READ_TIMEOUT:?}, closing");
            let _ = write_reply(&mut write, "error: no request received in time\n").await;
            return;
        }
        Ok(Err(LineError::TooLong)) => {
            let reply = format!("error: request longer than {MAX_REQUEST} bytes\n");
            let _ = write_reply(&mut write, &reply).await;
            return;
        }
        Ok(Err(LineError::NotText)) => {
            let _ = write_reply(&mut write, "error: request is not UTF-8 text\n").await;
            return;
        }
        Ok(Err(LineError::Io)) => return,
        Ok(Ok(text)) => text,
    };
    let command = text.trim().to_string();
    if access(&command) == Access::Root && uid != Some(0) {
        let verb = command.split_whitespace().next().unwrap_or("");
        let who = uid.map_or_else(|| "unknown".to_string(), |u| u.to_string());
        let _ = write_reply(
            &mut write,
            &format!("error: {verb} needs root (peer uid {who})\n"),
        )
        .await;
        return;
    }
    let (reply, answer) = oneshot::channel();
    if to_daemon.send(Request { command, reply }).await.is_err() {
        return;
    }
    if let Ok(text) = answer.await {
        let _ = write_reply(&mut write, &text).await;
    }
}

/// Writes the reply in pieces, giving up when the client stops reading for [`WRITE_TIMEOUT`].
async fn write_reply(write: &mut tokio::net::unix::OwnedWriteHalf, text: &str) -> Result<()> {
    for piece in text.as_bytes().chunks(64 * 1024) {
        tokio::time::timeout(WRITE_TIMEOUT, write.write_all(piece))
            .await
            .context("client stopped reading")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_lines_are_bounded() {
        let ok = read_request(&b"status\nrest"[..]).await;
        assert_eq!(ok, Ok("status".to_string()));
        let eof = read_request(&b"status"[..]).await;
        assert_eq!(eof, Ok("status".to_string()));
        let exact = vec![b'a'; MAX_REQUEST];
        assert_eq!(
            read_request(&exact[..]).await.map(|s| s.len()),
            Ok(MAX_REQUEST)
        );
        let long = vec![b'a'; 8 * MAX_REQUEST];
        assert_eq!(read_request(&long[..]).await, Err(LineError::TooLong));
        assert_eq!(
            read_request(&[0xff, 0xfe, b'\n'][..]).await,
            Err(LineError::NotText)
        );
    }
}
