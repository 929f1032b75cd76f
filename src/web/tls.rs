//! The side port's TLS: loading the certificate and key that `[web] tls_cert_file` / `tls_key_file` name into
//! a rustls acceptor (the key must belong to the certificate), and making a self-signed pair where there is none
//! (`jarvis tls-cert`, run by the appliance at first boot, and by a demo that listens beyond loopback). A pair
//! made here is renewed when it has less than [`RENEW_WITHIN_DAYS`] left; a pair the owner put there is never
//! touched. Files are written atomically, the certificate last, so a power cut never leaves a certificate
//! whose key is missing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::tls::Fingerprint;

/// How long a certificate made here is valid: Apple's limit for TLS server certificates, which phones enforce.
pub const VALIDITY_DAYS: i64 = 825;
/// A certificate made here is made anew when it has fewer days left than this.
pub const RENEW_WITHIN_DAYS: i64 = 30;
/// The common name of a certificate made here (how a pair made here is told from the owner's own).
pub const SELF_SIGNED_CN: &str = "Jarvis side port";
const DAY: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum SideTlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path} holds no certificate (PEM, -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no private key (PEM: PKCS#8, SEC1 or PKCS#1)")]
    NoKey { path: PathBuf },
    #[error("{path}: the certificate cannot be parsed: {message}")]
    BadCertificate { path: PathBuf, message: String },
    #[error("the key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("{present} exists but {missing} does not: give both, or neither and one is made")]
    Half { present: PathBuf, missing: PathBuf },
    #[error("TLS set-up: {0}")]
    Rustls(String),
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A loaded certificate and key, ready to accept connections.
#[derive(Clone)]
pub struct SideTls {
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the certificate, what clients pin.
    pub fingerprint: Fingerprint,
    /// When the certificate expires (Unix seconds).
    pub not_after: i64,
    /// Whether it was made here (self-signed, [`SELF_SIGNED_CN`]).
    pub made_here: bool,
}

impl std::fmt::Debug for SideTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SideTls")
            .field("fingerprint", &self.fingerprint)
            .field("not_after", &self.not_after)
            .field("made_here", &self.made_here)
            .finish_non_exhaustive()
    }
}

/// Loads a certificate chain (the server's first) and its key; HTTP/1.1 only.
pub fn load(cert: &Path, key: &Path) -> Result<SideTls, SideTlsError> {
    crate::tls::install_crypto_provider();
    let chain = read_chain(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => SideTlsError::NoKey { path: key.into() },
        other => SideTlsError::Read {
            path: key.into(),
            message: other.to_string(),
        },
    })?;
    let (not_after, made_here) = describe(cert, &chain[0])?;
    let fingerprint = Fingerprint::of_der(chain[0].as_ref());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SideTlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => SideTlsError::Mismatch {
                cert: cert.into(),
                key: key.into(),
            },
            other => SideTlsError::Rustls(format!("{}: {other}", key.display())),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(SideTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        not_after,
        made_here,
    })
}

fn read_chain(cert: &Path) -> Result<Vec<CertificateDer<'static>>, SideTlsError> {
    let read_err = |message: String| SideTlsError::Read {
        path: cert.into(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(SideTlsError::NoCertificate { path: cert.into() });
    }
    Ok(chain)
}

/// The expiry of a certificate and whether it was made here.
fn describe(path: &Path, der: &CertificateDer<'_>) -> Result<(i64, bool), SideTlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| {
        SideTlsError::BadCertificate {
            path: path.into(),
            message: e.to_string(),
        }
    })?;
    let cn = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok().map(str::to_string))
    };
    let made_here = parsed.subject() == parsed.issuer()
        && cn(parsed.subject()).as_deref() == Some(SELF_SIGNED_CN);
    Ok((parsed.validity().not_after.timestamp(), made_here))
}

/// What [`ensure_self_signed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// There was none: a pair was made.
    Made(Fingerprint),
    /// A valid pair was there and is kept.
    Kept(Fingerprint),
    /// A pair made here was near its end (or a key had lost its certificate): a new one was made.
    Renewed {
        old: Option<Fingerprint>,
        new: Fingerprint,
    },
}

impl Ensured {
    pub fn fingerprint(&self) -> &Fingerprint {
        match self {
            Ensured::Made(f) | Ensured::Kept(f) | Ensured::Renewed { new: f, .. } => f,
        }
    }
}

/// Makes sure `cert` and `key` hold a usable pair: keeps a valid one, makes one where there is none, renews one
/// made here that expires within [`RENEW_WITHIN_DAYS`] of `now` (Unix seconds). A certificate without its key,
/// or a pair that does not load, is an error and is left alone (it may be the owner's). `names` become the
/// certificate's subject alternative names (DNS names or IP addresses).
pub fn ensure_self_signed(
    cert: &Path,
    key: &Path,
    names: &[String],
    now: i64,
) -> Result<Ensured, SideTlsError> {
    match (cert.exists(), key.exists()) {
        (false, false) => Ok(Ensured::Made(make(cert, key, names, now)?)),
        // Only a pair made here can end this way (the certificate is written last): the key is useless alone.
        (false, true) => {
            tracing::warn!(
                "{} has no certificate beside it: making a new pair",
                key.display()
            );
            Ok(Ensured::Renewed {
                old: None,
                new: make(cert, key, names, now)?,
            })
        }
        (true, false) => Err(SideTlsError::Half {
            present: cert.into(),
            missing: key.into(),
        }),
        (true, true) => {
            let loaded = load(cert, key)?;
            if loaded.made_here && loaded.not_after - now < RENEW_WITHIN_DAYS * DAY {
                Ok(Ensured::Renewed {
                    old: Some(loaded.fingerprint),
                    new: make(cert, key, names, now)?,
                })
            } else {
                Ok(Ensured::Kept(loaded.fingerprint))
            }
        }
    }
}

