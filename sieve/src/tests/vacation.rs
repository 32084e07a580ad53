//! vacation (RFC 5230): when to answer, and the reply.

use super::support::*;
use crate::{Action, Envelope, Outcome, VacationReply, VacationSkip};

const MSG: &str = "From: Sender <sender@example.org>\nTo: Me <me@example.com>\nSubject: lunch tomorrow?\nMessage-ID: <abc@example.org>\nReferences: <r1@x> <r2@x>\n\nhi\n";

fn reply(out: &Outcome) -> &VacationReply {
    match out.actions.iter().find_map(|a| if let Action::Vacation(v) = a { Some(v) } else { None }) {
        Some(v) => v,
        None => panic!("no vacation reply, skipped: {:?}", out.vacation_skipped),
    }
}

fn text(r: &VacationReply) -> String {
    String::from_utf8(r.message.clone()).unwrap()
}

#[test]
fn rfc5230_example_reply() {
    let s = r#"require "vacation";
        if header :contains "subject" "cyrus" {
            vacation "I'm out -- send mail to cyrus-bugs";
        } else {
            vacation "I'm out -- call me at +1 304 555 0123";
        }"#;
    let out = run_env(s, MSG, &env());
    // vacation does not cancel the implicit keep.
    assert!(out.implicit_keep);
    assert_eq!(out.actions.len(), 2);
    assert_eq!(out.actions[1], keep());
    let r = reply(&out);
    assert_eq!(r.to, "sender@example.org");
    assert_eq!(r.from, "me@example.com");
    assert_eq!(r.subject, "Auto: lunch tomorrow?");
    assert_eq!(r.days, 7);
    assert_eq!(r.dedup_key.len(), 64);
    assert_eq!(
        text(r),
        "From: me@example.com\r\nTo: <sender@example.org>\r\nSubject: Auto: lunch tomorrow?\r\n\
         In-Reply-To: <abc@example.org>\r\nReferences: <r1@x> <r2@x> <abc@example.org>\r\n\
         Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\nI'm out -- call me at +1 304 555 0123\r\n"
    );
}

#[test]
fn rfc5230_days_addresses_subject_from() {
    let s = r#"require "vacation";
        vacation :days 23 :addresses ["tjs@example.edu", "ts4z@landru.example.edu"]
        "I'm away until October 19.
        If it's an emergency, call 911, I guess." ;"#;
    let msg = "From: a@example.org\nTo: TS4Z@landru.example.edu\nSubject: hello\n\nx\n";
    let out = run_env(s, msg, &env());
    let r = reply(&out);
    assert_eq!(r.days, 23);
    assert!(text(r).ends_with("I'm away until October 19.\r\n        If it's an emergency, call 911, I guess.\r\n"));
    // Without the :addresses entry the same message is not addressed to the user.
    let plain = r#"require "vacation"; vacation "away";"#;
    assert_eq!(run_env(plain, msg, &env()).vacation_skipped, Some(VacationSkip::NotAddressedToUser));

    // :subject with a match variable, :from, non-ASCII subject and reason.
    let s = r#"require ["vacation", "variables"];
        if header :matches "subject" "*" {
            vacation :subject "Automatic response to: ${1} ✈" :from "Me <me@example.com>" "Bin weg, zurück am Montag.";
        }"#;
    let r = run_env(s, MSG, &env());
    let r = reply(&r);
    assert_eq!(r.subject, "Automatic response to: lunch tomorrow? ✈");
    assert_eq!(r.from, "Me <me@example.com>");
    let t = text(r);
    assert!(t.contains("Subject: =?utf-8?B?"), "{t}");
    assert!(t.contains("Content-Transfer-Encoding: base64\r\n\r\nQmluIHdlZywgenVyw7xjayBhbSBNb250YWcu\r\n"), "{t}");
    // Decoding the encoded subject gives the original back.
    let parsed = mail_parser::MessageParser::default().parse(&r.message).unwrap();
    assert_eq!(parsed.subject(), Some("Automatic response to: lunch tomorrow? ✈"));

    // :days is clamped to the configured range.
    let s = r#"require "vacation"; vacation :days 0 "x";"#;
    assert_eq!(reply(&run_env(s, MSG, &env())).days, 1);
    let s = r#"require "vacation"; vacation :days 100000 "x";"#;
    assert_eq!(reply(&run_env(s, MSG, &env())).days, 365);
}

