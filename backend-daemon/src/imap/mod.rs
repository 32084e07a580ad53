//! IMAP4rev1 (RFC 3501) with IDLE, UIDPLUS, MOVE, NAMESPACE, ID, ENABLE, UNSELECT, LITERAL+,
//! SASL-IR, SPECIAL-USE, CHILDREN, SORT/THREAD, ESEARCH, SEARCHRES, LIST-EXTENDED, LIST-STATUS,
//! CONDSTORE/QRESYNC, QUOTA and COMPRESS=DEFLATE. Syntax imap-codec does not parse goes through `ext.rs` first. Commands are framed by imap-codec's `Fragmentizer` (which
//! caps message size) and parsed by its `CommandCodec`; this file is the connection shell:
//! literals, STARTTLS, AUTHENTICATE continuation, IDLE and timeouts.

mod condstore;
mod ext;
mod fetch;
mod list;
mod quota;
pub mod resp;
mod search;
mod selected;
mod session;
mod sort;
pub mod utf7;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use imap_codec::decode::Decoder;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::auth::AuthenticateData;
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::IntoStatic;
use imap_codec::{AuthenticateDataCodec, CommandCodec, IdleDoneCodec};

use crate::net::Conn;
use crate::server::Ctx;
use resp::{Kind, Rc};
use session::{Next, Session, State};

/// Outcome of waiting for the next complete client message.
enum Input {
    Message,
    Closed,
    TimedOut,
    /// A non-synchronizing literal over the limit: its bytes are already on the way, so the
    /// only safe answer is BAD and a disconnect (RFC 7888 4).
    TooBig(String),
    /// A command line longer than `limits.max_line_bytes`.
    LineTooLong,
}

struct Framer {
    frag: Fragmentizer,
    max_literal: u64,
    max_line: u64,
    /// Bytes enqueued since the fragmentizer last completed a fragment, and how many of them
    /// may arrive before that is an over-long line (a literal in progress allows its length).
    pending: u64,
    allowed: u64,
}

impl Framer {
    fn new(ctx: &Ctx) -> Self {
        let lim = &ctx.cfg.limits;
        let max_msg = (lim.max_literal_bytes + lim.max_line_bytes).min(u32::MAX as usize) as u32;
        let max_line = lim.max_line_bytes as u64;
        Framer {
            frag: Fragmentizer::new(max_msg),
            max_literal: lim.max_literal_bytes as u64,
            max_line,
            pending: 0,
            allowed: max_line,
        }
    }

    /// Reads until one whole message (command line + literals) is framed, answering `+` to
    /// synchronizing literals and refusing oversized ones before their bytes are sent.
    async fn next(&mut self, conn: &mut Conn) -> io::Result<Input> {
        loop {
            let progress = self.frag.progress();
            if progress.is_some() {
                self.pending = 0;
                self.allowed = self.max_line;
            }
            match progress {
                None => {
                    if self.pending > self.allowed {
                        return Ok(Input::LineTooLong);
                    }
                    if conn.buffered().is_empty() {
                        let timeout = conn.read_timeout;
                        match conn.fill(timeout).await {
                            Ok(0) => return Ok(Input::Closed),
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(Input::TimedOut),
                            Err(e) => return Err(e),
                        }
                    }
                    let bytes = conn.take_buffered();
                    self.pending += bytes.len() as u64;
                    self.frag.enqueue_bytes(&bytes);
                }
                Some(FragmentInfo::Line { announcement: Some(LiteralAnnouncement { mode, length }), .. }) => {
                    if u64::from(length) > self.max_literal {
                        let tag = self.frag.decode_tag().map(|t| t.inner().to_string());
                        match (mode, tag) {
                            (LiteralMode::Sync, Some(tag)) => {
                                let text = format!(
                                    "Literal of {length} octets exceeds the limit of {} octets",
                                    self.max_literal
                                );
                                conn.send(&resp::status(Some(&tag), Kind::No, Some(&Rc::TooBig), &text)).await?;
                                self.frag.skip_message();
                            }
                            (_, tag) => return Ok(Input::TooBig(tag.unwrap_or_else(|| "*".into()))),
                        }
                    } else {
                        self.allowed = u64::from(length) + self.max_line;
                        if mode == LiteralMode::Sync && !self.frag.is_message_poisoned() {
                            conn.send(b"+ Ready for literal data\r\n").await?;
                        }
                    }
                }
                Some(_) => {
                    if self.frag.is_message_complete() {
                        return Ok(Input::Message);
                    }
                }
            }
        }
    }

