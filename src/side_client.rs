//! How the command-line clients (`ask`, `listen`, `approve`, `killswitch`, `faces`) reach a running Jarvis's
//! side port: its URL and, for `https://`, the one certificate they trust — pinned by its SHA-256 fingerprint
//! (`--fingerprint`, or JARVIS_WEB_FINGERPRINT) or a CA file. There is no "accept any certificate" switch: a
//! side port with a certificate made on the box is trusted by its fingerprint, which `jarvis tls-cert` prints
//! and the appliance shows on its console and leaves on the boot partition.

use std::path::PathBuf;

use anyhow::{bail, Context};
use jarvis::tls::{Fingerprint, Trust};

/// The environment variable holding the side port's certificate fingerprint.
pub const ENV_WEB_FINGERPRINT: &str = "JARVIS_WEB_FINGERPRINT";

#[derive(clap::Args, Clone, Debug)]
pub struct SidePortArgs {
    /// The side port of the running Jarvis (https:// when it serves TLS).
    #[arg(long, default_value = "http://127.0.0.1:8443")]
    pub url: String,
    /// With https://: the SHA-256 fingerprint of the side port's certificate, AA:BB:… (`jarvis tls-cert` prints
    /// it; the appliance shows it at boot). Default: the JARVIS_WEB_FINGERPRINT environment variable.
    #[arg(long)]
    pub fingerprint: Option<String>,
    /// With https://: trust the certificates this CA file (PEM) vouches for, by name, instead of a fingerprint.
    #[arg(long, conflicts_with = "fingerprint")]
    pub ca_file: Option<PathBuf>,
}

impl SidePortArgs {
    /// The URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    /// An HTTP client that trusts exactly what these arguments say.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        let builder = reqwest::Client::builder().no_proxy();
        let url = reqwest::Url::parse(self.base())
            .with_context(|| format!("`{}` is not a URL", self.url))?;
        match url.scheme() {
            "http" => {
                let host = url.host_str().unwrap_or_default();
                let loopback = host == "localhost"
                    || host
                        .trim_matches(|c| c == '[' || c == ']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|a| a.is_loopback());
                if !loopback {
                    eprintln!(
                        "warning: {} is plain HTTP: the token crosses the network in the clear",
                        self.url
                    );
                }
                builder.build().context("HTTP client")
            }
            "https" => {
                let trust = self.trust()?;
                let tls = jarvis::tls::client_config(&trust)?;
                builder
                    .tls_backend_preconfigured(tls)
                    .build()
                    .context("HTTPS client")
            }
            other => bail!(
                "`{}`: the side port speaks http or https, not {other}",
                self.url
            ),
        }
    }

    fn trust(&self) -> anyhow::Result<Trust> {
        if let Some(ca) = &self.ca_file {
            return Ok(Trust::CaFile(ca.clone()));
        }
        let text = match &self.fingerprint {
            Some(f) => f.clone(),
            None => std::env::var(ENV_WEB_FINGERPRINT).unwrap_or_default(),
        };
        if text.trim().is_empty() {
            bail!(
                "{} is HTTPS: give the certificate's fingerprint (--fingerprint AA:BB:… or {ENV_WEB_FINGERPRINT}; \
                 `jarvis tls-cert` prints it, the appliance shows it at boot) or --ca-file",
                self.url
            );
        }
        Ok(Trust::Pinned(Fingerprint::parse(&text)?))
    }
}

/// A request that did not reach Jarvis, said plainly: a certificate that is not the pinned one is named with both
/// fingerprints (someone is in between, or the box made a new certificate), anything else with its cause.
pub fn unreachable(url: &str, e: reqwest::Error) -> anyhow::Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))) =
            err.downcast_ref::<rustls::Error>()
        {
            if let Some(m) = other.0.downcast_ref::<jarvis::tls::FingerprintMismatch>() {
                return anyhow::anyhow!(
                    "cannot reach Jarvis at {url}: its certificate is {}, not the pinned {}. Someone may be in \
                     between; or, if the box made a new certificate (`jarvis tls-cert` says so), pin the new one",
                    m.got,
                    m.expected
                );
            }
        }
        // `io::Error::source` skips the error it wraps: step into it.
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            source = Some(inner);
            continue;
        }
        source = err.source();
    }
    anyhow::Error::new(e).context(format!("cannot reach Jarvis at {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str, fingerprint: Option<&str>) -> SidePortArgs {
        SidePortArgs {
            url: url.into(),
            fingerprint: fingerprint.map(str::to_string),
            ca_file: None,
        }
    }

    #[test]
    fn https_needs_a_pin_and_a_bad_one_or_a_strange_scheme_is_refused() {
        let fp = Fingerprint::of_der(b"x").to_string();
        assert!(args("https://jarvis.lan:8443", Some(&fp)).client().is_ok());
        assert!(args("https://jarvis.lan:8443", Some("AA:BB"))
            .client()
            .is_err());
        assert!(args("http://127.0.0.1:8443/", None).client().is_ok());
        assert!(args("ftp://jarvis.lan", None).client().is_err());
        assert!(args("not a url", None).client().is_err());
    }
}
