//! The selected state: a session's view of one mailbox (sequence numbers ↔ UIDs), its updates
//! from other sessions (EXISTS/EXPUNGE/FETCH, RFC 3501 7.4.1 and 5.2), and the commands that
//! work on messages: STORE, COPY, MOVE (RFC 6851), EXPUNGE, UID EXPUNGE (RFC 4315), CLOSE,
//! UNSELECT (RFC 3691). FETCH and SEARCH live in their own files.

use imap_codec::imap_types::command::{CommandBody, FetchModifier, StoreModifier};
use imap_codec::imap_types::flag::{StoreResponse, StoreType};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use mailstore::{flag, Flags, MailboxName, StoreMode, UserStore};

use imap_codec::imap_types::response::Data;

use super::resp::{self, Kind, Rc};
use super::session::{mailbox_name, to_flags, CmdResult, Done, Refusal};
use crate::net::Conn;

/// A session's view of the selected mailbox.
pub struct View {
    pub id: u32,
    pub name: MailboxName,
    pub read_only: bool,
    /// (UID, MODSEQ last reported to this session), in UID order; index + 1 = sequence number.
    pub msgs: Vec<(u32, u64)>,
    /// Messages with `uid >= recent_from` are `\Recent` for this session.
    pub recent_from: u32,
    pub highestmodseq: u64,
    /// CONDSTORE is on (RFC 7162 3.1): FETCH responses carry MODSEQ.
    pub condstore: bool,
    /// QRESYNC is on (RFC 7162 3.2): VANISHED instead of EXPUNGE, UID in every FETCH.
    pub qresync: bool,
    /// The saved search result (SEARCHRES, RFC 5182) as UIDs; empty until a SEARCH SAVEs.
    pub saved: Vec<u32>,
}

impl View {
    /// SELECT / EXAMINE (RFC 3501 6.3.1/6.3.2): builds the view and queues the untagged data.
    ///
    /// # Errors
    /// A refusal when the mailbox doesn't exist or is `\Noselect`.
    pub fn open(
        user: &UserStore,
        name: MailboxName,
        read_only: bool,
        opts: &super::condstore::SelectOpts,
        conn: &mut Conn,
    ) -> Result<View, Refusal> {
        let m = crate::blocking(|| user.mailbox(&name))?
            .filter(|m| !m.noselect)
            .ok_or_else(|| Refusal::no(format!("Mailbox does not exist: {name}")).with(Rc::Nonexistent))?;
        let recent_from = if read_only { m.recent_uid } else { crate::blocking(|| user.claim_recent(m.id))? };
        let records = crate::blocking(|| user.messages(m.id))?;
        let msgs: Vec<(u32, u64)> = records.iter().map(|(uid, r)| (*uid, r.modseq)).collect();
        let recent = msgs.iter().filter(|(uid, _)| *uid >= recent_from).count() as u32;
        let mut flags: Vec<String> = flag::NAMES.iter().map(|(_, n)| n.to_string()).collect();
        flags.extend(m.keywords.iter().cloned());
        conn.queue(&resp::flags_data(&flags));
        if read_only {
            conn.queue(&resp::status(None, Kind::Ok, Some(&Rc::PermanentFlags(vec![])), "Read-only mailbox"));
        } else {
            flags.push("\\*".to_string());
            conn.queue(&resp::status(None, Kind::Ok, Some(&Rc::PermanentFlags(flags)), "Flags permitted"));
        }
        conn.queue(&resp::data(Data::Exists(msgs.len() as u32)));
        conn.queue(&resp::data(Data::Recent(recent)));
        if let Some(pos) = records.iter().position(|(_, r)| !r.flags.has(flag::SEEN)) {
            conn.queue(&resp::status(None, Kind::Ok, Some(&Rc::Unseen(pos as u32 + 1)), "First unseen"));
        }
        conn.queue(&resp::status(None, Kind::Ok, Some(&Rc::UidValidity(m.uidvalidity)), "UIDs valid"));
        conn.queue(&resp::status(None, Kind::Ok, Some(&Rc::UidNext(m.uidnext)), "Predicted next UID"));
        conn.queue(&resp::status(None, Kind::Ok, Some(&Rc::HighestModSeq(m.highestmodseq)), "Highest"));
        let view = View {
            id: m.id,
            name,
            read_only,
            msgs,
            recent_from,
            highestmodseq: m.highestmodseq,
            condstore: opts.condstore,
            qresync: opts.qresync_enabled,
            saved: Vec::new(),
        };
        if let Some(q) = &opts.qresync {
            super::condstore::resync(user, &view, q, m.uidvalidity, conn)?;
        }
        Ok(view)
    }

