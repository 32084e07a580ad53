//! Postfix `socketmap` server (`socketmap_table(5)`): answers the frontend Postfix's transport
//! lookups from the roles database, so each message is relayed by LMTP to the backend that holds
//! the mailbox (the partner when its backend is in failover).
//!
//! Postfix side (`main.cf`):
//!
//! ```text
//! transport_maps = socketmap:inet:127.0.0.1:PORT:transport
//! ```
//!
//! Three layers, as everywhere in mailscale: [`codec`] (netstrings, requests, replies),
//! [`transport`] (key → reply over a lookup function), and this file, the connection shell
//! (accept, read with an idle timeout, write, close). Lookups are LMDB reads (microseconds, no
//! I/O wait), so they run inline on the connection's task; every lookup sees the latest committed
//! roles, so moves and failovers apply to the next lookup without a restart.

pub mod codec;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use mailscale_roles::Roles;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn, Instrument};

use codec::{NetstringError, Reply, MAX_NETSTRING};

/// Timeouts and limits of the server; [`Limits::default`] is what [`serve`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection that sends no complete request for this long is closed. Postfix keeps its
    /// socketmap connections open between lookups and reconnects when they are gone.
    pub idle_timeout: Duration,
    /// Time allowed to write one reply.
    pub write_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog (each Postfix process that
    /// uses the map holds one).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { idle_timeout: Duration::from_secs(300), write_timeout: Duration::from_secs(30), max_connections: 1024 }
    }
}

/// Serves socketmap lookups on `listener` with the default [`Limits`] until the task is dropped.
///
/// # Errors
/// See [`serve_with`].
pub async fn serve(listener: TcpListener, roles: Arc<Roles>) -> std::io::Result<()> {
    serve_with(listener, roles, Limits::default()).await
}

/// Serves socketmap lookups on `listener` until the task is dropped.
///
/// Errors of one connection (garbage, timeouts, resets) end that connection only and are logged
/// once; accept errors (e.g. out of file descriptors) are logged and retried after a pause.
///
/// # Errors
/// None in practice: the loop runs until cancelled. The `io::Result` leaves room for a future
/// shutdown path.
pub async fn serve_with(listener: TcpListener, roles: Arc<Roles>, limits: Limits) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, db = %roles.dir().display(), "socketmap listening");
    }
    loop {
        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "socketmap accept failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let roles = roles.clone();
        let span = tracing::info_span!("socketmap", %peer);
        tokio::spawn(
            async move {
                match connection(stream, &roles, limits).await {
                    Ok(lookups) => debug!(lookups, "connection closed"),
                    Err(e) => info!(error = %e, "connection ended"),
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// Why a connection ended other than by the client closing it.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("client closed the connection in the middle of a request")]
    Truncated,
    #[error("bad request framing: {0}")]
    Framing(NetstringError),
    #[error("write timed out")]
    WriteTimeout,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves one connection: request, reply, repeat. Returns the number of lookups answered when
/// the client closes the connection cleanly.
async fn connection(mut stream: TcpStream, roles: &Roles, limits: Limits) -> Result<u64, ConnectionError> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut lookups = 0u64;
    loop {
        match codec::decode(&buf, MAX_NETSTRING) {
            Ok((payload, used)) => {
                let reply = transport::answer(payload, |user| roles.lookup(user));
                debug!(request = %String::from_utf8_lossy(payload), %reply, "lookup");
                buf.drain(..used);
                write(&mut stream, &reply, limits.write_timeout).await?;
                lookups += 1;
            }
            Err(NetstringError::Incomplete) => {
                let n = match tokio::time::timeout(limits.idle_timeout, stream.read(&mut chunk)).await {
                    Err(_) => return Err(ConnectionError::Idle(limits.idle_timeout)),
                    Ok(r) => r?,
                };
                if n == 0 {
                    return if buf.is_empty() { Ok(lookups) } else { Err(ConnectionError::Truncated) };
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => {
                // The framing is lost: say why once (best effort), then close.
                let _ = write(&mut stream, &Reply::Perm(e.to_string()), limits.write_timeout).await;
                let _ = stream.shutdown().await;
                linger(&mut stream, &mut chunk).await;
                return Err(ConnectionError::Framing(e));
            }
        }
    }
}

async fn write(stream: &mut TcpStream, reply: &Reply, timeout: Duration) -> Result<(), ConnectionError> {
    match tokio::time::timeout(timeout, stream.write_all(&reply.encode())).await {
        Err(_) => Err(ConnectionError::WriteTimeout),
        Ok(r) => Ok(r?),
    }
}

/// After our FIN: read and drop what the client still sends, briefly, so that closing with
/// unread input does not reset the connection and destroy the error reply before it is read.
async fn linger(stream: &mut TcpStream, chunk: &mut [u8]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut left = 1usize << 20;
    while left > 0 {
        match tokio::time::timeout_at(deadline, stream.read(chunk)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}
