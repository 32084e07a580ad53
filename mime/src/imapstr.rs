//! IMAP string serialization (RFC 3501 section 4.3 and the `string` /
//! `nstring` ABNF rules of section 9) and the case-insensitive match used by
//! SEARCH (RFC 3501 section 6.4.4).

/// Serializes `s` as an IMAP `string` (RFC 3501 section 9):
///
/// ```text
/// string          = quoted / literal
/// quoted          = DQUOTE *QUOTED-CHAR DQUOTE
/// QUOTED-CHAR     = <any TEXT-CHAR except quoted-specials> / "\" quoted-specials
/// literal         = "{" number "}" CRLF *CHAR8
/// ```
///
/// A `quoted` form is used when every octet is a 7-bit `TEXT-CHAR` (no NUL,
/// CR, LF, no 8-bit); `"` and `\` are escaped. Anything else becomes a
/// synchronizing literal `{n}\r\n...` where `n` counts UTF-8 octets.
/// NUL octets cannot be sent in either form (`CHAR8 = %x01-ff`) and are
/// dropped.
///
/// # Panics
///
/// Never, whatever the input.
pub fn imap_string(s: &str) -> String {
    if s.contains('\0') {
        return imap_string(&s.replace('\0', ""));
    }
    if s.bytes().all(is_text_char) {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    } else {
        format!("{{{}}}\r\n{}", s.len(), s)
    }
}

/// Serializes an IMAP `nstring` (RFC 3501 section 9: `nstring = string / nil`):
/// `None` is `NIL`, anything else goes through [`imap_string`].
pub fn imap_nstring(s: Option<&str>) -> String {
    match s {
        Some(s) => imap_string(s),
        None => "NIL".to_owned(),
    }
}

/// `TEXT-CHAR = <any CHAR except CR and LF>`, `CHAR = %x01-7F` (RFC 3501 section 9).
fn is_text_char(b: u8) -> bool {
    matches!(b, 0x01..=0x7f) && b != b'\r' && b != b'\n'
}

/// Case-insensitive substring test for SEARCH keys (RFC 3501 section 6.4.4:
/// "In all search keys that use strings, a message matches the key if the
/// string is a substring of the field. The matching is case-insensitive.").
///
/// Both sides are folded with Unicode lower-casing; an empty needle matches
/// everything.
///
/// # Panics
///
/// Never, whatever the input.
pub fn contains_ci(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if haystack.is_ascii() && needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    fold(haystack).contains(&fold(needle))
}

fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_literal() {
        assert_eq!(imap_string("hello"), "\"hello\"");
        assert_eq!(imap_string(""), "\"\"");
        assert_eq!(imap_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(imap_string("a\r\nb"), "{4}\r\na\r\nb");
        assert_eq!(imap_string("caf\u{e9}"), "{5}\r\ncaf\u{e9}");
        assert_eq!(imap_string("a\0b"), "\"ab\"");
        assert_eq!(imap_string("\0\r"), "{1}\r\n\r");
        assert_eq!(imap_nstring(None), "NIL");
        assert_eq!(imap_nstring(Some("x")), "\"x\"");
    }

    #[test]
    fn case_insensitive() {
        assert!(contains_ci("Hello World", "o wOR"));
        assert!(!contains_ci("Hello", "hellos"));
        assert!(contains_ci("anything", ""));
        assert!(contains_ci("Stra\u{df}e \u{c4}PFEL", "\u{e4}pfel"));
        assert!(!contains_ci("", "a"));
    }
}
