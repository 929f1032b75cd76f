//! Files: downloads into the configured directory behind the SSRF guard ([`ssrf`]), with size and time caps and an
//! atomic rename; reading files and listing directories only below allowlisted roots, after resolving `..` and
//! symlinks (so neither can escape), and never inside Jarvis's own data ([`protected_by`]: its database, the folders
//! of its secrets, its config file), even below a root.

pub mod ssrf;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use self::ssrf::{GuardedResolver, Policy};

#[derive(Debug, Clone)]
pub struct FileSettings {
    pub download_dir: PathBuf,
    pub max_download_bytes: u64,
    pub download_timeout: Duration,
    /// Hosts or addresses downloads may reach although they are internal.
    pub allow_hosts: Vec<String>,
    /// `read_file` and `list_dir` work only below these.
    pub roots: Vec<PathBuf>,
    pub max_read_bytes: usize,
    /// Folders on the nodes that `copy_between_nodes` may write into as a routine action; a copy anywhere else
    /// needs the operator's approval.
    pub copy_destinations: Vec<String>,
}

/// Where Proxmox VE keeps ISO images and container templates: copies there are routine.
pub const DEFAULT_COPY_DESTINATIONS: [&str; 2] =
    ["/var/lib/vz/template/iso", "/var/lib/vz/template/cache"];

impl Default for FileSettings {
    fn default() -> FileSettings {
        FileSettings {
            download_dir: PathBuf::from("/var/lib/jarvis/downloads"),
            max_download_bytes: 1 << 30,
            download_timeout: Duration::from_secs(600),
            allow_hosts: Vec::new(),
            roots: Vec::new(),
            max_read_bytes: 1 << 20,
            copy_destinations: DEFAULT_COPY_DESTINATIONS
                .iter()
                .map(|d| d.to_string())
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FileError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("download failed: {0}")]
    Download(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Downloaded {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub final_url: String,
}

/// A safe file name: letters, digits, `.`, `_`, `-`; not starting with a dot; at most 100 characters.
pub fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn check_url(url: &reqwest::Url, policy: &Policy) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("only http and https URLs, not {}", url.scheme()));
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    let literal = host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .ok();
    match literal {
        Some(ip) if !policy.allows(host, ip) => Err(format!("{host} is an internal address")),
        _ => Ok(()),
    }
}

/// Downloads `url` into the download directory as `name` (refusing internal addresses unless allowlisted, on
/// every redirect too), at most `max_download_bytes`, within the time cap.
pub async fn download(
    s: &FileSettings,
    url: &str,
    name: Option<&str>,
    overwrite: bool,
) -> Result<Downloaded, FileError> {
    let url =
        reqwest::Url::parse(url).map_err(|e| FileError::BadRequest(format!("not a URL: {e}")))?;
    let policy = Arc::new(Policy {
        allow: s.allow_hosts.clone(),
    });
    check_url(&url, &policy).map_err(FileError::Refused)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => url
            .path_segments()
            .and_then(|mut p| p.next_back())
            .filter(|n| !n.is_empty())
            .unwrap_or("download")
            .to_string(),
    };
    if !safe_file_name(&name) {
        return Err(FileError::BadRequest(format!(
            "`{name}` is not a safe file name (letters, digits, . _ -)"
        )));
    }
    let redirect_policy = policy.clone();
    let client = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(GuardedResolver {
            policy: policy.clone(),
        })
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error("more than 5 redirects");
            }
            match check_url(attempt.url(), &redirect_policy) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(format!("redirect refused: {e}")),
            }
        }))
        .timeout(s.download_timeout)
        .build()
        .map_err(|e| FileError::Download(e.to_string()))?;
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| FileError::Download(error_chain(&e)))?;
    if !resp.status().is_success() {
        return Err(FileError::Download(format!(
            "the server answered HTTP {}",
            resp.status()
        )));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > s.max_download_bytes)
    {
        return Err(FileError::Refused(format!(
            "the file is larger than {} bytes",
            s.max_download_bytes
        )));
    }
    let final_url = resp.url().to_string();
    let io = |path: &Path, e: std::io::Error| FileError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    tokio::fs::create_dir_all(&s.download_dir)
        .await
        .map_err(|e| io(&s.download_dir, e))?;
    let target = s.download_dir.join(&name);
    if !overwrite && tokio::fs::try_exists(&target).await.unwrap_or(false) {
        return Err(FileError::Refused(format!(
            "{} exists (pass overwrite)",
            target.display()
        )));
    }
    let partial = s.download_dir.join(format!(".{name}.partial"));
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| io(&partial, e))?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut body = resp.bytes_stream();
    let result: Result<(), FileError> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| FileError::Download(error_chain(&e)))?;
            total += chunk.len() as u64;
            if total > s.max_download_bytes {
                return Err(FileError::Refused(format!(
                    "the file is larger than {} bytes",
                    s.max_download_bytes
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| io(&partial, e))?;
        }
        file.flush().await.map_err(|e| io(&partial, e))?;
        file.sync_all().await.map_err(|e| io(&partial, e))
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::rename(&partial, &target)
        .await
        .map_err(|e| io(&target, e))?;
    Ok(Downloaded {
        path: target.display().to_string(),
        bytes: total,
        sha256: hex::encode(hasher.finalize()),
        final_url,
    })
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        parts.push(err.to_string());
        cur = err.source();
    }
    parts.join(": ")
}

