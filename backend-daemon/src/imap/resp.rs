//! IMAP responses, serialized by imap-codec's `ResponseCodec` (RFC 3501 7, 9) so that quoting,
//! literals and response codes are always well-formed. The one exception is the body of FETCH
//! responses that carry cached ENVELOPE/BODYSTRUCTURE text (see `fetch.rs`).

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_codec::encode::Encoder;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::core::{AString, Atom, IString, NString, Quoted, QuotedChar, Tag, Text, Vec1};
use imap_codec::imap_types::extensions::namespace::Namespace;
use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch, FlagNameAttribute, FlagPerm};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{
    Bye, Capability, Code, CodeOther, Data, Response, Status, StatusBody, StatusKind, Tagged,
};
use imap_codec::imap_types::status::StatusDataItem;
use imap_codec::imap_types::IntoStatic;
use imap_codec::ResponseCodec;
use mailstore::{flag, Flags};

/// The response codes mailstored sends (RFC 3501 7.1, RFC 4315, RFC 5530, RFC 4469).
#[derive(Debug, Clone)]
pub enum Rc {
    TryCreate,
    Nonexistent,
    AlreadyExists,
    Cannot,
    ServerBug,
    AuthenticationFailed,
    Unavailable,
    ReadOnly,
    ReadWrite,
    TooBig,
    BadCharset,
    Capability(Vec<&'static str>),
    AppendUid(u32, u32),
    CopyUid(u32, Vec<u32>, Vec<u32>),
    Unseen(u32),
    UidValidity(u32),
    UidNext(u32),
    PermanentFlags(Vec<String>),
    /// RFC 7162 3.1.2.1.
    HighestModSeq(u64),
    /// RFC 7162 3.1.3: messages (numbers or UIDs) that failed UNCHANGEDSINCE.
    Modified(Vec<u32>),
    /// RFC 7162 3.2.11: the previous mailbox is closed.
    Closed,
    /// RFC 9208 4.3 / RFC 5530.
    OverQuota,
    /// RFC 4978 3: COMPRESS while compression is already active.
    CompressionActive,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn uid_set(uids: &[u32]) -> Option<UidSet> {
    let mut elems = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        elems.push(if start == end { UidElement::Single(nz(start)) } else { UidElement::Range(nz(start), nz(end)) });
        i += 1;
    }
    Vec1::try_from(elems).ok().map(UidSet)
}

/// `1:3,7` for the sorted numbers `ids` (RFC 3501 sequence-set), empty for none.
pub fn compact_set(ids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

fn seq_set(ids: &[u32]) -> Option<imap_codec::imap_types::sequence::SequenceSet> {
    imap_codec::imap_types::sequence::SequenceSet::try_from(compact_set(ids).as_str()).ok()
}

/// `* VANISHED [(EARLIER)] uids` (RFC 7162 3.2.10); nothing for no UIDs.
pub fn vanished(earlier: bool, uids: &[u32]) -> Vec<u8> {
    match seq_set(uids) {
        Some(known_uids) => data(Data::Vanished { earlier, known_uids }),
        None => Vec::new(),
    }
}

fn flag(name: &str) -> Option<Flag<'static>> {
    Flag::try_from(name).ok().map(IntoStatic::into_static)
}

/// A capability list (`IMAP4rev1 ... AUTH=PLAIN`) as codec values.
fn capabilities(names: &[&'static str]) -> Option<Vec1<Capability<'static>>> {
    let caps: Vec<Capability<'static>> = names
        .iter()
        .filter_map(|n| match *n {
            "AUTH=PLAIN" => Some(Capability::Auth(AuthMechanism::Plain)),
            "STARTTLS" => Some(Capability::StartTls),
            other => Atom::try_from(other).ok().map(Capability::from),
        })
        .collect();
    Vec1::try_from(caps).ok()
}

impl Rc {
    fn code(&self) -> Option<Code<'static>> {
        let other = |s: &'static str| Some(Code::Other(CodeOther::unvalidated(s.as_bytes())));
        match self {
            Rc::TryCreate => Some(Code::TryCreate),
            Rc::Nonexistent => other("NONEXISTENT"),
            Rc::AlreadyExists => other("ALREADYEXISTS"),
            Rc::Cannot => other("CANNOT"),
            Rc::ServerBug => other("SERVERBUG"),
            Rc::AuthenticationFailed => other("AUTHENTICATIONFAILED"),
            Rc::Unavailable => other("UNAVAILABLE"),
            Rc::ReadOnly => Some(Code::ReadOnly),
            Rc::ReadWrite => Some(Code::ReadWrite),
            Rc::TooBig => Some(Code::TooBig),
            Rc::BadCharset => {
                Some(Code::badcharset(vec!["US-ASCII".try_into().expect("atom"), "UTF-8".try_into().expect("atom")]))
            }
            Rc::Capability(names) => capabilities(names).map(Code::Capability),
            Rc::AppendUid(v, u) => Some(Code::AppendUid { uid_validity: nz(*v), uid: nz(*u) }),
            Rc::CopyUid(v, src, dst) => {
                Some(Code::CopyUid { uid_validity: nz(*v), source: uid_set(src)?, destination: uid_set(dst)? })
            }
            Rc::Unseen(n) => Some(Code::Unseen(nz(*n))),
            Rc::UidValidity(n) => Some(Code::UidValidity(nz(*n))),
            Rc::UidNext(n) => Some(Code::UidNext(nz(*n))),
            Rc::HighestModSeq(m) => std::num::NonZeroU64::new(*m).map(Code::HighestModSeq),
            Rc::Modified(ids) => seq_set(ids).map(Code::Modified),
            Rc::Closed => Some(Code::Closed),
            Rc::OverQuota => Some(Code::OverQuota),
            Rc::CompressionActive => Some(Code::CompressionActive),
            Rc::PermanentFlags(names) => Some(Code::PermanentFlags(
                names
                    .iter()
                    .map(|n| if n == "\\*" { Some(FlagPerm::Asterisk) } else { flag(n).map(FlagPerm::Flag) })
                    .collect::<Option<Vec<_>>>()?,
            )),
        }
    }
}

fn text(t: &str) -> Text<'static> {
    Text::try_from(t.to_string())
        .or_else(|_| Text::try_from(t.replace(['\r', '\n'], " ")))
        .unwrap_or_else(|_| Text::try_from("done").expect("valid text"))
}

fn encode(r: &Response<'_>) -> Vec<u8> {
    ResponseCodec::default().encode(r).dump()
}

/// The kind of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ok,
    No,
    Bad,
}

