//! Sieve at LMTP delivery: the recipient's active script decides where the copy goes
//! ([`plan`]), and what it sends — redirects and vacation replies — leaves through the
//! `[sieve] relay` once the copies are durable ([`send`]).
//!
//! Mail is never lost to a script: a script that cannot be loaded or fails at run time, a
//! `fileinto` naming a missing (or invalid) mailbox, a redirect without a relay or in a loop,
//! and a redirect the relay refuses each end in INBOX, with a log line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailscale_sieve::{Action, Envelope, Limits, MessageContext, Script, VacationReply};
use mailstore::{flag, Flags, MailboxName, UserStore, Username};

use crate::config::{RedirectSender, SieveConfig};
use crate::server::Ctx;

/// Parsed active scripts per user, so a delivery does not parse the script again. An entry is
/// used only while the stored text is the same, so any change (ManageSieve, a replica promoted
/// with other scripts) takes effect with the next delivery.
#[derive(Default)]
pub struct ScriptCache {
    scripts: Mutex<HashMap<Username, (String, Result<Arc<Script>, String>)>>,
}

/// Users kept in [`ScriptCache`]; beyond that it starts over (parsing is cheap, just not free).
const CACHE_USERS: usize = 4096;

impl ScriptCache {
    fn get(&self, user: &Username, text: &str, limits: &Limits) -> Result<Arc<Script>, String> {
        let mut map = self.scripts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((cached, script)) = map.get(user) {
            if cached == text {
                return script.clone();
            }
        }
        let script = mailscale_sieve::parse_with_limits(text, limits).map(Arc::new).map_err(|e| e.to_string());
        if map.len() >= CACHE_USERS {
            map.clear();
        }
        map.insert(user.clone(), (text.to_owned(), script.clone()));
        script
    }
}

/// The interpreter's limits from `[sieve]`.
pub fn limits(cfg: &SieveConfig) -> Limits {
    Limits {
        max_script_size: cfg.max_script_size,
        max_redirects: cfg.max_redirects,
        max_actions: cfg.max_actions,
        ..Limits::default()
    }
}

/// What one recipient's delivery does.
#[derive(Debug, Default)]
pub struct Plan {
    /// Copies to store: mailbox and flags, one per mailbox. Empty: discarded or redirected.
    pub stores: Vec<(MailboxName, Flags)>,
    /// Addresses to forward the message to.
    pub redirects: Vec<String>,
    /// An auto-reply whose de-duplication record has been claimed.
    pub vacation: Option<VacationReply>,
}

impl Plan {
    fn keep() -> Plan {
        Plan { stores: vec![(MailboxName::inbox(), Flags::default())], ..Plan::default() }
    }

    fn store(&mut self, mailbox: MailboxName, flags: Flags) {
        match self.stores.iter_mut().find(|(m, _)| *m == mailbox) {
            Some((_, f)) => {
                f.apply(mailstore::StoreMode::Add, &flags);
            }
            None => self.stores.push((mailbox, flags)),
        }
    }
}

/// Runs `user`'s active script on `message` (as stored, trace headers included). Blocking
/// (LMDB reads, the vacation record write): call from a blocking context.
pub fn plan(ctx: &Ctx, user: &UserStore, from: &str, rcpt: &str, message: &[u8]) -> Plan {
    let name = user.user();
    let script = match user.active_script() {
        Ok(None) => return Plan::keep(),
        Ok(Some((script_name, text))) => match ctx.sieve.get(name, &text, &limits(&ctx.cfg.sieve)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(user = %name, script = %script_name, error = %e, "sieve: script does not load; kept in INBOX");
                return Plan::keep();
            }
        },
        Err(e) => {
            tracing::error!(user = %name, error = %e, "sieve: cannot read the active script; kept in INBOX");
            return Plan::keep();
        }
    };
    let env = Envelope { from: from.to_owned(), to: rcpt.to_owned(), aliases: Vec::new() };
    let outcome = match script.run(&MessageContext::new(message), &env, &limits(&ctx.cfg.sieve)) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(user = %name, error = %e, "sieve: runtime error; kept in INBOX (RFC 5228 2.10.6)");
            return Plan::keep();
        }
    };
    if let Some(why) = outcome.vacation_skipped {
        tracing::info!(user = %name, reason = ?why, "sieve: vacation not answered");
    }
    let mut plan = Plan::default();
    for action in outcome.actions {
        match action {
            Action::Keep { flags } => plan.store(MailboxName::inbox(), imap_flags(&flags)),
            Action::FileInto { mailbox, flags, .. } => {
                let target = MailboxName::new(&mailbox)
                    .ok()
                    .filter(|m| user.mailbox(m).ok().flatten().is_some_and(|r| !r.noselect));
                match target {
                    Some(m) => plan.store(m, imap_flags(&flags)),
                    None => {
                        tracing::warn!(user = %name, mailbox = %mailbox.escape_debug(),
                            "sieve: fileinto a mailbox that does not exist; kept in INBOX");
                        plan.store(MailboxName::inbox(), imap_flags(&flags));
                    }
                }
            }
            Action::Redirect { address, .. } => {
                if ctx.cfg.sieve.relay.is_none() {
                    tracing::warn!(user = %name, to = %address, "sieve: redirect without [sieve] relay; kept in INBOX");
                    plan.store(MailboxName::inbox(), Flags::default());
                } else if redirect_loop(message, rcpt) {
                    tracing::warn!(user = %name, to = %address, "sieve: redirect loop (already delivered to this address); kept in INBOX");
                    plan.store(MailboxName::inbox(), Flags::default());
                } else {
                    plan.redirects.push(address);
                }
            }
            Action::Discard => {}
            Action::Vacation(reply) => plan.vacation = claim_vacation(ctx, user, reply),
        }
    }
    plan
}

