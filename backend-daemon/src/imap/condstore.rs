//! CONDSTORE and QRESYNC (RFC 7162): which UIDs vanished since a client's MODSEQ, and the
//! resynchronization that `SELECT mailbox (QRESYNC (uidvalidity modseq [known-uids]))` sends.

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use mailstore::{UserStore, Vanished};

use super::resp;
use super::selected::View;
use super::session::Refusal;
use crate::net::Conn;

/// What SELECT / EXAMINE asked for, and what the session has ENABLEd.
#[derive(Debug, Clone, Default)]
pub struct SelectOpts {
    pub condstore: bool,
    pub qresync_enabled: bool,
    pub qresync: Option<Qresync>,
}

/// The QRESYNC select parameter (RFC 7162 3.2.5).
#[derive(Debug, Clone)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
}

impl SelectOpts {
    /// # Errors
    /// BAD for QRESYNC without `ENABLE QRESYNC` (RFC 7162 3.2.5).
    pub fn new(params: &[SelectParameter], condstore: bool, qresync_enabled: bool) -> Result<Self, Refusal> {
        let mut o = SelectOpts { condstore, qresync_enabled, qresync: None };
        for p in params {
            match p {
                SelectParameter::CondStore => o.condstore = true,
                SelectParameter::QResync { uid_validity, mod_sequence_value, known_uids, .. } => {
                    if !qresync_enabled {
                        return Err(Refusal::bad("QRESYNC parameter needs ENABLE QRESYNC first"));
                    }
                    o.qresync = Some(Qresync {
                        uidvalidity: uid_validity.get(),
                        modseq: mod_sequence_value.get(),
                        known_uids: known_uids.clone(),
                    });
                }
            }
        }
        if o.qresync_enabled {
            o.condstore = true;
        }
        Ok(o)
    }
}

/// Whether `uid` is in a UID set (`*` = `max`).
fn in_uid_set(set: &SequenceSet, uid: u32, max: u32) -> bool {
    let v = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => max,
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(a) => v(a) == uid,
        Sequence::Range(a, b) => (v(a).min(v(b))..=v(a).max(v(b))).contains(&uid),
    })
}

/// UIDs expunged from the view's mailbox after `since`, limited to `within` (a UID set) when
/// given. When the index cannot tell (expunges older than its records), every UID below
/// UIDNEXT not in the mailbox is named, which RFC 7162 3.2.5.1 allows.
///
/// # Errors
/// NO on store failure.
pub fn vanished(user: &UserStore, view: &View, since: u64, within: Option<&SequenceSet>) -> Result<Vec<u32>, Refusal> {
    let uidnext = crate::blocking(|| user.mailbox_by_id(view.id))?.map_or(1, |m| m.uidnext);
    let max = uidnext.saturating_sub(1);
    let mut uids = match crate::blocking(|| user.vanished_since(view.id, since))? {
        Vanished::Exact(v) => v,
        Vanished::Unknown => {
            let present = crate::blocking(|| user.messages(view.id))?;
            let mut out = Vec::new();
            let mut p = present.iter().map(|(u, _)| *u).peekable();
            let candidates: Box<dyn Iterator<Item = u32>> = match within {
                // Walk only the client's set (it may be sparse over a large UID range).
                Some(set) => Box::new(set_uids(set, max).into_iter()),
                None => Box::new(1..uidnext),
            };
            for uid in candidates {
                while p.peek().is_some_and(|&x| x < uid) {
                    p.next();
                }
                if p.peek() != Some(&uid) {
                    out.push(uid);
                }
            }
            out
        }
    };
    if let Some(set) = within {
        uids.retain(|&u| in_uid_set(set, u, max));
    }
    uids.sort_unstable();
    uids.dedup();
    Ok(uids)
}

/// The UIDs (ascending, at most `max`) a UID set names.
fn set_uids(set: &SequenceSet, max: u32) -> Vec<u32> {
    let v = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => max,
    };
    let mut out = Vec::new();
    for s in set.0.as_ref() {
        let (a, b) = match s {
            Sequence::Single(a) => (v(a), v(a)),
            Sequence::Range(a, b) => (v(a).min(v(b)), v(a).max(v(b))),
        };
        out.extend(a..=b.min(max));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// For UID FETCH (CHANGEDSINCE m VANISHED).
///
/// # Errors
/// NO on store failure.
pub fn vanished_in_set(user: &UserStore, view: &View, since: u64, set: &SequenceSet) -> Result<Vec<u32>, Refusal> {
    vanished(user, view, since, Some(set))
}

/// The QRESYNC part of SELECT (RFC 7162 3.2.5): `* VANISHED (EARLIER)` and `* n FETCH (UID
/// FLAGS MODSEQ)` for what changed since the client's MODSEQ, when its UIDVALIDITY still holds.
///
/// # Errors
/// NO on store failure.
pub fn resync(user: &UserStore, view: &View, q: &Qresync, uidvalidity: u32, conn: &mut Conn) -> Result<(), Refusal> {
    if q.uidvalidity != uidvalidity {
        return Ok(());
    }
    let gone = vanished(user, view, q.modseq, q.known_uids.as_ref())?;
    conn.queue(&resp::vanished(true, &gone));
    let records = crate::blocking(|| user.messages(view.id))?;
    let max = view.msgs.last().map_or(0, |(u, _)| *u);
    for (uid, rec) in &records {
        if rec.modseq <= q.modseq {
            continue;
        }
        if q.known_uids.as_ref().is_some_and(|k| !in_uid_set(k, *uid, max)) {
            continue;
        }
        if let Some(i) = view.seq_of(*uid) {
            conn.queue(&resp::fetch_flags(i + 1, Some(*uid), &rec.flags, view.is_recent(*uid), Some(rec.modseq)));
        }
    }
    Ok(())
}