/// A tagged (or, with `tag: None`, untagged) OK/NO/BAD.
pub fn status(tag: Option<&str>, kind: Kind, code: Option<&Rc>, t: &str) -> Vec<u8> {
    let body = StatusBody {
        kind: match kind {
            Kind::Ok => StatusKind::Ok,
            Kind::No => StatusKind::No,
            Kind::Bad => StatusKind::Bad,
        },
        code: code.and_then(Rc::code),
        text: text(t),
    };
    let tag = tag.and_then(|t| Tag::try_from(t.to_string()).ok());
    let status = match tag {
        Some(tag) => Status::Tagged(Tagged { tag, body }),
        None => Status::Untagged(body),
    };
    encode(&Response::Status(status))
}

/// `* BYE ...`
pub fn bye(code: Option<&Rc>, t: &str) -> Vec<u8> {
    encode(&Response::Status(Status::Bye(Bye { code: code.and_then(Rc::code), text: text(t) })))
}

/// Any untagged data response.
pub fn data(d: Data<'_>) -> Vec<u8> {
    encode(&Response::Data(d))
}

pub fn capability(names: &[&'static str]) -> Vec<u8> {
    match capabilities(names) {
        Some(c) => data(Data::Capability(c)),
        None => Vec::new(),
    }
}

/// A mailbox name for the wire: modified UTF-7 (RFC 3501 5.1.3), always quoted (or a literal
/// if it must be) as most servers do, since some clients expect a string there.
pub fn mailbox(name: &str) -> Mailbox<'static> {
    let wire = super::utf7::encode(name);
    let astring = match Quoted::try_from(wire.clone()) {
        Ok(q) => AString::String(IString::Quoted(q)),
        Err(_) => AString::try_from(wire).unwrap_or_else(|_| AString::try_from("INBOX").expect("atom")),
    };
    Mailbox::from(astring)
}

