//! LMTP (RFC 2033) for delivery from the MTA: [`codec`] parses commands and the DATA stream,
//! [`session`] is the transaction state machine, this file is the connection shell (socket,
//! timeouts, delivery into the store). A recipient gets `250` only after its copy is durable
//! (DESIGN.md principle 5); replies come once per accepted recipient, in RCPT order.

pub mod codec;
pub mod session;
pub mod sieve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use self::codec::{DataReader, Reply};
use self::session::{with_trace_headers, Action, Recipient, Session};
use crate::net::{Conn, LineError};
use crate::server::Ctx;

/// Serves one LMTP connection until QUIT, EOF, timeout or an I/O error.
///
/// # Errors
/// Socket errors and write timeouts; they end this connection only.
pub async fn serve(ctx: Arc<Ctx>, mut conn: Conn, _peer: SocketAddr) -> anyhow::Result<()> {
    let lim = &ctx.cfg.limits;
    if ctx.repl.is_replica() {
        // RFC 5321 3.8: 421 at connect; the client retries, or delivers to the primary.
        conn.send(&Reply::new(421, "4.3.0", "this backend is a replica; deliver to the primary").to_bytes()).await?;
        return Ok(());
    }
    let mut session = Session::new(&ctx.cfg.hostname, lim.max_literal_bytes);
    conn.send(&session.greeting().to_bytes()).await?;
    loop {
        let line = match conn.read_line(lim.max_line_bytes).await {
            Ok(line) => line,
            Err(LineError::TooLong) => {
                conn.queue(&Reply::new(500, "5.5.2", "Line too long").to_bytes());
                conn.flush_unless_pipelined().await?;
                continue;
            }
            Err(LineError::Timeout) => {
                timed_out(&ctx, &mut conn).await;
                return Ok(());
            }
            Err(LineError::Closed) => return Ok(()),
            Err(LineError::Io(e)) => return Err(e.into()),
        };
        match session.handle(&line, |a| ctx.users.exists(a)) {
            Action::Reply(r) => conn.queue(&r.to_bytes()),
            Action::Quit(r) => {
                conn.queue(&r.to_bytes());
                conn.shutdown().await;
                return Ok(());
            }
            Action::Data { from, rcpts } => {
                conn.send(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n").await?;
                let Some(message) = read_data(&ctx, &mut conn).await? else {
                    return Ok(());
                };
                for r in deliver(&ctx, &from, &rcpts, message.as_deref()).await {
                    conn.queue(&r.to_bytes());
                }
            }
        }
        conn.flush_unless_pipelined().await?;
    }
}

async fn timed_out(ctx: &Ctx, conn: &mut Conn) {
    tracing::info!("idle timeout");
    let bye = Reply::new(421, "4.4.2", format!("{} Timeout, closing connection", ctx.cfg.hostname));
    conn.queue(&bye.to_bytes());
    conn.shutdown().await;
}

/// Reads the DATA section to its final `.` line. `Ok(Some(None))` is a message over the size
/// limit (read and thrown away); `Ok(None)` means the client vanished or timed out.
async fn read_data(ctx: &Ctx, conn: &mut Conn) -> std::io::Result<Option<Option<Vec<u8>>>> {
    let mut reader = DataReader::new(ctx.cfg.limits.max_literal_bytes);
    loop {
        let used = reader.feed(conn.buffered());
        conn.consume(used);
        if reader.is_done() {
            return Ok(Some(reader.finish()));
        }
        match conn.fill(conn.read_timeout).await {
            Ok(0) => {
                tracing::info!("connection closed during DATA; nothing delivered");
                return Ok(None);
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                timed_out(ctx, conn).await;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Stores one copy per recipient, where its Sieve script says (`sieve.rs`), and returns their
/// replies in order (RFC 2033 4.2). In synchronous replication mode a recipient gets 250 only
/// once the replica holds its copies too. What the scripts send (redirect, vacation) leaves
/// after that, for recipients answered 250 only.
async fn deliver(ctx: &Arc<Ctx>, from: &str, rcpts: &[Recipient], message: Option<&[u8]>) -> Vec<Reply> {
    let Some(message) = message else {
        tracing::info!(limit = ctx.cfg.limits.max_literal_bytes, "message over the size limit refused");
        let too_big = format!("Message too big: the limit is {} bytes", ctx.cfg.limits.max_literal_bytes);
        return rcpts.iter().map(|_| Reply::new(552, "5.3.4", too_big.clone())).collect();
    };
    let mut replies: Vec<Result<Reply, (&Recipient, Option<u32>)>> = Vec::new();
    let mut outgoing = Vec::new();
    for rcpt in rcpts {
        if ctx.repl.is_replica() {
            replies.push(Ok(Reply::new(451, "4.3.0", "this backend became a replica; deliver to the primary")));
            continue;
        }
        if ctx.repl.admit_write().is_err() {
            tracing::warn!(user = %rcpt.user, "delivery refused: synchronous replication and the replica is unreachable");
            replies.push(Ok(Reply::new(
                451,
                "4.4.3",
                format!("<{}>: replica unreachable (synchronous replication), try again later", rcpt.address),
            )));
            continue;
        }
        let started = Instant::now();
        let bytes = with_trace_headers(from, &rcpt.address, message);
        let stored = crate::blocking(|| -> Result<_, mailstore::Error> {
            let user = ctx.store.user(&rcpt.user)?;
            let plan = sieve::plan(ctx, &user, from, &rcpt.address, &bytes);
            // Every copy the script files must fit, or none is stored (a 452 after one copy
            // would make the MTA's retry store that copy twice).
            user.admit(bytes.len() as u64 * plan.stores.len() as u64)?;
            // A redirect must survive a crash between the 250 and the relay: into the outbox
            // first (before any copy, so a failure here leaves nothing to duplicate).
            let outbox = match (&ctx.cfg.sieve.relay, plan.redirects.is_empty()) {
                (Some(_), false) => {
                    let entry = crate::outbox::Entry {
                        user: rcpt.user.as_str().to_string(),
                        from: from.to_string(),
                        rcpt: rcpt.address.clone(),
                        redirects: plan.redirects.clone(),
                        stored_elsewhere: !plan.stores.is_empty(),
                    };
                    Some(crate::outbox::put(&crate::outbox::dir(&ctx.cfg.data_dir), &entry, message)?)
                }
                _ => None,
            };
            let mut first_uid = None;
            for (mailbox, flags) in &plan.stores {
                let a = user.append(mailbox, &bytes, flags.clone(), None)?;
                first_uid.get_or_insert(a.uid);
            }
            Ok((first_uid, plan, outbox))
        });
        replies.push(match stored {
            Ok((uid, plan, outbox)) => {
                let folders: Vec<&str> = plan.stores.iter().map(|(m, _)| m.as_str()).collect();
                tracing::info!(
                    user = %rcpt.user,
                    size = bytes.len(),
                    uid,
                    folders = ?folders,
                    redirects = plan.redirects.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "delivered"
                );
                outgoing.push((rcpt, plan, outbox));
                Err((rcpt, uid))
            }
            Err(e @ mailstore::Error::OverQuota { .. }) => {
                tracing::info!(user = %rcpt.user, size = bytes.len(), error = %e, "delivery refused: over quota");
                Ok(crate::mailadmin::lmtp_over_quota(ctx, &rcpt.address))
            }
            Err(e) => {
                tracing::error!(user = %rcpt.user, size = bytes.len(), error = %e, "delivery failed");
                Ok(Reply::new(451, "4.3.0", format!("<{}>: temporary failure", rcpt.address)))
            }
        });
    }
    let mut out = Vec::with_capacity(replies.len());
    for r in replies {
        out.push(match r {
            Ok(reply) => reply,
            Err((rcpt, uid)) => match ctx.repl.wait_replicated(&ctx.store, &rcpt.user).await {
                Ok(()) => {
                    if let Some(i) = outgoing.iter().position(|(r, _, _)| std::ptr::eq(*r, rcpt)) {
                        let (_, plan, outbox) = outgoing.swap_remove(i);
                        sieve::send(
                            ctx.clone(),
                            rcpt.user.clone(),
                            from.to_owned(),
                            rcpt.address.clone(),
                            message.to_vec(),
                            plan,
                            outbox,
                        );
                    }
                    match uid {
                        Some(uid) => Reply::new(250, "2.0.0", format!("<{}> delivered, uid {uid}", rcpt.address)),
                        None => {
                            Reply::new(250, "2.0.0", format!("<{}> delivered (filed nowhere by Sieve)", rcpt.address))
                        }
                    }
                }
                Err(why) => {
                    tracing::error!(user = %rcpt.user, reason = ?why,
                        "stored here but the replica did not confirm it: answered 451 (the retry may duplicate it)");
                    // Not acknowledged: its redirects are not sent (the retry brings them).
                    if let Some(i) = outgoing.iter().position(|(r, _, _)| std::ptr::eq(*r, rcpt)) {
                        if let (_, _, Some(id)) = outgoing.swap_remove(i) {
                            crate::outbox::remove(&crate::outbox::dir(&ctx.cfg.data_dir), &id);
                        }
                    }
                    Reply::new(
                        451,
                        "4.4.3",
                        format!(
                            "<{}>: not confirmed by the replica (synchronous replication), try again later",
                            rcpt.address
                        ),
                    )
                }
            },
        });
    }
    out
}
