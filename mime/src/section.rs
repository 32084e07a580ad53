//! BODY[section] extraction (RFC 3501 section 6.4.5):
//!
//! ```text
//! section         = "[" [section-spec] "]"
//! section-spec    = section-msgtext / (section-part ["." section-text])
//! section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
//! section-part    = nz-number *("." nz-number)
//! section-text    = section-msgtext / "MIME"
//! ```

use std::borrow::Cow;

use crate::header;
use crate::tree::{self, Entity, Kind};

/// What of the addressed part is wanted (`section-text`, or nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// No section-text: the whole message (empty part list) or the part's
    /// body (with a part list).
    Full,
    /// `HEADER`: the [RFC-2822] header including the empty line.
    Header,
    /// `HEADER.FIELDS (...)`: only the named fields, then an empty line.
    HeaderFields(Vec<String>),
    /// `HEADER.FIELDS.NOT (...)`: all but the named fields, then an empty line.
    HeaderFieldsNot(Vec<String>),
    /// `TEXT`: the body of the message, without its header.
    Text,
    /// `MIME`: the MIME header of a body part (only with a part list).
    Mime,
}

/// A `section-spec`: part numbers (empty for the top-level message) and
/// what of that part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub part: Vec<u32>,
    pub text: SectionText,
}

/// Where a walk down the part numbers currently is: a message (the
/// top-level one or one encapsulated in message/rfc822), whose part numbers
/// address its body parts, or a body part.
#[derive(Clone, Copy)]
enum Node<'t> {
    Message(&'t Entity),
    Part(&'t Entity),
}

/// Follows one part number (RFC 3501 section 6.4.5: "Every message has at
/// least one part number. Non-[MIME-IMB] messages, and non-multipart
/// [MIME-IMB] messages with no encapsulated message, only have a part 1.").
fn step(node: Node<'_>, n: u32) -> Option<Node<'_>> {
    let idx = usize::try_from(n).ok()?.checked_sub(1)?;
    let (e, is_message) = match node {
        Node::Message(e) => (e, true),
        Node::Part(e) => (e, false),
    };
    match &e.kind {
        Kind::Multipart(parts) => parts.get(idx).map(Node::Part),
        _ if is_message => (idx == 0).then_some(Node::Part(e)),
        Kind::Message(inner) => step(Node::Message(inner), n),
        Kind::Leaf => None,
    }
}

/// Returns the octets of `section` of `raw`, exactly as RFC 3501 section
/// 6.4.5 defines them; a part that does not exist gives an empty result.
///
/// `HEADER`, `HEADER.FIELDS[.NOT]` and `TEXT` after a part number apply to
/// the message encapsulated in that message/rfc822 part (for any other part
/// they are empty); `MIME` gives the part's own MIME header.
///
/// ```
/// use mailscale_mime::{section, Section, SectionText};
/// let raw = b"Subject: s\r\nFrom: a@b\r\n\r\nbody\r\n";
/// let fields = SectionText::HeaderFields(vec!["FROM".into()]);
/// assert_eq!(&*section(raw, &Section { part: vec![], text: fields }), b"From: a@b\r\n\r\n");
/// assert_eq!(&*section(raw, &Section { part: vec![1], text: SectionText::Full }), b"body\r\n");
/// ```
///
/// # Panics
///
/// Never, whatever the input.
pub fn section<'a>(raw: &'a [u8], section: &Section) -> Cow<'a, [u8]> {
    let root = tree::parse(raw);
    let mut node = Node::Message(&root);
    for &n in &section.part {
        match step(node, n) {
            Some(next) => node = next,
            None => return Cow::Borrowed(&[]),
        }
    }
    let message = match node {
        Node::Message(e) => Some(e),
        Node::Part(e) => match &e.kind {
            Kind::Message(inner) => Some(&**inner),
            _ => None,
        },
    };
    match (&section.text, node) {
        (SectionText::Full, Node::Message(e)) => Cow::Borrowed(&raw[e.start..e.end]),
        (SectionText::Full, Node::Part(e)) => Cow::Borrowed(e.body(raw)),
        (SectionText::Mime, Node::Part(e)) => Cow::Borrowed(e.header(raw)),
        (SectionText::Mime, Node::Message(_)) => Cow::Borrowed(&[]),
        (SectionText::Header, _) => message.map_or(Cow::Borrowed(&[]), |m| Cow::Borrowed(m.header(raw))),
        (SectionText::Text, _) => message.map_or(Cow::Borrowed(&[]), |m| Cow::Borrowed(m.body(raw))),
        (SectionText::HeaderFields(names), _) => {
            message.map_or(Cow::Borrowed(&[]), |m| Cow::Owned(header_fields(raw, m, names, true)))
        }
        (SectionText::HeaderFieldsNot(names), _) => {
            message.map_or(Cow::Borrowed(&[]), |m| Cow::Owned(header_fields(raw, m, names, false)))
        }
    }
}

/// The header lines of `m` whose name is (`keep`) or is not (`!keep`) in
/// `names`, as written, followed by the empty line that ends a header
/// (RFC 3501 section 6.4.5: "the delimiting blank line between the header
/// and the body is not affected by header line subsetting").
fn header_fields(raw: &[u8], m: &Entity, names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in header::fields(m.header(raw), m.start) {
        if names.iter().any(|n| f.is(n)) == keep {
            out.extend_from_slice(&raw[f.line.clone()]);
            if !out.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}