    pub fn seq_of(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |(u, _)| *u).ok()
    }

    pub fn is_recent(&self, uid: u32) -> bool {
        uid >= self.recent_from
    }

    /// Brings the view up to date and queues what changed: EXPUNGE (only when `allow_expunge`;
    /// RFC 3501 7.4.1 forbids it during FETCH, STORE and SEARCH), FETCH FLAGS for flag changes,
    /// EXISTS/RECENT for new messages.
    ///
    /// # Errors
    /// Store errors.
    pub fn refresh(&mut self, user: &UserStore, allow_expunge: bool, conn: &mut Conn) -> Result<(), mailstore::Error> {
        let Some(m) = crate::blocking(|| user.mailbox_by_id(self.id))? else {
            if allow_expunge && !self.msgs.is_empty() {
                if self.qresync {
                    let uids: Vec<u32> = self.msgs.iter().map(|(u, _)| *u).collect();
                    conn.queue(&resp::vanished(false, &uids));
                } else {
                    for seq in (1..=self.msgs.len()).rev() {
                        conn.queue(&resp::data(Data::Expunge(resp::nonzero(seq as u32))));
                    }
                }
                self.msgs.clear();
            }
            return Ok(());
        };
        if m.highestmodseq == self.highestmodseq {
            return Ok(());
        }
        let records = crate::blocking(|| user.messages(self.id))?;
        let mut deferred = false;
        let present = |uid: u32| records.binary_search_by_key(&uid, |(u, _)| *u).ok();
        // QRESYNC allows VANISHED during FETCH/STORE/SEARCH too (RFC 7162 3.2.10): UIDs
        // don't shift the client's numbering the way EXPUNGE does mid-command.
        if self.qresync {
            let gone: Vec<u32> = self.msgs.iter().map(|(u, _)| *u).filter(|u| present(*u).is_none()).collect();
            if !gone.is_empty() && allow_expunge {
                self.msgs.retain(|(u, _)| present(*u).is_some());
                conn.queue(&resp::vanished(false, &gone));
            }
        } else if allow_expunge {
            for i in (0..self.msgs.len()).rev() {
                if present(self.msgs[i].0).is_none() {
                    conn.queue(&resp::data(Data::Expunge(resp::nonzero(i as u32 + 1))));
                    self.msgs.remove(i);
                }
            }
        }
        for (i, (uid, seen)) in self.msgs.iter_mut().enumerate() {
            match present(*uid) {
                Some(j) if records[j].1.modseq > *seen => {
                    let r = &records[j].1;
                    *seen = r.modseq;
                    let modseq = self.condstore.then_some(r.modseq);
                    conn.queue(&resp::fetch_flags(i + 1, Some(*uid), &r.flags, *uid >= self.recent_from, modseq));
                }
                Some(_) => {}
                None => deferred = true,
            }
        }
        let last = self.msgs.last().map_or(0, |(u, _)| *u);
        let new: Vec<(u32, u64)> =
            records.iter().filter(|(uid, _)| *uid > last).map(|(uid, r)| (*uid, r.modseq)).collect();
        if !new.is_empty() {
            self.msgs.extend(new);
            if !self.read_only {
                crate::blocking(|| user.claim_recent(self.id))?;
            }
            let recent = self.msgs.iter().filter(|(uid, _)| *uid >= self.recent_from).count() as u32;
            conn.queue(&resp::data(Data::Exists(self.msgs.len() as u32)));
            conn.queue(&resp::data(Data::Recent(recent)));
        }
        if !deferred {
            self.highestmodseq = m.highestmodseq;
        }
        Ok(())
    }

    /// Indices into `msgs` named by a sequence set (message numbers or UIDs), sorted, unique.
    ///
    /// # Errors
    /// BAD for a message number beyond EXISTS (RFC 3501 6.4.8 ignores missing UIDs instead).
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Refusal> {
        let n = self.msgs.len();
        let mut out = Vec::new();
        if uid {
            let max_uid = self.msgs.last().map_or(0, |(u, _)| *u);
            let val = |s: &SeqOrUid| match s {
                SeqOrUid::Value(v) => v.get(),
                SeqOrUid::Asterisk => max_uid,
            };
            for seq in set.0.as_ref() {
                let (lo, hi) = match seq {
                    Sequence::Single(s) => (val(s), val(s)),
                    Sequence::Range(a, b) => (val(a).min(val(b)), val(a).max(val(b))),
                };
                let start = self.msgs.partition_point(|(u, _)| *u < lo);
                let end = self.msgs.partition_point(|(u, _)| *u <= hi);
                out.extend(start..end);
            }
        } else {
            let val = |s: &SeqOrUid| -> Result<usize, Refusal> {
                match s {
                    SeqOrUid::Value(v) if (v.get() as usize) <= n => Ok(v.get() as usize),
                    SeqOrUid::Value(v) => {
                        Err(Refusal::bad(format!("Invalid message sequence number {v} (mailbox has {n} messages)")))
                    }
                    SeqOrUid::Asterisk if n > 0 => Ok(n),
                    SeqOrUid::Asterisk => Err(Refusal::bad("No messages: * does not name any message")),
                }
            };
            for seq in set.0.as_ref() {
                let (lo, hi) = match seq {
                    Sequence::Single(s) => (val(s)?, val(s)?),
                    Sequence::Range(a, b) => {
                        let (a, b) = (val(a)?, val(b)?);
                        (a.min(b), a.max(b))
                    }
                };
                out.extend(lo - 1..hi);
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub fn uids(&self, idx: &[usize]) -> Vec<u32> {
        idx.iter().map(|&i| self.msgs[i].0).collect()
    }

    fn writable(&self) -> Result<(), Refusal> {
        if self.read_only {
            Err(Refusal::no("Mailbox is open read-only (EXAMINE)").with(Rc::ReadOnly))
        } else {
            Ok(())
        }
    }
}

fn destination(m: &imap_codec::imap_types::mailbox::Mailbox<'_>) -> Result<MailboxName, Refusal> {
    mailbox_name(m)
}

fn trycreate(e: mailstore::Error) -> Refusal {
    match e {
        mailstore::Error::NoSuchMailbox(m) => Refusal::no(format!("Mailbox does not exist: {m}")).with(Rc::TryCreate),
        e => e.into(),
    }
}

/// What the connection shell parsed besides the codec's command (see `ext.rs`).
pub struct Extra<'a> {
    pub tag: &'a str,
    pub search_return: Option<super::ext::SearchReturn>,
}

/// Runs a selected-state command and refreshes the view as RFC 3501 allows.
pub async fn command(
    user: &UserStore,
    view: &mut View,
    body: CommandBody<'static>,
    ext: Extra<'_>,
    conn: &mut Conn,
) -> CmdResult {
    match body {
        CommandBody::Close => {
            if !view.read_only {
                crate::blocking(|| user.expunge(view.id, None))?;
            }
            Ok("CLOSE completed".into())
        }
        CommandBody::Unselect => Ok("UNSELECT completed".into()),
        CommandBody::Expunge => {
            view.writable()?;
            crate::blocking(|| user.expunge(view.id, None))?;
            Ok("EXPUNGE completed".into())
        }
        CommandBody::ExpungeUid { sequence_set } => {
            view.writable()?;
            let uids = view.uids(&view.resolve(&sequence_set, true)?);
            crate::blocking(|| user.expunge(view.id, Some(&uids)))?;
            Ok("UID EXPUNGE completed".into())
        }
        CommandBody::Fetch { sequence_set, macro_or_item_names, uid, modifiers } => {
            let mut m = super::fetch::Modifiers::default();
            for x in &modifiers {
                match x {
                    FetchModifier::ChangedSince(n) => m.changed_since = Some(n.get()),
                    FetchModifier::Vanished => m.vanished = true,
                }
            }
            let r = super::fetch::fetch(user, view, &sequence_set, macro_or_item_names, uid, m, conn).await;
            r.map(|_| format!("{}FETCH completed", if uid { "UID " } else { "" }).into())
        }
        CommandBody::Search { charset, criteria, uid } => {
            let r = super::search::search(
                user,
                view,
                charset.as_ref(),
                criteria.as_ref(),
                uid,
                ext.search_return.as_ref(),
                ext.tag,
                conn,
            );
            r.map(|_| format!("{}SEARCH completed", if uid { "UID " } else { "" }).into())
        }
        CommandBody::Sort { sort_criteria, charset, search_criteria, uid } => {
            super::sort::sort(user, view, sort_criteria.as_ref(), &charset, search_criteria.as_ref(), uid, conn)?;
            Ok(format!("{}SORT completed", if uid { "UID " } else { "" }).into())
        }
        CommandBody::Thread { algorithm, charset, search_criteria, uid } => {
            super::sort::thread(user, view, &algorithm, &charset, search_criteria.as_ref(), uid, conn)?;
            Ok(format!("{}THREAD completed", if uid { "UID " } else { "" }).into())
        }
        CommandBody::Store { sequence_set, kind, response, flags, uid, modifiers } => {
            let unchanged_since = modifiers.iter().map(|StoreModifier::UnchangedSince(n)| *n).next();
            let modified = store(user, view, &sequence_set, kind, response, &flags, uid, unchanged_since, conn)?;
            let name = format!("{}STORE completed", if uid { "UID " } else { "" });
            if modified.is_empty() {
                Ok(name.into())
            } else {
                Ok(Done::with(Rc::Modified(modified), format!("Conditional {name}")))
            }
        }
        CommandBody::Copy { sequence_set, mailbox, uid } => {
            let idx = view.resolve(&sequence_set, uid)?;
            let dst = destination(&mailbox)?;
            let c = crate::blocking(|| user.copy(view.id, &view.uids(&idx), &dst)).map_err(trycreate)?;
            if c.src.is_empty() {
                Ok("COPY completed (no messages)".into())
            } else {
                Ok(Done::with(Rc::CopyUid(c.uidvalidity, c.src, c.dst), "COPY completed"))
            }
        }
        CommandBody::Move { sequence_set, mailbox, uid } => {
            view.writable()?;
            let idx = view.resolve(&sequence_set, uid)?;
            let dst = destination(&mailbox)?;
            let c = crate::blocking(|| user.move_messages(view.id, &view.uids(&idx), &dst)).map_err(trycreate)?;
            if !c.src.is_empty() {
                conn.queue(&resp::status(None, Kind::Ok, Some(&Rc::CopyUid(c.uidvalidity, c.src, c.dst)), "Moved"));
            }
            Ok("MOVE completed".into())
        }
        other => Err(Refusal::bad(format!("{} is not valid in the selected state", other.name()))),
    }
}

#[allow(clippy::too_many_arguments)]
fn store(
    user: &UserStore,
    view: &mut View,
    set: &SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: &[imap_codec::imap_types::flag::Flag<'_>],
    uid: bool,
    unchanged_since: Option<u64>,
    conn: &mut Conn,
) -> Result<Vec<u32>, Refusal> {
    view.writable()?;
    if unchanged_since.is_some() {
        view.condstore = true;
    }
    let idx = view.resolve(set, uid)?;
    let f: Flags = to_flags(flags)?;
    let mode = match kind {
        StoreType::Replace => StoreMode::Replace,
        StoreType::Add => StoreMode::Add,
        StoreType::Remove => StoreMode::Remove,
    };
    let uids = view.uids(&idx);
    let stored = crate::blocking(|| user.store_flags(view.id, &uids, mode, &f, unchanged_since))?;
    let with_uid = uid || view.qresync;
    for (u, rec) in &stored.changed {
        if let Some(i) = view.seq_of(*u) {
            view.msgs[i].1 = rec.modseq;
            let modseq = view.condstore.then_some(rec.modseq);
            if response == StoreResponse::Answer {
                conn.queue(&resp::fetch_flags(i + 1, with_uid.then_some(*u), &rec.flags, view.is_recent(*u), modseq));
            } else if let Some(m) = modseq {
                // RFC 7162 3.1.3: MODSEQ of changed messages even with .SILENT.
                let uid_item = if with_uid { format!("UID {u} ") } else { String::new() };
                conn.queue(format!("* {} FETCH ({uid_item}MODSEQ ({m}))\r\n", i + 1).as_bytes());
            }
        }
    }
    let modified: Vec<u32> = if uid {
        stored.modified.clone()
    } else {
        stored.modified.iter().filter_map(|u| view.seq_of(*u).map(|i| i as u32 + 1)).collect()
    };
    if response == StoreResponse::Answer {
        // Unchanged messages still get their current flags (RFC 3501 6.4.6); those that failed
        // UNCHANGEDSINCE are reported in [MODIFIED] only.
        let changed: std::collections::HashSet<u32> =
            stored.changed.iter().map(|(u, _)| *u).chain(stored.modified.iter().copied()).collect();
        let rest: Vec<u32> = uids.iter().copied().filter(|u| !changed.contains(u)).collect();
        if !rest.is_empty() {
            let recs = crate::blocking(|| user.fetch(view.id, &rest, false))?;
            for (u, (rec, _)) in rest.iter().zip(recs) {
                if let (Some(rec), Some(i)) = (rec, view.seq_of(*u)) {
                    let modseq = view.condstore.then_some(rec.modseq);
                    conn.queue(&resp::fetch_flags(
                        i + 1,
                        with_uid.then_some(*u),
                        &rec.flags,
                        view.is_recent(*u),
                        modseq,
                    ));
                }
            }
        }
    }
    Ok(modified)
}
