//! The MIME entity tree of a message, as byte ranges into the raw message.
//!
//! mail-parser decodes eagerly and normalizes; IMAP needs exact octet
//! offsets of every header and body (RFC 3501 section 6.4.5 BODY[section],
//! section 7.4.2 body-fld-octets), so the structure is found here directly
//! from the bytes, following RFC 2045/2046, and mail-parser is used only for
//! decoding (see `text.rs`).

use crate::header::{self, Params};

/// Deepest nesting of multiparts / message/rfc822 that is parsed; deeper
/// entities are treated as opaque leaves.
const MAX_DEPTH: usize = 64;
/// Most entities parsed in one message; later body parts are ignored.
const MAX_PARTS: usize = 10_000;

/// The media type of an entity (RFC 2045 section 5).
#[derive(Debug, Clone)]
pub(crate) struct ContentType {
    /// Type as written (case kept); compare with `eq_ignore_ascii_case`.
    pub ty: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
}

impl ContentType {
    fn default_for(digest: bool) -> Self {
        let (ty, subtype) = if digest { ("message", "rfc822") } else { ("text", "plain") };
        ContentType { ty: ty.into(), subtype: subtype.into(), params: Vec::new() }
    }

    pub fn is(&self, ty: &str, subtype: &str) -> bool {
        self.ty.eq_ignore_ascii_case(ty) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    pub fn param(&self, attr: &str) -> Option<&str> {
        self.params.iter().find(|(a, _)| a.eq_ignore_ascii_case(attr)).map(|(_, v)| v.as_str())
    }
}

/// One MIME entity: `raw[start..body_start]` is its header (with the empty
/// line), `raw[body_start..end]` its body.
#[derive(Debug)]
pub(crate) struct Entity {
    pub start: usize,
    pub body_start: usize,
    pub end: usize,
    pub ct: ContentType,
    pub kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Leaf,
    /// multipart/*: the body parts in order (possibly none, if the
    /// boundary never occurs).
    Multipart(Vec<Entity>),
    /// message/rfc822: the encapsulated message.
    Message(Box<Entity>),
}

impl Entity {
    pub fn header<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        &raw[self.start..self.body_start]
    }

    pub fn body<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        &raw[self.body_start..self.end]
    }

    pub fn fields<'a>(&self, raw: &'a [u8]) -> Vec<header::Field<'a>> {
        header::fields(self.header(raw), self.start)
    }
}

/// Parses the whole message. Never fails: anything unparseable degrades to
/// a text/plain leaf.
pub(crate) fn parse(raw: &[u8]) -> Entity {
    let mut budget = MAX_PARTS;
    parse_entity(raw, 0, raw.len(), false, 0, &mut budget)
}

fn parse_entity(raw: &[u8], start: usize, end: usize, in_digest: bool, depth: usize, budget: &mut usize) -> Entity {
    let body_start = start + header::header_len(&raw[start..end]);
    let fields = header::fields(&raw[start..body_start], start);
    let mut ct = header::first(&fields, "Content-Type")
        .and_then(content_type)
        .unwrap_or_else(|| ContentType::default_for(in_digest));
    let mut kind = Kind::Leaf;
    let container = ct.ty.eq_ignore_ascii_case("multipart") || ct.is("message", "rfc822");
    if depth >= MAX_DEPTH && container {
        // Too deep to look inside: announce it as opaque data, since a
        // MULTIPART or MESSAGE/RFC822 leaf would break BODYSTRUCTURE
        // syntax (both have their own shapes in RFC 3501 section 9).
        ct.ty = "application".into();
        ct.subtype = "octet-stream".into();
    } else if depth < MAX_DEPTH {
        if ct.ty.eq_ignore_ascii_case("multipart") {
            match ct.param("boundary").filter(|b| !b.is_empty()) {
                Some(boundary) => {
                    let digest = ct.subtype.eq_ignore_ascii_case("digest");
                    let ranges = split_multipart(raw, body_start, end, boundary.as_bytes());
                    let mut parts = Vec::with_capacity(ranges.len());
                    for (s, e) in ranges {
                        if *budget == 0 {
                            break;
                        }
                        *budget -= 1;
                        parts.push(parse_entity(raw, s, e, digest, depth + 1, budget));
                    }
                    kind = Kind::Multipart(parts);
                }
                // RFC 2046 section 5.1.1: the boundary parameter is
                // required; without it the body cannot be split, so treat it
                // as RFC 2045 section 5.2 says for an invalid type.
                None => ct = ContentType::default_for(false),
            }
        } else if ct.is("message", "rfc822") {
            let inner = parse_entity(raw, body_start, end, false, depth + 1, budget);
            kind = Kind::Message(Box::new(inner));
        }
    }
    Entity { start, body_start, end, ct, kind }
}

