//! TLS set-up shared by the PVE client and the simulator: the process-wide crypto provider (ring), SHA-256
//! certificate fingerprints in PVE's `AA:BB:...` notation, and a server-certificate verifier that accepts exactly
//! one pinned certificate. There is deliberately no "accept any certificate" mode.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Once};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// Installs ring as the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A SHA-256 certificate fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a SHA-256 fingerprint is 32 bytes in hex, optionally separated by colons (got {0:?})")]
pub struct FingerprintError(pub String);

impl Fingerprint {
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// Accepts `AA:BB:..` (as PVE's GUI shows it) or plain hex, any case.
    pub fn parse(text: &str) -> Result<Fingerprint, FingerprintError> {
        let hexdigits: String = text.trim().chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&hexdigits).map_err(|_| FingerprintError(text.to_string()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| FingerprintError(text.to_string()))?;
        Ok(Fingerprint(arr))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&parts.join(":"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The error a pinned verifier puts in the TLS alert chain; the PVE client recognises it.
#[derive(Debug, thiserror::Error)]
#[error("certificate fingerprint {got} does not match the pinned {expected}")]
pub struct FingerprintMismatch {
    pub expected: Fingerprint,
    pub got: Fingerprint,
}

/// How the PVE server certificate is trusted.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Exactly this certificate (by SHA-256 of its DER), whatever its name or issuer.
    Pinned(Fingerprint),
    /// Certificates chaining to the CAs in this PEM file, with the usual name checks.
    CaFile(std::path::PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS set-up failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the rustls client configuration for a trust setting.
pub fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, TrustError> {
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match trust {
        Trust::Pinned(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                expected: fp.clone(),
                provider,
            }))
            .with_no_client_auth(),
        Trust::CaFile(path) => builder
            .with_root_certificates(load_roots(path)?)
            .with_no_client_auth(),
    };
    Ok(config)
}

fn load_roots(path: &Path) -> Result<RootCertStore, TrustError> {
    let err = |message: String| TrustError::CaFile {
        path: path.display().to_string(),
        message,
    };
    let mut roots = RootCertStore::empty();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?;
    for cert in iter {
        let cert = cert.map_err(|e| err(e.to_string()))?;
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificates in file".into()));
    }
    Ok(roots)
}

/// Accepts only the certificate whose SHA-256 is pinned; handshake signatures are still verified.
#[derive(Debug)]
struct PinnedVerifier {
    expected: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of_der(end_entity.as_ref());
        if got == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(FingerprintMismatch {
                    expected: self.expected.clone(),
                    got,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_in_pve_notation() {
        let fp = Fingerprint::of_der(b"certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), 32 * 3 - 1);
        assert_eq!(Fingerprint::parse(&text).expect("parse"), fp);
        assert_eq!(
            Fingerprint::parse(&text.replace(':', "").to_lowercase()).expect("parse plain"),
            fp
        );
        assert!(Fingerprint::parse("AA:BB").is_err());
        assert!(Fingerprint::parse(&"ZZ".repeat(32)).is_err());
    }
}
