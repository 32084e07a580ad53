//! rustls server configuration from PEM files.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio_rustls::TlsAcceptor;

/// Builds the TLS acceptor for STARTTLS/STLS and the implicit-TLS listeners.
///
/// # Errors
/// Unreadable or malformed PEM files, named in the message.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).with_context(|| format!("tls.cert: cannot open {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("tls.cert: bad PEM in {}", cert.display()))?;
    if certs.is_empty() {
        bail!("tls.cert: no certificate in {}", cert.display());
    }
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("tls.key: cannot open {}", key.display()))?,
    ))
    .with_context(|| format!("tls.key: bad PEM in {}", key.display()))?
    .with_context(|| format!("tls.key: no private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls: certificate and key don't match")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
