//! SEARCH / UID SEARCH (RFC 3501 6.4.4): every search key, charsets US-ASCII and UTF-8.
//! Header and body keys decode the message (RFC 2047 words, transfer encodings, charsets) and
//! compare case-insensitively.

use imap_codec::imap_types::core::{AString, Charset};
use imap_codec::imap_types::datetime::NaiveDate;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use mailstore::{flag, MessageRecord, UserStore};

use super::ext::SearchReturn;
use super::resp::Rc;
use super::selected::View;
use super::session::Refusal;
use crate::net::Conn;

/// One message being matched, with its content loaded only when a key needs it.
struct Candidate<'a> {
    seq: u32,
    uid: u32,
    rec: &'a MessageRecord,
    recent: bool,
    user: &'a UserStore,
    raw: Option<Vec<u8>>,
    body: Option<String>,
    headers: Option<String>,
}

impl Candidate<'_> {
    fn raw(&mut self) -> &[u8] {
        if self.raw.is_none() {
            let r = crate::blocking(|| self.user.read_message(&self.rec.guid)).unwrap_or_else(|e| {
                tracing::error!(uid = self.uid, error = %e, "search: message file unreadable");
                Vec::new()
            });
            self.raw = Some(r);
        }
        self.raw.as_deref().unwrap_or_default()
    }

    fn body(&mut self) -> &str {
        if self.body.is_none() {
            let b = mailscale_mime::body_text(self.raw());
            self.body = Some(b);
        }
        self.body.as_deref().unwrap_or_default()
    }

    fn headers(&mut self) -> &str {
        if self.headers.is_none() {
            let h = mailscale_mime::header_text(self.raw());
            self.headers = Some(h);
        }
        self.headers.as_deref().unwrap_or_default()
    }

    fn header_has(&mut self, name: &str, needle: &str) -> bool {
        let values = mailscale_mime::header_values(self.raw(), name);
        if needle.is_empty() {
            return !values.is_empty();
        }
        values.iter().any(|v| mailscale_mime::contains_ci(v, needle))
    }

    fn internal_day(&self) -> chrono::NaiveDate {
        let off = chrono::FixedOffset::east_opt(i32::from(self.rec.tz_minutes) * 60)
            .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero"));
        chrono::DateTime::from_timestamp(self.rec.internaldate, 0).unwrap_or_default().with_timezone(&off).date_naive()
    }

    fn sent_day(&mut self) -> chrono::NaiveDate {
        let sent = mailscale_mime::analyze(self.raw()).sent_date;
        match sent {
            Some(ts) => chrono::DateTime::from_timestamp(ts, 0).unwrap_or_default().date_naive(),
            None => self.internal_day(),
        }
    }
}

fn text(a: &AString<'_>) -> String {
    String::from_utf8_lossy(a.as_ref()).into_owned()
}

fn day(d: &NaiveDate) -> chrono::NaiveDate {
    *d.as_ref()
}

/// Whether `n` is in `set`, `*` standing for `star`.
fn in_set(set: &SequenceSet, n: u32, star: u32) -> bool {
    let v = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => star,
    };
    set.0.as_ref().iter().any(|s| match s {
        Sequence::Single(a) => v(a) == n,
        Sequence::Range(a, b) => (v(a).min(v(b))..=v(a).max(v(b))).contains(&n),
    })
}

struct Limits {
    max_seq: u32,
    max_uid: u32,
}

