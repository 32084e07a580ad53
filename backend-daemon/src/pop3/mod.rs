//! POP3 (RFC 1939 with CAPA, UIDL, TOP, STLS and SASL PLAIN): [`codec`] parses commands and
//! stuffs message bodies, [`session`] is the state machine, this file is the connection shell
//! (socket, TLS, timeouts, the directory and the store). The maildrop is the user's INBOX;
//! DELE takes effect only at QUIT, so a dropped connection deletes nothing (RFC 1939 6).

pub mod codec;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailstore::{MailboxName, UserStore, Username};

use self::codec::{err, ok, stuff_message};
use self::session::{Action, Maildrop, Message, Session, State};
use crate::frontend::authenticate;
use crate::net::{Conn, LineError};
use crate::server::Ctx;

/// How long a failed login waits before its answer (slows password guessing; other sessions
/// are not held up).
const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// Replies longer than this are sent at once even when more pipelined commands wait.
const BIG_REPLY: usize = 16 * 1024;

/// Serves one POP3 connection until QUIT, EOF, timeout or an I/O error.
///
/// # Errors
/// Socket and TLS errors and write timeouts; they end this connection only.
pub async fn serve(ctx: Arc<Ctx>, mut conn: Conn, peer: SocketAddr) -> anyhow::Result<()> {
    let lim = &ctx.cfg.limits;
    let mut session = Session::new(&ctx.cfg.hostname, ctx.tls.is_some(), conn.is_tls());
    let mut store: Option<Arc<UserStore>> = None;
    conn.send(&session.greeting()).await?;
    loop {
        let line = match conn.read_line(lim.max_line_bytes).await {
            Ok(line) => line,
            Err(LineError::TooLong) => {
                conn.queue(&session.line_too_long());
                conn.flush_unless_pipelined().await?;
                continue;
            }
            Err(LineError::Timeout) => {
                tracing::info!("idle timeout");
                conn.queue(&err("[SYS/TEMP] autologout; idle for too long"));
                conn.shutdown().await;
                return Ok(());
            }
            Err(LineError::Closed) => {
                if matches!(session.state(), State::Transaction { .. }) {
                    tracing::info!("connection closed without QUIT; nothing deleted");
                }
                return Ok(());
            }
            Err(LineError::Io(e)) => return Err(e.into()),
        };
        match session.handle(&line) {
            Action::Reply(r) => {
                conn.queue(&r);
                // A batch of pipelined commands must not pile up large listings unsent.
                if r.len() > BIG_REPLY {
                    conn.flush().await?;
                }
            }
            Action::Close(r) => {
                conn.queue(&r);
                conn.shutdown().await;
                return Ok(());
            }
            Action::Login { user, pass } => match authenticate(&ctx, peer.ip(), user.clone(), pass).await {
                Some(u) => match crate::blocking(|| open_maildrop(&ctx, &u)) {
                    Ok((us, drop)) => {
                        tracing::Span::current().record("user", u.as_str());
                        tracing::info!(messages = drop.messages.len(), "logged in");
                        store = Some(us);
                        conn.queue(&session.logged_in(u, drop));
                    }
                    Err(e) => {
                        tracing::error!(user = %u, error = %e, "cannot open maildrop");
                        conn.queue(&err("[SYS/TEMP] Cannot open the maildrop, try again later"));
                    }
                },
                None => {
                    tracing::info!(user = ?user, "login failed");
                    conn.flush().await?;
                    tokio::time::sleep(AUTH_FAILURE_DELAY).await;
                    let (reply, close) = session.login_failed();
                    conn.queue(&reply);
                    if close {
                        conn.shutdown().await;
                        return Ok(());
                    }
                }
            },
            Action::StartTls => {
                if let Some(acceptor) = ctx.tls.as_ref() {
                    conn.send(&ok("Begin TLS negotiation")).await?;
                    conn.starttls(acceptor).await?;
                    session.tls_started();
                } else {
                    conn.queue(&err("STLS is not available"));
                }
            }
            Action::Retrieve { header, guid, body_lines } => {
                let read = match store.as_ref() {
                    Some(us) => crate::blocking(|| us.read_message(&guid)),
                    None => Err(mailstore::Error::Corrupt("no maildrop open".into())),
                };
                match read {
                    Ok(raw) => {
                        let mut out = header;
                        stuff_message(&raw, body_lines, &mut out);
                        conn.queue(&out);
                        conn.flush().await?;
                    }
                    Err(e) => {
                        tracing::error!(guid = %guid.to_hex(), error = %e, "cannot read message");
                        conn.queue(&err("[SYS/TEMP] Cannot read the message"));
                    }
                }
            }
            Action::Update { user, mailbox, seen, deleted } => {
                let replica = ctx.repl.is_replica();
                let result = match store.as_ref() {
                    _ if replica => Ok(0),
                    Some(us) => crate::blocking(|| update(us, mailbox, &seen, &deleted)),
                    None => Err(mailstore::Error::Corrupt("no maildrop open".into())),
                };
                let reply = match result {
                    // A replica's store follows its primary's: nothing is marked or removed here.
                    _ if replica && !deleted.is_empty() => {
                        err("[SYS/PERM] this backend is a replica; nothing deleted, delete on the primary")
                    }
                    Ok(n) => {
                        tracing::info!(deleted = n, seen = seen.len(), "quit, maildrop updated");
                        ok(&format!("{} signing off ({n} messages deleted)", ctx.cfg.hostname))
                    }
                    Err(e) => {
                        tracing::error!(user = %user, error = %e, "update at QUIT failed");
                        err("[SYS/TEMP] Some deleted messages were not removed")
                    }
                };
                conn.queue(&reply);
                conn.shutdown().await;
                return Ok(());
            }
        }
        conn.flush_unless_pipelined().await?;
    }
}

/// Opens the user's store and snapshots INBOX.
fn open_maildrop(ctx: &Ctx, user: &Username) -> Result<(Arc<UserStore>, Maildrop), mailstore::Error> {
    let us = ctx.store.user(user)?;
    let inbox = us.mailbox(&MailboxName::inbox())?.ok_or_else(|| mailstore::Error::NoSuchMailbox("INBOX".into()))?;
    let messages = us
        .messages(inbox.id)?
        .into_iter()
        .map(|(uid, rec)| Message { uid, size: rec.size, guid: rec.guid, deleted: false, retrieved: false })
        .collect();
    let drop = Maildrop { mailbox: inbox.id, uidvalidity: inbox.uidvalidity, messages };
    Ok((us, drop))
}

/// The UPDATE state (RFC 1939 6): `\Seen` for retrieved messages (as Dovecot does) and the
/// DELE'd messages expunged — exactly those — in one store transaction. Returns how many were
/// removed.
fn update(us: &UserStore, mailbox: u32, seen: &[u32], deleted: &[u32]) -> Result<usize, mailstore::Error> {
    if seen.is_empty() && deleted.is_empty() {
        return Ok(0);
    }
    Ok(us.seen_and_expunge(mailbox, seen, deleted)?.len())
}
