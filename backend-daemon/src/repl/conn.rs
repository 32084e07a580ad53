//! The replication link: TLS with mutual authentication (both partners present a certificate
//! signed by the configured CA) and length-prefixed frames over it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::wire;
use crate::config::Replication;
use crate::tls::{certs, key};

fn roots(ca: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca).context("replication.ca")? {
        roots.add(c).context("replication.ca: not a usable CA certificate")?;
    }
    Ok(roots)
}

/// The replica's acceptor: only clients with a certificate signed by `ca` get through.
///
/// # Errors
/// Unreadable or mismatched PEM files, named with their key.
pub fn acceptor(r: &Replication) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&r.ca)?), provider.clone())
            .build()
            .context("replication.ca: cannot build the client verifier")?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&r.cert).context("replication.cert")?, key(&r.key).context("replication.key")?)
        .context("replication: cert and key don't match")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The primary's connector: checks the replica's certificate against `ca` and presents its own.
///
/// # Errors
/// Unreadable or mismatched PEM files, named with their key.
pub fn connector(r: &Replication) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(&r.ca)?)
        .with_client_auth_cert(certs(&r.cert).context("replication.cert")?, key(&r.key).context("replication.key")?)
        .context("replication: cert and key don't match")?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Reads one frame; `Ok(None)` on a clean EOF between frames.
///
/// # Errors
/// I/O errors, an oversized frame (refused from its header) or a malformed body.
pub async fn read_frame<T: DeserializeOwned>(
    io: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> anyhow::Result<Option<T>> {
    let mut header = [0u8; 4];
    match io.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = wire::body_len(header, max)?;
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(Some(wire::decode_body(&body)?))
}

/// Writes one frame and flushes it.
///
/// # Errors
/// I/O errors.
pub async fn write_frame<T: Serialize>(io: &mut (impl AsyncWrite + Unpin), msg: &T) -> anyhow::Result<()> {
    io.write_all(&wire::encode(msg)?).await?;
    io.flush().await?;
    Ok(())
}
