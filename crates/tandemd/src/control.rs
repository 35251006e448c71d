//! The control socket: one request line in, a text reply out, then the connection closes.
//! `tandemctl` speaks it; so can `socat - UNIX-CONNECT:PATH`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

/// A request from a client, answered by the daemon loop.
pub struct Request {
    /// The command line the client sent, trimmed.
    pub command: String,
    /// Where the reply goes.
    pub reply: oneshot::Sender<String>,
}

/// Removes the socket file when the daemon exits.
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens on `path` and forwards requests to `to_daemon`.
pub fn listen(path: &Path, to_daemon: mpsc::Sender<Request>) -> Result<ControlSocket> {
    // A socket file left by a killed daemon would make bind fail.
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let to_daemon = to_daemon.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(read).read_line(&mut line).await.is_err() {
                    return;
                }
                let (reply, answer) = oneshot::channel();
                let request = Request {
                    command: line.trim().to_string(),
                    reply,
                };
                if to_daemon.send(request).await.is_err() {
                    return;
                }
                if let Ok(text) = answer.await {
                    let _ = write.write_all(text.as_bytes()).await;
                }
            });
        }
    });
    Ok(ControlSocket {
        path: path.to_path_buf(),
    })
}
