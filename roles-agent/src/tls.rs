//! rustls configuration from PEM files: the primary's server side, the follower's client side.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path, what: &str) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    let f = std::fs::File::open(path).with_context(|| format!("{what}: cannot open {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(f))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what}: bad PEM in {}", path.display()))?;
    if certs.is_empty() {
        bail!("{what}: no certificate in {}", path.display());
    }
    Ok(certs)
}

/// The primary's TLS acceptor (`--cert`, `--key`).
///
/// # Errors
/// Unreadable or malformed PEM files, named in the message.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = certs(cert, "--cert")?;
    let f = std::fs::File::open(key).with_context(|| format!("--key: cannot open {}", key.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(f))
        .with_context(|| format!("--key: bad PEM in {}", key.display()))?
        .with_context(|| format!("--key: no private key in {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("--cert/--key: certificate and key don't match")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The follower's TLS connector, trusting only the certificates in `ca` (`--ca`).
///
/// # Errors
/// Unreadable or malformed PEM, a certificate rustls cannot use as a trust anchor.
pub fn connector(ca: &Path) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca, "--ca")? {
        roots.add(cert).with_context(|| format!("--ca: unusable certificate in {}", ca.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}
