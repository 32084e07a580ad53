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
use crate::config::Role;
use crate::server::Ctx;

/// Binds `replication.listen`, so that a start-up fails on a taken port like the other listeners.
///
/// # Errors
/// A listener that cannot be bound, named with its key.
pub async fn bind(ctx: &Ctx) -> anyhow::Result<tokio::net::TcpListener> {
    let r = ctx.cfg.replication.as_ref().context("no [replication] section")?;
    let addr = r.listen.context("replication.listen is not set")?;
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
        let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
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
                tracing::info!("partner connected");
                match serve(tls, &ctx, max).await {
                    Ok(()) => tracing::info!("partner disconnected"),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "replication connection ended"),
                }
            }
            .instrument(span),
        );
    }
}

async fn serve(
    mut io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    ctx: &Arc<Ctx>,
    max: usize,
) -> anyhow::Result<()> {
    let mut greeted = false;
    while let Some(req) = read_frame::<Request>(&mut io, max).await? {
        let resp = match req {
            Request::Hello { epoch, name } => {
                let r = greet(ctx, epoch, &name);
                greeted = matches!(r, Response::Hello { .. });
                r
            }
            Request::Ping => Response::Pong,
            _ if !greeted => Response::Error { text: "Hello first".into() },
            req @ Request::Apply { .. } => crate::blocking(|| {
                let _gate = ctx.repl.apply_gate.read().unwrap_or_else(|e| e.into_inner());
                if ctx.repl.is_replica() {
                    answer(&ctx.store, req)
                } else {
                    Response::Error {
                        text: format!(
                            "this backend is the primary (epoch {}); it takes no updates",
                            ctx.repl.role().epoch
                        ),
                    }
                }
            }),
            req => crate::blocking(|| answer(&ctx.store, req)),
        };
        let fenced = matches!(resp, Response::Fenced { .. });
        write_frame(&mut io, &resp).await?;
        if fenced {
            break;
        }
    }
    Ok(())
}

/// The epoch check of `state.rs`: a replica follows any primary at its epoch or above; a
/// primary steps down for a higher epoch and fences off anyone else.
fn greet(ctx: &Ctx, epoch: u64, partner: &str) -> Response {
    let me = ctx.repl.role();
    let accept = match me.role {
        Role::Replica => epoch >= me.epoch && ctx.repl.follow(epoch).is_ok(),
        Role::Primary if epoch > me.epoch => match ctx.repl.demote(epoch) {
            Ok(_) => {
                tracing::warn!(%partner, epoch, "partner is the primary at a higher epoch: this backend is now its replica");
                true
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot persist the demotion; refusing the partner");
                false
            }
        },
        Role::Primary => false,
    };
    if accept {
        Response::Hello { epoch: ctx.repl.role().epoch }
    } else {
        tracing::warn!(%partner, their_epoch = epoch, our_epoch = me.epoch, role = ?me.role, "partner fenced off");
        Response::Fenced { epoch: me.epoch }
    }
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
        Request::Hello { .. } | Request::Ping => anyhow::bail!("handled by the connection"),
        Request::Users => Response::Users(store.users()?.iter().map(|u| u.as_str().to_string()).collect()),
        Request::Fetch { user, guid } => Response::Content(user_of(&user)?.read_message(&guid)?),
        Request::UserState { user } => {
            let u = user_of(&user)?;
            Response::State {
                mailboxes: u.mailbox_states()?,
                subscriptions: u.subscriptions()?,
                settings: u.settings()?,
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
