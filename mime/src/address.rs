//! RFC 5322 section 3.4 address lists, rendered as the IMAP ENVELOPE
//! `env-from` / `env-to` / ... members (RFC 3501 sections 7.4.2 and 9):
//!
//! ```text
//! address         = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")"
//! env-from        = "(" 1*address ")" / nil
//! ```
//!
//! Group syntax (RFC 3501 section 7.4.2): the start of a group is an address
//! with NIL host and the group name as mailbox, the end is all NIL.
//! Display names are passed through as written (unquoted, RFC 2047
//! encoded-words kept raw, like Dovecot and Cyrus do).

use crate::header;
use crate::imapstr::imap_nstring;
use crate::text;

/// Host used when an address has no `@domain` (a NIL host would read as
/// group syntax); the same marker Dovecot uses.
const MISSING_DOMAIN: &str = "MISSING_DOMAIN";
/// Mailbox used when an address has no local part (e.g. `<>`).
const MISSING_MAILBOX: &str = "MISSING_MAILBOX";

/// One member of an envelope address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Mailbox { name: Option<String>, adl: Option<String>, mailbox: String, host: String },
    GroupStart(String),
    GroupEnd,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Word,
    Special(u8),
    Comment,
    DomainLiteral,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    text: Vec<u8>,
    ws_before: bool,
}

impl Token {
    fn is(&self, c: u8) -> bool {
        self.kind == Kind::Special(c)
    }
}

fn tokenize(v: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut ws = false;
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                ws = true;
                i += 1;
                continue;
            }
            b'(' => {
                let (text, next) = comment(v, i + 1);
                out.push(Token { kind: Kind::Comment, text, ws_before: ws });
                ws = true;
                i = next;
                continue;
            }
            b'"' => {
                let mut text = Vec::new();
                i += 1;
                while i < v.len() && v[i] != b'"' {
                    if v[i] == b'\\' && i + 1 < v.len() {
                        i += 1;
                    }
                    text.push(v[i]);
                    i += 1;
                }
                out.push(Token { kind: Kind::Word, text, ws_before: ws });
                i += 1;
            }
            b'[' => {
                let end = v[i..].iter().position(|&b| b == b']').map_or(v.len(), |p| i + p + 1);
                out.push(Token { kind: Kind::DomainLiteral, text: v[i..end].to_vec(), ws_before: ws });
                i = end;
            }
            b'<' | b'>' | b'@' | b',' | b';' | b':' | b'.' => {
                out.push(Token { kind: Kind::Special(c), text: vec![c], ws_before: ws });
                i += 1;
            }
            _ => {
                // At least one byte, so a stray `)` or `]` becomes a word.
                let start = i;
                i += 1;
                while i < v.len() && !b" \t\r\n()\"[<>@,;:.".contains(&v[i]) {
                    i += 1;
                }
                out.push(Token { kind: Kind::Word, text: v[start..i].to_vec(), ws_before: ws });
            }
        }
        ws = false;
    }
    out
}