/// Parses a Content-Type value; `None` if it is not `token "/" token`.
fn content_type(value: &[u8]) -> Option<ContentType> {
    let Params { value, params } = header::parse_params(value);
    let (ty, subtype) = value.split_once('/')?;
    let (ty, subtype) = (ty.trim(), subtype.trim());
    if !header::is_token(ty) || !header::is_token(subtype) {
        return None;
    }
    Some(ContentType { ty: ty.to_owned(), subtype: subtype.to_owned(), params })
}

enum Delimiter {
    Open,
    Close,
}

/// RFC 2046 section 5.1.1: `delimiter := CRLF "--" boundary`,
/// `close-delimiter := delimiter "--"`, each followed by transport padding.
fn delimiter(line: &[u8], boundary: &[u8]) -> Option<Delimiter> {
    let rest = line.strip_prefix(b"--")?.strip_prefix(boundary)?;
    if rest.starts_with(b"--") {
        Some(Delimiter::Close)
    } else if header::trim_wsp(rest).is_empty() {
        Some(Delimiter::Open)
    } else {
        None
    }
}

/// Byte ranges of the body parts of the multipart body `raw[start..end]`.
/// The line break before a delimiter belongs to the delimiter, not to the
/// part (RFC 2046 section 5.1.1). A missing close-delimiter ends the last
/// part at `end`; preamble and epilogue are skipped.
fn split_multipart(raw: &[u8], start: usize, end: usize, boundary: &[u8]) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut line_start = start;
    while line_start < end {
        let found = header::memchr(b'\n', &raw[line_start..end]);
        let next = found.map_or(end, |i| line_start + i + 1);
        let mut line = &raw[line_start..next];
        line = line.strip_suffix(b"\n").unwrap_or(line);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(kind) = delimiter(line, boundary) {
            if let Some(s) = part_start.take() {
                parts.push((s, strip_line_break(raw, s, line_start)));
            }
            match kind {
                Delimiter::Open => part_start = Some(next),
                Delimiter::Close => return parts,
            }
        }
        line_start = next;
    }
    if let Some(s) = part_start {
        parts.push((s, end));
    }
    parts
}

/// End of a part whose delimiter line starts at `delim`: drop the CRLF (or
/// bare LF) just before it, never going below `start`.
fn strip_line_break(raw: &[u8], start: usize, delim: usize) -> usize {
    let mut e = delim;
    if e > start && raw[e - 1] == b'\n' {
        e -= 1;
        if e > start && raw[e - 1] == b'\r' {
            e -= 1;
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        let raw = b"pre\r\n--b\r\n\r\none\r\n--b\r\n\r\n--bx\r\n--b  \r\nX: y\r\n\r\nthree\r\n--b--\r\nepi";
        let parts = split_multipart(raw, 0, raw.len(), b"b");
        let got: Vec<&[u8]> = parts.iter().map(|&(s, e)| &raw[s..e]).collect();
        assert_eq!(got, vec![&b"\r\none"[..], b"\r\n--bx", b"X: y\r\n\r\nthree"]);
    }

    #[test]
    fn split_unclosed_and_empty() {
        let raw = b"--b\r\n--b\r\nlast\r\n";
        let parts = split_multipart(raw, 0, raw.len(), b"b");
        let got: Vec<&[u8]> = parts.iter().map(|&(s, e)| &raw[s..e]).collect();
        assert_eq!(got, vec![&b""[..], b"last\r\n"]);
        assert!(split_multipart(b"no delimiters", 0, 13, b"b").is_empty());
    }
}