/// `* LIST (attrs) "/" name` or LSUB.
pub fn list(lsub: bool, attrs: &[&str], name: &str) -> Vec<u8> {
    let items: Vec<FlagNameAttribute<'static>> = attrs
        .iter()
        .filter_map(|a| match *a {
            "\\Noselect" => Some(FlagNameAttribute::Noselect),
            other => Atom::try_from(other.trim_start_matches('\\').to_string()).ok().map(FlagNameAttribute::from),
        })
        .collect();
    let delimiter = QuotedChar::try_from('/').ok();
    let mailbox = mailbox(name);
    data(if lsub { Data::Lsub { items, delimiter, mailbox } } else { Data::List { items, delimiter, mailbox } })
}

/// `* STATUS name (items)`.
pub fn status_data(name: &str, items: Vec<StatusDataItem>) -> Vec<u8> {
    data(Data::Status { mailbox: mailbox(name), items: Cow::Owned(items) })
}

/// STATUS item helper for UIDNEXT/UIDVALIDITY, which are never 0.
pub fn nonzero(n: u32) -> NonZeroU32 {
    nz(n)
}

/// Flags as codec values (keywords that aren't atoms are skipped; they can't be stored).
pub fn flag_fetch(f: &Flags, recent: bool) -> Vec<FlagFetch<'static>> {
    let mut out: Vec<FlagFetch<'static>> = Vec::new();
    for (bit, name) in flag::NAMES {
        if f.has(bit) {
            out.extend(flag(name).map(FlagFetch::Flag));
        }
    }
    if recent {
        out.push(FlagFetch::Recent);
    }
    out.extend(f.keywords.iter().filter_map(|k| flag(k)).map(FlagFetch::Flag));
    out
}

/// `* n FETCH (UID u FLAGS (...) MODSEQ (m))`, UID and MODSEQ (RFC 7162 3.1.4) optional.
pub fn fetch_flags(seq: usize, uid: Option<u32>, f: &Flags, recent: bool, modseq: Option<u64>) -> Vec<u8> {
    let mut items = Vec::new();
    if let Some(u) = uid {
        items.push(MessageDataItem::Uid(nz(u)));
    }
    items.push(MessageDataItem::Flags(flag_fetch(f, recent)));
    if let Some(m) = modseq.and_then(std::num::NonZeroU64::new) {
        items.push(MessageDataItem::ModSeq(m));
    }
    match Vec1::try_from(items) {
        Ok(items) => data(Data::Fetch { seq: nz(seq as u32), items }),
        Err(_) => Vec::new(),
    }
}

/// `* FLAGS (...)` of SELECT.
pub fn flags_data(names: &[String]) -> Vec<u8> {
    data(Data::Flags(names.iter().filter_map(|n| flag(n)).collect()))
}

/// `* SEARCH n...`, with `(MODSEQ m)` when the search used MODSEQ (RFC 7162 3.1.5).
pub fn search(hits: &[u32], modseq: Option<u64>) -> Vec<u8> {
    data(Data::Search(hits.iter().map(|&h| nz(h)).collect(), modseq.and_then(std::num::NonZeroU64::new)))
}

/// `* NAMESPACE (("" "/")) NIL NIL`.
pub fn namespace() -> Vec<u8> {
    let personal = vec![Namespace {
        prefix: IString::try_from("").expect("empty quoted"),
        delimiter: QuotedChar::try_from('/').ok(),
        extensions: vec![],
    }];
    data(Data::Namespace { personal, other: vec![], shared: vec![] })
}

/// `* ID ("name" "mailstored" "version" "x.y.z")`.
pub fn id() -> Vec<u8> {
    let pair = |k: &'static str, v: &'static str| {
        (IString::try_from(k).expect("quoted"), NString(Some(IString::try_from(v).expect("quoted"))))
    };
    data(Data::Id { parameters: Some(vec![pair("name", "mailstored"), pair("version", env!("CARGO_PKG_VERSION"))]) })
}

