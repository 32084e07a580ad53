//! The "base subject" of RFC 5256 section 2.1, used by SORT SUBJECT and by
//! both THREAD algorithms, and the "reply or forward" test defined there
//! (used by THREAD=REFERENCES step 5, section 3).
//!
//! The ABNF of section 5 that steps (2)-(6) implement:
//!
//! ```text
//! subj-refwd      = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
//! subj-blob       = "[" *BLOBCHAR "]" *WSP
//! subj-fwd-hdr    = "[fwd:"
//! subj-fwd-trl    = "]"
//! subj-leader     = (*subj-blob subj-refwd) / WSP
//! subj-trailer    = "(fwd)" / WSP
//! BLOBCHAR        = %x01-5a / %x5c / %x5e-7f   ; any CHAR except '[' and ']'
//! ```
//!
//! ABNF literals are case-insensitive. After step (1) the text is UTF-8, so
//! BLOBCHAR is read as "any character except `[` and `]`", as Dovecot and
//! Cyrus do; a mailing-list tag such as `[Списки]` is a blob like `[list]`.

use std::borrow::Cow;

use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

/// A base subject and whether extracting it showed the message to be a
/// reply or a forward.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BaseSubject {
    /// The base subject (RFC 5256 section 2.1 step 7), case preserved.
    pub text: String,
    /// True when extraction removed a `subj-refwd` (`Re:`, `Fwd:`, ...), a
    /// `(fwd)` trailer, or a `[fwd: ...]` wrapper: RFC 5256 section 2.1's
    /// definition of "a reply or forward", used by THREAD=REFERENCES step
    /// 5. THREAD=ORDEREDSUBJECT does not use it.
    pub reply_or_forward: bool,
}

/// The base subject of a Subject field value, exactly as RFC 5256 section
/// 2.1 defines it.
///
/// `subject` is the unfolded field value; RFC 2047 encoded-words in it are
/// decoded first (step 1).
///
/// ```
/// use mailscale_imapsort::base_subject;
/// assert_eq!(base_subject("Re: [fwd: Re: Lunch] (fwd)"), "Lunch");
/// assert_eq!(base_subject("[mailscale-dev] RE[2]: \t SORT   speed"), "SORT speed");
/// ```
///
/// # Panics
///
/// Never.
pub fn base_subject(subject: &str) -> String {
    analyze_subject(subject).text
}

/// [`base_subject`] together with the "reply or forward" flag of RFC 5256
/// section 2.1.
///
/// ```
/// use mailscale_imapsort::analyze_subject;
/// let s = analyze_subject("Fwd: Minutes");
/// assert_eq!((s.text.as_str(), s.reply_or_forward), ("Minutes", true));
/// assert!(!analyze_subject("[list] Minutes").reply_or_forward);
/// ```
///
/// # Panics
///
/// Never.
pub fn analyze_subject(subject: &str) -> BaseSubject {
    // (1) encoded-words to UTF-8; tabs and continuations to space; runs of
    // spaces to one space.
    let decoded = decode_2047(subject);
    let normalized = normalize_space(&decoded);
    let mut s = normalized.as_str();
    let mut refwd = false;
    loop {
        // (2) trailers, repeatedly.
        loop {
            if let Some(rest) = strip_suffix_ci(s, "(fwd)") {
                s = rest;
                refwd = true;
            } else if let Some(rest) = s.strip_suffix(' ') {
                s = rest;
            } else {
                break;
            }
        }
        // (5) repeat (3) and (4) until nothing matches.
        loop {
            let before = s.len();
            // (3) every leading subj-leader.
            loop {
                if let Some(rest) = s.strip_prefix(' ') {
                    s = rest;
                } else if let Some(rest) = strip_blobs_and_refwd(s) {
                    s = rest;
                    refwd = true;
                } else {
                    break;
                }
            }
            // (4) a leading subj-blob, unless it is all that is left.
            if let Some(rest) = strip_blob(s) {
                if !rest.is_empty() {
                    s = rest;
                }
            }
            if s.len() == before {
                break;
            }
        }
        // (6) a subj-fwd-hdr ... subj-fwd-trl wrapper, then again from (2).
        if starts_with_ci(s, "[fwd:") && s.ends_with(']') {
            s = &s[5..s.len() - 1];
            refwd = true;
            continue;
        }
        break;
    }
    BaseSubject { text: s.to_owned(), reply_or_forward: refwd }
}

/// The comparison form of a string under the `i;ascii-casemap` collation
/// (RFC 4790 section 9.2) that RFC 5256 prescribes for SORT and THREAD:
/// ASCII letters folded to lower case, everything else compared as octets.
pub(crate) fn casemap(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// RFC 2047 decoding with mail-parser's decoder (the one the mime crate
/// uses for SEARCH). Values without `=?` are returned unchanged, so plain
/// subjects keep their exact spacing for step (1) to normalise.
fn decode_2047(value: &str) -> Cow<'_, str> {
    if !value.contains("=?") {
        return Cow::Borrowed(value);
    }
    let mut buf = Vec::with_capacity(value.len() + 1);
    buf.extend(value.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    buf.push(b'\n');
    match MessageStream::new(&buf).parse_unstructured() {
        HeaderValue::Text(t) => Cow::Owned(t.into_owned()),
        _ => Cow::Borrowed(""),
    }
}

/// Step (1) whitespace: tab, CR and LF become spaces, runs of spaces one.
fn normalize_space(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') { ' ' } else { c };
        if c == ' ' && out.ends_with(' ') {
            continue;
        }
        out.push(c);
    }
    out
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.as_bytes().get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // The prefixes are ASCII, so a match ends on a character boundary.
    starts_with_ci(s, prefix).then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    s.as_bytes()[cut..].eq_ignore_ascii_case(suffix.as_bytes()).then(|| &s[..cut])
}

