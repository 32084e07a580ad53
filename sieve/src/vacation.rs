//! The vacation action (RFC 5230): whether a reply is due for this
//! message, and the reply itself. Remembering whom was answered within
//! `:days` is the caller's job, through [`VacationReply::dedup_key`].

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::message::{Address, Envelope, MessageContext};

/// A reply the caller should send (with `MAIL FROM:<>`, RFC 3834 section
/// 3.3) unless it already answered `dedup_key` within `days` days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacationReply {
    /// The envelope recipient of the reply: the original message's
    /// return-path (RFC 5230 section 4.5).
    pub to: String,
    /// The reply's From field value (`:from`, else the recipient address).
    pub from: String,
    /// The reply's subject, decoded (`:subject`, else "Auto: " and the
    /// original subject).
    pub subject: String,
    /// `:days` after clamping to [`crate::Limits`]: how long to stay silent
    /// towards the same sender for the same reason.
    pub days: u32,
    /// Stable key for the "already replied" record: a SHA-256 (hex) of the
    /// lower-cased sender and the `:handle`, or when there is none, of the
    /// reason, `:subject`, `:from` and `:mime` (RFC 5230 section 4.2).
    pub dedup_key: String,
    /// The complete reply, CRLF line endings, without `Date` and
    /// `Message-ID`: prepend those (or let the submitting MTA add them).
    pub message: Vec<u8>,
}

/// Why a vacation command did not produce a reply. Reported in
/// [`crate::Outcome::vacation_skipped`] for logs; not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VacationSkip {
    /// The return-path is empty (`MAIL FROM:<>`): a bounce or an
    /// auto-reply.
    NullSender,
    /// The return-path is MAILER-DAEMON, LISTSERV, majordomo, `owner-*` or
    /// `*-request` (RFC 5230 section 4.6).
    SystemSender,
    /// The message comes from one of the user's own addresses.
    OwnMessage,
    /// `Auto-Submitted` is present with a value other than `no` (RFC 3834).
    AutoSubmitted,
    /// `Precedence: bulk`, `junk` or `list`.
    BulkPrecedence,
    /// A `List-Id` or other `List-*` field (RFC 2369, RFC 2919) marks
    /// mailing-list traffic.
    MailingList,
    /// None of the user's addresses is in To, Cc, Bcc, Resent-To,
    /// Resent-Cc or Resent-Bcc (RFC 5230 section 4.5).
    NotAddressedToUser,
}

/// The arguments of one executed vacation command, variables expanded.
#[derive(Debug, Clone)]
pub(crate) struct VacationArgs {
    pub days: u64,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    pub handle: Option<String>,
    pub reason: String,
}

const LIST_FIELDS: &[&str] =
    &["list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post", "list-owner", "list-archive"];
const RECIPIENT_FIELDS: &[&str] = &["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"];

/// The addr-spec in a `:from` value such as `"Ann <ann@x.org>"`.
fn addr_spec(s: &str) -> String {
    match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].trim().to_owned(),
        _ => s.trim().to_owned(),
    }
}

