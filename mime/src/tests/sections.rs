//! BODY[section] known answers (RFC 3501 section 6.4.5).

use std::borrow::Cow;

use super::crlf;
use super::structure::NESTED;
use crate::{section, Section, SectionText};

fn get(raw: &[u8], part: &[u32], text: SectionText) -> String {
    let s = Section { part: part.to_vec(), text };
    String::from_utf8(section(raw, &s).into_owned()).expect("test data is UTF-8")
}

fn fields(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn nested_parts() {
    let raw = crlf(NESTED);
    use SectionText::*;
    assert_eq!(get(&raw, &[1, 1], Full), "Hi Bob");
    assert_eq!(get(&raw, &[1, 2], Mime), "Content-Type: text/html; charset=utf-8\r\nContent-Language: en, de\r\n\r\n");
    let alt = get(&raw, &[1], Full);
    assert!(alt.starts_with("--alt\r\n") && alt.ends_with("--alt--"), "{alt:?}");
    assert_eq!(get(&raw, &[2], Full), "iVBORw0K");
    let inner = get(&raw, &[3], Full);
    assert!(inner.starts_with("From: Dave") && inner.ends_with("--in--"));
    assert_eq!(
        get(&raw, &[3], Header),
        "From: Dave <dave@example.net>\r\nSubject: inner\r\nIn-Reply-To: <x@y>\r\n\
         Content-Type: multipart/mixed; boundary=in\r\n\r\n"
    );
    assert!(get(&raw, &[3], Text).starts_with("--in\r\n\r\ninner text"));
    assert_eq!(get(&raw, &[3], HeaderFields(fields(&["subject", "X-None"]))), "Subject: inner\r\n\r\n");
    assert_eq!(get(&raw, &[3], Mime), "Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n\r\n");
    assert_eq!(get(&raw, &[3, 1], Full), "inner text");
    assert_eq!(get(&raw, &[3, 1], Mime), "\r\n");
    assert_eq!(get(&raw, &[3, 2], Full), "Subject: deepest\r\n\r\ndeep body");
    assert_eq!(get(&raw, &[3, 2], Header), "Subject: deepest\r\n\r\n");
    assert_eq!(get(&raw, &[3, 2], Text), "deep body");
    assert_eq!(get(&raw, &[3, 2, 1], Full), "deep body");
    // Nonexistent parts, and HEADER/TEXT of a part that is no message.
    for part in [&[4][..], &[0], &[1, 3], &[2, 1], &[3, 3], &[3, 2, 2], &[3, 2, 1, 1]] {
        assert_eq!(get(&raw, part, Full), "", "{part:?}");
    }
    assert_eq!(get(&raw, &[1, 1], Header), "");
    assert_eq!(get(&raw, &[1, 1], Text), "");
    assert_eq!(get(&raw, &[2], HeaderFields(fields(&["Content-Type"]))), "");
}

#[test]
fn top_level() {
    let raw = crlf(NESTED);
    use SectionText::*;
    assert_eq!(get(&raw, &[], Full).as_bytes(), &raw[..]);
    let header = get(&raw, &[], Header);
    assert!(header.starts_with("From: \"Ann") && header.ends_with("boundary=outer\r\n\r\n"));
    assert!(get(&raw, &[], Text).starts_with("preamble\r\n--outer\r\n"));
    assert_eq!(
        get(&raw, &[], HeaderFields(fields(&["Subject", "From"]))),
        "From: \"Ann Example\" <ann@example.org>\r\nSubject: =?ISO-8859-1?Q?caf=E9?= plans\r\n\r\n"
    );
    let not = get(
        &raw,
        &[],
        HeaderFieldsNot(fields(&["to", "subject", "date", "message-id", "mime-version", "content-type"])),
    );
    assert_eq!(not, "From: \"Ann Example\" <ann@example.org>\r\n\r\n");
    assert_eq!(get(&raw, &[], HeaderFields(fields(&["Nope"]))), "\r\n");
    assert_eq!(get(&raw, &[], Mime), "");
    // Full sections borrow from the message.
    let s = Section { part: vec![1, 1], text: Full };
    assert!(matches!(section(&raw, &s), Cow::Borrowed(_)));
}

#[test]
fn single_part_message() {
    let raw = crlf("Subject: one\n two\nFrom: a@b\n\nbody line\n");
    use SectionText::*;
    assert_eq!(get(&raw, &[1], Full), "body line\r\n");
    assert_eq!(get(&raw, &[], Text), "body line\r\n");
    assert_eq!(get(&raw, &[1], Mime), "Subject: one\r\n two\r\nFrom: a@b\r\n\r\n");
    assert_eq!(get(&raw, &[], HeaderFields(fields(&["SUBJECT"]))), "Subject: one\r\n two\r\n\r\n");
    assert_eq!(get(&raw, &[2], Full), "");
    assert_eq!(get(&raw, &[1, 1], Full), "");
    // A message whose body is itself message/rfc822: part 1 is that message.
    let raw = crlf("Content-Type: message/rfc822\n\nSubject: in\n\nhello\n");
    assert_eq!(get(&raw, &[1], Header), "Subject: in\r\n\r\n");
    assert_eq!(get(&raw, &[1, 1], Full), "hello\r\n");
    // No blank line at all; a last header line without CRLF gets one.
    let raw = b"Subject: x\r\nFrom: a@b";
    assert_eq!(get(raw, &[], HeaderFields(fields(&["from"]))), "From: a@b\r\n\r\n");
    assert_eq!(get(raw, &[], Text), "");
    assert_eq!(get(b"", &[], Header), "");
}
