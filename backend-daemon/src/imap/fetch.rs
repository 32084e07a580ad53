//! FETCH (RFC 3501 6.4.5, 7.4.2): every data item. ENVELOPE, BODYSTRUCTURE and BODY come from
//! the index's cache (parsed once at delivery); the message file is read only for body
//! sections. A non-PEEK body fetch sets `\Seen` and reports the new FLAGS.

use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Part, Section};
use imap_codec::imap_types::sequence::SequenceSet;
use mailscale_mime::{Section as MimeSection, SectionText};
use mailstore::{flag, Flags, StoreMode, UserStore};

use super::resp;
use super::selected::View;
use super::session::Refusal;
use crate::net::Conn;

/// Messages per batch: bounds memory and lets big answers stream.
const BATCH: usize = 256;

fn part_nums(p: &Option<Part>) -> Vec<u32> {
    p.as_ref().map(|p| p.0.as_ref().iter().map(|n| n.get()).collect()).unwrap_or_default()
}

fn field_names(v: &[AString<'_>]) -> Vec<String> {
    v.iter().map(|a| String::from_utf8_lossy(a.as_ref()).into_owned()).collect()
}

fn field_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b)) {
                s.clone()
            } else {
                mailscale_mime::imap_string(s)
            }
        })
        .collect();
    format!("({})", items.join(" "))
}

/// The mime crate's section and its name as echoed in the response (`1.2.HEADER.FIELDS (A B)`).
fn convert(section: &Option<Section<'_>>) -> (MimeSection, String) {
    let dotted = |nums: &[u32]| nums.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(".");
    let with_prefix = |nums: &[u32], s: &str| {
        if nums.is_empty() {
            s.to_string()
        } else {
            format!("{}.{s}", dotted(nums))
        }
    };
    match section {
        None => (MimeSection { part: vec![], text: SectionText::Full }, String::new()),
        Some(Section::Part(p)) => {
            let nums = part_nums(&Some(p.clone()));
            (MimeSection { part: nums.clone(), text: SectionText::Full }, dotted(&nums))
        }
        Some(Section::Header(p)) => {
            let nums = part_nums(p);
            (MimeSection { part: nums.clone(), text: SectionText::Header }, with_prefix(&nums, "HEADER"))
        }
        Some(Section::HeaderFields(p, f)) => {
            let nums = part_nums(p);
            let names = field_names(f.as_ref());
            let label = with_prefix(&nums, &format!("HEADER.FIELDS {}", field_list(&names)));
            (MimeSection { part: nums, text: SectionText::HeaderFields(names) }, label)
        }
        Some(Section::HeaderFieldsNot(p, f)) => {
            let nums = part_nums(p);
            let names = field_names(f.as_ref());
            let label = with_prefix(&nums, &format!("HEADER.FIELDS.NOT {}", field_list(&names)));
            (MimeSection { part: nums, text: SectionText::HeaderFieldsNot(names) }, label)
        }
        Some(Section::Text(p)) => {
            let nums = part_nums(p);
            (MimeSection { part: nums.clone(), text: SectionText::Text }, with_prefix(&nums, "TEXT"))
        }
        Some(Section::Mime(p)) => {
            let nums = part_nums(&Some(p.clone()));
            (MimeSection { part: nums.clone(), text: SectionText::Mime }, with_prefix(&nums, "MIME"))
        }
    }
}

fn literal(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
}

fn partial_slice(data: &[u8], partial: Option<(u32, std::num::NonZeroU32)>) -> &[u8] {
    match partial {
        None => data,
        Some((start, len)) => {
            let s = (start as usize).min(data.len());
            let e = s.saturating_add(len.get() as usize).min(data.len());
            &data[s..e]
        }
    }
}

struct Needs {
    cache: bool,
    raw: bool,
    set_seen: bool,
    flags: bool,
}

