//! Decoded text for SEARCH (RFC 3501 section 6.4.4): header values with
//! RFC 2047 encoded-words decoded, and text/* bodies with their
//! Content-Transfer-Encoding (RFC 2045 section 6) and charset undone.
//! The decoders themselves come from mail-parser.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::{DateTime, HeaderValue};

use crate::header;
use crate::tree::{self, Entity, Kind};

/// Decoded (RFC 2047) values of every top-level header field called `name`
/// (case-insensitive), in message order. Used for SEARCH HEADER, FROM, TO,
/// CC, BCC, SUBJECT and for SORT.
///
/// # Panics
///
/// Never, whatever the input.
pub fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let block = &raw[..header::header_len(raw)];
    header::fields(block, 0).iter().filter(|f| f.is(name)).map(|f| decode_2047(f.value)).collect()
}

/// All top-level header fields as `Name: decoded value` lines (for SEARCH
/// TEXT, which matches "the header or body of the message").
///
/// # Panics
///
/// Never, whatever the input.
pub fn header_text(raw: &[u8]) -> String {
    let block = &raw[..header::header_len(raw)];
    let mut out = String::new();
    for f in header::fields(block, 0) {
        out.push_str(&String::from_utf8_lossy(f.name));
        out.push_str(": ");
        out.push_str(&decode_2047(f.value));
        out.push('\n');
    }
    out
}

/// The text of every text/* part (including those inside encapsulated
/// messages), transfer-decoded and converted to UTF-8, joined by newlines.
/// Other parts are skipped. Used for SEARCH BODY and TEXT.
///
/// # Panics
///
/// Never, whatever the input.
pub fn body_text(raw: &[u8]) -> String {
    let root = tree::parse(raw);
    let mut out = String::new();
    collect_text(raw, &root, &mut out);
    out
}

fn collect_text(raw: &[u8], e: &Entity, out: &mut String) {
    match &e.kind {
        Kind::Multipart(parts) => parts.iter().for_each(|p| collect_text(raw, p, out)),
        Kind::Message(inner) => collect_text(raw, inner, out),
        Kind::Leaf if e.ct.ty.eq_ignore_ascii_case("text") => {
            let fields = e.fields(raw);
            let encoding =
                header::first(&fields, "Content-Transfer-Encoding").map(header::unfold_str).unwrap_or_default();
            let bytes = decode_transfer(e.body(raw), &encoding);
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&decode_charset(&bytes, e.ct.param("charset").unwrap_or("us-ascii")));
        }
        Kind::Leaf => {}
    }
}

/// Undoes a Content-Transfer-Encoding (RFC 2045 section 6). Unknown
/// encodings and 7bit/8bit/binary are passed through.
pub(crate) fn decode_transfer(body: &[u8], encoding: &str) -> Vec<u8> {
    if encoding.eq_ignore_ascii_case("base64") {
        let clean: Vec<u8> =
            body.iter().copied().filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/')).collect();
        // Padding is dropped above and decoded implicitly: the decoder flushes
        // a partial quantum at '='.
        let mut padded = clean;
        match padded.len() % 4 {
            2 => padded.extend_from_slice(b"=="),
            3 => padded.push(b'='),
            1 => {
                padded.pop();
            }
            _ => {}
        }
        base64_decode(&padded).unwrap_or_default()
    } else if encoding.eq_ignore_ascii_case("quoted-printable") {
        decode_qp(body)
    } else {
        body.to_vec()
    }
}

/// Lenient quoted-printable decoding (RFC 2045 section 6.7): `=XX` becomes
/// the octet, `=` before a line break is a soft break, anything else
/// malformed is kept literally.
fn decode_qp(body: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == b'=' {
            match (body.get(i + 1), body.get(i + 2)) {
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(&h), Some(&l)) => {
                    if let (Some(h), Some(l)) = (hex(h), hex(l)) {
                        out.push(h << 4 | l);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Converts `bytes` in `charset` to UTF-8; unknown charsets are read as
/// UTF-8 with replacement characters.
pub(crate) fn decode_charset(bytes: &[u8], charset: &str) -> String {
    let cs = charset.trim();
    let is_utf8ish = ["us-ascii", "utf-8", "utf8", "ascii", ""].iter().any(|c| cs.eq_ignore_ascii_case(c));
    if !is_utf8ish {
        if let Some(decode) = charset_decoder(cs.as_bytes()) {
            return decode(bytes);
        }
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes RFC 2047 encoded-words in a raw (possibly folded) field value
/// and unfolds it.
pub(crate) fn decode_2047(value: &[u8]) -> String {
    let mut buf = header::unfold(value);
    buf.push(b'\n');
    match MessageStream::new(&buf).parse_unstructured() {
        HeaderValue::Text(t) => t.trim().to_owned(),
        _ => String::new(),
    }
}

/// The Date field (RFC 5322 section 3.3) as seconds since the Unix epoch,
/// UTC; `None` when absent or unparseable.
pub(crate) fn sent_date(raw: &[u8]) -> Option<i64> {
    let block = &raw[..header::header_len(raw)];
    let fields = header::fields(block, 0);
    let value = header::unfold_str(header::first(&fields, "Date")?);
    let dt = DateTime::parse_rfc822(&value)?;
    dt.is_valid().then(|| dt.to_timestamp())
}
