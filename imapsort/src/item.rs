//! What SORT and THREAD need to know about one message, and how to get it
//! from the message's header block.

use std::borrow::Cow;

use mail_parser::DateTime;

/// One message as SORT and THREAD (RFC 5256 section 3) see it.
///
/// Header values are kept raw (unfolded, RFC 2047 encoded-words not yet
/// decoded) so that an index can cache them as they are; each algorithm
/// derives the keys it needs (base subject, first mailbox, Message-IDs)
/// when it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SortItem {
    /// What the response reports for this message: the sequence number for
    /// SORT/THREAD, the UID for UID SORT/UID THREAD. Both grow in mailbox
    /// order, so ties ("the order in which they appear in the mailbox",
    /// RFC 5256 sections 3 and 2.2) are broken by `id`, ascending.
    pub id: u32,
    /// INTERNALDATE, seconds since the Unix epoch (ARRIVAL).
    pub arrival: i64,
    /// The Date field, seconds since the Unix epoch (UTC); `None` when it
    /// is absent or cannot be parsed, in which case the sent date is
    /// `arrival` (RFC 5256 section 2.2). See [`SortItem::sent_date`].
    pub sent: Option<i64>,
    /// RFC822.SIZE in octets (SIZE).
    pub size: u64,
    /// Subject field value.
    pub subject: Option<String>,
    /// From field value (an address list).
    pub from: Option<String>,
    /// To field value (an address list).
    pub to: Option<String>,
    /// Cc field value (an address list).
    pub cc: Option<String>,
    /// Message-ID field value.
    pub message_id: Option<String>,
    /// In-Reply-To field value.
    pub in_reply_to: Option<String>,
    /// References field value.
    pub references: Option<String>,
}

impl SortItem {
    /// An item without header fields (every header key sorts as empty).
    pub fn new(id: u32, arrival: i64, size: u64) -> Self {
        SortItem { id, arrival, size, ..Default::default() }
    }

    /// Builds an item from the message's header block (the leading octets of
    /// the message up to the empty line; the whole message works too, the
    /// body is ignored). For each field the first occurrence counts; values
    /// are unfolded and trimmed, invalid UTF-8 is replaced. The Date field is
    /// parsed as RFC 5322 section 3.3 (with the obsolete forms mail-parser
    /// accepts).
    ///
    /// ```
    /// use mailscale_imapsort::SortItem;
    /// let h = b"Subject: Re: hi\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <a@b>\r\n\r\nbody";
    /// let item = SortItem::from_header(7, 0, 120, h);
    /// assert_eq!(item.subject.as_deref(), Some("Re: hi"));
    /// assert_eq!(item.sent, Some(760686745));
    /// assert_eq!(item.from, None);
    /// ```
    ///
    /// # Panics
    ///
    /// Never, whatever the bytes.
    pub fn from_header(id: u32, arrival: i64, size: u64, header: &[u8]) -> Self {
        let mut item = SortItem::new(id, arrival, size);
        let mut date = None;
        for (name, value) in fields(header) {
            let slot = match name.to_ascii_lowercase().as_slice() {
                b"subject" => &mut item.subject,
                b"from" => &mut item.from,
                b"to" => &mut item.to,
                b"cc" => &mut item.cc,
                b"message-id" => &mut item.message_id,
                b"in-reply-to" => &mut item.in_reply_to,
                b"references" => &mut item.references,
                b"date" => &mut date,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(unfold(value));
            }
        }
        item.sent = date.as_deref().and_then(parse_date);
        item
    }

    /// The sent date of RFC 5256 section 2.2: the Date field, or
    /// INTERNALDATE when there is none or it cannot be parsed.
    pub fn sent_date(&self) -> i64 {
        self.sent.unwrap_or(self.arrival)
    }
}

/// Parses an RFC 5322 date-time to seconds since the Unix epoch, UTC.
/// `None` when it cannot be parsed.
///
/// ```
/// assert_eq!(mailscale_imapsort::parse_date("Thu, 1 Jan 1970 01:00:00 +0100"), Some(0));
/// assert_eq!(mailscale_imapsort::parse_date("yesterday"), None);
/// ```
pub fn parse_date(value: &str) -> Option<i64> {
    let dt = DateTime::parse_rfc822(value.trim())?;
    dt.is_valid().then(|| dt.to_timestamp())
}

