//! What a script can see of a message: its header fields (RFC 2047
//! decoded, RFC 5228 section 2.7.2), the addresses in them, its size, its
//! body (RFC 5173) and the SMTP envelope.

use std::cell::OnceCell;

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// The message being filtered, borrowed from its raw RFC 5322 bytes.
/// Parsing is lazy: a script that only tests headers never walks the MIME
/// structure.
pub struct MessageContext<'a> {
    raw: &'a [u8],
    body_start: usize,
    parsed: OnceCell<Option<mail_parser::Message<'a>>>,
}

impl std::fmt::Debug for MessageContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageContext").field("size", &self.raw.len()).finish_non_exhaustive()
    }
}

/// The SMTP envelope of this delivery (RFC 5228 section 5.4) and who the
/// mailbox belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `MAIL FROM` reverse-path without angle brackets; empty for the null
    /// sender `<>` (bounces), to which vacation never replies.
    pub from: String,
    /// `RCPT TO` of this delivery: the mailbox owner's address. Vacation
    /// replies come from it unless `:from` says otherwise.
    pub to: String,
    /// Other addresses of the mailbox owner (aliases). Vacation answers
    /// only mail that names one of `to`, these, or its `:addresses` in a
    /// recipient field (RFC 5230 section 4.5).
    pub aliases: Vec<String>,
}

/// One address of an address header: `local@domain`, or just `local`
/// when the address has no domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Address {
    pub local: String,
    pub domain: Option<String>,
}

impl Address {
    /// Splits an envelope address (`local@domain`, optional `<>`).
    pub(crate) fn parse(s: &str) -> Address {
        let s = s.trim();
        let s = s.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(s);
        match s.rsplit_once('@') {
            Some((l, d)) => Address { local: l.to_owned(), domain: Some(d.to_owned()) },
            None => Address { local: s.to_owned(), domain: None },
        }
    }

    pub(crate) fn all(&self) -> String {
        match &self.domain {
            Some(d) => format!("{}@{d}", self.local),
            None => self.local.clone(),
        }
    }
}

impl<'a> MessageContext<'a> {
    /// Wraps a raw message (header, empty line, body). Never fails: a
    /// message without an empty line is all header.
    pub fn new(raw: &'a [u8]) -> Self {
        MessageContext { raw, body_start: header_len(raw), parsed: OnceCell::new() }
    }

    /// Size in octets, as the `size` test sees it (RFC 5228 section 5.9).
    pub fn size(&self) -> u64 {
        self.raw.len() as u64
    }

    /// The raw message.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Values of every top-level field called `name` (case-insensitive), in
    /// order, unfolded, RFC 2047 encoded-words decoded, surrounding white
    /// space removed.
    pub fn header(&self, name: &str) -> Vec<String> {
        mailscale_mime::header_values(&self.raw[..self.body_start], name)
    }

    /// Whether a field called `name` is present (even with an empty value).
    pub fn has_header(&self, name: &str) -> bool {
        !self.header(name).is_empty()
    }

    /// The addresses of every top-level field called `name` (group
    /// members included, group names not).
    pub(crate) fn addresses(&self, name: &str) -> Vec<Address> {
        mailscale_mime::mailboxes(&self.raw[..self.body_start], name)
            .into_iter()
            .map(|m| Address {
                local: if m.mailbox == "MISSING_MAILBOX" { String::new() } else { m.mailbox },
                domain: (m.host != "MISSING_DOMAIN" && !m.host.is_empty()).then_some(m.host),
            })
            .collect()
    }

    /// The body exactly as received (`body :raw`).
    pub(crate) fn raw_body(&self) -> String {
        String::from_utf8_lossy(&self.raw[self.body_start..]).into_owned()
    }

    /// Every text part, transfer-decoded and converted to UTF-8 (`body
    /// :text`, RFC 5173 section 5.3).
    pub(crate) fn body_text(&self) -> String {
        mailscale_mime::body_text(self.raw)
    }

    /// The decoded content of every leaf part whose media type matches one
    /// of `types` (`body :content`, RFC 5173 section 5.2): `""` matches
    /// every part, `"text"` every text subtype, `"text/html"` exactly that.
    /// Parts inside message/rfc822 parts are included. text/* parts are
    /// converted to UTF-8; other parts are transfer-decoded only.
    pub(crate) fn body_parts(&self, types: &[String]) -> Vec<String> {
        let Some(msg) = self.parsed.get_or_init(|| MessageParser::default().parse(self.raw)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        collect_parts(msg, types, &mut out, 0);
        out
    }
}

fn collect_parts(msg: &mail_parser::Message<'_>, types: &[String], out: &mut Vec<String>, depth: usize) {
    for part in &msg.parts {
        let (ty, sub) = match part.content_type() {
            Some(ct) => (ct.c_type.to_string(), ct.c_subtype.as_deref().unwrap_or("").to_owned()),
            None => ("text".to_owned(), "plain".to_owned()),
        };
        let wanted = types.iter().any(|t| {
            let t = t.trim();
            match t.split_once('/') {
                _ if t.is_empty() => true,
                Some((tt, ts)) => tt.eq_ignore_ascii_case(&ty) && ts.eq_ignore_ascii_case(&sub),
                None => t.eq_ignore_ascii_case(&ty),
            }
        });
        match &part.body {
            PartType::Text(t) | PartType::Html(t) if wanted => out.push(t.to_string()),
            PartType::Binary(b) | PartType::InlineBinary(b) if wanted => {
                out.push(String::from_utf8_lossy(b).into_owned());
            }
            PartType::Message(inner) if depth < 8 => collect_parts(inner, types, out, depth + 1),
            _ => {}
        }
    }
}

/// Length of the header block including the empty line that ends it.
fn header_len(raw: &[u8]) -> usize {
    let mut pos = 0;
    loop {
        match raw.get(pos..) {
            Some([b'\n', ..]) => return pos + 1,
            Some([b'\r', b'\n', ..]) => return pos + 2,
            Some([]) | None => return raw.len(),
            Some(rest) => match rest.iter().position(|&b| b == b'\n') {
                Some(i) => pos += i + 1,
                None => return raw.len(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_length() {
        assert_eq!(header_len(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_len(b"A: b\n\nbody"), 6);
        assert_eq!(header_len(b"\r\nbody"), 2);
        assert_eq!(header_len(b"A: b"), 4);
        assert_eq!(header_len(b""), 0);
    }

    #[test]
    fn headers_are_decoded_and_addresses_split() {
        let raw = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nTo: Ann <ann@x.org>, bob\r\n\r\nhi";
        let m = MessageContext::new(raw);
        assert_eq!(m.header("subject"), ["Gr\u{fc}\u{df}e"]);
        assert!(m.has_header("TO"));
        assert!(!m.has_header("cc"));
        let to = m.addresses("to");
        assert_eq!(to[0].all(), "ann@x.org");
        assert_eq!(to[1], Address { local: "bob".into(), domain: None });
        assert_eq!(m.raw_body(), "hi");
    }
}
