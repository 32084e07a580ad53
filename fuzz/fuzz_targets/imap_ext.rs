//! The IMAP extension pre-parser (`backend-daemon/src/imap/ext.rs`: SEARCH RETURN, SEARCHRES
//! `$`, LIST-EXTENDED / LIST-STATUS) on any framed command, with no selected mailbox, an empty
//! saved result or a saved set. Never panics nor loops; a command it passes on unchanged is
//! borrowed as is; a rewrite only removes a RETURN clause or replaces `$` atoms, so it is
//! bounded by the input plus the saved set per `$`; BAD and LIST answers carry the command's
//! tag; a LIST-EXTENDED has at least one pattern.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// `ext.rs` is a private module of `mailstored`'s `imap`, used only by its session; it is
/// compiled here from its source, next to the one sibling it reaches (`super::utf7`), so that
/// fuzzing it needs no change to the daemon's module tree.
#[path = "../../backend-daemon/src/imap/ext.rs"]
#[allow(dead_code)]
mod ext;
mod utf7 {
    pub use mailstored::imap::utf7::decode;
}

use ext::{preprocess, Pre, Saved};

struct Fixed(Option<Option<&'static str>>);

impl Saved for Fixed {
    fn set(&self, uid: bool) -> Option<Option<String>> {
        let set = self.0?;
        Some(set.map(|s| if uid { s.to_string() } else { s.replace('9', "2") }))
    }
}

const SETS: [Fixed; 3] = [Fixed(None), Fixed(Some(None)), Fixed(Some(Some("1:3,7,9:*")))];

/// The first atom after leading blanks, `[...]` included (the scanner's atom rule).
fn tag(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| !matches!(b, b' ' | b'\r' | b'\n')).unwrap_or(raw.len());
    let mut depth = 0i32;
    let mut end = start;
    while end < raw.len() {
        match raw[end] {
            b'[' => depth += 1,
            b']' => depth -= 1,
            b' ' | b'(' | b')' | b'"' | b'\r' | b'\n' if depth <= 0 => break,
            _ => {}
        }
        end += 1;
    }
    String::from_utf8_lossy(&raw[start..end]).into_owned()
}

fuzz_target!(|data: &[u8]| {
    let dollars = data.iter().filter(|&&b| b == b'$').count();
    for saved in &SETS {
        match preprocess(data, saved) {
            Pre::Codec { bytes, search_return } => {
                if let std::borrow::Cow::Owned(b) = &bytes {
                    // "UID " + the set, or "UID <command> 4294967295" for an empty result.
                    let per_dollar = 4 + "1:3,7,9:*".len().max("UID EXPUNGE 4294967295".len());
                    assert!(b.len() <= data.len() + dollars * per_dollar, "{} -> {} bytes", data.len(), b.len());
                    assert!(b.as_slice() != data || search_return.is_some(), "an unchanged rewrite is borrowed");
                }
            }
            Pre::List { tag: t, list } => {
                assert_eq!(t, tag(data));
                assert!(!list.patterns.is_empty(), "LIST-EXTENDED without a pattern");
                assert!(!list.recursive_match || list.subscribed);
            }
            Pre::Bad { tag: t, text } => {
                assert_eq!(t, tag(data));
                assert!(!text.is_empty());
            }
        }
    }
});