/// A vacation reply is due unless one went to the same sender for the same reason within its
/// `:days`; the record is claimed now and forgotten again if sending fails.
fn claim_vacation(ctx: &Ctx, user: &UserStore, reply: VacationReply) -> Option<VacationReply> {
    if ctx.cfg.sieve.relay.is_none() {
        tracing::warn!(user = %user.user(), to = %reply.to, "sieve: vacation reply not sent: no [sieve] relay");
        return None;
    }
    let now = chrono::Utc::now().timestamp();
    match user.vacation_claim(&reply.dedup_key, now, now + i64::from(reply.days) * 86400) {
        Ok(true) => Some(reply),
        Ok(false) => {
            tracing::info!(user = %user.user(), to = %reply.to, days = reply.days, "sieve: vacation already answered this sender");
            None
        }
        Err(e) => {
            tracing::error!(user = %user.user(), error = %e, "sieve: vacation record unavailable; no reply sent");
            None
        }
    }
}

/// Whether the message was already delivered to `rcpt` (a `Delivered-To` trace header of ours
/// below the one this delivery added): redirecting it again would loop.
fn redirect_loop(message: &[u8], rcpt: &str) -> bool {
    let ours = mailscale_mime::header_values(message, "delivered-to");
    ours.iter().skip(1).any(|v| v.eq_ignore_ascii_case(rcpt))
}

/// imap4flags strings (RFC 5232) as store flags: system flags by name (`\Recent` cannot be
/// set), keywords that are valid IMAP atoms; anything else is dropped.
fn imap_flags(names: &[String]) -> Flags {
    let mut flags = Flags::default();
    for n in names {
        if let Some((bit, _)) = flag::NAMES.iter().find(|(_, name)| name.eq_ignore_ascii_case(n)) {
            flags.system |= bit;
        } else if !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
            && !flags.has_keyword(n)
        {
            flags.keywords.push(n.clone());
        }
    }
    flags
}

