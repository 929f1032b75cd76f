//! Downloads behind the SSRF guard against a real HTTP server on loopback (allowlisted, or not), with redirects to
//! internal addresses, size and time caps; file access below the roots through the tools.

use std::net::SocketAddr;
use std::time::Duration;

use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use jarvis::app::App;
use jarvis::files::{download, FileError, FileSettings};
use jarvis::tools::{Outcome, ToolError};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::util;

const ISO: &[u8] = b"not really an ISO, but the bytes are checked";

async fn server() -> SocketAddr {
    // Downloads build a TLS-capable client: the process's crypto provider must be set, whichever test runs first.
    jarvis::tls::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/debian.iso", get(|| async { ISO }))
        .route("/big.bin", get(|| async { vec![7u8; 2 * 1024 * 1024] }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/to-iso",
            get(|| async { Redirect::temporary("/debian.iso") }),
        )
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        )
        .route(
            "/to-private",
            get(|| async { Redirect::temporary("http://10.0.0.1/secret") }),
        );
    let app = app.route(
        "/to-v6",
        get(move || async move {
            Redirect::temporary(&format!("http://[::1]:{}/debian.iso", addr.port()))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn settings(dir: &std::path::Path, allow: &[&str]) -> FileSettings {
    FileSettings {
        download_dir: dir.join("downloads"),
        max_download_bytes: 1024 * 1024,
        download_timeout: Duration::from_secs(2),
        allow_hosts: allow.iter().map(|s| s.to_string()).collect(),
        roots: vec![],
        max_read_bytes: 1024 * 1024,
        ..FileSettings::default()
    }
}

#[tokio::test]
async fn allowlisted_downloads_work_and_redirects_to_internal_addresses_are_refused() {
    let addr = server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = settings(dir.path(), &["127.0.0.1"]);
    let base = format!("http://{addr}");
    let got = download(&s, &format!("{base}/debian.iso"), None, false)
        .await
        .expect("download");
    assert_eq!(got.bytes, ISO.len() as u64);
    assert_eq!(got.sha256, hex::encode(Sha256::digest(ISO)));
    assert_eq!(
        std::fs::read(dir.path().join("downloads/debian.iso")).expect("saved"),
        ISO
    );
    assert!(
        matches!(download(&s, &format!("{base}/debian.iso"), None, false).await, Err(FileError::Refused(m)) if m.contains("exists"))
    );
    let via = download(&s, &format!("{base}/to-iso"), Some("copy.iso"), false)
        .await
        .expect("redirect within the allowlist");
    assert!(via.final_url.ends_with("/debian.iso"));
    for path in ["/to-metadata", "/to-private", "/to-v6"] {
        match download(&s, &format!("{base}{path}"), Some("x.bin"), false).await {
            Err(FileError::Download(m)) => assert!(m.contains("redirect refused"), "{path}: {m}"),
            other => panic!("{path}: expected a refused redirect, got {other:?}"),
        }
    }
    match download(&s, &format!("{base}/big.bin"), None, false).await {
        Err(FileError::Refused(m)) => assert!(m.contains("larger than"), "{m}"),
        other => panic!("expected the size cap, got {other:?}"),
    }
    assert!(
        matches!(
            download(&s, &format!("{base}/slow"), None, false).await,
            Err(FileError::Download(_))
        ),
        "time cap"
    );
    let left: Vec<String> = std::fs::read_dir(dir.path().join("downloads"))
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(left.len(), 2, "no partial files are left behind: {left:?}");
    assert!(matches!(
        download(&s, &format!("{base}/debian.iso"), Some("../escape"), false).await,
        Err(FileError::BadRequest(_))
    ));
}

#[tokio::test]
async fn internal_addresses_are_refused_without_an_allowlist() {
    let addr = server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = settings(dir.path(), &[]);
    for url in [
        format!("http://127.0.0.1:{}/debian.iso", addr.port()),
        format!("http://[::1]:{}/debian.iso", addr.port()),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/x".to_string(),
        "http://[::ffff:127.0.0.1]/x".to_string(),
    ] {
        assert!(
            matches!(
                download(&s, &url, Some("x.bin"), false).await,
                Err(FileError::Refused(_))
            ),
            "{url}"
        );
    }
    // A name that resolves to an internal address is refused by the resolver, before any connection.
    match download(
        &s,
        &format!("http://localhost:{}/debian.iso", addr.port()),
        None,
        false,
    )
    .await
    {
        Err(FileError::Download(m)) => {
            assert!(m.contains("resolves to internal addresses only"), "{m}")
        }
        other => panic!("expected a refused name, got {other:?}"),
    }
    assert!(matches!(
        download(&s, "ftp://example.org/x", None, false).await,
        Err(FileError::Refused(_))
    ));
    assert!(matches!(
        download(&s, "not a url", None, false).await,
        Err(FileError::BadRequest(_))
    ));
}

#[tokio::test]
async fn file_tools_go_through_the_gate() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("share/logs")).expect("mkdir");
    std::fs::write(dir.path().join("share/logs/backup.log"), "backup OK").expect("write");
    let app = util::app(&sim, dir.path()).await;
    let t = &app.tools;
    let read = t
        .invoke(
            "agent",
            "read_file",
            json!({"path": dir.path().join("share/logs/backup.log")}),
        )
        .await;
    assert!(
        matches!(&read, Ok(Outcome::Done { result }) if result["text"] == "backup OK"),
        "{read:?}"
    );
    let outside = t
        .invoke(
            "agent",
            "read_file",
            json!({"path": format!("{}/share/../jarvis.db", dir.path().display())}),
        )
        .await;
    assert!(
        matches!(&outside, Err(ToolError::Failed(m)) if m.contains("outside the allowed roots")),
        "{outside:?}"
    );
    let listed = t
        .invoke(
            "agent",
            "list_dir",
            json!({"path": dir.path().join("share")}),
        )
        .await;
    assert!(
        matches!(&listed, Ok(Outcome::Done { result }) if result["entries"][0]["name"] == "logs"),
        "{listed:?}"
    );
    let ssrf = t
        .invoke(
            "agent",
            "download_file",
            json!({"url": "http://169.254.169.254/latest/meta-data/"}),
        )
        .await;
    assert!(
        matches!(&ssrf, Err(ToolError::Failed(m)) if m.contains("internal address")),
        "{ssrf:?}"
    );
    app.tools.set_kill_switch(true).expect("on");
    assert!(matches!(
        t.invoke(
            "agent",
            "download_file",
            json!({"url": "https://example.org/x.iso"})
        )
        .await,
        Err(ToolError::KillSwitch)
    ));
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn jarvis_own_data_is_never_read_through_the_file_tools() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().canonicalize().expect("canonical");
    std::fs::write(data.join("notes.txt"), "shopping list").expect("write");
    std::os::unix::fs::symlink(data.join("jarvis.db"), data.join("innocent.txt")).expect("symlink");
    // A root that holds Jarvis's own database (as `jarvis demo`'s data directory does).
    let mut config = util::config(&sim, &data);
    config.tools.files.roots = vec![data.clone()];
    let app = App::start(&config, "test").await.expect("app starts");
    app.store
        .set_setting("probe", "x")
        .expect("write, so the -wal exists");
    let t = &app.tools;
    let ok = t
        .invoke(
            "agent",
            "read_file",
            json!({"path": data.join("notes.txt")}),
        )
        .await;
    assert!(
        matches!(&ok, Ok(Outcome::Done { result }) if result["text"] == "shopping list"),
        "{ok:?}"
    );
    for (what, path) in [
        ("the database", data.join("jarvis.db").display().to_string()),
        (
            "its write-ahead log",
            data.join("jarvis.db-wal").display().to_string(),
        ),
        (
            "its shared memory",
            data.join("jarvis.db-shm").display().to_string(),
        ),
        (
            "the database by traversal",
            format!("{}/./sub/../jarvis.db", data.display()),
        ),
        (
            "the database through a symlink",
            data.join("innocent.txt").display().to_string(),
        ),
    ] {
        if what.contains("traversal") {
            std::fs::create_dir_all(data.join("sub")).expect("mkdir");
        }
        let read = t
            .invoke("agent", "read_file", json!({ "path": path }))
            .await;
        assert!(refused_as_own_data(&read), "{what}: {read:?}");
    }
    app.shutdown().await;
    sim.stop().await;
}

#[tokio::test]
async fn the_config_file_and_the_secrets_folder_are_never_read_even_below_a_root() {
    let sim = util::sim().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().canonicalize().expect("canonical");
    let secrets = data.join("secrets");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    util::write_secret(&secrets.join("pve"), util::PVE_SECRET);
    util::write_secret(&secrets.join("web"), util::WEB_TOKEN);
    util::write_secret(&secrets.join("operator"), util::OPERATOR_TOKEN);
    std::fs::write(data.join("notes.txt"), "shopping list").expect("write");
    let config = data.join("jarvis.toml");
    // The whole folder is a file root: the config, its secrets and the database are in it.
    std::fs::write(
        &config,
        format!(
            "[pve]\nurl = \"{url}\"\ntoken_id = \"{id}\"\ntoken_secret_file = \"secrets/pve\"\nfingerprint = \"{fp}\"\n\n\
             [web]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"secrets/web\"\noperator_token_file = \"secrets/operator\"\n\n\
             [files]\nroots = [\".\"]\n\n[store]\npath = \"jarvis.db\"\n",
            url = sim.url(),
            id = jarvis::sim::DEMO_TOKEN_ID,
            fp = sim.identity.fingerprint(),
        ),
    )
    .expect("write config");
    let config = jarvis::config::Config::load(&config).expect("valid config");
    let app = App::start(&config, "test").await.expect("app starts");
    let t = &app.tools;
    let ok = t
        .invoke(
            "agent",
            "read_file",
            json!({"path": data.join("notes.txt")}),
        )
        .await;
    assert!(matches!(&ok, Ok(Outcome::Done { .. })), "{ok:?}");
    for path in [
        data.join("secrets/web"),
        data.join("secrets/operator"),
        data.join("jarvis.toml"),
        data.join("jarvis.db"),
    ] {
        let read = t
            .invoke("agent", "read_file", json!({ "path": path }))
            .await;
        assert!(refused_as_own_data(&read), "{}: {read:?}", path.display());
    }
    let listed = t
        .invoke("agent", "list_dir", json!({"path": secrets}))
        .await;
    assert!(refused_as_own_data(&listed), "{listed:?}");
    app.shutdown().await;
    sim.stop().await;
}

/// Whether a file tool refused because the path is Jarvis's own data.
fn refused_as_own_data<T>(r: &Result<T, ToolError>) -> bool {
    matches!(r, Err(ToolError::Failed(m)) if m.contains("Jarvis's own data"))
}
