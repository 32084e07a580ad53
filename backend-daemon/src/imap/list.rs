//! LIST and LSUB (RFC 3501 6.3.8/6.3.9) with CHILDREN (RFC 3348) and SPECIAL-USE (RFC 6154)
//! attributes. Hierarchy separator: `/`.

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use mailstore::{MailboxRecord, UserStore};

use super::resp;
use imap_codec::imap_types::status::StatusDataItemName;
use mailstore::MailboxName;

use super::ext::ListExt;
use super::session::{list_pattern, Refusal, Session};
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

/// The reference and pattern joined as LIST does (RFC 3501 6.3.8).
fn full_pattern(reference: &str, pattern: &str) -> String {
    if reference.is_empty() || pattern.starts_with('/') {
        pattern.to_string()
    } else if reference.ends_with('/') {
        format!("{reference}{pattern}")
    } else {
        format!("{reference}/{pattern}")
    }
}

/// The STATUS items of LIST-STATUS as codec values.
fn status_items(names: &[String]) -> Result<Vec<StatusDataItemName>, Refusal> {
    names
        .iter()
        .map(|n| match n.as_str() {
            "MESSAGES" => Ok(StatusDataItemName::Messages),
            "RECENT" => Ok(StatusDataItemName::Recent),
            "UIDNEXT" => Ok(StatusDataItemName::UidNext),
            "UIDVALIDITY" => Ok(StatusDataItemName::UidValidity),
            "UNSEEN" => Ok(StatusDataItemName::Unseen),
            "DELETED" => Ok(StatusDataItemName::Deleted),
            "HIGHESTMODSEQ" => Ok(StatusDataItemName::HighestModSeq),
            other => Err(Refusal::bad(format!("LIST RETURN STATUS: unknown item {other}"))),
        })
        .collect()
}

/// LIST-EXTENDED (RFC 5258) with LIST-STATUS (RFC 5819) and the SPECIAL-USE selection option
/// (RFC 6154 5.3).
///
/// # Errors
/// BAD for unknown STATUS items, NO on store failure.
pub fn list_extended(session: &Session, user: &UserStore, l: &ListExt, conn: &mut Conn) -> Result<(), Refusal> {
    let status = l.ret_status.as_deref().map(status_items).transpose()?;
    if l.patterns.iter().all(String::is_empty) && !l.subscribed && !l.special_use_only {
        conn.queue(&resp::list(false, &["\\Noselect"], ""));
        return Ok(());
    }
    let patterns: Vec<String> =
        l.patterns.iter().filter(|p| !p.is_empty()).map(|p| full_pattern(&l.reference, p)).collect();
    let matched = |name: &str| patterns.iter().any(|p| matches(p, name));
    let all = crate::blocking(|| user.list_mailboxes())?;
    let subs = crate::blocking(|| user.subscriptions())?;
    let subscribed = |name: &str| subs.iter().any(|s| s == name);
    let want_sub_attr = l.subscribed || l.ret_subscribed;
    // (name, attributes, CHILDINFO SUBSCRIBED)
    let mut rows: Vec<(String, Vec<String>, bool)> = Vec::new();
    if l.subscribed {
        let mut names: Vec<&String> = subs.iter().filter(|s| matched(s)).collect();
        if l.recursive_match {
            // Parents that match but are not subscribed themselves, with a subscribed child.
            let mut parents: Vec<&String> = Vec::new();
            for s in &subs {
                let mut cut = s.as_str();
                while let Some(i) = cut.rfind('/') {
                    cut = &cut[..i];
                    if matched(cut) && !subscribed(cut) {
                        if let Some(n) = all.iter().map(|m| &m.name).find(|n| n.as_str() == cut) {
                            parents.push(n);
                        }
                    }
                }
            }
            parents.sort();
            parents.dedup();
            for p in parents {
                let m = all.iter().find(|m| &m.name == p).expect("found above");
                rows.push((p.clone(), attributes(m, &all).iter().map(|a| a.to_string()).collect(), true));
            }
        }
        names.sort();
        for s in names {
            let attrs = match all.iter().find(|m| &m.name == s) {
                Some(m) => {
                    let mut a: Vec<String> = attributes(m, &all).iter().map(|a| a.to_string()).collect();
                    a.push("\\Subscribed".into());
                    a
                }
                None => vec!["\\NonExistent".into(), "\\Subscribed".into()],
            };
            rows.push((s.clone(), attrs, false));
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
    } else {
        for m in all.iter().filter(|m| matched(&m.name)) {
            let mut a: Vec<String> = attributes(m, &all).iter().map(|a| a.to_string()).collect();
            if want_sub_attr && subscribed(&m.name) {
                a.push("\\Subscribed".into());
            }
            rows.push((m.name.clone(), a, false));
        }
    }
    if l.special_use_only {
        rows.retain(|(name, _, _)| all.iter().any(|m| &m.name == name && m.special_use.is_some()));
    }
    for (name, attrs, childinfo) in rows {
        let refs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let mut line = resp::list(false, &refs, &name);
        if childinfo {
            line.truncate(line.len().saturating_sub(2));
            line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n");
        }
        conn.queue(&line);
        let selectable = !attrs.iter().any(|a| a == "\\Noselect" || a == "\\NonExistent");
        if let (Some(items), true) = (&status, selectable) {
            if let Ok(n) = MailboxName::new(&name) {
                // RFC 5819: a mailbox whose STATUS fails is still listed.
                if let Err(e) = session.status(user, &n, items, conn) {
                    tracing::debug!(mailbox = %name, error = e.text, "LIST-STATUS: no STATUS");
                }
            }
        }
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