    /// The tag of the current (undecodable) message, for the BAD answer.
    fn tag(&self) -> String {
        self.frag.decode_tag().map(|t| t.inner().to_string()).unwrap_or_else(|| "*".into())
    }
}

/// Serves one IMAP connection until LOGOUT, timeout or disconnect.
///
/// # Errors
/// Socket errors (the connection is over).
pub async fn serve(ctx: Arc<Ctx>, mut conn: Conn, peer: SocketAddr) -> anyhow::Result<()> {
    let mut session = Session::new(ctx.clone(), conn.is_tls(), peer.ip());
    let mut framer = Framer::new(&ctx);
    let caps = Rc::Capability(session.capabilities());
    conn.send(&resp::status(None, Kind::Ok, Some(&caps), "mailstored ready")).await?;
    loop {
        let input = match framer.next(&mut conn).await {
            // Undecodable COMPRESS input (RFC 4978): our own stream is still sound, say why.
            Err(e) if e.kind() == io::ErrorKind::InvalidData && conn.is_compressed() => {
                tracing::info!(error = %e, "disconnected: invalid compressed data");
                conn.send(&resp::bye(None, "Invalid compressed data")).await.ok();
                conn.shutdown().await;
                return Ok(());
            }
            r => r?,
        };
        match input {
            Input::Closed => return Ok(()),
            Input::TimedOut => {
                conn.send(&resp::bye(None, "Autologout; idle for too long")).await.ok();
                tracing::info!("autologout after idle timeout");
                return Ok(());
            }
            Input::LineTooLong => {
                conn.send(&resp::bye(Some(&Rc::TooBig), "Command line too long")).await.ok();
                tracing::info!("disconnected: command line over limits.max_line_bytes");
                return Ok(());
            }
            Input::TooBig(tag) => {
                let text = format!("Literal exceeds the limit of {} octets", framer.max_literal);
                conn.queue(&resp::status(Some(&tag), Kind::Bad, Some(&Rc::TooBig), &text));
                conn.send(&resp::bye(None, "Too much data")).await.ok();
                return Ok(());
            }
            Input::Message => {}
        }
        let intact = !framer.frag.is_max_message_size_exceeded() && !framer.frag.is_message_poisoned();
        let pre = if intact { Some(ext::preprocess(framer.frag.message_bytes(), &session)) } else { None };
        let mut search_return = None;
        let decoded = match pre {
            Some(ext::Pre::List { tag, list }) => {
                session.list_extended(&tag, &list, &mut conn);
                conn.flush().await?;
                continue;
            }
            Some(ext::Pre::Bad { tag, text }) => {
                conn.send(&resp::status(Some(&tag), Kind::Bad, None, &text)).await?;
                continue;
            }
            Some(ext::Pre::Codec { bytes: std::borrow::Cow::Owned(bytes), search_return: r }) => {
                search_return = r;
                match CommandCodec::default().decode(&bytes) {
                    Ok((rest, cmd)) if rest.is_empty() => Ok(cmd.into_static()),
                    Ok(_) => Err("unexpected data after the command".to_string()),
                    Err(e) => Err(format!("{e:?}")),
                }
            }
            Some(ext::Pre::Codec { search_return: r, .. }) => {
                search_return = r;
                framer
                    .frag
                    .decode_message(&CommandCodec::default())
                    .map(|c| c.into_static())
                    .map_err(|e| format!("{e:?}"))
            }
            None => framer
                .frag
                .decode_message(&CommandCodec::default())
                .map(|c| c.into_static())
                .map_err(|e| format!("{e:?}")),
        };
        let cmd = match decoded {
            Ok(cmd) => cmd,
            Err(e) => {
                let tag = framer.tag();
                let why = describe(&e);
                tracing::debug!(error = why, "unparsable command");
                conn.send(&resp::status(Some(&tag), Kind::Bad, None, &format!("Syntax error in command: {why}")))
                    .await?;
                continue;
            }
        };
        let next = session.handle(cmd, search_return, &mut conn).await?;
        match next {
            Next::Continue => {}
            Next::Logout => {
                conn.shutdown().await;
                return Ok(());
            }
            Next::StartTls => {
                conn.flush().await?;
                let acceptor = ctx.tls.clone().expect("STARTTLS only accepted with TLS configured");
                conn.starttls(&acceptor).await?;
                session.tls = true;
                framer = Framer::new(&ctx);
            }
            Next::Compress => {
                conn.flush().await?;
                conn.start_deflate();
                framer = Framer::new(&ctx);
                tracing::debug!("COMPRESS=DEFLATE active");
            }
            Next::AuthPlain(tag) => {
                conn.send(b"+ \r\n").await?;
                match framer.next(&mut conn).await? {
                    Input::Message => {}
                    _ => return Ok(()),
                }
                let reply = match framer.frag.decode_message(&AuthenticateDataCodec::default()) {
                    Ok(AuthenticateData::Continue(data)) => {
                        let data = data.declassify().to_vec();
                        match session.auth_plain(&data, &mut conn).await {
                            Ok(done) => done.to_bytes(&tag),
                            Err(r) => r.to_bytes(&tag),
                        }
                    }
                    Ok(AuthenticateData::Cancel) => {
                        resp::status(Some(&tag), Kind::Bad, None, "Authentication cancelled")
                    }
                    Err(_) => resp::status(Some(&tag), Kind::Bad, None, "Invalid base64 in AUTHENTICATE response"),
                };
                conn.queue(&reply);
            }
            Next::Idle(tag) => {
                idle(&mut session, &mut framer, &mut conn, &tag).await?;
            }
        }
        conn.flush().await?;
    }
}

