//! Secrets (API tokens) kept out of logs: `Debug` and `Display` print a placeholder, and the value is read only
//! where it is put on the wire. Secrets come from files or environment variables, never from the TOML itself.

use std::fmt;
use std::path::Path;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {message}")]
    File { path: String, message: String },
    #[error("secret file {path} is empty")]
    Empty { path: String },
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Reads a secret file, trimming a trailing newline.
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
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
}
