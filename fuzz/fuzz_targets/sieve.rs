//! Sieve: `parse` never panics on any script text, and reports errors at a 1-based position
//! inside the script; a script that parses runs on a fixed message without panicking and
//! yields a consistent `Outcome`. Inputs starting with `0xFF` are message bytes instead, run
//! through a fixed set of scripts that use header, address, envelope, body, variables,
//! imap4flags and vacation.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mailscale_sieve::{parse, parse_with_limits, Action, Envelope, Limits, MessageContext, Outcome, Script};

const MESSAGE: &[u8] = b"Return-Path: <alice@example.org>\r\n\
From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.com>, list@lists.example.net\r\n\
Cc: =?UTF-8?Q?Caf=C3=A9?= <cafe@example.net>\r\n\
Subject: =?UTF-8?B?W2xpc3RdIGjDqWxsbw==?= urgent\r\n\
List-Id: <list.lists.example.net>\r\n\
Message-ID: <1@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
missile coordinates are caf\xc3\xa9\r\n\
--b\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>project <b>schedule</b></p>\r\n\
--b--\r\n";

/// Scripts run on arbitrary message bytes: every test that looks into the message, and
/// actions whose arguments come from it (variables, vacation).
const SCRIPTS: &[&str] = &[
    r#"require ["fileinto", "imap4flags", "variables", "envelope"];
    if header :matches "subject" "*[*]*" { set :lower :upperfirst "list" "${2}"; fileinto "lists/${list}"; }
    if address :domain :is ["from", "sender"] "example.org" { addflag "\\Flagged ${1}"; }
    if address :localpart :contains "to" "bob" { setflag "seen"; }
    if address :all :matches "cc" "*@*.*" { set "dom" "${2}"; fileinto :flags "${dom}" "by-domain/${dom}"; }
    if envelope :all :is "from" "" { discard; }
    if exists ["x-spam", "list-id"] { keep; }
    if size :over 100K { fileinto "big"; }"#,
    r#"require ["body", "fileinto", "variables", "copy"];
    if body :contains ["missile", "coordinates"] { fileinto :copy "suspicious"; }
    if body :raw :matches "*=??*" { set "x" "${1}${2}"; }
    if body :content "text" :contains "schedule" { redirect :copy "boss@example.com"; }
    if body :text :matches "*a*b*c*d*e*f*" { fileinto "alphabet"; }
    if string :matches "${x}" "?*" { stop; }"#,
    r#"require ["vacation", "variables"];
    if header :matches "subject" "*" { set "s" "${1}"; }
    vacation :days 3 :subject "Re: ${s}" :from "bob@example.com"
        :addresses ["bob@example.com", "b@example.com"] :handle "h${s}" "Away; about ${s}.";"#,
    r#"require ["vacation", "variables", "encoded-character"];
    set "a" "${unicode:263a}";
    if header :comparator "i;octet" :is "from" "${a}" { discard; }
    if not anyof (header :is "x" "", allof (true, not false)) { keep; }
    vacation :mime text:
Content-Type: text/plain

back soon
.
;"#,
];

fn envelope() -> Envelope {
    Envelope { from: "alice@example.org".into(), to: "bob@example.com".into(), aliases: vec!["b@example.com".into()] }
}

/// What every successful run must satisfy, whatever the script and message.
fn check(out: &Outcome, limits: &Limits) {
    let count = |f: fn(&Action) -> bool| out.actions.iter().filter(|a| f(a)).count();
    assert!(out.actions.len() <= limits.max_actions + 1, "{} actions", out.actions.len());
    assert!(count(|a| matches!(a, Action::Keep { .. })) <= 1, "{:?}", out.actions);
    assert!(count(|a| matches!(a, Action::Vacation(_))) <= 1, "{:?}", out.actions);
    assert!(count(|a| matches!(a, Action::Redirect { .. })) <= limits.max_redirects);
    let keep = count(|a| matches!(a, Action::Keep { .. })) == 1;
    assert!(!out.implicit_keep || keep, "implicit keep without a Keep: {:?}", out.actions);
    let stored = count(|a| matches!(a, Action::Keep { .. } | Action::FileInto { .. })) > 0;
    assert!(!(stored && count(|a| matches!(a, Action::Discard)) > 0), "{:?}", out.actions);
    for a in &out.actions {
        match a {
            Action::FileInto { mailbox, .. } => {
                assert!(!mailbox.is_empty());
                assert!(!(keep && mailbox.eq_ignore_ascii_case("INBOX")), "INBOX twice: {:?}", out.actions);
            }
            Action::Redirect { address, .. } => assert!(address.contains('@'), "redirect to {address:?}"),
            Action::Vacation(v) => {
                assert!(!v.to.is_empty());
                assert!((limits.min_vacation_days..=limits.max_vacation_days).contains(&v.days));
                assert_eq!(v.dedup_key.len(), 64);
            }
            Action::Keep { .. } | Action::Discard => {}
        }
    }
}

fn run(script: &Script, msg: &[u8], limits: &Limits) {
    if let Ok(out) = script.run(&MessageContext::new(msg), &envelope(), limits) {
        check(&out, limits);
    }
}

fn scripts() -> &'static [Script] {
    static SET: OnceLock<Vec<Script>> = OnceLock::new();
    SET.get_or_init(|| SCRIPTS.iter().map(|s| parse(s).unwrap_or_else(|e| panic!("{e}\n{s}"))).collect())
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Some(msg) = data.strip_prefix(b"\xff") {
        for script in scripts() {
            run(script, msg, &limits);
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(script) => {
            run(&script, MESSAGE, &limits);
            let tight = Limits { max_actions: 3, max_redirects: 1, max_string_len: 64, max_variables: 4, ..limits };
            run(&script, MESSAGE, &tight);
            run(&script, b"", &limits);
        }
        Err(e) => {
            assert!(e.line() >= 1 && e.column() >= 1, "{e}");
            let lines = text.split('\n').count() as u32;
            assert!(e.line() <= lines, "line {} of {lines}: {e}", e.line());
        }
    }
    let small = Limits { max_script_size: 64, max_nesting: 3, ..Limits::default() };
    if let Err(e) = parse_with_limits(text, &small) {
        assert!(e.line() >= 1 && e.column() >= 1, "{e}");
    }
});
