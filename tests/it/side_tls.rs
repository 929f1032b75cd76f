//! The side port over HTTPS: a pinned client, WebSocket over TLS, the command-line clients pinning the
//! certificate, and the attacks — plain HTTP on the TLS port, stalled and garbage handshakes, a wrong pin, a key
//! that is not the certificate's.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jarvis::app::App;
use jarvis::config::TlsFiles;
use jarvis::tls::{Fingerprint, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::util;

const BIN: &str = env!("CARGO_BIN_EXE_jarvis");

/// A certificate and key made the way `jarvis tls-cert` makes them.
fn pair(dir: &Path) -> (TlsFiles, Fingerprint) {
    let files = TlsFiles {
        cert_file: dir.join("tls/side-port.crt"),
        key_file: dir.join("secrets/side-port.key"),
    };
    let made = jarvis::web::tls::ensure_self_signed(
        &files.cert_file,
        &files.key_file,
        &["localhost".into(), "127.0.0.1".into()],
        (jarvis::time::now_ms() / 1000) as i64,
    )
    .expect("a pair");
    (files, made.fingerprint().clone())
}

fn pinned(fp: &Fingerprint) -> reqwest::Client {
    let tls = jarvis::tls::client_config(&Trust::Pinned(fp.clone())).expect("tls");
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .expect("client")
}

struct Running {
    sim: jarvis::sim::Simulator,
    app: App,
    addr: SocketAddr,
    fp: Fingerprint,
}

impl Running {
    async fn stop(self) {
        self.app.shutdown().await;
        self.sim.stop().await;
    }
}

async fn start(dir: &Path, header_timeout: Duration, max_unauth: usize) -> Running {
    let sim = util::sim().await;
    let mut config = util::config(&sim, dir);
    let (files, fp) = pair(dir);
    config.web.tls = Some(files);
    config.web.limits.header_timeout = header_timeout;
    config.web.limits.max_unauthenticated = max_unauth;
    let app = App::start(&config, "test").await.expect("app");
    let addr = app.side_port().expect("side port");
    Running { sim, app, addr, fp }
}

/// Sends raw bytes and returns what comes back until the server closes (or `limit` passes: `None`).
async fn raw(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut out)).await {
        Ok(_) => Some(out),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_side_port_speaks_https_to_a_pinned_client_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(dir.path(), Duration::from_secs(10), 128).await;
    let (addr, fp) = (running.addr, running.fp.clone());
    assert_eq!(running.app.side_port_fingerprint(), Some(&fp));
    let base = format!("https://127.0.0.1:{}", addr.port());
    let client = pinned(&fp);
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz over TLS");
    assert_eq!(health.status(), 200);
    let cluster = client
        .get(format!("{base}/api/v1/cluster"))
        .bearer_auth(util::WEB_TOKEN)
        .send()
        .await
        .expect("cluster");
    assert_eq!(cluster.status(), 200);
    let refused = client
        .get(format!("{base}/api/v1/cluster"))
        .send()
        .await
        .expect("no token");
    assert_eq!(refused.status(), 401, "TLS is no substitute for the token");

    // A client pinning another certificate never gets as far as sending its token.
    let wrong = pinned(&Fingerprint::of_der(b"someone else"));
    let err = wrong
        .get(format!("{base}/api/v1/cluster"))
        .bearer_auth(util::WEB_TOKEN)
        .send()
        .await
        .expect_err("a wrong pin fails");
    assert!(
        format!("{err:?}").contains("FingerprintMismatch"),
        "{err:?}"
    );

    // Plain HTTP on the TLS port: a clear 400, not a hung or reset socket.
    let answer = raw(
        addr,
        b"GET /api/v1/cluster HTTP/1.1\r\nHost: jarvis\r\nAuthorization: Bearer x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .expect("an answer, then close");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("https_required"), "{text}");

    // The live feed over TLS (wss://).
    let tls = tokio_rustls::TlsConnector::from(Arc::new(
        jarvis::tls::client_config(&Trust::Pinned(fp.clone())).expect("tls"),
    ));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tls.connect(name, tcp).await.expect("handshake");
    let mut req = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", util::WEB_TOKEN)
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream)
        .await
        .expect("websocket over TLS");
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("not an error");
    let json: serde_json::Value =
        serde_json::from_str(first.to_text().expect("text")).expect("json");
    assert!(json.get("type").is_some(), "{json}");

    // The port still serves after all that.
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    running.stop().await;
}

