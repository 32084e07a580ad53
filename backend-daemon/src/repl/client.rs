//! The primary's sync worker (Cyrus's `sync_client`): polls the change log for users that
//! changed, compares each one's state with the replica's, sends only the differences as one
//! `Apply`, and takes the user off the log once the replica answers with the same digest. A
//! replica that is down just leaves users pending: catch-up after an outage is the normal path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mailstore::{Guid, MailboxState, MessageRecord, Store, UserStore, Username};
use tokio_rustls::client::TlsStream;

use super::conn::{read_frame, write_frame};
use super::wire::{self, Op, Request, Response};
use crate::server::Ctx;

/// Users taken from the change log per round.
const USERS_PER_ROUND: usize = 100;

/// Runs the worker until the process stops.
///
/// # Errors
/// TLS set-up failures (bad PEM files), before the loop starts.
pub async fn run(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let r = ctx.cfg.replication.clone().context("no [replication] section")?;
    let partner = r.partner.clone().context("replication.partner is required for a primary")?;
    let connector = super::conn::connector(&r)?;
    let host =
        r.server_name.clone().unwrap_or_else(|| partner.rsplit_once(':').map_or(&*partner, |(h, _)| h).to_string());
    let server_name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .with_context(|| format!("replication.server_name: {host:?} is not a DNS name or IP address"))?;
    let interval = Duration::from_millis(r.interval_ms);
    let max = wire::max_frame(ctx.cfg.limits.max_literal_bytes);
    let mut link: Option<Link> = None;
    let mut backoff = interval;
    loop {
        let changed = match crate::blocking(|| ctx.store.changed_users(USERS_PER_ROUND)) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reading the replication change log failed");
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        if changed.is_empty() {
            tokio::time::sleep(interval).await;
            continue;
        }
        if link.is_none() {
            match connect(&connector, &partner, server_name.clone(), max).await {
                Ok(l) => {
                    tracing::info!(%partner, pending = changed.len(), "connected to the replica");
                    link = Some(l);
                }
                Err(e) => {
                    tracing::warn!(%partner, error = %format!("{e:#}"), retry_ms = backoff.as_millis() as u64, "replica unreachable");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        }
        let mut acked = 0;
        for (user, mark) in changed {
            let l = link.as_mut().expect("connected above");
            let t = Instant::now();
            match sync_user(&ctx.store, l, &user).await {
                Ok(ops) => {
                    // Only now: with TLS 1.3 a replica refuses a client certificate after the
                    // client thinks the handshake is done.
                    backoff = interval;
                    if crate::blocking(|| ctx.store.ack_user(&user, mark)).unwrap_or(false) {
                        acked += 1;
                    }
                    tracing::info!(user = %user.as_str(), ops, ms = t.elapsed().as_millis() as u64, "user synced");
                }
                Err(SyncError::Link(e)) => {
                    tracing::warn!(user = %user.as_str(), error = %format!("{e:#}"), "replication link lost");
                    link = None;
                    break;
                }
                Err(SyncError::User(e)) => {
                    tracing::error!(user = %user.as_str(), error = %format!("{e:#}"), "user sync failed; stays pending");
                }
            }
        }
        if acked == 0 {
            tokio::time::sleep(interval).await;
        }
    }
}

/// A connected, authenticated link to the replica.
pub struct Link {
    io: TlsStream<tokio::net::TcpStream>,
    max: usize,
}

async fn connect(
    connector: &tokio_rustls::TlsConnector,
    partner: &str,
    name: rustls::pki_types::ServerName<'static>,
    max: usize,
) -> anyhow::Result<Link> {
    let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(partner))
        .await
        .context("connect timed out")??;
    let _ = tcp.set_nodelay(true);
    let io = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .context("TLS handshake timed out")?
        .context("TLS handshake")?;
    Ok(Link { io, max })
}

/// A user's sync failed because of the link (reconnect) or because of this user (skip it).
enum SyncError {
    Link(anyhow::Error),
    User(anyhow::Error),
}

impl Link {
    async fn call(&mut self, req: &Request) -> Result<Response, SyncError> {
        let exchange = async {
            write_frame(&mut self.io, req).await?;
            read_frame::<Response>(&mut self.io, self.max).await?.context("replica closed the connection")
        };
        match tokio::time::timeout(Duration::from_secs(300), exchange).await {
            Err(_) => Err(SyncError::Link(anyhow::anyhow!("replica did not answer within 300 s"))),
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

/// One user's sync: the incremental pass (records above the replica's HIGHESTMODSEQ), then, if
/// the digests still differ, the full pass. Returns the number of ops sent.
async fn sync_user(store: &Store, link: &mut Link, user: &Username) -> Result<usize, SyncError> {
    let p = local(crate::blocking(|| store.user(user)))?;
    let mut sent = 0;
    for full in [false, true] {
        let Response::State { mailboxes, subscriptions, digest } =
            link.call(&Request::UserState { user: user.as_str().into() }).await?
        else {
            return Err(SyncError::Link(anyhow::anyhow!("expected State")));
        };
        if local(crate::blocking(|| p.user_state_digest()))? == digest {
            return Ok(sent);
        }
        let (ops, missing) = plan(&p, link, user, &mailboxes, &subscriptions, full).await?;
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
        if let Some(d) = last {
            if local(crate::blocking(|| p.user_state_digest()))? == d {
                return Ok(sent);
            }
        }
    }
    Err(SyncError::User(anyhow::anyhow!("digests still differ after a full pass (the user changed meanwhile?)")))
}

/// The ops that bring the replica from `rs` to this side's state, as the mailstore sync test
/// computes them: mailboxes by unique id, records above the replica's HIGHESTMODSEQ (all when
/// `full`), expunges, counters, deletions, `\Noselect` parents, subscriptions; and the GUIDs
/// the replica lacks, the only ones whose content travels (once each).
async fn plan(
    p: &Arc<UserStore>,
    link: &mut Link,
    user: &Username,
    rs: &[MailboxState],
    rsubs: &[String],
    full: bool,
) -> Result<(Vec<Op>, BTreeSet<Guid>), SyncError> {
    let ps = local(crate::blocking(|| p.mailbox_states()))?;
    let mut ops = Vec::new();
    let mut wanted: BTreeSet<Guid> = BTreeSet::new();
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
        let since = match here {
            Some(h) if h.uidvalidity == s.uidvalidity && !full => h.highestmodseq,
            _ => 0,
        };
        // The replica's whole record list: its UIDs for expunges, its GUIDs for conflicts.
        let theirs: BTreeMap<u32, MessageRecord> = if here.is_some() {
            match link
                .call(&Request::Records {
                    user: user.as_str().into(),
                    mailbox_unique_id: s.unique_id.clone(),
                    since_modseq: 0,
                })
                .await?
            {
                Response::Records(r) => r.into_iter().collect(),
                other => return Err(unexpected(other)),
            }
        } else {
            BTreeMap::new()
        };
        let mine = local(crate::blocking(|| p.records_since(s.id, since)))?;
        for (uid, rec) in mine {
            match theirs.get(&uid) {
                Some(m) if m.guid != rec.guid => {
                    return Err(SyncError::User(anyhow::anyhow!(
                        "UID conflict in mailbox {} UID {uid}: both sides hold different messages (fail-back \
                         renumbering is not on the wire yet)",
                        s.name
                    )));
                }
                Some(m) => {
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
        let keep: BTreeSet<u32> = local(crate::blocking(|| p.messages(s.id)))?.into_iter().map(|(u, _)| u).collect();
        // A UID above this side's last one was never given here: a replica-only message.
        let gone: Vec<u32> = theirs.keys().copied().filter(|u| !keep.contains(u) && *u <= s.last_uid).collect();
        if !gone.is_empty() {
            ops.push(Op::Expunge { mailbox: s.unique_id.clone(), uids: gone });
        }
        ops.push(Op::Counters { mailbox: s.unique_id.clone(), last_uid: s.last_uid, highestmodseq: s.highestmodseq });
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
    let missing = if wanted.is_empty() {
        BTreeSet::new()
    } else {
        let req = Request::HaveGuids { user: user.as_str().into(), guids: wanted.into_iter().collect() };
        match link.call(&req).await? {
            Response::Missing(m) => m.into_iter().collect(),
            other => return Err(unexpected(other)),
        }
    };
    Ok((ops, missing))
}
