//! The demo homelab: a Proxmox VE API simulator served over HTTPS on loopback with a self-signed certificate
//! generated at start (its SHA-256 fingerprint is handed to the client, exactly as an operator pins a real PVE
//! certificate). `jarvis demo` and the tests talk to it through the real client over real sockets.
//!
//! - [`homelab`]: the reference nodes, guests, storages and disks;
//! - [`model`]: the world, advanced lazily per request, rendered as PVE JSON;
//! - [`api`]: routes, auth, PVE-style errors, fault injection, `/_sim` control;
//! - [`frigate`]: the demo's Frigate NVR (HTTP API and MQTT) and the household it watches;
//! - this file: the TLS listener and the [`Simulator`] handle.

pub mod api;
pub mod executor;
pub mod frigate;
pub mod homelab;
pub mod model;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use self::api::SimShared;
use self::model::SimModel;
use crate::tls::Fingerprint;

/// The token the demo's PVE "user" has.
pub const DEMO_TOKEN_ID: &str = "jarvis@pve!demo";

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot make the simulator's certificate: {0}")]
    Certificate(String),
}

/// A certificate and key, kept so a restarted simulator presents the same certificate.
#[derive(Clone)]
pub struct SimIdentity {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    /// The certificate in PEM, for operators who prefer a CA file to a fingerprint.
    pub cert_pem: String,
}

impl SimIdentity {
    /// A fresh self-signed certificate for `localhost` and `127.0.0.1`.
    pub fn generate() -> Result<SimIdentity, SimError> {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .map_err(|e| SimError::Certificate(e.to_string()))?;
        Ok(SimIdentity {
            cert_der: ck.cert.der().to_vec(),
            key_der: ck.signing_key.serialize_der(),
            cert_pem: ck.cert.pem(),
        })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.cert_der)
    }
}

pub struct SimOptions {
    pub listen: SocketAddr,
    pub token_id: String,
    pub token_secret: String,
    pub seed: u64,
    /// Multiplies task durations (1.0 = realistic).
    pub task_time_scale: f64,
    /// Reuse a certificate (for restarts); a new one is generated when `None`.
    pub identity: Option<SimIdentity>,
}

impl SimOptions {
    pub fn loopback(token_secret: &str) -> SimOptions {
        SimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_id: DEMO_TOKEN_ID.to_string(),
            token_secret: token_secret.to_string(),
            seed: 42,
            task_time_scale: 1.0,
            identity: None,
        }
    }
}

/// A running simulator. Dropping it does not stop it; call [`Simulator::stop`].
pub struct Simulator {
    pub addr: SocketAddr,
    pub identity: SimIdentity,
    pub shared: Arc<SimShared>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    pub async fn start(opts: SimOptions) -> Result<Simulator, SimError> {
        crate::tls::install_crypto_provider();
        let identity = match opts.identity {
            Some(id) => id,
            None => SimIdentity::generate()?,
        };
        let mut model = SimModel::homelab(opts.seed, crate::time::now_ms());
        model.task_time_scale = opts.task_time_scale;
        let shared = Arc::new(SimShared::new(model, &opts.token_id, &opts.token_secret));
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: opts.listen,
            source,
        })?;
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&identity)?));
        let app = api::router(shared.clone());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, acceptor, app, shutdown.clone()));
        tracing::info!(%addr, fingerprint = %identity.fingerprint(), "PVE simulator listening");
        Ok(Simulator {
            addr,
            identity,
            shared,
            shutdown,
            task,
        })
    }

    /// `https://127.0.0.1:PORT`, the base URL a client is configured with.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops accepting and drops every open connection (clients see the peer die).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

pub(crate) fn server_config(identity: &SimIdentity) -> Result<rustls::ServerConfig, SimError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = CertificateDer::from(identity.cert_der.clone());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Certificate(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| SimError::Certificate(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let svc = TowerToHyperService::new(app.clone());
        conns.spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "simulator connection ended");
            }
        });
    }
    conns.shutdown().await;
}

/// Serves `app` over plain HTTP (the Frigate simulator's internal port) until `shutdown`.
pub(crate) async fn serve_plain(
    listener: TcpListener,
    app: axum::Router,
    shutdown: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let svc = TowerToHyperService::new(app.clone());
        conns.spawn(async move {
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "simulator connection ended");
            }
        });
    }
    conns.shutdown().await;
}

/// A mutex's guard even if a holder panicked (the simulator's data stays usable).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
