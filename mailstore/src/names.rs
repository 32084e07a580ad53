//! Validated names: a [`Username`] is safe as a path component, a [`MailboxName`] is a clean
//! `/`-separated hierarchy that can never escape the user's namespace.

use std::fmt;

use crate::Error;

/// IMAP hierarchy separator used by mailstored (`LIST "" ""` answers with it).
pub const SEPARATOR: char = '/';

/// A login name: 1–255 bytes of `[a-z0-9._@+-]`, not starting with `.`, stored lower-case.
///
/// The same string names the user's directory under `mail/` and `metadata/`, so the charset is
/// what keeps it a single, harmless path component.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// # Errors
    /// [`Error::InvalidUsername`] when empty, too long, starting with `.` or holding anything
    /// outside `[A-Za-z0-9._@+-]` (CR, LF, NUL, `/`, `*`, `(`, spaces...).
    pub fn new(s: &str) -> Result<Self, Error> {
        let ok = !s.is_empty()
            && s.len() <= 255
            && !s.starts_with('.')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
        if ok {
            Ok(Username(s.to_ascii_lowercase()))
        } else {
            Err(Error::InvalidUsername)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mailbox name in UTF-8 (already decoded from modified UTF-7), hierarchy separated by `/`.
///
/// `INBOX` is case-insensitive (RFC 3501 5.1) and stored as `INBOX`; a trailing separator is
/// dropped (RFC 3501 6.3.3, `CREATE foo/`). Refused: empty names or components, a leading `/`,
/// `.` and `..` components, NUL/CR/LF and other control characters, names over 1,000 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MailboxName(String);

impl MailboxName {
    /// # Errors
    /// [`Error::InvalidMailboxName`] with the reason.
    pub fn new(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Err(Error::InvalidMailboxName(why.to_string()));
        let trimmed = s.strip_suffix(SEPARATOR).unwrap_or(s);
        if trimmed.is_empty() {
            return bad("empty mailbox name");
        }
        if trimmed.len() > 1000 {
            return bad("mailbox name too long");
        }
        if trimmed.starts_with(SEPARATOR) {
            return bad("absolute mailbox names (leading /) are not allowed");
        }
        if trimmed.chars().any(|c| c.is_control()) {
            return bad("control characters (NUL, CR, LF...) are not allowed in mailbox names");
        }
        for part in trimmed.split(SEPARATOR) {
            match part {
                "" => return bad("empty hierarchy level (//) in mailbox name"),
                "." | ".." => return bad("'.' and '..' are not allowed as mailbox name levels"),
                _ => {}
            }
        }
        let mut name = trimmed.to_string();
        let first = name.split(SEPARATOR).next().unwrap_or_default();
        if first.eq_ignore_ascii_case("INBOX") {
            name.replace_range(..first.len(), "INBOX");
        }
        Ok(MailboxName(name))
    }

    pub fn inbox() -> Self {
        MailboxName("INBOX".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_inbox(&self) -> bool {
        self.0 == "INBOX"
    }

    /// The parent levels, nearest last: `a/b/c` → `a`, `a/b`.
    pub fn ancestors(&self) -> Vec<MailboxName> {
        let mut out = Vec::new();
        for (i, c) in self.0.char_indices() {
            if c == SEPARATOR {
                out.push(MailboxName(self.0[..i].to_string()));
            }
        }
        out
    }

    /// Whether `self` is strictly below `parent` in the hierarchy.
    pub fn is_child_of(&self, parent: &MailboxName) -> bool {
        self.0.len() > parent.0.len()
            && self.0.starts_with(&parent.0)
            && self.0[parent.0.len()..].starts_with(SEPARATOR)
    }

    /// `self` with the prefix `from` replaced by `to` (for RENAME of a subtree).
    pub fn reparent(&self, from: &MailboxName, to: &MailboxName) -> MailboxName {
        MailboxName(format!("{}{}", to.0, &self.0[from.0.len()..]))
    }
}

impl fmt::Display for MailboxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(Username::new("Demo1").unwrap().as_str(), "demo1");
        for bad in ["", ".x", "a/b", "a\r\nb", "a\0", "*)(uid=*", "a b", "../x"] {
            assert!(Username::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mailbox_names() {
        assert_eq!(MailboxName::new("inbox").unwrap().as_str(), "INBOX");
        assert_eq!(MailboxName::new("Inbox/Sub").unwrap().as_str(), "INBOX/Sub");
        assert_eq!(MailboxName::new("foo/").unwrap().as_str(), "foo");
        assert_eq!(MailboxName::new("Entwürfe").unwrap().as_str(), "Entwürfe");
        for bad in ["", "/abs", "a/../b", "..", "a/./b", "a//b", "a\0b", "a\r\nb"] {
            assert!(MailboxName::new(bad).is_err(), "{bad:?}");
        }
        let n = MailboxName::new("a/b/c").unwrap();
        assert_eq!(n.ancestors().len(), 2);
        assert!(n.is_child_of(&MailboxName::new("a").unwrap()));
        assert!(!MailboxName::new("ab").unwrap().is_child_of(&MailboxName::new("a").unwrap()));
    }
}
