//! The side port's connections: accepted here rather than by `axum::serve`, so each has deadlines and the
//! unauthenticated ones have a ceiling. A connection must send a request's headers within the header timeout —
//! the first request's and each next one's on a kept-alive connection, so idle and half-sent connections close.
//! Until a request on it has passed the bearer check ([`ConnMark::authenticated`], set by the auth middleware) a
//! connection counts as unauthenticated; when there are more than the ceiling, the oldest of them is closed, so a
//! flood of idle sockets can never starve a client that holds the token. WebSockets leave this accounting when
//! they upgrade (they are authenticated by then). With TLS the handshake happens inside the same header timeout
//! and counts as unauthenticated too, so stalled handshakes are closed like idle sockets; a plain HTTP request on
//! the TLS port gets a 400 saying to use `https://` rather than a dropped connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Deadlines and ceilings of the side port's connections, and chat's rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnLimits {
    /// Time to send a request's headers (also the longest a kept-alive connection may sit idle).
    pub header_timeout: Duration,
    /// Connections that have not yet presented a valid token, at most; the oldest is closed beyond it.
    pub max_unauthenticated: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Chat questions per token at once, then per minute (REST and WebSocket together).
    pub chat_burst: u32,
    pub chat_per_minute: u32,
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            max_unauthenticated: 128,
            shutdown_grace: Duration::from_secs(5),
            chat_burst: 10,
            chat_per_minute: 20,
        }
    }
}

/// One connection, as the auth middleware sees it (a request extension).
#[derive(Debug, Default)]
pub struct ConnMark {
    authenticated: AtomicBool,
    evict: CancellationToken,
}

impl ConnMark {
    /// A request on this connection presented a valid token: it no longer counts against the ceiling.
    pub fn authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }

    fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Relaxed)
    }
}

/// The unauthenticated connections, oldest first.
#[derive(Default)]
struct Waiting {
    conns: Mutex<VecDeque<Weak<ConnMark>>>,
}

impl Waiting {
    /// Adds a new connection, closing the oldest unauthenticated ones beyond `max`.
    fn admit(&self, mark: &Arc<ConnMark>, max: usize) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|w| w.upgrade().is_some_and(|m| !m.is_authenticated()));
        while conns.len() >= max.max(1) {
            if let Some(oldest) = conns.pop_front().and_then(|w| w.upgrade()) {
                tracing::debug!("closing the oldest unauthenticated connection (ceiling {max})");
                oldest.evict.cancel();
            }
        }
        conns.push_back(Arc::downgrade(mark));
    }
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown`, then lets in-flight requests
/// finish (up to the grace time).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let waiting = Arc::new(Waiting::default());
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: back off a little, keep serving.
                    tracing::warn!("side port accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let mark = Arc::new(ConnMark::default());
        waiting.admit(&mark, limits.max_unauthenticated);
        let service = {
            let mark = mark.clone();
            tower::ServiceExt::map_request(
                app.clone(),
                move |mut req: axum::http::Request<Incoming>| {
                    req.extensions_mut().insert(mark.clone());
                    req
                },
            )
        };
        let header_timeout = limits.header_timeout;
        let shutdown = shutdown.clone();
        let open = open_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => drive(tcp, service, header_timeout, &mark, &shutdown).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(header_timeout, async {
                        if !starts_with_tls(&tcp).await? {
                            refuse_plain_http(tcp).await;
                            return Ok(None);
                        }
                        acceptor.accept(tcp).await.map(Some)
                    });
                    let accepted = tokio::select! {
                        r = handshake => r,
                        _ = mark.evict.cancelled() => return,
                        _ = shutdown.cancelled() => return,
                    };
                    match accepted {
                        Ok(Ok(Some(stream))) => {
                            drive(stream, service, header_timeout, &mark, &shutdown).await
                        }
                        Ok(Ok(None)) => tracing::debug!(%peer, "plain HTTP on the TLS side port"),
                        Ok(Err(e)) => tracing::debug!(%peer, "side port TLS handshake: {e}"),
                        Err(_) => tracing::debug!(%peer, "side port TLS handshake timed out"),
                    }
                }
            }
            drop(open);
        });
    }
    drop(open_rx);
    if tokio::time::timeout(limits.shutdown_grace, open_tx.closed())
        .await
        .is_err()
    {
        tracing::info!("side port: connections still open after the grace time, closing them");
    }
    Ok(())
}

/// Serves one connection's requests until it ends, is evicted, or drains after `shutdown`.
async fn drive<I, S>(
    io: I,
    service: S,
    header_timeout: Duration,
    mark: &ConnMark,
    shutdown: &CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            axum::http::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!("side port connection: {e}");
                }
                break;
            }
            _ = mark.evict.cancelled() => break,
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Whether the client's first byte opens a TLS handshake (waits for it; the caller bounds the wait).
async fn starts_with_tls(tcp: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(first[0] == TLS_HANDSHAKE)
}

/// Answers a plain HTTP request on the TLS port with a 400 that says so, then closes. What the client sent (up
/// to a few KiB) is read first, so the close does not reset the connection before the answer is read.
async fn refuse_plain_http(mut tcp: TcpStream) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut sink)).await;
    let body = r#"{"error":"https_required","message":"this port speaks HTTPS: use https:// (the certificate's fingerprint is shown by `jarvis tls-cert`)"}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(answer.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_unauthenticated_connection_makes_room_and_authenticated_ones_never_count() {
        let w = Waiting::default();
        let marks: Vec<Arc<ConnMark>> = (0..3).map(|_| Arc::new(ConnMark::default())).collect();
        marks[1].authenticated();
        for m in &marks {
            w.admit(m, 2);
        }
        assert!(!marks[0].evict.is_cancelled(), "two unauthenticated fit");
        let fourth = Arc::new(ConnMark::default());
        w.admit(&fourth, 2);
        assert!(marks[0].evict.is_cancelled(), "the oldest waiting one goes");
        assert!(
            !marks[1].evict.is_cancelled(),
            "an authenticated one never does"
        );
        assert!(!marks[2].evict.is_cancelled() && !fourth.evict.is_cancelled());
        drop(marks);
        let fifth = Arc::new(ConnMark::default());
        w.admit(&fifth, 2);
        assert!(
            !fourth.evict.is_cancelled(),
            "closed connections free their place"
        );
    }
}