#[test]
fn rfc5230_mime_reason() {
    let s = "require \"vacation\";\nvacation :mime text:\nContent-Type: multipart/alternative; boundary=foo\n\n--foo\n\nI'm at the cabin.\n--foo\nContent-Type: text/html; charset=us-ascii\n\n<html><body>I'm at the <b>cabin</b>.</body></html>\n--foo--\n.\n;";
    let out = run_env(s, MSG, &env());
    let t = text(reply(&out));
    assert!(
        t.contains("MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=foo\r\n\r\n--foo\r\n\r\nI'm at the cabin.\r\n"),
        "{t}"
    );
    assert!(!t.contains("text/plain"));
}

#[test]
fn dedup_key_follows_handle_or_content() {
    let key = |script: &str, msg: &str, from: &str| {
        let e = Envelope { from: from.into(), ..env() };
        reply(&run_env(script, msg, &e)).dedup_key.clone()
    };
    let handle = r#"require "vacation";
        if header :contains "subject" "lunch" {
            vacation :handle "ran-away" "I'm out and can't meet for lunch";
        } else {
            vacation :handle "ran-away" "I'm out";
        }"#;
    let other = MSG.replace("lunch tomorrow?", "meeting");
    // Same handle: one key whichever reason was used.
    assert_eq!(key(handle, MSG, "sender@example.org"), key(handle, &other, "sender@example.org"));
    // Per sender (case-insensitively).
    assert_eq!(key(handle, MSG, "sender@example.org"), key(handle, MSG, "SENDER@example.org"));
    assert_ne!(key(handle, MSG, "sender@example.org"), key(handle, MSG, "other@example.org"));
    // Without a handle the reason, subject, from and mime decide.
    let a = key(r#"require "vacation"; vacation "one";"#, MSG, "sender@example.org");
    assert_eq!(a, key(r#"require "vacation"; vacation "one";"#, &other, "sender@example.org"));
    assert_ne!(a, key(r#"require "vacation"; vacation "two";"#, MSG, "sender@example.org"));
    assert_ne!(a, key(r#"require "vacation"; vacation :subject "s" "one";"#, MSG, "sender@example.org"));
    assert_ne!(a, key(r#"require "vacation"; vacation :from "me@example.com" "one";"#, MSG, "sender@example.org"));
    assert_ne!(a, key(r#"require "vacation"; vacation :mime "one";"#, MSG, "sender@example.org"));
    // :days is not part of the key, and the key is stable across runs.
    assert_eq!(a, key(r#"require "vacation"; vacation :days 3 "one";"#, MSG, "sender@example.org"));
}

#[test]
fn never_answer_lists_bulk_robots_or_strangers() {
    let s = r#"require "vacation"; vacation "away";"#;
    let table: &[(&str, &str, Option<VacationSkip>)] = &[
        ("", "sender@example.org", None),
        ("", "", Some(VacationSkip::NullSender)),
        ("", "<>", Some(VacationSkip::NullSender)),
        ("", "MAILER-DAEMON@example.org", Some(VacationSkip::SystemSender)),
        ("", "owner-list@example.org", Some(VacationSkip::SystemSender)),
        ("", "list-request@example.org", Some(VacationSkip::SystemSender)),
        ("", "LISTSERV@example.org", Some(VacationSkip::SystemSender)),
        ("", "majordomo@example.org", Some(VacationSkip::SystemSender)),
        ("", "me@example.com", Some(VacationSkip::OwnMessage)),
        ("", "alias@example.com", Some(VacationSkip::OwnMessage)),
        ("Auto-Submitted: auto-replied\n", "sender@example.org", Some(VacationSkip::AutoSubmitted)),
        ("Auto-Submitted: auto-generated; type=x\n", "sender@example.org", Some(VacationSkip::AutoSubmitted)),
        ("Auto-Submitted: No\n", "sender@example.org", None),
        ("Precedence: bulk\n", "sender@example.org", Some(VacationSkip::BulkPrecedence)),
        ("Precedence: JUNK\n", "sender@example.org", Some(VacationSkip::BulkPrecedence)),
        ("Precedence: list\n", "sender@example.org", Some(VacationSkip::BulkPrecedence)),
        ("Precedence: first-class\n", "sender@example.org", None),
        ("List-Id: <x.lists.example.org>\n", "sender@example.org", Some(VacationSkip::MailingList)),
        ("List-Unsubscribe: <mailto:u@example.org>\n", "sender@example.org", Some(VacationSkip::MailingList)),
        ("List-Post: <mailto:l@example.org>\n", "sender@example.org", Some(VacationSkip::MailingList)),
    ];
    for (extra, from, skip) in table {
        let e = Envelope { from: (*from).into(), aliases: vec!["alias@example.com".into()], ..env() };
        let msg = format!("{extra}{MSG}");
        let out = run_env(s, &msg, &e);
        assert_eq!(out.vacation_skipped, *skip, "header {extra:?}, sender {from:?}");
        let replied = out.actions.iter().any(|a| matches!(a, Action::Vacation(_)));
        assert_eq!(replied, skip.is_none(), "header {extra:?}, sender {from:?}");
        // Whatever vacation decides, the message itself is kept.
        assert!(out.actions.contains(&keep()));
    }
}

#[test]
fn recipient_fields_that_count() {
    let s = r#"require "vacation"; vacation "away";"#;
    let e = Envelope { aliases: vec!["Alias@Example.com".into()], ..env() };
    let table: &[(&str, bool)] = &[
        ("To: me@example.com", true),
        ("To: ME@EXAMPLE.COM", true),
        ("Cc: x@y.org, Me <me@example.com>", true),
        ("Bcc: me@example.com", true),
        ("Resent-To: me@example.com", true),
        ("Resent-Cc: me@example.com", true),
        ("To: alias@example.com", true),
        ("To: team: me@example.com;", true),
        ("To: x@y.org", false),
        ("To: notme@example.com", false),
        ("Reply-To: me@example.com", false),
        ("Subject: me@example.com", false),
    ];
    for (field, answered) in table {
        let msg = format!("From: sender@example.org\n{field}\n\nx\n");
        let out = run_env(s, &msg, &e);
        assert_eq!(out.vacation_skipped.is_none(), *answered, "{field}");
    }
}

#[test]
fn reply_threading_headers() {
    let s = r#"require "vacation"; vacation "away";"#;
    let t = |msg: &str| text(reply(&run_env(s, msg, &env())));
    let no_id = t("From: a@x.org\nTo: me@example.com\nSubject: s\n\nx\n");
    assert!(!no_id.contains("In-Reply-To") && !no_id.contains("References"));
    let only_id = t("From: a@x.org\nTo: me@example.com\nMessage-ID: <1@x>\n\nx\n");
    assert!(only_id.contains("In-Reply-To: <1@x>\r\nReferences: <1@x>\r\n"), "{only_id}");
    assert!(only_id.contains("Subject: Auto: \r\n"), "{only_id}");
    let irt = t("From: a@x.org\nTo: me@example.com\nMessage-ID: <2@x>\nIn-Reply-To: <1@x>\n\nx\n");
    assert!(irt.contains("References: <1@x> <2@x>\r\n"), "{irt}");
}