fn needs(items: &[MessageDataItemName<'_>]) -> Needs {
    let mut n = Needs { cache: false, raw: false, set_seen: false, flags: false };
    for i in items {
        match i {
            MessageDataItemName::Envelope | MessageDataItemName::BodyStructure | MessageDataItemName::Body => {
                n.cache = true
            }
            MessageDataItemName::BodyExt { peek, .. } => {
                n.raw = true;
                n.set_seen |= !peek;
            }
            MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => {
                n.raw = true;
                n.set_seen = true;
            }
            MessageDataItemName::Rfc822Header => n.raw = true,
            MessageDataItemName::Flags => n.flags = true,
            _ => {}
        }
    }
    n
}

/// CONDSTORE/QRESYNC modifiers of FETCH (RFC 7162 3.1.4.1, 3.2.6).
#[derive(Debug, Clone, Copy, Default)]
pub struct Modifiers {
    /// Only messages whose MODSEQ is above this; MODSEQ is then reported.
    pub changed_since: Option<u64>,
    /// UID FETCH (CHANGEDSINCE m VANISHED): also `* VANISHED (EARLIER)` for the UIDs of the set
    /// expunged since m.
    pub vanished: bool,
}

/// Answers FETCH / UID FETCH.
///
/// # Errors
/// BAD for an invalid sequence set or an item not supported, NO on store failure.
pub async fn fetch(
    user: &UserStore,
    view: &mut View,
    set: &SequenceSet,
    items: MacroOrMessageDataItemNames<'static>,
    uid_mode: bool,
    modifiers: Modifiers,
    conn: &mut Conn,
) -> Result<(), Refusal> {
    let items: Vec<MessageDataItemName<'static>> = match items {
        MacroOrMessageDataItemNames::Macro(m) => m.expand().into_iter().map(|i| i.into_static_item()).collect(),
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
    };
    for i in &items {
        if matches!(i, MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. }) {
            return Err(Refusal::bad("BINARY is not supported by this server"));
        }
    }
    if modifiers.vanished {
        if !uid_mode {
            return Err(Refusal::bad("VANISHED is only allowed with UID FETCH (RFC 7162 3.2.6)"));
        }
        if !view.qresync {
            return Err(Refusal::bad("VANISHED needs ENABLE QRESYNC first"));
        }
        let Some(since) = modifiers.changed_since else {
            return Err(Refusal::bad("VANISHED needs CHANGEDSINCE"));
        };
        let gone = super::condstore::vanished_in_set(user, view, since, set)?;
        conn.queue(&resp::vanished(true, &gone));
    }
    let want_modseq =
        modifiers.changed_since.is_some() || items.iter().any(|i| matches!(i, MessageDataItemName::ModSeq));
    if want_modseq {
        view.condstore = true;
    }
    let idx = view.resolve(set, uid_mode)?;
    let need = needs(&items);
    let set_seen = need.set_seen && !view.read_only;
    for chunk in idx.chunks(BATCH) {
        let uids = view.uids(chunk);
        let mut recs = crate::blocking(|| user.fetch(view.id, &uids, need.cache))?;
        let mut seen_changed = std::collections::HashSet::new();
        if set_seen {
            let unseen: Vec<u32> = uids
                .iter()
                .zip(&recs)
                .filter(|(_, (r, _))| r.as_ref().is_some_and(|r| !r.flags.has(flag::SEEN)))
                .map(|(u, _)| *u)
                .collect();
            if !unseen.is_empty() {
                let seen = Flags { system: flag::SEEN, keywords: vec![] };
                let stored = crate::blocking(|| user.store_flags(view.id, &unseen, StoreMode::Add, &seen, None))?;
                for (u, rec) in stored.changed {
                    if let Some(pos) = uids.iter().position(|x| *x == u) {
                        recs[pos].0 = Some(rec);
                    }
                    seen_changed.insert(u);
                }
            }
        }
        for ((&i, &uid), (rec, cache)) in chunk.iter().zip(&uids).zip(recs) {
            let Some(rec) = rec else { continue };
            if modifiers.changed_since.is_some_and(|m| rec.modseq <= m) && !seen_changed.contains(&uid) {
                continue;
            }
            if seen_changed.contains(&uid) {
                view.msgs[i].1 = rec.modseq;
            }
            let raw = if need.raw { Some(crate::blocking(|| user.read_message(&rec.guid))?) } else { None };
            let mut out: Vec<u8> = format!("* {} FETCH (", i + 1).into_bytes();
            let mut first = true;
            let mut sep = |out: &mut Vec<u8>| {
                if !first {
                    out.push(b' ');
                }
                first = false;
            };
            if uid_mode && !items.iter().any(|i| matches!(i, MessageDataItemName::Uid)) {
                sep(&mut out);
                out.extend_from_slice(format!("UID {uid}").as_bytes());
            }
            let flags_item = need.flags || seen_changed.contains(&uid);
            if flags_item && !need.flags {
                sep(&mut out);
                out.extend_from_slice(format!("FLAGS {}", resp::flag_list(&rec.flags, view.is_recent(uid))).as_bytes());
            }
            let modseq_item = want_modseq || (view.condstore && seen_changed.contains(&uid));
            if modseq_item && !items.iter().any(|i| matches!(i, MessageDataItemName::ModSeq)) {
                sep(&mut out);
                out.extend_from_slice(format!("MODSEQ ({})", rec.modseq).as_bytes());
            }
            for item in &items {
                sep(&mut out);
                match item {
                    MessageDataItemName::ModSeq => out.extend_from_slice(format!("MODSEQ ({})", rec.modseq).as_bytes()),
                    MessageDataItemName::Uid => out.extend_from_slice(format!("UID {uid}").as_bytes()),
                    MessageDataItemName::Flags => out.extend_from_slice(
                        format!("FLAGS {}", resp::flag_list(&rec.flags, view.is_recent(uid))).as_bytes(),
                    ),
                    MessageDataItemName::InternalDate => out.extend_from_slice(
                        format!("INTERNALDATE {}", resp::internaldate(rec.internaldate, rec.tz_minutes)).as_bytes(),
                    ),
                    MessageDataItemName::Rfc822Size => {
                        out.extend_from_slice(format!("RFC822.SIZE {}", rec.size).as_bytes())
                    }
                    MessageDataItemName::Envelope => {
                        out.extend_from_slice(b"ENVELOPE ");
                        out.extend_from_slice(cache.as_ref().map_or("NIL", |c| c.envelope.as_str()).as_bytes());
                    }
                    MessageDataItemName::BodyStructure => {
                        out.extend_from_slice(b"BODYSTRUCTURE ");
                        out.extend_from_slice(cache.as_ref().map_or("NIL", |c| c.bodystructure.as_str()).as_bytes());
                    }
                    MessageDataItemName::Body => {
                        out.extend_from_slice(b"BODY ");
                        out.extend_from_slice(cache.as_ref().map_or("NIL", |c| c.body.as_str()).as_bytes());
                    }
                    MessageDataItemName::BodyExt { section, partial, .. } => {
                        let raw = raw.as_deref().unwrap_or_default();
                        let (sec, label) = convert(section);
                        let data = mailscale_mime::section(raw, &sec);
                        let origin = partial.map(|(s, _)| format!("<{s}>")).unwrap_or_default();
                        out.extend_from_slice(format!("BODY[{label}]{origin} ").as_bytes());
                        literal(&mut out, partial_slice(&data, *partial));
                    }
                    MessageDataItemName::Rfc822 => {
                        out.extend_from_slice(b"RFC822 ");
                        literal(&mut out, raw.as_deref().unwrap_or_default());
                    }
                    MessageDataItemName::Rfc822Header => {
                        let raw = raw.as_deref().unwrap_or_default();
                        let data =
                            mailscale_mime::section(raw, &MimeSection { part: vec![], text: SectionText::Header });
                        out.extend_from_slice(b"RFC822.HEADER ");
                        literal(&mut out, &data);
                    }
                    MessageDataItemName::Rfc822Text => {
                        let raw = raw.as_deref().unwrap_or_default();
                        let data = mailscale_mime::section(raw, &MimeSection { part: vec![], text: SectionText::Text });
                        out.extend_from_slice(b"RFC822.TEXT ");
                        literal(&mut out, &data);
                    }
                    other => return Err(Refusal::bad(format!("FETCH item {other:?} is not supported"))),
                }
            }
            out.extend_from_slice(b")\r\n");
            conn.queue(&out);
        }
        conn.flush().await.map_err(|e| Refusal::no(format!("write failed: {e}")))?;
    }
    Ok(())
}

trait IntoStaticItem {
    fn into_static_item(self) -> MessageDataItemName<'static>;
}

impl IntoStaticItem for MessageDataItemName<'_> {
    fn into_static_item(self) -> MessageDataItemName<'static> {
        use imap_codec::imap_types::IntoStatic;
        self.into_static()
    }
}