/// Sends what the plan sends, in the background: the copies are already durable, and a relay
/// failure is logged without failing the delivery. A redirected message that was stored
/// nowhere else and that the relay refuses is stored into INBOX instead. `outbox` is the
/// durable entry of the redirects (see `outbox.rs`), removed once they are handled.
#[allow(clippy::too_many_arguments)]
pub fn send(
    ctx: Arc<Ctx>,
    user: Username,
    from: String,
    rcpt: String,
    message: Vec<u8>,
    plan: Plan,
    outbox: Option<String>,
) {
    let Some(relay) = ctx.cfg.sieve.relay.clone() else {
        return;
    };
    if plan.redirects.is_empty() && plan.vacation.is_none() {
        return;
    }
    let stored_elsewhere = !plan.stores.is_empty();
    tokio::spawn(async move {
        let cfg = &ctx.cfg.sieve;
        let timeout = Duration::from_secs(cfg.relay_timeout_secs);
        let helo = &ctx.cfg.hostname;
        let sender = match cfg.redirect_sender {
            RedirectSender::Original => from.as_str(),
            RedirectSender::Null => "",
        };
        // The copy keeps a Delivered-To of this mailbox, so a redirect that comes back is seen.
        let mut forwarded = format!("Delivered-To: {rcpt}\r\n").into_bytes();
        forwarded.extend_from_slice(&message);
        let mut lost = false;
        for to in &plan.redirects {
            match crate::smtp::send(&relay, helo, sender, to, &forwarded, timeout).await {
                Ok(()) => tracing::info!(user = %user, to = %to, "sieve: redirected"),
                Err(e) => {
                    tracing::error!(user = %user, to = %to, error = %format!("{e:#}"), "sieve: redirect failed");
                    lost = true;
                }
            }
        }
        if lost && !stored_elsewhere {
            let bytes = crate::lmtp::session::with_trace_headers(&from, &rcpt, &message);
            let kept = tokio::task::spawn_blocking({
                let ctx = ctx.clone();
                let user = user.clone();
                move || ctx.store.user(&user)?.append(&MailboxName::inbox(), &bytes, Flags::default(), None)
            })
            .await;
            match kept {
                Ok(Ok(a)) => {
                    tracing::warn!(user = %user, uid = a.uid, "sieve: redirect failed; kept in INBOX instead");
                    lost = false;
                }
                Ok(Err(e)) => tracing::error!(user = %user, error = %e,
                    "sieve: redirect failed and INBOX refused the copy; it stays in the outbox for the next start"),
                Err(e) => tracing::error!(user = %user, error = %e,
                    "sieve: redirect failed and storing the copy panicked; it stays in the outbox"),
            }
        }
        if let Some(id) = outbox.filter(|_| !lost || stored_elsewhere) {
            crate::outbox::remove(&crate::outbox::dir(&ctx.cfg.data_dir), &id);
        }
        if let Some(reply) = plan.vacation {
            let mut msg = format!(
                "Date: {}\r\nMessage-ID: <{}@{helo}>\r\n",
                chrono::Utc::now().to_rfc2822(),
                hex::encode(rand_bytes())
            )
            .into_bytes();
            msg.extend_from_slice(&reply.message);
            // RFC 5230 section 5.1 / RFC 3834 section 3.3: auto-replies go out with MAIL FROM:<>.
            match crate::smtp::send(&relay, helo, "", &reply.to, &msg, timeout).await {
                Ok(()) => tracing::info!(user = %user, to = %reply.to, "sieve: vacation reply sent"),
                Err(e) => {
                    tracing::error!(user = %user, to = %reply.to, error = %format!("{e:#}"), "sieve: vacation reply failed");
                    let key = reply.dedup_key.clone();
                    let ctx = ctx.clone();
                    let user = user.clone();
                    let _ = tokio::task::spawn_blocking(move || ctx.store.user(&user)?.vacation_forget(&key)).await;
                }
            }
        }
    });
}

/// 16 bytes for a Message-ID, unique enough without a random-number crate: time and a counter.
fn rand_bytes() -> [u8; 16] {
    use sha2::{Digest, Sha256};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let digest = Sha256::new()
        .chain_update(t.to_le_bytes())
        .chain_update(n.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_from_imap4flags() {
        let f = imap_flags(&["\\seen".into(), "\\Recent".into(), "$Work".into(), "bad flag".into(), "$work".into()]);
        assert_eq!(f.system, flag::SEEN);
        assert_eq!(f.keywords, ["$Work"]);
    }

    #[test]
    fn loops_are_seen_below_our_own_trace_header() {
        let once = b"Delivered-To: a@x\r\nSubject: s\r\n\r\nb";
        assert!(!redirect_loop(once, "a@x"));
        let twice = b"Delivered-To: a@x\r\nReceived: y\r\nDelivered-To: A@x\r\n\r\nb";
        assert!(redirect_loop(twice, "a@x"));
    }
}

/// Sends the outbox entries a previous run acknowledged but did not hand to the relay (it was
/// stopped or crashed in between).
pub fn resend_outbox(ctx: &Arc<Ctx>) {
    let dir = crate::outbox::dir(&ctx.cfg.data_dir);
    for (id, e, message) in crate::outbox::pending(&dir) {
        let Ok(user) = Username::new(&e.user) else {
            tracing::error!(id, user = %e.user, "outbox: bad user name; entry left for the operator");
            continue;
        };
        tracing::warn!(id, user = %e.user, redirects = e.redirects.len(), "outbox: sending a redirect left by the previous run");
        let stores = if e.stored_elsewhere { vec![(MailboxName::inbox(), Flags::default())] } else { Vec::new() };
        let plan = Plan { stores, redirects: e.redirects, vacation: None };
        send(ctx.clone(), user, e.from, e.rcpt, message, plan, Some(id));
    }
}