/// The names a certificate made here carries by default: loopback, the host's name and `jarvis`.
pub fn default_names() -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1", "jarvis", "jarvis.local"]
        .into_iter()
        .map(str::to_string)
        .collect();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    if !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        for n in [host.to_string(), format!("{host}.local")] {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

fn make(cert: &Path, key: &Path, names: &[String], now: i64) -> Result<Fingerprint, SideTlsError> {
    let gen = |e: rcgen::Error| SideTlsError::Generate(e.to_string());
    let time = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .map_err(|e| SideTlsError::Generate(e.to_string()))
    };
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(gen)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, SELF_SIGNED_CN);
    params.distinguished_name = dn;
    params.not_before = time(now - DAY)?;
    params.not_after = time(now + VALIDITY_DAYS * DAY)?;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let pair = rcgen::KeyPair::generate().map_err(gen)?;
    let made = params.self_signed(&pair).map_err(gen)?;
    write_atomically(key, pair.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(cert, made.pem().as_bytes(), 0o644)?;
    Ok(Fingerprint::of_der(made.der()))
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced before and after the rename.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SideTlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| SideTlsError::Write {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000;

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    #[test]
    fn a_pair_is_made_once_then_kept_and_loads_with_its_fingerprint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("tls/side.crt"), dir.path().join("side.key"));
        let made = ensure_self_signed(&cert, &key, &names(), NOW).expect("make");
        assert!(matches!(made, Ensured::Made(_)));
        let kept = ensure_self_signed(&cert, &key, &names(), NOW + DAY).expect("keep");
        assert_eq!(kept, Ensured::Kept(made.fingerprint().clone()));
        let loaded = load(&cert, &key).expect("load");
        assert_eq!(&loaded.fingerprint, made.fingerprint());
        assert!(loaded.made_here);
        assert_eq!(loaded.not_after, NOW + VALIDITY_DAYS * DAY);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is the owner's alone");
        assert!(!dir.path().join("side.key.new").exists());
    }

    #[test]
    fn a_pair_made_here_is_renewed_near_its_end_and_an_owners_pair_never_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let first = ensure_self_signed(&cert, &key, &names(), NOW).expect("make");
        let late = NOW + (VALIDITY_DAYS - RENEW_WITHIN_DAYS + 1) * DAY;
        match ensure_self_signed(&cert, &key, &names(), late).expect("renew") {
            Ensured::Renewed { old, new } => {
                assert_eq!(old.as_ref(), Some(first.fingerprint()));
                assert_ne!(&new, first.fingerprint());
                assert_eq!(load(&cert, &key).expect("load").fingerprint, new);
            }
            other => panic!("expected a renewal, got {other:?}"),
        }
        // The owner's own certificate (another name) is kept even when it expires tomorrow.
        let owners = rcgen::generate_simple_self_signed(vec!["jarvis.home.arpa".into()])
            .expect("owner's certificate");
        std::fs::write(&cert, owners.cert.pem()).expect("write");
        std::fs::write(&key, owners.signing_key.serialize_pem()).expect("write");
        let far = NOW + 10_000 * 365 * DAY;
        assert!(matches!(
            ensure_self_signed(&cert, &key, &names(), far).expect("keep"),
            Ensured::Kept(_)
        ));
        assert_eq!(
            std::fs::read_to_string(&cert).expect("read"),
            owners.cert.pem()
        );
    }

    #[test]
    fn a_wrong_key_a_lone_certificate_and_garbage_are_clear_errors_that_touch_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        ensure_self_signed(&cert, &key, &names(), NOW).expect("make");
        let other = rcgen::KeyPair::generate().expect("key");
        std::fs::write(&key, other.serialize_pem()).expect("write");
        assert!(matches!(
            ensure_self_signed(&cert, &key, &names(), NOW),
            Err(SideTlsError::Mismatch { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(&key).expect("read"),
            other.serialize_pem(),
            "never overwritten"
        );
        std::fs::remove_file(&key).expect("rm");
        assert!(matches!(
            ensure_self_signed(&cert, &key, &names(), NOW),
            Err(SideTlsError::Half { .. })
        ));
        assert!(!key.exists());
        std::fs::write(&key, "not a key").expect("write");
        assert!(matches!(load(&cert, &key), Err(SideTlsError::NoKey { .. })));
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        assert!(load(&cert, &key).is_err());
        std::fs::write(&cert, "hello").expect("write");
        assert!(matches!(
            load(&cert, &key),
            Err(SideTlsError::NoCertificate { .. })
        ));
        assert!(matches!(
            load(&dir.path().join("missing"), &key),
            Err(SideTlsError::Read { .. })
        ));
    }

    #[test]
    fn a_key_that_lost_its_certificate_to_a_power_cut_gets_a_new_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        // As a cut between the two renames leaves it: the key and a half-written temporary certificate.
        std::fs::write(
            &key,
            rcgen::KeyPair::generate().expect("key").serialize_pem(),
        )
        .expect("write");
        std::fs::write(dir.path().join("c.pem.new"), "-----BEGIN CERT").expect("write");
        let e = ensure_self_signed(&cert, &key, &names(), NOW).expect("repair");
        assert!(matches!(e, Ensured::Renewed { old: None, .. }));
        assert_eq!(
            &load(&cert, &key).expect("load").fingerprint,
            e.fingerprint()
        );
    }
}
