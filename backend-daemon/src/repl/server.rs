//! The replica side (Cyrus's `sync_server`): accepts the primary's mutually authenticated TLS
//! connections and answers its requests against the local store; each `Apply` is one
//! transaction ([`mailstore::UserStore::apply_batch`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mailstore::{Store, Username};
use tracing::Instrument;

use super::conn::{read_frame, write_frame};
use super::wire::{self, Request, Response};
use crate::server::Ctx;

/// Binds `replication.listen`, so that a start-up fails on a taken port like the other listeners.
///
/// # Errors
/// A listener that cannot be bound, named with its key.
pub async fn bind(ctx: &Ctx) -> anyhow::Result<tokio::net::TcpListener> {
    let r = ctx.cfg.replication.as_ref().context("no [replication] section")?;
    let addr = r.listen.context("replication.listen is required for a replica")?;
    let sock = crate::server::listen(addr).with_context(|| format!("cannot listen on {addr} (replication.listen)"))?;
    tracing::info!(%addr, proto = "repl", "listening");
    Ok(sock)
}

/// Serves the primary on `sock` until the process stops.
///
/// # Errors
/// TLS set-up failures (bad PEM files).
pub async fn run(ctx: Arc<Ctx>, sock: tokio::net::TcpListener) -> anyhow::Result<()> {
    let r = ctx.cfg.replication.as_ref().context("no [replication] section")?;
    let acceptor = super::conn::acceptor(r)?;
    let max = wire::max_frame(ctx.cfg.limits.max_literal_bytes);
    loop {
        let (tcp, peer) = crate::server::accept(&sock).await;
        let (acceptor, store) = (acceptor.clone(), ctx.store.clone());
        let span = tracing::info_span!("conn", proto = "repl", %peer);
        tokio::spawn(
            async move {
                let tls = match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "replication TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!("replication TLS handshake timed out");
                        return;
                    }
                };
                tracing::info!("primary connected");
                match serve(tls, &store, max).await {
                    Ok(()) => tracing::info!("primary disconnected"),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "replication connection ended"),
                }
            }
            .instrument(span),
        );
    }
}

async fn serve(
    mut io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    store: &Arc<Store>,
    max: usize,
) -> anyhow::Result<()> {
    while let Some(req) = read_frame::<Request>(&mut io, max).await? {
        let resp = crate::blocking(|| answer(store, req));
        write_frame(&mut io, &resp).await?;
    }
    Ok(())
}

/// One request's answer; a failure is an [`Response::Error`] for this request only.
pub fn answer(store: &Store, req: Request) -> Response {
    match handle(store, req) {
        Ok(r) => r,
        Err(e) => {
            let text = format!("{e:#}");
            tracing::warn!(error = %text, "replication request failed");
            Response::Error { text }
        }
    }
}

fn handle(store: &Store, req: Request) -> anyhow::Result<Response> {
    let user_of = |u: &str| -> anyhow::Result<_> {
        let name = Username::new(u).with_context(|| format!("user {u:?}"))?;
        Ok(store.user(&name)?)
    };
    Ok(match req {
        Request::UserState { user } => {
            let u = user_of(&user)?;
            Response::State {
                mailboxes: u.mailbox_states()?,
                subscriptions: u.subscriptions()?,
                digest: u.user_state_digest()?,
            }
        }
        Request::Records { user, mailbox_unique_id, since_modseq } => {
            let u = user_of(&user)?;
            match u.mailbox_by_unique_id(&mailbox_unique_id)? {
                Some(m) => Response::Records(u.records_since(m.id, since_modseq)?),
                None => Response::Records(Vec::new()),
            }
        }
        Request::HaveGuids { user, guids } => {
            let u = user_of(&user)?;
            Response::Missing(guids.into_iter().filter(|g| !u.has_guid(g)).collect())
        }
        Request::Apply { user, ops } => {
            let u = user_of(&user)?;
            let ops =
                ops.into_iter().map(wire::Op::into_repl).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
            u.apply_batch(&ops).with_context(|| format!("applying {} ops for {user}", ops.len()))?;
            Response::Applied { digest: u.user_state_digest()? }
        }
    })
}
