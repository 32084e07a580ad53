//! ENVELOPE, BODY and BODYSTRUCTURE serialization (RFC 3501 section 7.4.2,
//! ABNF rules `envelope`, `body`, `body-type-1part`, `body-type-mpart`,
//! `body-ext-1part`, `body-ext-mpart` in section 9).
//!
//! Media type, subtype, encoding and parameter / disposition names are
//! upper-cased (as in the RFC 3501 examples); parameter values are given as
//! written.

use crate::address;
use crate::header::{self, Field};
use crate::imapstr::{imap_nstring, imap_string};
use crate::tree::{Entity, Kind};

/// A multipart must have at least one body part (`body-type-mpart = 1*body
/// SP media-subtype`); one with none gets this empty text part, as Dovecot
/// does.
const EMPTY_PART: &str = r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)"#;

/// RFC 3501 section 7.4.2 ENVELOPE of the message whose header is `e`'s:
///
/// ```text
/// envelope = "(" env-date SP env-subject SP env-from SP env-sender SP
///            env-reply-to SP env-to SP env-cc SP env-bcc SP
///            env-in-reply-to SP env-message-id ")"
/// ```
pub(crate) fn envelope(raw: &[u8], e: &Entity) -> String {
    let fields = e.fields(raw);
    let text = |name: &str| imap_nstring(header::first(&fields, name).map(header::unfold_str).as_deref());
    let addrs =
        |name: &str| -> Vec<address::Item> { header::first(&fields, name).map(address::parse).unwrap_or_default() };
    let from = addrs("From");
    // "If the Sender or Reply-To lines are absent in the [RFC-2822] header,
    // or are present but empty, the server sets the corresponding member of
    // the envelope to be the same value as the from member."
    let or_from = |list: Vec<address::Item>| if list.is_empty() { from.clone() } else { list };
    let sender = or_from(addrs("Sender"));
    let reply_to = or_from(addrs("Reply-To"));
    let parts = [
        text("Date"),
        text("Subject"),
        address::render(&from),
        address::render(&sender),
        address::render(&reply_to),
        address::render(&addrs("To")),
        address::render(&addrs("Cc")),
        address::render(&addrs("Bcc")),
        text("In-Reply-To"),
        text("Message-ID"),
    ];
    format!("({})", parts.join(" "))
}

/// `body` of RFC 3501 section 9; with `extended` the BODYSTRUCTURE form
/// (extension data present), without it the BODY form.
pub(crate) fn body(raw: &[u8], e: &Entity, extended: bool) -> String {
    let mut out = String::new();
    write_body(raw, e, extended, &mut out);
    out
}

fn write_body(raw: &[u8], e: &Entity, extended: bool, out: &mut String) {
    let fields = e.fields(raw);
    out.push('(');
    match &e.kind {
        Kind::Multipart(parts) => {
            // body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
            if parts.is_empty() {
                out.push_str(EMPTY_PART);
            }
            for p in parts {
                write_body(raw, p, extended, out);
            }
            out.push(' ');
            out.push_str(&imap_string(&e.ct.subtype.to_ascii_uppercase()));
            if extended {
                // body-ext-mpart = body-fld-param [SP body-fld-dsp
                //                  [SP body-fld-lang [SP body-fld-loc]]]
                out.push(' ');
                out.push_str(&params(&e.ct.params, false));
                write_ext_tail(&fields, out);
            }
        }
        kind => {
            // body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP
            //               body-fld-enc SP body-fld-octets
            let is_text = e.ct.ty.eq_ignore_ascii_case("text");
            let body = e.body(raw);
            let text = |name: &str| header::first(&fields, name).map(header::unfold_str);
            let encoding = text("Content-Transfer-Encoding")
                .filter(|s| !s.is_empty())
                .map_or_else(|| "7BIT".to_owned(), |s| s.to_ascii_uppercase());
            let items = [
                imap_string(&e.ct.ty.to_ascii_uppercase()),
                imap_string(&e.ct.subtype.to_ascii_uppercase()),
                params(&e.ct.params, is_text),
                imap_nstring(text("Content-ID").as_deref()),
                imap_nstring(text("Content-Description").as_deref()),
                imap_string(&encoding),
                body.len().to_string(),
            ];
            out.push_str(&items.join(" "));
            if let Kind::Message(inner) = kind {
                // body-type-msg = media-message SP body-fields SP envelope
                //                 SP body SP body-fld-lines
                out.push(' ');
                out.push_str(&envelope(raw, inner));
                out.push(' ');
                write_body(raw, inner, extended, out);
                out.push(' ');
                out.push_str(&lines(body).to_string());
            } else if is_text {
                // body-type-text = media-text SP body-fields SP body-fld-lines
                out.push(' ');
                out.push_str(&lines(body).to_string());
            }
            if extended {
                // body-ext-1part = body-fld-md5 [SP body-fld-dsp
                //                  [SP body-fld-lang [SP body-fld-loc]]]
                out.push(' ');
                out.push_str(&imap_nstring(text("Content-MD5").as_deref()));
                write_ext_tail(&fields, out);
            }
        }
    }
    out.push(')');
}

/// `SP body-fld-dsp SP body-fld-lang SP body-fld-loc`, shared by single-part
/// and multipart extension data.
fn write_ext_tail(fields: &[Field<'_>], out: &mut String) {
    out.push(' ');
    out.push_str(&disposition(fields));
    out.push(' ');
    out.push_str(&language(fields));
    out.push(' ');
    let loc = header::first(fields, "Content-Location").map(header::unfold_str);
    out.push_str(&imap_nstring(loc.as_deref()));
}

/// `body-fld-param = "(" string SP string *(SP string SP string) ")" / nil`.
/// A text part without parameters gets the RFC 2045 section 5.2 default
/// charset, as Dovecot and the RFC 3501 examples show.
fn params(params: &[(String, String)], is_text: bool) -> String {
    if params.is_empty() {
        return if is_text { r#"("CHARSET" "US-ASCII")"#.to_owned() } else { "NIL".to_owned() };
    }
    let items: Vec<String> =
        params.iter().map(|(a, v)| format!("{} {}", imap_string(&a.to_ascii_uppercase()), imap_string(v))).collect();
    format!("({})", items.join(" "))
}

/// `body-fld-dsp = "(" string SP body-fld-param ")" / nil` from the
/// Content-Disposition field (RFC 2183).
fn disposition(fields: &[Field<'_>]) -> String {
    let Some(raw) = header::first(fields, "Content-Disposition") else {
        return "NIL".to_owned();
    };
    let p = header::parse_params(raw);
    if p.value.is_empty() {
        return "NIL".to_owned();
    }
    format!("({} {})", imap_string(&p.value.to_ascii_uppercase()), params(&p.params, false))
}

/// `body-fld-lang = nstring / "(" string *(SP string) ")"` from the
/// Content-Language field (RFC 3282).
fn language(fields: &[Field<'_>]) -> String {
    let Some(raw) = header::first(fields, "Content-Language") else {
        return "NIL".to_owned();
    };
    let value = header::parse_params(raw).value;
    let tags: Vec<String> = value.split(',').map(str::trim).filter(|t| !t.is_empty()).map(imap_string).collect();
    match tags.len() {
        0 => "NIL".to_owned(),
        1 => tags[0].clone(),
        _ => format!("({})", tags.join(" ")),
    }
}

/// `body-fld-lines`: the number of lines, counting a last line that has no
/// line break.
pub(crate) fn lines(body: &[u8]) -> usize {
    let n = body.iter().filter(|&&b| b == b'\n').count();
    n + usize::from(body.last().is_some_and(|&b| b != b'\n'))
}
