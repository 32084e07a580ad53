//! RFC 5228: control, actions, tests, match types, comparators, address
//! parts, implicit keep.

use super::support::*;
use crate::{Action, Envelope};

/// RFC 5228 section 9, verbatim (upper-case `:DOMAIN` and `NOT` included).
const RFC5228_SECTION9: &str = r#"#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
"#;

#[test]
fn rfc5228_section9_example() {
    let table: &[(&str, Action)] = &[
        ("Sender: owner-ietf-mta-filters@imc.org\nFrom: a@imc.org\nTo: me@example.com\n\nx\n", fileinto("filter")),
        ("From: Boss <boss@Example.COM>\nTo: someone@else.org\n\nx\n", keep()),
        ("From: x@y.org\nTo: z@elsewhere.org\n\nbuy\n", fileinto("spam")),
        ("From: x@y.org\nTo: me@example.com\nSubject: MAKE your MONEY very FAST\n\nbuy\n", keep()),
        ("From: x@y.org\nTo: friend@y.org\nCc: me@example.com\nSubject: Make money fast!\n\nbuy\n", fileinto("spam")),
        ("From: x@y.org\nCc: me@example.com\nSubject: University diplomas\n\n", fileinto("spam")),
        (
            "From: mum@family.org\nTo: all@family.org\nBcc: me@example.com\nSubject: dinner\n\nsunday?\n",
            fileinto("personal"),
        ),
    ];
    for (msg, expected) in table {
        assert_eq!(run(RFC5228_SECTION9, msg), std::slice::from_ref(expected), "message:\n{msg}");
    }
}

const MSG: &str = "From: Tim <tim@example.com>\nTo: me@example.com\nCc: \"Doe, J\" <j.doe@Sub.Example.NET>, ops@example.com\nSubject: Quarterly report\nX-Spam: yes\nX-Empty:\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nhello\n";