/// Reads a (possibly nested) comment starting after its `(`; returns its
/// text and the offset after the closing `)`.
fn comment(v: &[u8], mut i: usize) -> (Vec<u8>, usize) {
    let mut depth = 1;
    let mut text = Vec::new();
    while i < v.len() {
        let c = v[i];
        i += 1;
        match c {
            b'\\' if i < v.len() => {
                text.push(v[i]);
                i += 1;
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        text.push(c);
    }
    (text, i)
}

/// Joins tokens back into text, keeping a single space where the source
/// had whitespace between them.
fn join(tokens: &[Token]) -> String {
    let mut out = Vec::new();
    for t in tokens.iter().filter(|t| t.kind != Kind::Comment) {
        if t.ws_before && !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(&t.text);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Joins tokens of an addr-spec part with no spaces (`john . doe` is
/// `john.doe`, RFC 5322 section 3.4.1 allows CFWS around the dots).
fn join_tight(tokens: &[Token]) -> String {
    let bytes: Vec<u8> =
        tokens.iter().filter(|t| t.kind != Kind::Comment).flat_map(|t| t.text.iter().copied()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[derive(Default)]
struct Element {
    phrase: Vec<Token>,
    angle: Option<Vec<Token>>,
}

impl Element {
    fn finish(self, out: &mut Vec<Item>) {
        let comment = self
            .phrase
            .iter()
            .chain(self.angle.iter().flatten())
            .rev()
            .find(|t| t.kind == Kind::Comment)
            .map(|t| String::from_utf8_lossy(&t.text).trim().to_owned())
            .filter(|c| !c.is_empty());
        let (name, adl, spec) = match self.angle {
            Some(angle) => {
                let name = Some(join(&self.phrase)).filter(|n| !n.is_empty()).or(comment);
                let (adl, spec) = route(angle);
                (name, adl, spec)
            }
            None => {
                if self.phrase.iter().all(|t| t.kind == Kind::Comment) {
                    return;
                }
                (comment, None, self.phrase)
            }
        };
        let (mailbox, host) = match spec.iter().rposition(|t| t.is(b'@')) {
            Some(at) => (join_tight(&spec[..at]), join_tight(&spec[at + 1..])),
            None => (join_tight(&spec), String::new()),
        };
        out.push(Item::Mailbox {
            name,
            adl,
            mailbox: non_empty(mailbox, MISSING_MAILBOX),
            host: non_empty(host, MISSING_DOMAIN),
        });
    }
}

fn non_empty(s: String, default: &str) -> String {
    if s.is_empty() {
        default.to_owned()
    } else {
        s
    }
}

/// Splits `[obs-route] addr-spec` (RFC 5322 section 4.4:
/// `obs-route = obs-domain-list ":"`) into the adl and the addr-spec.
fn route(angle: Vec<Token>) -> (Option<String>, Vec<Token>) {
    if angle.first().is_some_and(|t| t.is(b'@')) {
        if let Some(colon) = angle.iter().position(|t| t.is(b':')) {
            let adl = join_tight(&angle[..colon]);
            return (Some(adl), angle[colon + 1..].to_vec());
        }
    }
    (None, angle)
}

/// Parses an address-list / mailbox-list field value leniently.
pub(crate) fn parse(value: &[u8]) -> Vec<Item> {
    let mut out = Vec::new();
    let mut el = Element::default();
    let mut in_group = false;
    let mut tokens = tokenize(value).into_iter();
    while let Some(t) = tokens.next() {
        match t.kind {
            Kind::Special(b',') => std::mem::take(&mut el).finish(&mut out),
            Kind::Special(b':') if !in_group => {
                out.push(Item::GroupStart(join(&el.phrase)));
                in_group = true;
                el = Element::default();
            }
            Kind::Special(b';') if in_group => {
                std::mem::take(&mut el).finish(&mut out);
                out.push(Item::GroupEnd);
                in_group = false;
            }
            Kind::Special(b'<') if el.angle.is_none() => {
                let mut angle = Vec::new();
                for t in tokens.by_ref() {
                    if t.is(b'>') {
                        break;
                    }
                    angle.push(t);
                }
                el.angle = Some(angle);
            }
            _ if el.angle.is_some() && t.kind != Kind::Comment => {}
            _ => el.phrase.push(t),
        }
    }
    el.finish(&mut out);
    if in_group {
        out.push(Item::GroupEnd);
    }
    out
}

/// One mailbox of an address field, for SORT (RFC 5256 section 3 sorts
/// FROM/TO/CC by the `addr-mailbox` of the first address; RFC 5957
/// DISPLAYFROM/DISPLAYTO by the display name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name with RFC 2047 encoded-words decoded, if any.
    pub name: Option<String>,
    /// Local part (`addr-mailbox`), unquoted.
    pub mailbox: String,
    /// Domain (`addr-host`).
    pub host: String,
}

/// The mailboxes of every top-level field called `field`
/// (case-insensitive), in order, group members included and group
/// markers left out. Addresses without a local part or domain carry the
/// `MISSING_MAILBOX` / `MISSING_DOMAIN` markers used in ENVELOPE.
///
/// # Panics
///
/// Never, whatever the input.
pub fn mailboxes(raw: &[u8], field: &str) -> Vec<Mailbox> {
    let block = &raw[..header::header_len(raw)];
    let mut out = Vec::new();
    for f in header::fields(block, 0).iter().filter(|f| f.is(field)) {
        for item in parse(f.value) {
            if let Item::Mailbox { name, mailbox, host, .. } = item {
                let name = name.map(|n| text::decode_2047(n.as_bytes()));
                out.push(Mailbox { name, mailbox, host });
            }
        }
    }
    out
}

/// Renders a parsed list as `"(" 1*address ")"`, or `NIL` when empty.
pub(crate) fn render(items: &[Item]) -> String {
    if items.is_empty() {
        return "NIL".to_owned();
    }
    let mut out = String::from("(");
    for item in items {
        let (name, adl, mailbox, host) = match item {
            Item::Mailbox { name, adl, mailbox, host } => {
                (name.as_deref(), adl.as_deref(), Some(mailbox.as_str()), Some(host.as_str()))
            }
            Item::GroupStart(group) => (None, None, Some(group.as_str()), None),
            Item::GroupEnd => (None, None, None, None),
        };
        out.push('(');
        out.push_str(&imap_nstring(name));
        out.push(' ');
        out.push_str(&imap_nstring(adl));
        out.push(' ');
        out.push_str(&imap_nstring(mailbox));
        out.push(' ');
        out.push_str(&imap_nstring(host));
        out.push(')');
    }
    out.push(')');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str) -> String {
        render(&parse(v.as_bytes()))
    }

    #[test]
    fn mailbox_lists() {
        assert_eq!(r("Terry Gray <gray@cac.washington.edu>"), r#"(("Terry Gray" NIL "gray" "cac.washington.edu"))"#);
        assert_eq!(
            r(r#""Doe, John" <j@x.org>, plain@y.net (Plain Name)"#),
            r#"(("Doe, John" NIL "j" "x.org")("Plain Name" NIL "plain" "y.net"))"#
        );
        assert_eq!(r("=?utf-8?q?J=C3=B6rg?= <j@x>"), r#"(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x"))"#);
        assert_eq!(r("<@a,@b:u@h>"), r#"((NIL "@a,@b" "u" "h"))"#);
        assert_eq!(r("John Q. Public <u@[1.2.3.4]>"), r#"(("John Q. Public" NIL "u" "[1.2.3.4]"))"#);
        assert_eq!(r("nobody"), r#"((NIL NIL "nobody" "MISSING_DOMAIN"))"#);
        assert_eq!(r("<>"), r#"((NIL NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))"#);
        assert_eq!(r(""), "NIL");
        assert_eq!(r(" , ,"), "NIL");
        assert_eq!(r("a) <b@c>"), r#"(("a)" NIL "b" "c"))"#);
        assert_eq!(r("John (Jack) Doe <j@x>"), r#"(("John Doe" NIL "j" "x"))"#);
    }

    #[test]
    fn sort_mailboxes() {
        let raw = b"From: =?utf-8?q?J=C3=B6rg?= <JOERG@x.de>\r\nTo: g: a@b, \"C\" <c@d>;\r\n\r\n";
        let from = mailboxes(raw, "from");
        assert_eq!(from.len(), 1);
        assert_eq!(from[0].name.as_deref(), Some("J\u{f6}rg"));
        assert_eq!((from[0].mailbox.as_str(), from[0].host.as_str()), ("JOERG", "x.de"));
        let to: Vec<_> = mailboxes(raw, "TO").into_iter().map(|m| m.mailbox).collect();
        assert_eq!(to, ["a", "c"]);
        assert!(mailboxes(raw, "cc").is_empty());
    }

    #[test]
    fn groups() {
        assert_eq!(r("undisclosed-recipients:;"), r#"((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))"#);
        assert_eq!(
            r("A Group: a@x, B <b@y>; c@z"),
            concat!(
                r#"((NIL NIL "A Group" NIL)(NIL NIL "a" "x")("B" NIL "b" "y")"#,
                r#"(NIL NIL NIL NIL)(NIL NIL "c" "z"))"#
            )
        );
        assert_eq!(r("open: a@x"), r#"((NIL NIL "open" NIL)(NIL NIL "a" "x")(NIL NIL NIL NIL))"#);
    }
}
