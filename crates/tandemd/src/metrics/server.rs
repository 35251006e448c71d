//! The HTTP listener Prometheus scrapes: `GET /metrics` answers the exposition the daemon
//! loop renders (asked through the same channel as the control socket, so a scrape sees one
//! consistent moment); anything else is 404. HTTP/1.1 through hyper.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, info};

use crate::control::Request;

/// Scrapers served at once; more wait for a slot (the daemon loop answers one at a time).
const MAX_CONNECTIONS: usize = 16;
/// A client that sends no complete request head in this long is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// OpenMetrics' media type, which prometheus-client's text encoder writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `listen` (an error names the address) and serves until the runtime stops.
pub async fn spawn(listen: SocketAddr, daemon: mpsc::Sender<Request>) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    info!("metrics on http://{listen}/metrics");
    tokio::spawn(serve(listener, daemon));
    Ok(())
}

async fn serve(listener: TcpListener, daemon: mpsc::Sender<Request>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!("metrics: accept: {e}");
                continue;
            }
        };
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, daemon.clone()));
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                debug!("metrics: {peer}: {e}");
            }
            drop(permit);
        });
    }
}

async fn answer(
    req: HttpRequest<Incoming>,
    daemon: mpsc::Sender<Request>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, value);
        }
        Ok(response)
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "try /metrics\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".into(),
        );
    }
    let (tx, rx) = oneshot::channel();
    let asked = daemon
        .send(Request {
            command: "metrics".into(),
            reply: tx,
        })
        .await;
    match (asked, rx.await) {
        (Ok(()), Ok(text)) => reply(StatusCode::OK, CONTENT_TYPE, text),
        _ => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "tandemd is stopping\n".into(),
        ),
    }
}