/// Opens `n` connections that never finish a handshake: idle, or half a ClientHello.
async fn stalled(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        if i % 2 == 0 {
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .await
                .expect("half a hello");
        }
        out.push(s);
    }
    out
}

/// Whether the server closes `s` within `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_garbage_handshakes_are_closed_and_never_lock_out_a_token_holder() {
    // A long header timeout: what closes the flood here is the ceiling on connections without a token.
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(dir.path(), Duration::from_secs(60), 8).await;
    let (addr, fp) = (running.addr, running.fp.clone());
    let mut flood = stalled(addr, 40).await;
    for (i, s) in flood.iter_mut().take(32).enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(10)).await,
            "stalled handshake {i} of 40 was not evicted (ceiling 8)"
        );
    }
    // A token holder gets through the remaining eight.
    let client = pinned(&fp);
    let base = format!("https://127.0.0.1:{}", addr.port());
    let ok = client
        .get(format!("{base}/api/v1/cluster"))
        .bearer_auth(util::WEB_TOKEN)
        .send()
        .await
        .expect("served despite the flood");
    assert_eq!(ok.status(), 200);
    // A record that claims to be a handshake but is garbage: closed at once, and the port serves on.
    let garbage = raw(
        addr,
        &[0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00],
        Duration::from_secs(5),
    )
    .await;
    assert!(garbage.is_some(), "garbage was not closed");
    // A client that connects and closes without a byte.
    drop(TcpStream::connect(addr).await.expect("connect"));
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    drop(flood);
    running.stop().await;

    // A short header timeout and a high ceiling: what closes them now is the timeout, handshake included.
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(dir.path(), Duration::from_millis(500), 128).await;
    for (i, mut s) in stalled(running.addr, 4).await.into_iter().enumerate() {
        assert!(
            closed_within(&mut s, Duration::from_secs(10)).await,
            "stalled handshake {i} outlived the header timeout"
        );
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_the_certificates_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = util::sim().await;
    let mut config = util::config(&sim, dir.path());
    let (files, _) = pair(dir.path());
    let other = tempfile::tempdir().expect("tempdir");
    let (other_files, _) = pair(other.path());
    config.web.tls = Some(TlsFiles {
        cert_file: files.cert_file.clone(),
        key_file: other_files.key_file.clone(),
    });
    let err = match App::start(&config, "test").await {
        Ok(_) => panic!("started with a key that is not the certificate's"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("does not belong to the certificate"), "{err}");
    sim.stop().await;
}

fn jarvis(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("JARVIS_WEB_FINGERPRINT")
        .env_remove("JARVIS_WEB_TOKEN")
        .env_remove("JARVIS_OPERATOR_TOKEN");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cert_makes_a_pair_once_and_the_clients_pin_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("tls/side-port.crt");
    let key = dir.path().join("secrets/side-port.key");
    let (c, k) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let (code, made, err) = jarvis(
        &["tls-cert", "--cert", c, "--key", k, "--name", "jarvis.lan"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(made.contains("made"), "{made}");
    let fp_line = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("fingerprint "))
            .map(str::to_string)
            .expect("a fingerprint line")
    };
    let fp = fp_line(&made);
    let (code, kept, _) = jarvis(&["tls-cert", "--cert", c, "--key", k], &[]);
    assert_eq!(code, 0);
    assert!(kept.contains("kept"), "{kept}");
    assert_eq!(fp_line(&kept), fp, "made once");
    let (code, _, err) = jarvis(
        &["tls-cert", "--show", "--cert", "/nonexistent/c", "--key", k],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/c"), "{err}");

    // A running Jarvis with that pair; the command-line clients pin it.
    let sim = util::sim().await;
    let mut config = util::config(&sim, dir.path());
    config.web.tls = Some(TlsFiles {
        cert_file: cert.clone(),
        key_file: key.clone(),
    });
    let app = App::start(&config, "test").await.expect("app");
    let url = format!(
        "https://127.0.0.1:{}",
        app.side_port().expect("port").port()
    );
    let token = [("JARVIS_WEB_TOKEN", util::WEB_TOKEN)];
    let operator = [("JARVIS_OPERATOR_TOKEN", util::OPERATOR_TOKEN)];
    let ask = |extra: &[&str], envs: &[(&str, &str)]| {
        let mut args = vec!["ask", "what is the status of the cluster?", "--url", &url];
        args.extend_from_slice(extra);
        let envs: Vec<(&str, &str)> = token.iter().chain(envs).copied().collect();
        jarvis(&args, &envs)
    };
    let (code, out, err) = tokio::task::block_in_place(|| ask(&["--fingerprint", &fp], &[]));
    assert_eq!(code, 0, "{err}");
    assert!(!out.trim().is_empty());
    let (code, _, err) =
        tokio::task::block_in_place(|| ask(&[], &[("JARVIS_WEB_FINGERPRINT", fp.as_str())]));
    assert_eq!(code, 0, "the fingerprint from the environment: {err}");
    let (code, _, err) = tokio::task::block_in_place(|| ask(&[], &[]));
    assert_eq!(code, 1);
    assert!(err.contains("give the certificate's fingerprint"), "{err}");
    let wrong = Fingerprint::of_der(b"mallory").to_string();
    let (code, _, err) = tokio::task::block_in_place(|| ask(&["--fingerprint", &wrong], &[]));
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach Jarvis")
            && err.contains(&format!("not the pinned {wrong}"))
            && !err.contains("FingerprintMismatch"),
        "the user is told why: {err}"
    );
    // The operator's commands, trusting the certificate file as a CA (the name 127.0.0.1 is in it).
    let (code, out, err) = tokio::task::block_in_place(|| {
        jarvis(
            &["killswitch", "status", "--url", &url, "--ca-file", c],
            &operator,
        )
    });
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kill switch is off"), "{out}");
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_https_with_the_appliances_pair_or_its_own_made_once() {
    // As the appliance starts it: the pair made at first boot.
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, fp) = pair(dir.path());
    let (c, k) = (
        files.cert_file.to_str().expect("utf-8"),
        files.key_file.to_str().expect("utf-8"),
    );
    let demo = tokio::task::block_in_place(|| {
        crate::cli::start_demo_with(
            dir.path(),
            1000,
            &[
                "--no-cameras",
                "--ui",
                "none",
                "--tls-cert",
                c,
                "--tls-key",
                k,
            ],
            &[],
        )
    });
    assert!(demo.web.starts_with("https://localhost:"), "{}", demo.web);
    let client = pinned(&fp);
    let cluster = client
        .get(format!("{}/api/v1/cluster", demo.web))
        .bearer_auth(&demo.token)
        .send()
        .await
        .expect("the demo over HTTPS");
    assert_eq!(cluster.status(), 200);
    drop(demo);

    // Its own certificate, made in its data folder once and kept across restarts.
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let own = tempfile::tempdir().expect("tempdir");
    let options = || jarvis::demo::DemoOptions {
        listen: loopback,
        sim_listen: loopback,
        data_dir: own.path().to_path_buf(),
        poll: util::fast_poll(),
        limits: Default::default(),
        models: own.path().join("no-models"),
        cameras: false,
        voice_devices: ("default".into(), "default".into()),
        tls: jarvis::demo::DemoTls::OwnCertificate,
    };
    let first = jarvis::demo::Demo::start(options()).await.expect("demo");
    let fp = first.app.side_port_fingerprint().cloned().expect("HTTPS");
    assert!(
        first.banner().contains(&fp.to_string()),
        "{}",
        first.banner()
    );
    first.shutdown().await;
    let again = jarvis::demo::Demo::start(options()).await.expect("demo");
    assert_eq!(again.app.side_port_fingerprint(), Some(&fp), "made once");
    let port = again.app.side_port().expect("port").port();
    let health = pinned(&fp)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    again.shutdown().await;
}