/// `path` resolved (symlinks and `..` included) and checked to be below one of the roots.
pub fn inside_roots(s: &FileSettings, path: &str) -> Result<PathBuf, FileError> {
    if s.roots.is_empty() {
        return Err(FileError::Refused(
            "no file roots are configured ([files] roots)".into(),
        ));
    }
    let real = std::fs::canonicalize(path).map_err(|e| FileError::Io {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    let inside = s
        .roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .any(|root| real.starts_with(&root));
    if inside {
        Ok(real)
    } else {
        Err(FileError::Refused(format!(
            "{path} is outside the allowed roots"
        )))
    }
}

/// The entry of `protected` that `real` (a canonical path) is, or lies below, if any. Protected paths are
/// canonicalised here, at the time of the check (a database's `-wal` appears and disappears; a missing file is
/// compared through its canonical folder), so `..`, symlinks and relative spellings cannot slip past.
pub fn protected_by<'p>(protected: &'p [PathBuf], real: &Path) -> Option<&'p Path> {
    protected
        .iter()
        .find(|p| {
            let canonical = std::fs::canonicalize(p).ok().or_else(|| {
                let parent = std::fs::canonicalize(p.parent()?).ok()?;
                Some(parent.join(p.file_name()?))
            });
            real.starts_with(canonical.as_deref().unwrap_or(p))
        })
        .map(PathBuf::as_path)
}

