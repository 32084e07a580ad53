//! Small writers for IMAP response syntax (RFC 3501 9, response grammar).

use mailstore::{flag, Flags};

/// A mailbox name for the wire: modified UTF-7, quoted or literal as needed.
pub fn mailbox(name: &str) -> String {
    mailscale_mime::imap_string(&super::utf7::encode(name))
}

/// `(\Seen \Flagged $Label1)`; `\Recent` when the message is recent for this session.
pub fn flag_list(f: &Flags, recent: bool) -> String {
    let mut out = String::from("(");
    let mut first = true;
    let mut push = |s: &str, out: &mut String| {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(s);
    };
    for (bit, name) in flag::NAMES {
        if f.has(bit) {
            push(name, &mut out);
        }
    }
    if recent {
        push("\\Recent", &mut out);
    }
    for k in &f.keywords {
        push(k, &mut out);
    }
    out.push(')');
    out
}

/// INTERNALDATE as `"17-Jul-1996 02:44:25 -0700"` (RFC 3501 date-time).
pub fn internaldate(ts: i64, tz_minutes: i16) -> String {
    let offset = chrono::FixedOffset::east_opt(i32::from(tz_minutes) * 60)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
    let dt = chrono::DateTime::from_timestamp(ts, 0)
        .unwrap_or_default()
        .with_timezone(&offset);
    format!("\"{}\"", dt.format("%d-%b-%Y %H:%M:%S %z"))
}

/// Compresses sorted numbers into an IMAP sequence set: `1:3,7,9:10`.
pub fn seq_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && nums[i + 1] == end + 1 {
            i += 1;
            end = nums[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers() {
        let f = Flags {
            system: flag::SEEN | flag::DELETED,
            keywords: vec!["$Label1".into()],
        };
        assert_eq!(flag_list(&f, true), "(\\Seen \\Deleted \\Recent $Label1)");
        assert_eq!(flag_list(&Flags::default(), false), "()");
        assert_eq!(
            internaldate(837570265, -420),
            "\"16-Jul-1996 19:24:25 -0700\""
        );
        assert_eq!(seq_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(mailbox("Entwürfe"), "\"Entw&APw-rfe\"");
    }
}