/// IDLE (RFC 2177): pushes EXISTS/EXPUNGE/FETCH as other sessions and deliveries change the
/// mailbox, until the client sends DONE.
async fn idle(session: &mut Session, framer: &mut Framer, conn: &mut Conn, tag: &str) -> io::Result<()> {
    let Some(user) = session.user().cloned() else {
        conn.queue(&resp::status(Some(tag), Kind::Bad, None, "IDLE needs authentication first"));
        return Ok(());
    };
    let mut changes = user.subscribe_changes();
    changes.mark_unchanged();
    conn.send(b"+ idling\r\n").await?;
    let deadline = tokio::time::Instant::now() + conn.read_timeout;
    loop {
        if let State::Selected { user, view } = &mut session.state {
            if let Err(e) = view.refresh(user, true, conn) {
                tracing::error!(error = %e, "IDLE refresh failed");
            }
            conn.flush().await?;
        }
        // A complete DONE line may already be buffered.
        if conn.buffered().contains(&b'\n') {
            break;
        }
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    break;
                }
            }
            r = conn.fill(std::time::Duration::from_secs(3600)) => {
                match r {
                    Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client left during IDLE")),
                    Ok(_) => {
                        if conn.buffered().contains(&b'\n') {
                            break;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                conn.send(&resp::bye(None, "Autologout; idle for too long")).await.ok();
                return Err(io::Error::new(io::ErrorKind::TimedOut, "IDLE timeout"));
            }
        }
    }
    match framer.next(conn).await? {
        Input::Message => {}
        _ => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client left during IDLE")),
    }
    match framer.frag.decode_message(&IdleDoneCodec::default()) {
        Ok(_) => conn.queue(&resp::status(Some(tag), Kind::Ok, None, "IDLE terminated")),
        Err(_) => conn.queue(&resp::status(Some(tag), Kind::Bad, None, "Expected DONE to end IDLE")),
    }
    Ok(())
}

/// A short reason from a decoder error's debug text (no input bytes are echoed back).
fn describe(debug: &str) -> &'static str {
    if debug.contains("MessageTooLong") {
        "command too long"
    } else if debug.contains("Poisoned") {
        "literal too large or malformed framing"
    } else if debug.contains("LiteralFound") {
        "unexpected literal"
    } else {
        "unknown command or invalid arguments"
    }
}