fn skip_wsp(s: &str) -> &str {
    s.trim_start_matches(' ')
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: the rest after one blob.
fn strip_blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find(['[', ']'])?;
    inner[end..].strip_prefix(']').map(skip_wsp)
}

/// `*subj-blob subj-refwd`, the non-WSP form of `subj-leader`.
fn strip_blobs_and_refwd(s: &str) -> Option<&str> {
    let mut t = s;
    while let Some(rest) = strip_blob(t) {
        t = rest;
    }
    strip_refwd(t)
}

/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`.
fn strip_refwd(s: &str) -> Option<&str> {
    let tail = |word: &str| -> Option<&str> {
        let rest = skip_wsp(strip_prefix_ci(s, word)?);
        let rest = strip_blob(rest).unwrap_or(rest);
        rest.strip_prefix(':')
    };
    tail("re").or_else(|| tail("fwd")).or_else(|| tail("fw"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refwd(s: &str) -> (String, bool) {
        let b = analyze_subject(s);
        (b.text, b.reply_or_forward)
    }

    #[test]
    fn plain_subjects_are_kept() {
        assert_eq!(refwd("Hello world"), ("Hello world".into(), false));
        assert_eq!(refwd(""), (String::new(), false));
        assert_eq!(refwd("   "), (String::new(), false));
        assert_eq!(refwd("Refactor: the parser"), ("Refactor: the parser".into(), false));
        assert_eq!(refwd("Fwdx: y"), ("Fwdx: y".into(), false));
        assert_eq!(refwd("Rex"), ("Rex".into(), false));
    }

    #[test]
    fn whitespace_is_normalised() {
        assert_eq!(refwd("  a \t\t b\r\n c  "), ("a b c".into(), false));
    }

    #[test]
    fn reply_and_forward_leaders() {
        for s in ["Re: x", "RE:x", "re : x", "Re[2]: x", "Re [2] : x", "Fw: x", "FWD: x", "fwd[3]:x", "Re: Re: RE: x"] {
            assert_eq!(refwd(s), ("x".into(), true), "{s:?}");
        }
        assert_eq!(refwd("Re: "), (String::new(), true));
        assert_eq!(refwd("Re:"), (String::new(), true));
    }

    #[test]
    fn trailers() {
        assert_eq!(refwd("x (fwd)"), ("x".into(), true));
        assert_eq!(refwd("x (FWD)  (fwd) "), ("x".into(), true));
        assert_eq!(refwd("x(fwd)"), ("x".into(), true));
        assert_eq!(refwd("x (fwd) y"), ("x (fwd) y".into(), false));
    }

    #[test]
    fn blobs() {
        assert_eq!(refwd("[list] x"), ("x".into(), false));
        assert_eq!(refwd("[list] [tag] x"), ("x".into(), false));
        assert_eq!(refwd("[list]"), ("[list]".into(), false));
        assert_eq!(refwd("Re: [list]"), ("[list]".into(), true));
        assert_eq!(refwd("[list] Re: x"), ("x".into(), true));
        assert_eq!(refwd("[PATCH v2] Re: [foo] bar"), ("bar".into(), true));
        assert_eq!(refwd("[a] [b]"), ("[b]".into(), false));
        assert_eq!(refwd("[unclosed x"), ("[unclosed x".into(), false));
        assert_eq!(refwd("[a[b] x"), ("[a[b] x".into(), false));
        assert_eq!(refwd("[Списки] тема"), ("тема".into(), false));
    }

    #[test]
    fn fwd_wrapper() {
        assert_eq!(refwd("[fwd: x]"), ("x".into(), true));
        assert_eq!(refwd("[Fwd: Re: x]"), ("x".into(), true));
        assert_eq!(refwd("Re: [fwd: Re: x] (fwd)"), ("x".into(), true));
        assert_eq!(refwd("[fwd: [fwd: x (fwd)] ]"), ("x".into(), true));
        assert_eq!(refwd("[fwd: x] y"), ("y".into(), false));
        assert_eq!(refwd("[fwd:]"), (String::new(), true));
    }

    #[test]
    fn encoded_words_are_decoded_first() {
        assert_eq!(refwd("=?utf-8?q?Re=3A_caf=C3=A9?="), ("caf\u{e9}".into(), true));
        assert_eq!(refwd("=?iso-8859-1?q?Sm=F6rg=E5s?= (fwd)"), ("Sm\u{f6}rg\u{e5}s".into(), true));
        assert_eq!(refwd("=?utf-8?b?W2xpc3RdIFJlOiBoZWxsbw==?="), ("hello".into(), true));
    }

    #[test]
    fn casemap_folds_ascii_only() {
        assert_eq!(casemap("AbC \u{c9}"), "abc \u{c9}");
    }
}
