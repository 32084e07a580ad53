//! SORT and THREAD (RFC 5256, with RFC 5957's DISPLAYFROM/DISPLAYTO): the search criteria
//! select messages as SEARCH does, each message's SORT/THREAD keys (kept in the index, see
//! `mailstore`'s `sortcache.rs`) become a `SortItem`, and the algorithms of the
//! `mailscale-imapsort` crate order them.

use std::fmt::Write as _;

use imap_codec::imap_types::core::Charset;
use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey as CodecKey};
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::search::SearchKey;
use mailscale_imapsort::{format_threads, DerivedKeys, SortField, SortItem, SortKey, ThreadAlgorithm};
use mailstore::UserStore;

use super::search::{self, Hit};
use super::selected::View;
use super::session::Refusal;
use crate::net::Conn;

fn field(k: &CodecKey) -> SortField {
    match k {
        CodecKey::Arrival => SortField::Arrival,
        CodecKey::Cc => SortField::Cc,
        CodecKey::Date => SortField::Date,
        CodecKey::From => SortField::From,
        CodecKey::Size => SortField::Size,
        CodecKey::Subject => SortField::Subject,
        CodecKey::To => SortField::To,
        CodecKey::DisplayFrom => SortField::DisplayFrom,
        CodecKey::DisplayTo => SortField::DisplayTo,
    }
}

/// What [`items`] gives: the sort items, their stored text keys (SORT only), the search hits.
type Matched = (Vec<SortItem>, Vec<DerivedKeys>, Vec<Hit>);

/// The matching messages as sort items, identified by UID or message number. For SORT by
/// `fields`: items without their raw header fields and, beside them, their stored text keys;
/// for THREAD (`None`): items with their raw header fields, no keys.
fn items(
    user: &UserStore,
    view: &mut View,
    charset: &Charset<'_>,
    criteria: &[SearchKey<'_>],
    uid_mode: bool,
    fields: Option<&[SortField]>,
) -> Result<Matched, Refusal> {
    if search::uses_modseq(criteria) {
        view.condstore = true;
    }
    let hits = search::matching(user, view, Some(charset), criteria)?;
    let uids: Vec<u32> = hits.iter().map(|h| h.uid).collect();
    // Items come back with id = UID, in UID order, without UIDs expunged meanwhile.
    let (mut out, keys) = match fields {
        Some(fields) => crate::blocking(|| user.sort_items_with_keys(view.id, &uids, fields))?,
        None => (crate::blocking(|| user.sort_items(view.id, &uids))?, Vec::new()),
    };
    if !uid_mode {
        let mut h = hits.iter().peekable();
        for item in &mut out {
            while h.peek().is_some_and(|x| x.uid < item.id) {
                h.next();
            }
            if let Some(hit) = h.peek() {
                item.id = hit.seq;
            }
        }
    }
    Ok((out, keys, hits))
}

fn modseq_suffix(criteria: &[SearchKey<'_>], hits: &[Hit]) -> String {
    match hits.iter().map(|h| h.modseq).max() {
        Some(m) if search::uses_modseq(criteria) => format!(" (MODSEQ {m})"),
        _ => String::new(),
    }
}

/// SORT / UID SORT (RFC 5256 3): `* SORT n...`.
///
/// # Errors
/// NO [BADCHARSET], NO on store failure.
pub fn sort(
    user: &UserStore,
    view: &mut View,
    criteria: &[SortCriterion],
    charset: &Charset<'_>,
    search_criteria: &[SearchKey<'_>],
    uid_mode: bool,
    conn: &mut Conn,
) -> Result<(), Refusal> {
    let keys: Vec<SortKey> = criteria.iter().map(|c| SortKey { field: field(&c.key), reverse: c.reverse }).collect();
    let fields: Vec<SortField> = keys.iter().map(|k| k.field).collect();
    let (items, derived, hits) = items(user, view, charset, search_criteria, uid_mode, Some(&fields))?;
    let order = mailscale_imapsort::sort_derived(&items, &derived, &keys);
    let mut out = String::with_capacity(8 + 7 * order.len());
    out.push_str("* SORT");
    for id in order {
        // Writing to a String cannot fail.
        let _ = write!(out, " {id}");
    }
    out.push_str(&modseq_suffix(search_criteria, &hits));
    out.push_str("\r\n");
    conn.queue(out.as_bytes());
    Ok(())
}

/// THREAD / UID THREAD (RFC 5256 3, 4): `* THREAD (1 2)(3)`.
///
/// # Errors
/// NO for an algorithm other than ORDEREDSUBJECT and REFERENCES, NO [BADCHARSET], NO on store
/// failure.
pub fn thread(
    user: &UserStore,
    view: &mut View,
    algorithm: &ThreadingAlgorithm<'_>,
    charset: &Charset<'_>,
    search_criteria: &[SearchKey<'_>],
    uid_mode: bool,
    conn: &mut Conn,
) -> Result<(), Refusal> {
    let algorithm = match algorithm {
        ThreadingAlgorithm::OrderedSubject => ThreadAlgorithm::OrderedSubject,
        ThreadingAlgorithm::References => ThreadAlgorithm::References,
        ThreadingAlgorithm::Other(o) => {
            return Err(Refusal::bad(format!(
                "Unsupported threading algorithm {}: use REFERENCES or ORDEREDSUBJECT",
                o.as_ref()
            )))
        }
    };
    let (items, _, _) = items(user, view, charset, search_criteria, uid_mode, None)?;
    let threads = algorithm.run(&items);
    let body = format_threads(&threads);
    let mut out = String::from("* THREAD");
    if !body.is_empty() {
        out.push(' ');
        out.push_str(&body);
    }
    out.push_str("\r\n");
    conn.queue(out.as_bytes());
    Ok(())
}
