//! RFC 5322 header blocks: where a header ends, its fields, unfolding, and
//! the `type/subtype; attr=value` syntax of RFC 2045 section 5.1 shared by
//! Content-Type and Content-Disposition (RFC 2183).

use std::ops::Range;

/// One header field as it appears in the raw message.
#[derive(Debug, Clone)]
pub(crate) struct Field<'a> {
    /// Field name, surrounding whitespace removed, case preserved.
    pub name: &'a [u8],
    /// Raw value after the colon, folding kept, final line ending removed.
    pub value: &'a [u8],
    /// Absolute byte range of the whole field including its line ending.
    pub line: Range<usize>,
}

impl Field<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Length of the header block at the start of `data`, including the empty
/// line that ends it (RFC 5322 section 2.1: header fields, then an empty
/// line, then the body). Without an empty line the whole input is header.
pub(crate) fn header_len(data: &[u8]) -> usize {
    let mut pos = 0;
    while pos < data.len() {
        match data[pos] {
            b'\n' => return pos + 1,
            b'\r' if data.get(pos + 1) == Some(&b'\n') => return pos + 2,
            _ => {}
        }
        match memchr(b'\n', &data[pos..]) {
            Some(i) => pos += i + 1,
            None => return data.len(),
        }
    }
    data.len()
}

pub(crate) fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Splits a header block (as delimited by [`header_len`]) into fields.
/// `base` is the absolute offset of `block` in the message. Lines without a
/// colon are skipped, and so are continuation lines that follow them.
pub(crate) fn fields(block: &[u8], base: usize) -> Vec<Field<'_>> {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut current_valid = false;
    let mut value_start = 0;
    let mut pos = 0;
    while pos < block.len() {
        let next = memchr(b'\n', &block[pos..]).map_or(block.len(), |i| pos + i + 1);
        let line = &block[pos..next];
        let content = trim_eol(line);
        if content.is_empty() {
            break;
        }
        if content[0] == b' ' || content[0] == b'\t' {
            if current_valid {
                if let Some(f) = out.last_mut() {
                    f.value = &block[value_start..pos + content.len()];
                    f.line.end = next + base;
                }
            }
        } else if let Some(colon) = memchr(b':', content) {
            let name = trim_wsp(&content[..colon]);
            current_valid = !name.is_empty();
            if current_valid {
                value_start = pos + colon + 1;
                out.push(Field {
                    name,
                    value: &block[pos + colon + 1..pos + content.len()],
                    line: pos + base..next + base,
                });
            }
        } else {
            current_valid = false;
        }
        pos = next;
    }
    out
}

/// The first field called `name` (case-insensitive).
pub(crate) fn first<'a>(fields: &[Field<'a>], name: &str) -> Option<&'a [u8]> {
    fields.iter().find(|f| f.is(name)).map(|f| f.value)
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub(crate) fn trim_wsp(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Unfolds a raw field value (RFC 5322 section 2.2.3: remove the CRLF that
/// precedes folding whitespace) and trims surrounding whitespace.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'\r' if value.get(i + 1) == Some(&b'\n') => i += 1,
            b'\n' => {}
            b => out.push(b),
        }
        i += 1;
    }
    trim_wsp(&out).to_vec()
}

/// Unfolded value as text; invalid UTF-8 is replaced, never rejected.
pub(crate) fn unfold_str(value: &[u8]) -> String {
    String::from_utf8_lossy(&unfold(value)).into_owned()
}

/// A parsed `value *(";" parameter)` field (RFC 2045 section 5.1,
/// RFC 2183 section 2). Names keep their case; values are unquoted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    pub value: String,
    pub params: Vec<(String, String)>,
}

#[cfg(test)]
impl Params {
    pub fn get(&self, attr: &str) -> Option<&str> {
        self.params.iter().find(|(a, _)| a.eq_ignore_ascii_case(attr)).map(|(_, v)| v.as_str())
    }
}

/// Parses `value *(";" attribute "=" value)` leniently: comments are
/// dropped, quoted-strings unescaped, empty attributes ignored.
pub(crate) fn parse_params(raw: &[u8]) -> Params {
    let text = strip_comments(&unfold_str(raw));
    let mut segments = split_unquoted(&text, ';').into_iter();
    let value = segments.next().unwrap_or_default().trim().to_owned();
    let mut params = Vec::new();
    for seg in segments {
        let Some((attr, val)) = seg.split_once('=') else {
            continue;
        };
        let attr = attr.trim();
        if attr.is_empty() {
            continue;
        }
        params.push((attr.to_owned(), unquote(val.trim())));
    }
    Params { value, params }
}

fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in s.chars() {
        let cur = out.last_mut().expect("never empty");
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if quoted => {
                escaped = true;
                cur.push(c);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c == sep && !quoted => out.push(String::new()),
            c => cur.push(c),
        }
    }
    out
}

/// Removes surrounding DQUOTEs and quoted-pair backslashes (RFC 5322 3.2.4).
pub(crate) fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"') else {
        return s.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

/// RFC 2045 `token`: 1*<any (US-ASCII) CHAR except SPACE, CTLs, or tspecials>.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b > 0x20 && b < 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_split_and_fields() {
        let raw = b"Subject: a\r\n  b\r\nX-No-Colon\r\nFrom:x@y\r\n\r\nbody";
        let hl = header_len(raw);
        assert_eq!(&raw[hl..], b"body");
        let f = fields(&raw[..hl], 0);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].value, b" a\r\n  b");
        assert_eq!(&raw[f[0].line.clone()], b"Subject: a\r\n  b\r\n");
        assert_eq!(unfold(f[0].value), b"a  b");
        assert_eq!(f[1].name, b"From");
        assert_eq!(header_len(b""), 0);
        assert_eq!(header_len(b"\r\nx"), 2);
        assert_eq!(header_len(b"A: b"), 4);
        assert_eq!(header_len(b"A: b\n\nc"), 6);
    }

    #[test]
    fn params() {
        let p = parse_params(b" text/plain (c); charset=\"utf-8\"; name=\"a;b\\\"c\";;x");
        assert_eq!(p.value, "text/plain");
        assert_eq!(p.get("CHARSET"), Some("utf-8"));
        assert_eq!(p.get("name"), Some("a;b\"c"));
        assert_eq!(p.params.len(), 2);
    }
}
