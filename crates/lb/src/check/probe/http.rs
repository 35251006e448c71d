//! HTTP_GET and SSL_GET: one connection per url, a `GET` with keepalived's
//! headers (see [`exchange`]), then the status code, the MD5 digest of the
//! body and the regex, every url within `connect_timeout`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::exchange::{exchange, request};
use super::tcp::connect;
use super::tls;
use super::ProbeError;
use crate::check::action::Outcome;
use crate::check::digest::{body_digest, to_hex};
use crate::check::spec::{CheckerSpec, HttpSpec, UrlSpec};

/// A prepared HTTP_GET / SSL_GET.
pub struct HttpProbe {
    to: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
    urls: Vec<PreparedUrl>,
    tls: Option<(tokio_rustls::TlsConnector, bool)>,
}

impl std::fmt::Debug for HttpProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProbe")
            .field("to", &self.to)
            .field("urls", &self.urls)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

#[derive(Debug)]
struct PreparedUrl {
    spec: UrlSpec,
    regex: Option<regex::bytes::Regex>,
    /// Name sent as SNI when `enable_sni` (the virtualhost, if any).
    sni: Option<String>,
    /// The request's bytes, written at every check; its `Host:` is the
    /// url's, checker's, real or virtual server's virtualhost, else
    /// `IP:PORT` as keepalived writes it.
    request: Vec<u8>,
}

impl HttpProbe {
    pub(super) fn new(
        spec: &CheckerSpec,
        http: &HttpSpec,
        outer_vhost: Option<&str>,
        use_tls: bool,
    ) -> Result<HttpProbe, ProbeError> {
        let to = spec.connect.to;
        let mut urls = Vec::with_capacity(http.urls.len());
        for url in &http.urls {
            let regex =
                match &url.regex {
                    Some(p) => Some(regex::bytes::Regex::new(p).map_err(|source| {
                        ProbeError::BadRegex {
                            pattern: p.clone(),
                            source,
                        }
                    })?),
                    None => None,
                };
            let vhost = url
                .virtualhost
                .as_deref()
                .or(http.virtualhost.as_deref())
                .or(outer_vhost);
            let host = match (vhost, to) {
                (Some(v), _) => v.to_string(),
                (None, SocketAddr::V4(a)) => format!("{}:{}", a.ip(), a.port()),
                (None, SocketAddr::V6(a)) => format!("[{}]:{}", a.ip(), a.port()),
            };
            urls.push(PreparedUrl {
                request: request(&url.path, &host, http.protocol),
                spec: url.clone(),
                regex,
                sni: vhost.map(str::to_string),
            });
        }
        Ok(HttpProbe {
            to,
            bind: spec.connect.bind,
            timeout: spec.timing.connect_timeout,
            urls,
            tls: use_tls.then(|| (tls::connector(), http.enable_sni)),
        })
    }

    pub(super) async fn run(&self) -> Outcome {
        for url in &self.urls {
            let result = tokio::time::timeout(self.timeout, self.check_url(url)).await;
            let failure = match result {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(_) => format!("url {}: timed out after {:?}", url.spec.path, self.timeout),
            };
            return Outcome::Failed(failure);
        }
        Outcome::Healthy
    }

    async fn check_url(&self, url: &PreparedUrl) -> Result<(), String> {
        let stream = connect(self.to, self.bind, self.timeout).await?;
        let (status, body) = match &self.tls {
            None => self.get(stream, url).await?,
            Some((connector, enable_sni)) => {
                let name = tls::server_name(self.to.ip(), url.sni.as_deref(), *enable_sni);
                let stream = connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS handshake with {}: {e}", self.to))?;
                self.get(stream, url).await?
            }
        };
        let path = &url.spec.path;
        if !url.spec.accepts(status) {
            return Err(format!("HTTP status code error: {status} for url {path}"));
        }
        if let Some(expected) = &url.spec.digest {
            let got = body_digest(&body);
            if &got != expected {
                return Err(format!(
                    "MD5 digest error for url {path}: got {}, expected {}",
                    to_hex(&got),
                    to_hex(expected)
                ));
            }
        }
        if let Some(regex) = &url.regex {
            if regex.is_match(&body) == url.spec.regex_no_match {
                return Err(format!("Regex match failed for url {path}"));
            }
        }
        Ok(())
    }

    /// Sends the url's GET over `io` and reads the whole answer.
    async fn get<T>(&self, io: T, url: &PreparedUrl) -> Result<(u16, Vec<u8>), String>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        exchange(io, &url.request)
            .await
            .map_err(|e| format!("GET {} from {}: {e}", url.spec.path, self.to))
    }
}