/// Each script files into "yes" when its test holds, else keeps.
#[test]
fn tests_table() {
    let table: &[(&str, bool)] = &[
        // address, with each address part and match type
        (r#"address :is "from" "tim@example.com""#, true),
        (r#"address :is :all "FROM" "TIM@EXAMPLE.COM""#, true),
        (r#"address :comparator "i;octet" :is "from" "TIM@EXAMPLE.COM""#, false),
        (r#"address :localpart :is "from" "tim""#, true),
        (r#"address :domain :is "from" "example.com""#, true),
        (r#"address :domain :is "cc" "sub.example.net""#, true),
        (r#"address :localpart :is "cc" "j.doe""#, true),
        (r#"address :is "cc" "Doe, J""#, false),
        (r#"address :domain :matches "cc" "*.example.net""#, true),
        (r#"address :domain :is "to" "example.org""#, false),
        (r#"address :contains ["to", "cc"] "ops@""#, true),
        (r#"address :is "x-spam" "yes""#, false),
        // header
        (r#"header :is "subject" "quarterly report""#, true),
        (r#"header :is "subject" "Quarterly""#, false),
        (r#"header :contains "subject" "REPORT""#, true),
        (r#"header :contains :comparator "i;octet" "subject" "REPORT""#, false),
        (r#"header :comparator "i;ascii-casemap" :contains "subject" "REPORT""#, true),
        (r#"header :matches "subject" "Q*t?r*""#, true),
        (r#"header :matches "subject" "Q*x*""#, false),
        (r#"header :contains ["x-missing", "x-spam"] "yes""#, true),
        (r#"header :contains "x-missing" """#, false),
        (r#"header :is "x-empty" """#, true),
        (r#"header :contains "subject" ["nope", "port"]"#, true),
        // exists
        (r#"exists ["From", "Date"]"#, true),
        (r#"exists ["From", "X-Missing"]"#, false),
        (r#"exists "x-empty""#, true),
        // size: the message is 201 octets with CRLF
        ("size :over 200", true),
        ("size :over 201", false),
        ("size :under 202", true),
        ("size :under 201", false),
        ("size :under 1K", true),
        ("size :over 1k", false),
        ("size :under 1M", true),
        ("size :under 1G", true),
        // logic
        ("true", true),
        ("false", false),
        ("not false", true),
        ("not not true", true),
        ("allof (true, true)", true),
        ("allof (true, false)", false),
        ("anyof (false, true)", true),
        ("anyof (false, false)", false),
        ("allof (anyof (false, true), not false)", true),
    ];
    assert_eq!(crlf(MSG).len(), 201);
    for (test, holds) in table {
        let script = format!("require \"fileinto\";\nif {test} {{ fileinto \"yes\"; }}");
        let expected = if *holds { fileinto("yes") } else { keep() };
        assert_eq!(run(&script, MSG), [expected], "test: {test}");
    }
}

#[test]
fn header_values_are_rfc2047_decoded_and_unfolded() {
    let msg = "Subject: =?iso-8859-1?q?caf=E9?= and\n =?utf-8?b?w7xiZXI=?= folded\nFrom: =?utf-8?q?J=C3=B6rg?= <j@x.de>\n\nx\n";
    let yes = |t: &str| run(&format!("require \"fileinto\"; if {t} {{ fileinto \"yes\"; }}"), msg) == [fileinto("yes")];
    assert!(yes(r#"header :is "subject" "café and über folded""#));
    assert!(yes(r#"header :contains "from" "Jörg""#));
    assert!(yes(r#"address :is "from" "j@x.de""#));
    assert!(!yes(r#"header :contains "subject" "=?""#));
}

#[test]
fn envelope_test() {
    let script = r#"require ["envelope", "fileinto"];
        if envelope :all :is "from" "tim@example.com" { fileinto "tim"; }
        elsif envelope :domain :is "to" "example.com" { fileinto "to-domain"; }"#;
    let msg = "From: someone@else.org\n\nx\n";
    let mut e = Envelope { from: "tim@example.com".into(), to: "me@example.com".into(), aliases: vec![] };
    assert_eq!(run_env(script, msg, &e).actions, [fileinto("tim")]);
    e.from = "other@example.com".into();
    assert_eq!(run_env(script, msg, &e).actions, [fileinto("to-domain")]);
    e.to = "me@example.net".into();
    assert_eq!(run_env(script, msg, &e).actions, [keep()]);
    // The null reverse-path is "" for :all and has no local part or domain.
    let null = r#"require ["envelope", "fileinto"];
        if envelope :is "from" "" { fileinto "bounce"; }"#;
    e.from = String::new();
    assert_eq!(run_env(null, msg, &e).actions, [fileinto("bounce")]);
    let localpart = r#"require ["envelope", "fileinto"]; if envelope :localpart :is "from" "" { fileinto "x"; }"#;
    assert_eq!(run_env(localpart, msg, &e).actions, [keep()]);
}

#[test]
fn stop_ends_the_script() {
    let s = r#"require "fileinto"; fileinto "a"; stop; fileinto "b";"#;
    assert_eq!(run(s, MSG), [fileinto("a")]);
    assert_eq!(run("stop; discard;", MSG), [keep()]);
    let nested = r#"require "fileinto"; if true { if true { stop; } } fileinto "never";"#;
    assert_eq!(run(nested, MSG), [keep()]);
}

#[test]
fn elsif_else_chain_takes_the_first_true_branch() {
    let s = r#"require "fileinto";
        if false { fileinto "1"; } elsif false { fileinto "2"; } elsif true { fileinto "3"; }
        elsif true { fileinto "4"; } else { fileinto "5"; }
        if false { fileinto "6"; } else { fileinto "7"; }"#;
    assert_eq!(run(s, MSG), [fileinto("3"), fileinto("7")]);
}

#[test]
fn implicit_keep_rules() {
    let table: &[(&str, Vec<Action>, bool)] = &[
        // Nothing done: implicit keep.
        ("", vec![keep()], true),
        // fileinto, redirect and discard cancel it.
        (r#"fileinto "a";"#, vec![fileinto("a")], false),
        (r#"redirect "x@example.org";"#, vec![redirect("x@example.org")], false),
        ("discard;", vec![Action::Discard], false),
        // keep after discard: the message is kept and discard has no effect.
        ("discard; keep;", vec![keep()], false),
        ("keep; discard;", vec![keep()], false),
        // discard with a fileinto: stored there, no Discard reported.
        (r#"discard; fileinto "a";"#, vec![fileinto("a")], false),
        // redirect + discard: forwarded, nothing stored.
        (r#"redirect "x@example.org"; discard;"#, vec![redirect("x@example.org"), Action::Discard], false),
        // Duplicates collapse.
        ("keep; keep;", vec![keep()], false),
        (r#"fileinto "a"; fileinto "b"; fileinto "a";"#, vec![fileinto("a"), fileinto("b")], false),
        (r#"redirect "x@example.org"; redirect "X@Example.org";"#, vec![redirect("x@example.org")], false),
        // fileinto INBOX next to keep is one delivery.
        (r#"keep; fileinto "INBOX";"#, vec![keep()], false),
        (r#"fileinto "inbox"; keep;"#, vec![keep()], false),
        (r#"fileinto "INBOX";"#, vec![fileinto("INBOX")], false),
        // Explicit keep plus fileinto.
        (r#"keep; fileinto "a";"#, vec![keep(), fileinto("a")], false),
    ];
    for (body, expected, implicit) in table {
        let script = format!("require \"fileinto\";\n{body}");
        let out = run_env(&script, MSG, &env());
        assert_eq!(&out.actions, expected, "script: {body}");
        assert_eq!(out.implicit_keep, *implicit, "script: {body}");
    }
}

#[test]
fn multiline_strings_and_comments() {
    let s = "require \"fileinto\"; /* a\nbracket comment */\nif header :is \"subject\" \"Quarterly report\" { fileinto text: # comment\n..dotted\nline 2\n.\n; }";
    assert_eq!(run(s, MSG), [fileinto(".dotted\nline 2\n")]);
    let escaped = r#"require "fileinto"; if header :is "subject" "Quarterly \r\e\p\o\r\t" { fileinto "a\"b\\c"; }"#;
    assert_eq!(run(escaped, MSG), [fileinto("a\"b\\c")]);
}

#[test]
fn matches_escapes() {
    let msg = "Subject: 50% off*?\n\nx\n";
    let table: &[(&str, bool)] = &[
        (r#""*off\\*\\?""#, true),
        (r#""*off\\*""#, false),
        (r#""50% off??""#, true),
        (r#""50% off?""#, false),
        (r#""*\\?""#, true),
        (r#""5*%*""#, true),
    ];
    for (key, holds) in table {
        let script = format!("require \"fileinto\"; if header :matches \"subject\" {key} {{ fileinto \"yes\"; }}");
        assert_eq!(run(&script, msg) == [fileinto("yes")], *holds, "key {key}");
    }
}

#[test]
fn identifiers_are_case_insensitive() {
    assert_eq!(
        run(r#"REQUIRE "FileInto"; IF Header :Contains "Subject" "report" { FILEINTO "r"; }"#, MSG),
        [fileinto("r")]
    );
}
