//! Secrets (API tokens) kept out of logs: `Debug` and `Display` print a placeholder, and the value is read only
//! where it is put on the wire. Secrets come from files or environment variables, never from the TOML itself; a
//! secret file its group or others may open (any of the mode bits 0077 set) is refused, naming the fix.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {message}")]
    File { path: String, message: String },
    #[error("secret file {path} is empty")]
    Empty { path: String },
    #[error(
        "secret file {path} has mode {mode:04o}, open to its group or others: run chmod 600 {path}"
    )]
    Exposed { path: String, mode: u32 },
}

/// Refuses a file whose group or others have any permission (mode bits 0077).
pub fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), SecretError> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Reads a secret file, trimming a trailing newline. The file must be private to its owner (see
    /// [`check_private`]); its mode is read from the opened file, so it is the file that was checked.
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let io = |e: std::io::Error| SecretError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        check_private(path, &file.metadata().map_err(io)?)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let value = text.trim_end_matches(['\n', '\r']).to_string();
        if value.is_empty() {
            return Err(SecretError::Empty {
                path: path.display().to_string(),
            });
        }
        Ok(Secret(value))
    }

    /// A fresh random token (hex, 256 bits), for the demo's side port.
    pub fn random() -> Secret {
        let bytes: [u8; 32] = rand::random();
        Secret(hex::encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn reads_files_and_refuses_empty_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("tok");
        std::fs::write(&p, "abc\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(Secret::from_file(&p).expect("read").expose(), "abc");
        std::fs::write(&p, "\n").expect("write");
        assert!(matches!(
            Secret::from_file(&p),
            Err(SecretError::Empty { .. })
        ));
        assert!(matches!(
            Secret::from_file(&dir.path().join("none")),
            Err(SecretError::File { .. })
        ));
    }

    #[test]
    fn refuses_files_its_group_or_others_may_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("tok");
        std::fs::write(&p, "hunter2\n").expect("write");
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let e = Secret::from_file(&p).expect_err("too open");
            let text = e.to_string();
            assert!(
                matches!(e, SecretError::Exposed { mode: m, .. } if m == mode),
                "{text}"
            );
            assert!(
                text.contains(&format!("chmod 600 {}", p.display())),
                "{text}"
            );
            assert!(!text.contains("hunter2"));
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            assert_eq!(Secret::from_file(&p).expect("private").expose(), "hunter2");
        }
    }
}