/// Decides whether a reply is due and builds it.
pub(crate) fn reply(
    v: &VacationArgs,
    msg: &MessageContext<'_>,
    env: &Envelope,
    days_range: (u32, u32),
) -> Result<VacationReply, VacationSkip> {
    let sender = Address::parse(&env.from);
    if sender.local.is_empty() && sender.domain.is_none() {
        return Err(VacationSkip::NullSender);
    }
    let local = sender.local.to_ascii_lowercase();
    if ["mailer-daemon", "listserv", "majordomo"].contains(&local.as_str())
        || local.starts_with("owner-")
        || local.ends_with("-request")
    {
        return Err(VacationSkip::SystemSender);
    }
    let mut own: Vec<String> = std::iter::once(env.to.as_str())
        .chain(env.aliases.iter().map(String::as_str))
        .chain(v.addresses.iter().map(String::as_str))
        .map(|a| Address::parse(a).all().to_ascii_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    if let Some(from) = &v.from {
        own.push(addr_spec(from).to_ascii_lowercase());
    }
    if own.contains(&sender.all().to_ascii_lowercase()) {
        return Err(VacationSkip::OwnMessage);
    }
    let auto = msg.header("auto-submitted");
    if auto.iter().any(|a| !a.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("no")) {
        return Err(VacationSkip::AutoSubmitted);
    }
    if msg
        .header("precedence")
        .iter()
        .any(|p| ["bulk", "junk", "list"].iter().any(|b| p.trim().eq_ignore_ascii_case(b)))
    {
        return Err(VacationSkip::BulkPrecedence);
    }
    if LIST_FIELDS.iter().any(|f| msg.has_header(f)) {
        return Err(VacationSkip::MailingList);
    }
    let addressed =
        RECIPIENT_FIELDS.iter().flat_map(|f| msg.addresses(f)).any(|a| own.contains(&a.all().to_ascii_lowercase()));
    if !addressed {
        return Err(VacationSkip::NotAddressedToUser);
    }

    let to = sender.all();
    let from = v.from.clone().unwrap_or_else(|| env.to.clone());
    let subject = match &v.subject {
        Some(s) => s.clone(),
        None => format!("Auto: {}", msg.header("subject").into_iter().next().unwrap_or_default()),
    };
    let (min, max) = days_range;
    let days = u32::try_from(v.days).unwrap_or(u32::MAX).clamp(min, max);
    let handle = match &v.handle {
        Some(h) => format!("handle\0{h}"),
        None => format!(
            "reason\0{}\0subject\0{}\0from\0{}\0mime\0{}",
            v.reason,
            v.subject.as_deref().unwrap_or(""),
            v.from.as_deref().unwrap_or(""),
            v.mime
        ),
    };
    let mut h = Sha256::new();
    h.update(b"sieve-vacation\0");
    h.update(to.to_ascii_lowercase().as_bytes());
    h.update(b"\0");
    h.update(handle.as_bytes());
    let dedup_key = hex::encode(h.finalize());
    let message = build(msg, &from, &to, &subject, v);
    Ok(VacationReply { to, from, subject, days, dedup_key, message })
}

fn build(msg: &MessageContext<'_>, from: &str, to: &str, subject: &str, v: &VacationArgs) -> Vec<u8> {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    field("From", from);
    field("To", &format!("<{to}>"));
    field("Subject", &encode_word(subject));
    let msg_id = msg.header("message-id").into_iter().next().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(id) = &msg_id {
        field("In-Reply-To", id);
        // RFC 5322 section 3.6.4: the parent's References (or In-Reply-To)
        // followed by the parent's Message-ID.
        let parent = msg
            .header("references")
            .into_iter()
            .next()
            .or_else(|| msg.header("in-reply-to").into_iter().next())
            .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|r| !r.is_empty());
        match parent {
            Some(p) => field("References", &format!("{p} {id}")),
            None => field("References", id),
        }
    }
    field("Auto-Submitted", "auto-replied");
    field("MIME-Version", "1.0");
    if v.mime {
        out.push_str(&crlf(&v.reason));
    } else if v.reason.is_ascii() {
        field("Content-Type", "text/plain; charset=us-ascii");
        field("Content-Transfer-Encoding", "7bit");
        out.push_str("\r\n");
        out.push_str(&crlf(&v.reason));
    } else {
        field("Content-Type", "text/plain; charset=utf-8");
        field("Content-Transfer-Encoding", "base64");
        out.push_str("\r\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(crlf(&v.reason));
        for chunk in b64.as_bytes().chunks(76) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push_str("\r\n");
        }
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// Normalizes line endings to CRLF.
fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n")
}

/// RFC 2047 `B` encoded-words (UTF-8) for a non-ASCII or control-character
/// header value; ASCII text is returned as is. Words stay under 75
/// characters and never split a character.
fn encode_word(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        return s.to_owned();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars().map(|c| if c.is_control() { ' ' } else { c }) {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| format!("=?utf-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(w)))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words() {
        assert_eq!(encode_word("Auto: hello"), "Auto: hello");
        assert_eq!(encode_word("Auto: Gr\u{fc}\u{df}e"), "=?utf-8?B?QXV0bzogR3LDvMOfZQ==?=");
        let long = encode_word(&"\u{e9}".repeat(40));
        assert!(long.split("\r\n ").all(|w| w.len() <= 75));
        assert_eq!(long.split("\r\n ").count(), 2);
    }

    #[test]
    fn addr_spec_from_display_form() {
        assert_eq!(addr_spec("Ann Example <ann@x.org>"), "ann@x.org");
        assert_eq!(addr_spec(" ann@x.org "), "ann@x.org");
    }
}
