//! SEARCH / UID SEARCH (RFC 3501 6.4.4): every search key, charsets US-ASCII and UTF-8.
//! Header and body keys decode the message (RFC 2047 words, transfer encodings, charsets) and
//! compare case-insensitively.

use imap_codec::imap_types::core::{AString, Charset};
use imap_codec::imap_types::datetime::NaiveDate;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use mailstore::{flag, MessageRecord, UserStore};

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

/// Answers SEARCH / UID SEARCH with `* SEARCH n...`.
///
/// # Errors
/// NO [BADCHARSET] for charsets other than US-ASCII and UTF-8, NO on store failure.
pub fn search(
    user: &UserStore,
    view: &View,
    charset: Option<&Charset<'_>>,
    criteria: &[SearchKey<'_>],
    uid_mode: bool,
    conn: &mut Conn,
) -> Result<(), Refusal> {
    if let Some(cs) = charset {
        let cs: &str = cs.as_ref();
        if !cs.eq_ignore_ascii_case("UTF-8") && !cs.eq_ignore_ascii_case("US-ASCII") {
            return Err(Refusal::no(format!("Charset {cs} is not supported")).with(Rc::BadCharset));
        }
    }
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
            hits.push(if uid_mode { *uid } else { c.seq });
        }
    }
    conn.queue(&super::resp::search(&hits));
    Ok(())
}
