//! LIST and LSUB (RFC 3501 6.3.8/6.3.9) with CHILDREN (RFC 3348) and SPECIAL-USE (RFC 6154)
//! attributes. Hierarchy separator: `/`.

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use mailstore::{MailboxRecord, UserStore};

use super::resp;
use super::session::{list_pattern, Refusal};
use crate::net::Conn;

/// Matches `name` against a LIST pattern: `*` matches anything, `%` anything but `/`.
pub fn matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('%') => {
                let stop = n.iter().position(|&c| c == '/').unwrap_or(n.len());
                (0..=stop).any(|i| go(&p[1..], &n[i..]))
            }
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    if go(&p, &n) {
        return true;
    }
    // INBOX is case-insensitive (RFC 3501 5.1).
    if let Some(rest) = name.strip_prefix("INBOX") {
        if pattern.len() >= 5 && pattern.is_char_boundary(5) && pattern[..5].eq_ignore_ascii_case("INBOX") {
            let p2: Vec<char> = format!("INBOX{}", &pattern[5..]).chars().collect();
            let n2: Vec<char> = format!("INBOX{rest}").chars().collect();
            return go(&p2, &n2);
        }
    }
    false
}

fn attributes<'a>(m: &'a MailboxRecord, all: &[MailboxRecord]) -> Vec<&'a str> {
    let prefix = format!("{}/", m.name);
    let has_children = all.iter().any(|o| o.name.starts_with(&prefix));
    let mut attrs = vec![if has_children { "\\HasChildren" } else { "\\HasNoChildren" }];
    if m.noselect {
        attrs.push("\\Noselect");
    }
    if let Some(u) = &m.special_use {
        attrs.push(u.as_str());
    }
    attrs
}

/// Answers LIST (or LSUB when `subscribed`).
///
/// # Errors
/// A refusal for a malformed pattern or a store failure.
pub fn list(
    user: &UserStore,
    reference: &Mailbox<'_>,
    wildcard: &ListMailbox<'_>,
    subscribed: bool,
    conn: &mut Conn,
) -> Result<(), Refusal> {
    let reference = match reference {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(o) => super::utf7::decode(o.as_ref()).map_err(Refusal::bad)?,
    };
    let pattern = list_pattern(wildcard)?;
    if pattern.is_empty() {
        // RFC 3501 6.3.8: the hierarchy delimiter and root name.
        conn.queue(&resp::list(subscribed, &["\\Noselect"], ""));
        return Ok(());
    }
    let full = if reference.is_empty() || pattern.starts_with('/') {
        pattern
    } else if reference.ends_with('/') {
        format!("{reference}{pattern}")
    } else {
        format!("{reference}/{pattern}")
    };
    let all = crate::blocking(|| user.list_mailboxes())?;
    if subscribed {
        let subs = crate::blocking(|| user.subscriptions())?;
        for s in subs.iter().filter(|s| matches(&full, s)) {
            let attrs = match all.iter().find(|m| &m.name == s) {
                Some(m) => attributes(m, &all),
                None => vec!["\\Noselect"],
            };
            conn.queue(&resp::list(true, &attrs, s));
        }
        return Ok(());
    }
    for m in all.iter().filter(|m| matches(&full, &m.name)) {
        conn.queue(&resp::list(false, &attributes(m, &all), &m.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("Inbox/%", "INBOX/x"));
        assert!(!matches("Dra", "Drafts"));
        assert!(matches("Dr*s", "Drafts"));
    }
}
