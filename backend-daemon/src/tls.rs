//! rustls server configuration from PEM files, and the PEM loaders the replication link shares.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The certificates of a PEM file (a chain, or a CA bundle).
///
/// # Errors
/// Unreadable file, bad PEM, or no certificate in it; the message names the file.
pub fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("bad PEM in {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

/// The private key of a PEM file.
///
/// # Errors
/// Unreadable file, bad PEM, or no key in it; the message names the file.
pub fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    ))
    .with_context(|| format!("bad PEM in {}", path.display()))?
    .with_context(|| format!("no private key in {}", path.display()))
}

/// Builds the TLS acceptor for STARTTLS/STLS and the implicit-TLS listeners.
///
/// # Errors
/// Unreadable or malformed PEM files, named in the message with their config key.
pub fn acceptor(cert: &Path, key_path: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = certs(cert).context("tls.cert")?;
    let key = key(key_path).context("tls.key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls: certificate and key don't match")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
