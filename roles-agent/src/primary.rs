//! `rolesd primary`: serves the roles changelog to followers over TLS.
//!
//! Per follower: TLS handshake, HELLO (token checked in constant time), a snapshot when the
//! follower cannot be served from the changelog, then every change after the follower's sequence,
//! then new changes as they are committed (the database's generation is polled every 20 ms, so a
//! commit by any process — mailctl, an import — reaches followers within ~20 ms plus the network),
//! and a heartbeat every second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use mailscale_roles::Roles;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn, Instrument};

use crate::token::Token;
use crate::wire::{encode, Frame, Hello, MAX_HELLO};

/// How often the primary looks for new commits.
const POLL: Duration = Duration::from_millis(20);
/// How often a follower hears from an idle primary.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Changelog entries read per read transaction.
const PAGE: usize = 2000;
/// Time allowed for the TLS handshake and the HELLO line, and for any single write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `--retain` is enforced.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Shared by every follower connection.
pub struct Primary {
    pub roles: Arc<Roles>,
    pub acceptor: TlsAcceptor,
    pub token: Token,
    /// `--retain N`: changelog entries kept.
    pub retain: Option<u64>,
}

impl Primary {
    /// Accepts followers until the listener fails.
    ///
    /// # Errors
    /// Only an `accept` failure; a follower's error ends that follower's connection.
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> anyhow::Result<()> {
        if let Some(keep) = self.retain {
            tokio::spawn(trim_loop(self.roles.clone(), keep));
        }
        loop {
            let (tcp, peer) = listener.accept().await.context("accept")?;
            let this = self.clone();
            let span = tracing::info_span!("follower", %peer);
            tokio::spawn(
                async move {
                    match this.serve(tcp, peer).await {
                        Ok(()) => info!("follower left"),
                        Err(e) => warn!("follower connection ended: {e:#}"),
                    }
                }
                .instrument(span),
            );
        }
    }

    async fn serve(&self, tcp: TcpStream, _peer: SocketAddr) -> anyhow::Result<()> {
        tcp.set_nodelay(true)?;
        let tls = timeout(IO_TIMEOUT, self.acceptor.accept(tcp)).await.context("TLS handshake timed out")??;
        let mut tls = BufReader::new(tls);
        let mut line = Vec::new();
        let mut limited = (&mut tls).take(MAX_HELLO as u64);
        timeout(IO_TIMEOUT, limited.read_until(b'\n', &mut line)).await.context("no HELLO within 10 s")??;
        let mut out = Vec::new();
        let hello = match Hello::parse(&line) {
            Ok(hello) if self.token.matches(&hello.token) => hello,
            Ok(_) => {
                encode(&Frame::Refused { reason: "bad token".into() }, &mut out);
                send(&mut tls, &out).await?;
                bail!("refused: bad token");
            }
            Err(e) => {
                encode(&Frame::Refused { reason: e.to_string() }, &mut out);
                send(&mut tls, &out).await?;
                bail!("refused: {e}");
            }
        };
        info!(follower_seq = hello.last_seq, "follower authenticated");
        self.stream(&mut tls, hello.last_seq).await
    }

    /// Sends whatever brings a follower at `cursor` up to date, then follows the changelog.
    async fn stream<W: AsyncWrite + Unpin>(&self, out: &mut W, mut cursor: u64) -> anyhow::Result<()> {
        let roles = &self.roles;
        let (last, oldest) = (roles.last_seq()?, roles.oldest_seq()?);
        let mut need_snapshot = cursor == 0 || cursor > last || cursor + 1 < oldest;
        let mut seen_generation = None;
        let mut next_heartbeat = Instant::now();
        let mut buf = Vec::with_capacity(64 << 10);
        loop {
            if need_snapshot {
                let r = roles.clone();
                let snapshot = tokio::task::spawn_blocking(move || r.snapshot()).await??;
                info!(seq = snapshot.seq, users = snapshot.users.len(), "sending a snapshot");
                cursor = snapshot.seq;
                buf.clear();
                encode(&Frame::Snapshot(snapshot), &mut buf);
                send(out, &buf).await?;
                need_snapshot = false;
            }
            // Taken before reading: a commit in between only makes us read once more.
            let generation = roles.generation();
            if seen_generation != Some(generation) {
                loop {
                    let page = roles.changes_since(cursor, PAGE)?;
                    match page.first() {
                        Some((first, _)) if *first != cursor + 1 => need_snapshot = true,
                        None if roles.last_seq()? > cursor => need_snapshot = true,
                        _ => {}
                    }
                    if need_snapshot {
                        info!(cursor, "changelog trimmed past the follower's position");
                        break;
                    }
                    buf.clear();
                    let full = page.len() == PAGE;
                    for (seq, change) in page {
                        cursor = seq;
                        encode(&Frame::Change { seq, change }, &mut buf);
                    }
                    send(out, &buf).await?;
                    if !full {
                        break;
                    }
                }
                if need_snapshot {
                    continue;
                }
                seen_generation = Some(generation);
            }
            if Instant::now() >= next_heartbeat {
                let unix_time = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                buf.clear();
                encode(&Frame::Heartbeat { last_seq: cursor, unix_time }, &mut buf);
                send(out, &buf).await?;
                next_heartbeat = Instant::now() + HEARTBEAT;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8]) -> anyhow::Result<()> {
    let write = async {
        out.write_all(bytes).await?;
        out.flush().await
    };
    timeout(IO_TIMEOUT, write).await.context("follower not reading for 10 s")?.context("write to follower")
}

/// Enforces `--retain` (primary and follower): trims the changelog to its last `keep` entries,
/// every second.
pub async fn trim_loop(roles: Arc<Roles>, keep: u64) {
    loop {
        let r = roles.clone();
        let trimmed = tokio::task::spawn_blocking(move || -> mailscale_roles::Result<u64> {
            // Read first: a write transaction would wait for (and hold up) other writers.
            let (last, oldest) = (r.last_seq()?, r.oldest_seq()?);
            if last.saturating_sub(oldest - 1) <= keep {
                return Ok(0);
            }
            r.trim_changelog(keep)
        })
        .await;
        match trimmed {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(removed = n, keep, "changelog trimmed"),
            Ok(Err(e)) => warn!("changelog trim failed: {e}"),
            Err(e) => warn!("changelog trim task: {e}"),
        }
        tokio::time::sleep(TRIM_EVERY).await;
    }
}