fn eval(key: &SearchKey<'_>, c: &mut Candidate<'_>, l: &Limits) -> bool {
    let f = &c.rec.flags;
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| eval(k, c, l)),
        SearchKey::SequenceSet(s) => in_set(s, c.seq, l.max_seq),
        SearchKey::Uid(s) => in_set(s, c.uid, l.max_uid),
        SearchKey::All => true,
        SearchKey::Answered => f.has(flag::ANSWERED),
        SearchKey::Unanswered => !f.has(flag::ANSWERED),
        SearchKey::Deleted => f.has(flag::DELETED),
        SearchKey::Undeleted => !f.has(flag::DELETED),
        SearchKey::Draft => f.has(flag::DRAFT),
        SearchKey::Undraft => !f.has(flag::DRAFT),
        SearchKey::Flagged => f.has(flag::FLAGGED),
        SearchKey::Unflagged => !f.has(flag::FLAGGED),
        SearchKey::Seen => f.has(flag::SEEN),
        SearchKey::Unseen => !f.has(flag::SEEN),
        SearchKey::Recent => c.recent,
        SearchKey::New => c.recent && !f.has(flag::SEEN),
        SearchKey::Old => !c.recent,
        SearchKey::Keyword(k) => f.has_keyword(k.as_ref()),
        SearchKey::Unkeyword(k) => !f.has_keyword(k.as_ref()),
        SearchKey::Larger(n) => c.rec.size > *n,
        SearchKey::Smaller(n) => c.rec.size < *n,
        SearchKey::Before(d) => c.internal_day() < day(d),
        SearchKey::On(d) => c.internal_day() == day(d),
        SearchKey::Since(d) => c.internal_day() >= day(d),
        SearchKey::SentBefore(d) => c.sent_day() < day(d),
        SearchKey::SentOn(d) => c.sent_day() == day(d),
        SearchKey::SentSince(d) => c.sent_day() >= day(d),
        SearchKey::From(s) => c.header_has("From", &text(s)),
        SearchKey::To(s) => c.header_has("To", &text(s)),
        SearchKey::Cc(s) => c.header_has("Cc", &text(s)),
        SearchKey::Bcc(s) => c.header_has("Bcc", &text(s)),
        SearchKey::Subject(s) => c.header_has("Subject", &text(s)),
        SearchKey::Header(name, value) => c.header_has(&text(name), &text(value)),
        SearchKey::Body(s) => {
            let needle = text(s);
            mailscale_mime::contains_ci(c.body(), &needle)
        }
        SearchKey::Text(s) => {
            let needle = text(s);
            mailscale_mime::contains_ci(c.headers(), &needle) || mailscale_mime::contains_ci(c.body(), &needle)
        }
        SearchKey::Not(k) => !eval(k, c, l),
        SearchKey::Or(a, b) => eval(a, c, l) || eval(b, c, l),
        // RFC 7162 3.1.5: per-flag mod-sequences are not kept; the message's MODSEQ stands
        // for every entry name.
        SearchKey::ModSequence { modseq, .. } => c.rec.modseq >= *modseq,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

fn supported(key: &SearchKey<'_>) -> Result<(), Refusal> {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().try_for_each(supported),
        SearchKey::Not(k) => supported(k),
        SearchKey::Or(a, b) => supported(a).and(supported(b)),
        _ => Ok(()),
    }
}

/// Whether the criteria use MODSEQ (RFC 7162 3.1.5), a CONDSTORE-enabling search whose
/// answer carries `(MODSEQ n)`.
pub fn uses_modseq(criteria: &[SearchKey<'_>]) -> bool {
    fn any(k: &SearchKey<'_>) -> bool {
        match k {
            SearchKey::ModSequence { .. } => true,
            SearchKey::And(keys) => keys.as_ref().iter().any(any),
            SearchKey::Not(k) => any(k),
            SearchKey::Or(a, b) => any(a) || any(b),
            _ => false,
        }
    }
    criteria.iter().any(any)
}

/// One message that matched.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    pub seq: u32,
    pub uid: u32,
    pub modseq: u64,
}

/// Checks the charset argument of SEARCH, SORT and THREAD.
///
/// # Errors
/// NO [BADCHARSET] for charsets other than US-ASCII and UTF-8.
pub fn check_charset(charset: Option<&Charset<'_>>) -> Result<(), Refusal> {
    if let Some(cs) = charset {
        let cs: &str = cs.as_ref();
        if !cs.eq_ignore_ascii_case("UTF-8") && !cs.eq_ignore_ascii_case("US-ASCII") {
            return Err(Refusal::no(format!("Charset {cs} is not supported")).with(Rc::BadCharset));
        }
    }
    Ok(())
}