/// Every `msg-id` (`"<" id-left "@" id-right ">"`, RFC 5322 section 3.6.4)
/// in a field value, in order, without the angle brackets. Lenient: any
/// non-empty text between `<` and `>` counts; whitespace inside (left by
/// folding) is removed. Message-IDs compare case-sensitively (RFC 5256
/// section 3, REFERENCES step 1).
pub(crate) fn msg_ids(value: &str) -> impl Iterator<Item = Cow<'_, str>> {
    let mut rest = value;
    std::iter::from_fn(move || loop {
        let open = rest.find('<')?;
        let after = &rest[open + 1..];
        let close = after.find(['<', '>'])?;
        let id = &after[..close];
        let is_close = after.as_bytes()[close] == b'>';
        rest = &after[close + usize::from(is_close)..];
        if !is_close {
            continue;
        }
        let id = id.trim();
        if id.is_empty() {
            continue;
        }
        if id.contains(|c: char| c.is_ascii_whitespace()) {
            return Some(Cow::Owned(id.chars().filter(|c| !c.is_ascii_whitespace()).collect()));
        }
        return Some(Cow::Borrowed(id));
    })
}

/// The header fields at the start of `raw` as (name, raw value) pairs,
/// stopping at the first empty line. Lines without a colon are skipped
/// together with their continuation lines.
fn fields(raw: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out: Vec<(&[u8], &[u8])> = Vec::new();
    let mut current: Option<(usize, usize)> = None; // (index in out, value start)
    let mut pos = 0;
    while pos < raw.len() {
        let next = raw[pos..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| pos + i + 1);
        let mut end = next;
        while end > pos && matches!(raw[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        let line = &raw[pos..end];
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some((index, start)) = current {
                out[index].1 = &raw[start..end];
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = line[..colon].trim_ascii();
            if name.is_empty() {
                current = None;
            } else {
                current = Some((out.len(), pos + colon + 1));
                out.push((name, &line[colon + 1..]));
            }
        } else {
            current = None;
        }
        pos = next;
    }
    out
}

/// Unfolds (RFC 5322 section 2.2.3) and trims a raw value.
fn unfold(value: &[u8]) -> String {
    let bytes: Vec<u8> = value.iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect();
    String::from_utf8_lossy(bytes.trim_ascii()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_first_occurrence_unfolded() {
        let raw = b"X-No-Colon\r\n continued: no\r\nSUBJECT: first\r\n  folded\r\nSubject: second\r\n\
                    References: <a@x>\r\n\t<b@x>\r\nDate: garbage\r\n\r\nFrom: body@x\r\n";
        let item = SortItem::from_header(3, 99, 10, raw);
        assert_eq!(item.subject.as_deref(), Some("first  folded"));
        assert_eq!(item.references.as_deref(), Some("<a@x>\t<b@x>"));
        assert_eq!(item.from, None, "fields after the empty line are body");
        assert_eq!(item.sent, None);
        assert_eq!(item.sent_date(), 99, "unparsable Date falls back to INTERNALDATE");
        assert_eq!((item.id, item.size), (3, 10));
    }

    #[test]
    fn header_without_empty_line_and_bare_lf() {
        let item = SortItem::from_header(1, 0, 0, b"From: a@b\nTo: c@d\nDate: 2 Jan 2000 00:00:00 GMT");
        assert_eq!(item.from.as_deref(), Some("a@b"));
        assert_eq!(item.to.as_deref(), Some("c@d"));
        assert_eq!(item.sent, Some(946771200));
        assert_eq!(SortItem::from_header(1, 5, 0, b""), SortItem::new(1, 5, 0));
        assert_eq!(SortItem::from_header(1, 5, 0, b"\xff\xfe:\x00\n\n"), SortItem::new(1, 5, 0));
    }

    #[test]
    fn dates_use_the_zone() {
        assert_eq!(parse_date("Mon, 7 Feb 1994 21:52:25 -0800"), parse_date("Tue, 8 Feb 1994 05:52:25 +0000"));
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn message_ids() {
        let ids = |s| msg_ids(s).map(Cow::into_owned).collect::<Vec<_>>();
        assert_eq!(ids("<a@x> <b@x>\t<c@x>"), ["a@x", "b@x", "c@x"]);
        assert_eq!(ids("Your message of \"Mon\" <a@x> (comment)"), ["a@x"]);
        assert_eq!(ids("<> < > <a@x"), Vec::<String>::new());
        assert_eq!(ids("<broken <a@x>"), ["a@x"]);
        assert_eq!(ids("<a@\r\n x>"), ["a@x"]);
        assert_eq!(ids("no ids"), Vec::<String>::new());
        assert_eq!(ids("<A@x>"), ["A@x"]);
    }
}