/// Refuses `real` when it is Jarvis's own data; `shown` is the path as the caller gave it.
pub fn refuse_protected(protected: &[PathBuf], real: &Path, shown: &str) -> Result<(), FileError> {
    match protected_by(protected, real) {
        Some(p) => Err(FileError::Refused(format!(
            "{shown} is Jarvis's own data ({}: its database, secrets or config), never read through a tool",
            p.display()
        ))),
        None => Ok(()),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FileContent {
    pub path: String,
    pub size: u64,
    pub truncated: bool,
    pub text: String,
}

/// Reads a file below the roots (the first `max_read_bytes`), refusing `protected` paths (see [`protected_by`]).
pub fn read_file(
    s: &FileSettings,
    protected: &[PathBuf],
    path: &str,
) -> Result<FileContent, FileError> {
    let real = inside_roots(s, path)?;
    refuse_protected(protected, &real, path)?;
    let io = |e: std::io::Error| FileError::Io {
        path: path.to_string(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(&real).map_err(io)?;
    if !meta.is_file() {
        return Err(FileError::BadRequest(format!("{path} is not a file")));
    }
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(&real)
        .map_err(io)?
        .take(s.max_read_bytes as u64)
        .read_to_end(&mut buf)
        .map_err(io)?;
    Ok(FileContent {
        path: real.display().to_string(),
        size: meta.len(),
        truncated: meta.len() > buf.len() as u64,
        text: String::from_utf8_lossy(&buf).into_owned(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    pub kind: &'static str,
    pub size: u64,
}

/// Lists a directory below the roots, refusing `protected` ones (see [`protected_by`]).
pub fn list_dir(
    s: &FileSettings,
    protected: &[PathBuf],
    path: &str,
) -> Result<Vec<Entry>, FileError> {
    let real = inside_roots(s, path)?;
    refuse_protected(protected, &real, path)?;
    let io = |e: std::io::Error| FileError::Io {
        path: path.to_string(),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&real).map_err(io)?.take(5000) {
        let entry = entry.map_err(io)?;
        let meta = entry.metadata().map_err(io)?;
        let kind = if meta.is_symlink() {
            "symlink"
        } else if meta.is_dir() {
            "dir"
        } else {
            "file"
        };
        out.push(Entry {
            name: entry.file_name().to_string_lossy().into_owned(),
            kind,
            size: meta.len(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_checked() {
        for ok in ["debian-12.iso", "backup_2026-11-24.tar.zst", "a"] {
            assert!(safe_file_name(ok), "{ok}");
        }
        for bad in ["", "../etc/passwd", ".bashrc", "a/b", "a b", "x;rm"] {
            assert!(!safe_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn roots_hold_against_traversal_and_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("share");
        std::fs::create_dir_all(root.join("docs")).expect("mkdir");
        std::fs::write(root.join("docs/readme.txt"), "hello").expect("write");
        std::fs::write(dir.path().join("secret.txt"), "secret").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape"))
            .expect("symlink");
        let s = FileSettings {
            roots: vec![root.clone()],
            ..FileSettings::default()
        };
        assert_eq!(
            read_file(&s, &[], &root.join("docs/readme.txt").display().to_string())
                .expect("read")
                .text,
            "hello"
        );
        let traversal = format!("{}/docs/../../secret.txt", root.display());
        assert!(matches!(
            read_file(&s, &[], &traversal),
            Err(FileError::Refused(_))
        ));
        assert!(matches!(
            read_file(&s, &[], &root.join("escape").display().to_string()),
            Err(FileError::Refused(_))
        ));
        let names: Vec<String> = list_dir(&s, &[], &root.display().to_string())
            .expect("list")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["docs", "escape"]);
        assert!(matches!(
            list_dir(&s, &[], &dir.path().display().to_string()),
            Err(FileError::Refused(_))
        ));
    }

    #[test]
    fn protected_paths_are_refused_below_a_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("secrets")).expect("mkdir");
        std::fs::write(root.join("secrets/web-token"), "t").expect("write");
        std::fs::write(root.join("j.db"), "db").expect("write");
        std::fs::write(root.join("notes"), "fine").expect("write");
        let s = FileSettings {
            roots: vec![root.clone()],
            ..FileSettings::default()
        };
        // Spelled unlike the real paths: through `..`, and a -wal that does not exist yet.
        let protected = vec![
            root.join("secrets/../secrets"),
            root.join("j.db"),
            root.join("j.db-wal"),
        ];
        let p = |rel: &str| root.join(rel).display().to_string();
        assert_eq!(
            read_file(&s, &protected, &p("notes")).expect("read").text,
            "fine"
        );
        for rel in ["secrets/web-token", "j.db", "./secrets/../j.db"] {
            let e = read_file(&s, &protected, &p(rel)).expect_err(rel);
            assert!(
                matches!(&e, FileError::Refused(m) if m.contains("Jarvis's own data")),
                "{e}"
            );
        }
        std::fs::write(root.join("j.db-wal"), "wal").expect("write");
        assert!(read_file(&s, &protected, &p("j.db-wal")).is_err());
        assert!(list_dir(&s, &protected, &p("secrets")).is_err());
        assert!(list_dir(&s, &protected, &p(".")).is_ok());
    }
}