/// The messages of the view that match every criterion, in mailbox order.
///
/// # Errors
/// NO [BADCHARSET] for charsets other than US-ASCII and UTF-8, NO on store failure.
pub fn matching(
    user: &UserStore,
    view: &View,
    charset: Option<&Charset<'_>>,
    criteria: &[SearchKey<'_>],
) -> Result<Vec<Hit>, Refusal> {
    check_charset(charset)?;
    criteria.iter().try_for_each(supported)?;
    let records = crate::blocking(|| user.messages(view.id))?;
    let limits = Limits { max_seq: view.msgs.len() as u32, max_uid: view.msgs.last().map_or(0, |(u, _)| *u) };
    let mut hits = Vec::new();
    for (i, (uid, _)) in view.msgs.iter().enumerate() {
        let Ok(j) = records.binary_search_by_key(uid, |(u, _)| *u) else {
            continue;
        };
        let mut c = Candidate {
            seq: i as u32 + 1,
            uid: *uid,
            rec: &records[j].1,
            recent: view.is_recent(*uid),
            user,
            raw: None,
            body: None,
            headers: None,
        };
        if criteria.iter().all(|k| eval(k, &mut c, &limits)) {
            hits.push(Hit { seq: c.seq, uid: *uid, modseq: records[j].1.modseq });
        }
    }
    Ok(hits)
}

/// Answers SEARCH / UID SEARCH: `* SEARCH n...`, or with RETURN options `* ESEARCH` (RFC 4731)
/// and/or the saved result (RFC 5182).
///
/// # Errors
/// As [`matching`]; a failed search with SAVE leaves an empty saved result (RFC 5182 2.1).
#[allow(clippy::too_many_arguments)]
pub fn search(
    user: &UserStore,
    view: &mut View,
    charset: Option<&Charset<'_>>,
    criteria: &[SearchKey<'_>],
    uid_mode: bool,
    ret: Option<&SearchReturn>,
    tag: &str,
    conn: &mut Conn,
) -> Result<(), Refusal> {
    let with_modseq = uses_modseq(criteria);
    if with_modseq {
        view.condstore = true;
    }
    let hits = match matching(user, view, charset, criteria) {
        Ok(h) => h,
        Err(e) => {
            if ret.is_some_and(|r| r.save) {
                view.saved.clear();
            }
            return Err(e);
        }
    };
    let id = |h: &Hit| if uid_mode { h.uid } else { h.seq };
    let Some(ret) = ret else {
        let modseq = hits.iter().map(|h| h.modseq).max().filter(|_| with_modseq);
        conn.queue(&super::resp::search(&hits.iter().map(id).collect::<Vec<_>>(), modseq));
        return Ok(());
    };
    let (first, last) = (hits.first(), hits.last());
    let minmax_only = (ret.min || ret.max) && !ret.all && !ret.count;
    if ret.save {
        view.saved = if ret.min || ret.max {
            let mut v: Vec<u32> = Vec::new();
            v.extend(first.filter(|_| ret.min).map(|h| h.uid));
            v.extend(last.filter(|_| ret.max).map(|h| h.uid));
            v.dedup();
            v
        } else {
            hits.iter().map(|h| h.uid).collect()
        };
    }
    if !ret.wants_esearch() {
        return Ok(());
    }
    let mut out = format!("* ESEARCH (TAG {})", mailscale_mime::imap_string(tag));
    if uid_mode {
        out.push_str(" UID");
    }
    if let (true, Some(h)) = (ret.min, first) {
        out.push_str(&format!(" MIN {}", id(h)));
    }
    if let (true, Some(h)) = (ret.max, last) {
        out.push_str(&format!(" MAX {}", id(h)));
    }
    if ret.all && !hits.is_empty() {
        let ids: Vec<u32> = hits.iter().map(id).collect();
        out.push_str(&format!(" ALL {}", super::resp::compact_set(&ids)));
    }
    if ret.count {
        out.push_str(&format!(" COUNT {}", hits.len()));
    }
    if with_modseq {
        let considered: Vec<&Hit> = if minmax_only {
            [first.filter(|_| ret.min), last.filter(|_| ret.max)].into_iter().flatten().collect()
        } else {
            hits.iter().collect()
        };
        if let Some(m) = considered.iter().map(|h| h.modseq).max() {
            out.push_str(&format!(" MODSEQ {m}"));
        }
    }
    out.push_str("\r\n");
    conn.queue(out.as_bytes());
    Ok(())
}