/// `(\Seen \Flagged $Label1)` as text, for the hand-written part of FETCH.
pub fn flag_list(f: &Flags, recent: bool) -> String {
    let mut parts: Vec<&str> = flag::NAMES.iter().filter(|(bit, _)| f.has(*bit)).map(|(_, n)| *n).collect();
    if recent {
        parts.push("\\Recent");
    }
    parts.extend(f.keywords.iter().map(String::as_str));
    format!("({})", parts.join(" "))
}

/// INTERNALDATE as `"17-Jul-1996 02:44:25 -0700"` (RFC 3501 date-time).
pub fn internaldate(ts: i64, tz_minutes: i16) -> String {
    let offset = chrono::FixedOffset::east_opt(i32::from(tz_minutes) * 60)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
    let dt = chrono::DateTime::from_timestamp(ts, 0).unwrap_or_default().with_timezone(&offset);
    format!("\"{}\"", dt.format("%d-%b-%Y %H:%M:%S %z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn writers() {
        let f = Flags { system: flag::SEEN | flag::DELETED, keywords: vec!["$Label1".into()] };
        assert_eq!(flag_list(&f, true), "(\\Seen \\Deleted \\Recent $Label1)");
        assert_eq!(flag_list(&Flags::default(), false), "()");
        assert_eq!(internaldate(837570265, -420), "\"16-Jul-1996 19:24:25 -0700\"");
        assert_eq!(
            s(fetch_flags(3, Some(7), &f, false, None)),
            "* 3 FETCH (UID 7 FLAGS (\\Seen \\Deleted $Label1))\r\n"
        );
    }

    #[test]
    fn statuses_and_codes() {
        assert_eq!(
            s(status(
                Some("a1"),
                Kind::Ok,
                Some(&Rc::CopyUid(9, vec![1, 2, 3, 7], vec![4, 5, 6, 8])),
                "COPY completed"
            )),
            "a1 OK [COPYUID 9 1:3,7 4:6,8] COPY completed\r\n"
        );
        assert_eq!(
            s(status(Some("a2"), Kind::No, Some(&Rc::Nonexistent), "Mailbox does not exist: x")),
            "a2 NO [NONEXISTENT] Mailbox does not exist: x\r\n"
        );
        assert_eq!(
            s(status(None, Kind::Ok, Some(&Rc::UidNext(4)), "Predicted next UID")),
            "* OK [UIDNEXT 4] Predicted next UID\r\n"
        );
        assert_eq!(
            s(status(Some("b"), Kind::No, Some(&Rc::BadCharset), "no")),
            "b NO [BADCHARSET (US-ASCII UTF-8)] no\r\n"
        );
        assert_eq!(
            s(capability(&["IMAP4rev1", "IDLE", "STARTTLS", "AUTH=PLAIN"])),
            "* CAPABILITY IMAP4REV1 IDLE STARTTLS AUTH=PLAIN\r\n"
        );
    }

    #[test]
    fn data_responses() {
        assert_eq!(
            s(list(false, &["\\HasNoChildren", "\\Sent"], "Entwürfe")),
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Entw&APw-rfe\"\r\n"
        );
        assert_eq!(s(list(true, &["\\Noselect"], "a b")), "* LSUB (\\Noselect) \"/\" \"a b\"\r\n");
        assert_eq!(s(search(&[1, 5], None)), "* SEARCH 1 5\r\n");
        assert_eq!(s(search(&[2], Some(9))), "* SEARCH 2 (MODSEQ 9)\r\n");
        assert_eq!(compact_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(s(vanished(true, &[3, 4, 8])), "* VANISHED (EARLIER) 3:4,8\r\n");
        assert_eq!(
            s(fetch_flags(1, Some(4), &Flags::default(), false, Some(12))),
            "* 1 FETCH (UID 4 FLAGS () MODSEQ (12))\r\n"
        );
        assert_eq!(s(status(Some("a"), Kind::Ok, Some(&Rc::Modified(vec![7, 9])), "x")), "a OK [MODIFIED 7,9] x\r\n");
        assert_eq!(s(search(&[], None)), "* SEARCH\r\n");
        assert_eq!(s(namespace()), "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
        assert_eq!(
            s(status_data("INBOX", vec![StatusDataItem::Messages(3), StatusDataItem::UidNext(nonzero(9))])),
            "* STATUS INBOX (MESSAGES 3 UIDNEXT 9)\r\n"
        );
    }
}
