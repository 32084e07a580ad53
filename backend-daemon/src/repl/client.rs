//! The primary's sync worker (Cyrus's `sync_client`): polls the change log for users that
//! changed, compares each one's state with the replica's, sends only the differences as one
//! `Apply`, and takes the user off the log once the replica answers with the same digest. A
//! replica that is down just leaves users pending: catch-up after an outage is the normal path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mailstore::{Guid, MailboxName, MailboxState, MessageRecord, Store, UserStore, Username};
use tokio_rustls::client::TlsStream;

use super::conn::{read_frame, write_frame};
use super::state::{ReplState, SyncRequest};
use super::wire::{self, Op, Request, Response};
use crate::server::Ctx;

/// Users taken from the change log per round.
const USERS_PER_ROUND: usize = 100;

/// Runs the worker until the process stops. It is idle while this backend is a replica and
/// starts pushing as soon as it is promoted.
///
/// # Errors
/// TLS set-up failures (bad PEM files), before the loop starts.
pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let r = ctx.cfg.replication.clone().context("no [replication] section")?;
    let partner = r.partner.clone().context("replication.partner is not set")?;
    let connector = super::conn::connector(&r)?;
    let host =
        r.server_name.clone().unwrap_or_else(|| partner.rsplit_once(':').map_or(&*partner, |(h, _)| h).to_string());
    let server_name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .with_context(|| format!("replication.server_name: {host:?} is not a DNS name or IP address"))?;
    let interval = Duration::from_millis(r.interval_ms);
    let max = wire::max_frame(ctx.cfg.limits.max_literal_bytes);
    let mut requests = ctx.repl.take_requests().context("the sync worker runs once")?;
    let repl = &ctx.repl;
    let mut link: Option<Link> = None;
    let mut backoff = interval;
    let mut retry: Vec<SyncRequest> = Vec::new();
    loop {
        if repl.is_replica() {
            link = None;
            while let Some(req) = retry.pop().or_else(|| requests.try_recv().ok()) {
                let _ = req.reply.send(Err("this backend is a replica; run the sync on the primary".into()));
            }
            tokio::select! {
                () = repl.kick.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
            continue;
        }
        if link.is_none() {
            match connect(&connector, &partner, server_name.clone(), max, r.link_timeout_secs, &ctx).await {
                Ok(l) => {
                    tracing::info!(%partner, epoch = repl.role().epoch, "connected to the replica");
                    repl.set_link(true, None);
                    backoff = interval;
                    link = Some(l);
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    tracing::warn!(%partner, error = %text, retry_ms = backoff.as_millis() as u64, "replica unreachable");
                    repl.set_link(false, Some(text.clone()));
                    while let Some(req) = retry.pop().or_else(|| requests.try_recv().ok()) {
                        let _ = req.reply.send(Err(format!("replica unreachable: {text}")));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            }
        }
        let l = link.as_mut().expect("connected above");
        if repl.survey.swap(false, std::sync::atomic::Ordering::AcqRel) {
            match l.call(&Request::Users).await {
                Ok(Response::Users(names)) => {
                    let names: Vec<Username> = names.iter().filter_map(|n| Username::new(n).ok()).collect();
                    for u in &names {
                        let _ = crate::blocking(|| ctx.store.mark_user(u));
                    }
                    tracing::info!(users = names.len(), "partner's users marked for a compare");
                }
                Ok(other) => tracing::warn!(response = ?std::mem::discriminant(&other), "unexpected answer to Users"),
                Err(SyncError::Link(e) | SyncError::User(e)) => {
                    repl.survey.store(true, std::sync::atomic::Ordering::Release);
                    drop_link(repl, &mut link, e);
                    continue;
                }
            }
        }
        while let Some(req) = retry.pop().or_else(|| requests.try_recv().ok()) {
            if let Some(again) = serve_request(&ctx, &mut link, req).await {
                // The link had died unnoticed (idle): once more on a fresh one.
                retry.push(again);
                break;
            }
        }
        let Some(l) = link.as_mut() else { continue };
        let changed = match crate::blocking(|| ctx.store.changed_users(USERS_PER_ROUND)) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reading the replication change log failed");
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        if changed.is_empty() {
            repl.caught_up();
            let idle = tokio::select! {
                () = repl.kick.notified() => None,
                () = tokio::time::sleep(interval) => None,
                req = requests.recv() => req,
            };
            if let Some(req) = idle {
                retry.extend(serve_request(&ctx, &mut link, req).await);
            } else if l.last_io.elapsed() >= PING_AFTER {
                if let Err(SyncError::Link(e) | SyncError::User(e)) = l.ping().await {
                    drop_link(repl, &mut link, e);
                }
            }
            continue;
        }
        let mut acked = 0;
        for (user, mark) in changed {
            let Some(l) = link.as_mut() else { break };
            let t = Instant::now();
            let synced_at = now_ms();
            let since = crate::blocking(|| ctx.store.pending_since_ms(&user)).ok().flatten();
            match sync_user(&ctx.store, l, &user, false).await {
                Ok(ops) => {
                    if crate::blocking(|| ctx.store.ack_user(&user, mark, synced_at)).unwrap_or(false) {
                        acked += 1;
                    }
                    repl.synced(&user, mark, since.map(|s| now_ms().saturating_sub(s)));
                    tracing::info!(user = %user.as_str(), ops, ms = t.elapsed().as_millis() as u64, "user synced");
                }
                Err(SyncError::Link(e)) => {
                    drop_link(repl, &mut link, e);
                    break;
                }
                Err(SyncError::User(e)) => {
                    tracing::error!(user = %user.as_str(), error = %format!("{e:#}"), "user sync failed; stays pending");
                }
            }
        }
        if acked == 0 {
            tokio::select! {
                () = repl.kick.notified() => {}
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// An idle link is checked this often.
const PING_AFTER: Duration = Duration::from_secs(3);

fn now_ms() -> u64 {
    mailstore::repl::log::now_ms()
}

fn drop_link(repl: &ReplState, link: &mut Option<Link>, e: anyhow::Error) {
    let text = format!("{e:#}");
    tracing::warn!(error = %text, "replication link lost");
    repl.set_link(false, Some(text));
    *link = None;
}

/// `mailctl repl sync`: one user now. A request whose first attempt met a dead link comes back
/// (to be tried once more on a fresh link); the second failure is the operator's answer.
async fn serve_request(ctx: &Ctx, link: &mut Option<Link>, mut req: SyncRequest) -> Option<SyncRequest> {
    let Some(l) = link.as_mut() else {
        let _ = req.reply.send(Err("replica unreachable".into()));
        return None;
    };
    let mark = crate::blocking(|| ctx.store.mark_of(&req.user)).ok().flatten();
    let synced_at = now_ms();
    match sync_user(&ctx.store, l, &req.user, req.full).await {
        Ok(ops) => {
            if let Some(m) = mark {
                let _ = crate::blocking(|| ctx.store.ack_user(&req.user, m, synced_at));
                ctx.repl.synced(&req.user, m, None);
            }
            tracing::info!(user = %req.user.as_str(), full = req.full, ops, "sync requested by an operator done");
            let _ = req.reply.send(Ok(ops));
            None
        }
        Err(SyncError::User(e)) => {
            let _ = req.reply.send(Err(format!("{e:#}")));
            None
        }
        Err(SyncError::Link(e)) => {
            drop_link(&ctx.repl, link, anyhow::anyhow!("{e:#}"));
            req.attempts += 1;
            if req.attempts < 2 {
                return Some(req);
            }
            let _ = req.reply.send(Err(format!("replication link lost: {e:#}")));
            None
        }
    }
}

/// A connected, authenticated link to the replica.
pub struct Link {
    io: TlsStream<tokio::net::TcpStream>,
    max: usize,
    last_io: Instant,
    timeout: Duration,
}

/// Connects, and says Hello: a partner that is the primary at a higher epoch demotes this
/// side (nothing was sent); one at the same or a lower epoch is refused (split brain, reported).
async fn connect(
    connector: &tokio_rustls::TlsConnector,
    partner: &str,
    name: rustls::pki_types::ServerName<'static>,
    max: usize,
    timeout_secs: u64,
    ctx: &Ctx,
) -> anyhow::Result<Link> {
    let mut l = open(connector, partner, name, max, timeout_secs).await?;
    let me = ctx.repl.role();
    match l.call(&Request::Hello { epoch: me.epoch, name: ctx.cfg.name.clone() }).await {
        Ok(Response::Hello { .. }) => Ok(l),
        Ok(Response::Fenced { epoch }) if epoch > me.epoch => {
            ctx.repl.demote(epoch)?;
            anyhow::bail!(
                "the partner is the primary at epoch {epoch} (ours {}): this backend is now its replica",
                me.epoch
            )
        }
        Ok(Response::Fenced { epoch }) => anyhow::bail!(
            "the partner is also a primary (its epoch {epoch}, ours {}): split brain, not replicating; \
             run mailctl failover to choose one",
            me.epoch
        ),
        Ok(other) => anyhow::bail!("unexpected answer to Hello: {:?}", std::mem::discriminant(&other)),
        Err(SyncError::Link(e) | SyncError::User(e)) => Err(e),
    }
}

async fn open(
    connector: &tokio_rustls::TlsConnector,
    partner: &str,
    name: rustls::pki_types::ServerName<'static>,
    max: usize,
    timeout_secs: u64,
) -> anyhow::Result<Link> {
    let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(partner))
        .await
        .context("connect timed out")??;
    let _ = tcp.set_nodelay(true);
    let io = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .context("TLS handshake timed out")?
        .context("TLS handshake")?;
    Ok(Link { io, max, last_io: Instant::now(), timeout: Duration::from_secs(timeout_secs) })
}

/// A user's sync failed because of the link (reconnect) or because of this user (skip it).
enum SyncError {
    Link(anyhow::Error),
    User(anyhow::Error),
}

impl Link {
    async fn call(&mut self, req: &Request) -> Result<Response, SyncError> {
        // The link timeout, plus time for the content at 1 MiB/s: a stalled path is a dead link.
        let content: usize = match req {
            Request::Apply { ops, .. } => ops.iter().map(Op::content_len).sum(),
            _ => 0,
        };
        self.exchange(req, self.timeout + Duration::from_secs((content >> 20) as u64)).await
    }

    /// Checks an idle link (at most 5 s).
    async fn ping(&mut self) -> Result<(), SyncError> {
        match self.exchange(&Request::Ping, self.timeout.min(Duration::from_secs(5))).await? {
            Response::Pong => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn exchange(&mut self, req: &Request, limit: Duration) -> Result<Response, SyncError> {
        let exchange = async {
            write_frame(&mut self.io, req).await?;
            read_frame::<Response>(&mut self.io, self.max).await?.context("replica closed the connection")
        };
        let r = tokio::time::timeout(limit, exchange).await;
        self.last_io = Instant::now();
        match r {
            Err(_) => Err(SyncError::Link(anyhow::anyhow!("replica did not answer within {} s", limit.as_secs()))),
            Ok(Err(e)) => Err(SyncError::Link(e)),
            Ok(Ok(Response::Error { text })) => Err(SyncError::User(anyhow::anyhow!("replica: {text}"))),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

fn unexpected(r: Response) -> SyncError {
    SyncError::Link(anyhow::anyhow!("unexpected replication response {:?}", std::mem::discriminant(&r)))
}

fn local<T>(r: Result<T, mailstore::Error>) -> Result<T, SyncError> {
    r.map_err(|e| SyncError::User(e.into()))
}

/// One user's sync. Each round reads the replica's state; mailboxes that differ (all of them
/// with `full`) are compared record by record. Messages only the replica holds — written there
/// during a split — are first rescued into this side under new UIDs (both sides of a UID
/// conflict are renumbered), then the differences are sent. Done when both digests match.
/// Returns the number of ops sent.
async fn sync_user(store: &Store, link: &mut Link, user: &Username, full: bool) -> Result<usize, SyncError> {
    let p = local(crate::blocking(|| store.user(user)))?;
    let mut sent = 0;
    for _round in 0..4 {
        let Response::State { mailboxes, subscriptions, settings, digest } =
            link.call(&Request::UserState { user: user.as_str().into() }).await?
        else {
            return Err(SyncError::Link(anyhow::anyhow!("expected State")));
        };
        if local(crate::blocking(|| p.user_state_digest()))? == digest && !(full && sent == 0) {
            return Ok(sent);
        }
        let ps = local(crate::blocking(|| p.mailbox_states()))?;
        let mut theirs: BTreeMap<String, Vec<(u32, MessageRecord)>> = BTreeMap::new();
        for h in &mailboxes {
            let same = ps.iter().any(|s| s.unique_id == h.unique_id && s.same_as(h));
            if same && !full {
                continue;
            }
            let req = Request::Records {
                user: user.as_str().into(),
                mailbox_unique_id: h.unique_id.clone(),
                since_modseq: 0,
            };
            match link.call(&req).await? {
                Response::Records(r) => theirs.insert(h.unique_id.clone(), r),
                other => return Err(unexpected(other)),
            };
        }
        if rescue(&p, link, user, &mailboxes, &theirs).await? > 0 {
            continue;
        }
        let (mut ops, missing) = plan(&p, link, user, &mailboxes, &subscriptions, &theirs, full).await?;
        // Scripts and the quota limit: the primary's as a whole (after a split, the new primary's
        // win; a script uploaded only on the old primary is not merged).
        let mine = local(crate::blocking(|| p.settings()))?;
        if mine != settings {
            ops.push(Op::Settings(mine));
        }
        sent += ops.len();
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut last = None;
        let n = ops.len();
        // Content is read batch by batch, so a catch-up holds at most one batch in memory.
        let mut sending = BTreeSet::new();
        for (i, mut op) in ops.into_iter().enumerate() {
            if let Op::Message { record, raw, .. } = &mut op {
                if missing.contains(&record.guid) && sending.insert(record.guid) {
                    *raw = Some(local(crate::blocking(|| p.read_message(&record.guid)))?);
                }
            }
            bytes += op.content_len();
            batch.push(op);
            if bytes >= wire::BATCH_BYTES || i + 1 == n {
                let req = Request::Apply { user: user.as_str().into(), ops: std::mem::take(&mut batch) };
                match link.call(&req).await? {
                    Response::Applied { digest } => last = Some(digest),
                    other => return Err(unexpected(other)),
                }
                bytes = 0;
            }
        }
        let theirs_now = match last {
            Some(d) => d,
            None => digest,
        };
        if local(crate::blocking(|| p.user_state_digest()))? == theirs_now {
            return Ok(sent);
        }
    }
    Err(SyncError::User(anyhow::anyhow!("digests still differ after four rounds (the user changed meanwhile?)")))
}

/// DESIGN.md principle 6, never lose a message: every message the replica holds that this
/// side never knew in that mailbox (not live, not expunged within the retention) is taken in
/// here with a new UID; where the replica's UID holds another message here, this side's is
/// renumbered too, so the UID names neither any more; counters that ran ahead on the replica
/// are raised here. Returns how many local changes were made (then the caller compares again).
async fn rescue(
    p: &Arc<UserStore>,
    link: &mut Link,
    user: &Username,
    rs: &[MailboxState],
    theirs: &BTreeMap<String, Vec<(u32, MessageRecord)>>,
) -> Result<usize, SyncError> {
    let mut changes = 0;
    for h in rs {
        let Some(records) = theirs.get(&h.unique_id) else { continue };
        let mine = local(crate::blocking(|| p.mailbox_by_unique_id(&h.unique_id)))?;
        let name = match &mine {
            Some(m) => MailboxName::new(&m.name),
            None => MailboxName::new(&h.name),
        };
        let name = local(name)?;
        let mut here: BTreeMap<u32, Guid> = BTreeMap::new();
        if let Some(m) = &mine {
            here.extend(local(crate::blocking(|| p.messages(m.id)))?.into_iter().map(|(u, r)| (u, r.guid)));
        }
        // What this side knows in the mailbox, read only when a record does not match by UID
        // and GUID (never in a normal sync of new messages and flags).
        let mut known: Option<std::collections::HashSet<Guid>> = None;
        let mut above = h.last_uid.max(mine.as_ref().map_or(0, |m| m.uidnext.saturating_sub(1)));
        for (uid, rec) in records {
            let conflict = here.get(uid).is_some_and(|g| *g != rec.guid);
            if here.get(uid) == Some(&rec.guid) {
                continue;
            }
            if known.is_none() {
                let mut k = local(crate::blocking(|| p.known_guids(&h.unique_id)))?;
                if mine.is_none() {
                    // Rescued into the mailbox of the same name: what is there counts as known.
                    if let Some(m) = local(crate::blocking(|| p.mailbox(&name)))? {
                        k.extend(local(crate::blocking(|| p.messages(m.id)))?.into_iter().map(|(_, r)| r.guid));
                    }
                }
                known = Some(k);
            }
            let known = known.as_mut().expect("filled above");
            if !known.contains(&rec.guid) {
                let raw = if p.has_guid(&rec.guid) {
                    None
                } else {
                    match link.call(&Request::Fetch { user: user.as_str().into(), guid: rec.guid }).await? {
                        Response::Content(c) => Some(c),
                        other => return Err(unexpected(other)),
                    }
                };
                let new_uid =
                    local(crate::blocking(|| p.rescue_message(&h.unique_id, &name, above, rec, raw.as_deref())))?;
                tracing::warn!(user = %user.as_str(), mailbox = %name, replica_uid = uid, new_uid,
                    "rescued a message only the partner held (written there during a split)");
                above = above.max(new_uid);
                known.insert(rec.guid);
                changes += 1;
            }
            if conflict {
                let new_uid = local(crate::blocking(|| p.renumber_conflict(&h.unique_id, *uid, above)))?;
                tracing::warn!(user = %user.as_str(), mailbox = %name, uid, new_uid,
                    "UID conflict after a split: this side's message renumbered");
                above = above.max(new_uid);
                changes += 1;
            }
        }
        if let Some(m) = &mine {
            if h.last_uid >= m.uidnext || h.highestmodseq > m.highestmodseq {
                local(crate::blocking(|| p.raise_counters(&h.unique_id, h.last_uid, h.highestmodseq)))?;
                changes += 1;
            }
        }
    }
    Ok(changes)
}

/// The ops that bring the replica from `rs` to this side's state, computed against the
/// replica's records (`theirs`) of every mailbox that differs: mailboxes by unique id, its
/// expunges (first, so freed UIDs never collide), new messages and changed flags, counters,
/// deletions, `\Noselect` parents, subscriptions; and the GUIDs the replica lacks, the only ones
/// whose content travels (once each). With `full`, every GUID's file is checked on the replica.
async fn plan(
    p: &Arc<UserStore>,
    link: &mut Link,
    user: &Username,
    rs: &[MailboxState],
    rsubs: &[String],
    theirs: &BTreeMap<String, Vec<(u32, MessageRecord)>>,
    full: bool,
) -> Result<(Vec<Op>, BTreeSet<Guid>), SyncError> {
    let ps = local(crate::blocking(|| p.mailbox_states()))?;
    let mut ops = Vec::new();
    let mut wanted: BTreeSet<Guid> = BTreeSet::new();
    let mut resend: Vec<Op> = Vec::new();
    for s in &ps {
        let here = rs.iter().find(|x| x.unique_id == s.unique_id);
        if here.is_some_and(|h| h.same_as(s)) && !full {
            continue;
        }
        if here.is_none_or(|h| h.name != s.name || h.uidvalidity != s.uidvalidity || h.special_use != s.special_use) {
            ops.push(Op::Mailbox {
                unique_id: s.unique_id.clone(),
                name: s.name.clone(),
                uidvalidity: s.uidvalidity,
                special_use: s.special_use.clone(),
            });
        }
        let their: BTreeMap<u32, &MessageRecord> =
            theirs.get(&s.unique_id).map(|v| v.iter().map(|(u, r)| (*u, r)).collect()).unwrap_or_default();
        let mine = local(crate::blocking(|| p.messages(s.id)))?;
        let keep: BTreeSet<u32> = mine.iter().map(|(u, _)| *u).collect();
        // Rescue ran first: whatever the replica holds and this side does not is known here
        // (expunged, moved, deleted) and goes.
        let gone: Vec<u32> = their.keys().copied().filter(|u| !keep.contains(u)).collect();
        if !gone.is_empty() {
            ops.push(Op::Expunge { mailbox: s.unique_id.clone(), uids: gone });
        }
        for (uid, rec) in mine {
            match their.get(&uid) {
                Some(m) if m.guid != rec.guid => {
                    return Err(SyncError::User(anyhow::anyhow!(
                        "UID conflict in mailbox {} UID {uid} left after the rescue",
                        s.name
                    )));
                }
                Some(m) => {
                    if full {
                        wanted.insert(rec.guid);
                        resend.push(Op::Message { mailbox: s.unique_id.clone(), uid, record: rec.clone(), raw: None });
                    }
                    if m.modseq != rec.modseq || m.flags != rec.flags {
                        ops.push(Op::Flags { mailbox: s.unique_id.clone(), uid, flags: rec.flags, modseq: rec.modseq });
                    }
                }
                None => {
                    wanted.insert(rec.guid);
                    ops.push(Op::Message { mailbox: s.unique_id.clone(), uid, record: rec, raw: None });
                }
            }
        }
        if here.is_none_or(|h| h.last_uid != s.last_uid || h.highestmodseq != s.highestmodseq) {
            ops.push(Op::Counters {
                mailbox: s.unique_id.clone(),
                last_uid: s.last_uid,
                highestmodseq: s.highestmodseq,
            });
        }
    }
    for h in rs {
        if !ps.iter().any(|s| s.unique_id == h.unique_id) {
            ops.push(Op::DeleteMailbox { unique_id: h.unique_id.clone() });
        }
    }
    for s in ps.iter().filter(|s| s.noselect) {
        if rs.iter().find(|h| h.unique_id == s.unique_id).is_none_or(|h| !h.noselect) {
            ops.push(Op::DeleteMailbox { unique_id: s.unique_id.clone() });
        }
    }
    let subs = local(crate::blocking(|| p.subscriptions()))?;
    if subs != rsubs {
        ops.push(Op::Subscriptions(subs));
    }
    let missing: BTreeSet<Guid> = if wanted.is_empty() {
        BTreeSet::new()
    } else {
        let req = Request::HaveGuids { user: user.as_str().into(), guids: wanted.into_iter().collect() };
        match link.call(&req).await? {
            Response::Missing(m) => m.into_iter().collect(),
            other => return Err(unexpected(other)),
        }
    };
    // A full compare repairs message files lost on the replica: the record again, with content.
    for op in resend {
        if let Op::Message { record, .. } = &op {
            if missing.contains(&record.guid) {
                tracing::warn!(user = %user.as_str(), guid = %record.guid.to_hex(), "replica lacked a message file; sent again");
                ops.push(op);
            }
        }
    }
    Ok((ops, missing))
}
