//! LMTP (RFC 2033) for delivery from the MTA: [`codec`] parses commands and the DATA stream,
//! [`session`] is the transaction state machine, this file is the connection shell (socket,
//! timeouts, delivery into the store). A recipient gets `250` only after its copy is durable
//! (DESIGN.md principle 5); replies come once per accepted recipient, in RCPT order.

pub mod codec;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mailstore::{Flags, MailboxName};

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

/// Stores one copy per recipient and returns their replies in order (RFC 2033 4.2). In
/// synchronous replication mode a recipient gets 250 only once the replica holds its copy too.
async fn deliver(ctx: &Ctx, from: &str, rcpts: &[Recipient], message: Option<&[u8]>) -> Vec<Reply> {
    let Some(message) = message else {
        tracing::info!(limit = ctx.cfg.limits.max_literal_bytes, "message over the size limit refused");
        let too_big = format!("Message too big: the limit is {} bytes", ctx.cfg.limits.max_literal_bytes);
        return rcpts.iter().map(|_| Reply::new(552, "5.3.4", too_big.clone())).collect();
    };
    let mut replies: Vec<Result<Reply, (&Recipient, u32)>> = Vec::new();
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
        let stored = crate::blocking(|| {
            ctx.store.user(&rcpt.user)?.append(&MailboxName::inbox(), &bytes, Flags::default(), None)
        });
        replies.push(match stored {
            Ok(a) => {
                tracing::info!(
                    user = %rcpt.user,
                    size = bytes.len(),
                    uid = a.uid,
                    ms = started.elapsed().as_millis() as u64,
                    "delivered"
                );
                Err((rcpt, a.uid))
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
                Ok(()) => Reply::new(250, "2.0.0", format!("<{}> delivered, uid {uid}", rcpt.address)),
                Err(why) => {
                    tracing::error!(user = %rcpt.user, reason = ?why,
                        "stored here but the replica did not confirm it: answered 451 (the retry may duplicate it)");
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
