//! imap4flags (RFC 5232), copy (RFC 3894), variables (RFC 5229) and body
//! (RFC 5173).

use super::support::*;
use crate::Action;

const FROM_BOSS: &str = "From: boss@frobnitzm.example.edu\nTo: me@example.com\nSubject: urgent\n\nnow\n";

#[test]
fn rfc5232_examples() {
    // Section 4 example: the internal variable carries flags into fileinto.
    let s = r#"require ["imap4flags", "fileinto"];
        if header :contains "from" "boss@frobnitzm.example.edu" {
            setflag "\\Flagged";
            fileinto "INBOX.From Boss";
        }"#;
    assert_eq!(run(s, FROM_BOSS), [fileinto_flags("INBOX.From Boss", &["\\Flagged"])]);

    // Section 7: setflag/addflag/removeflag and hasflag over the run.
    let s = r#"require ["imap4flags", "fileinto"];
        if header :contains "from" "boss@frobnitzm.example.edu" {
            setflag "\\Flagged";
            addflag ["$Work", "\\Answered \\Flagged"];
        }
        if header :contains "Subject" "urgent" {
            addflag "$Urgent";
            removeflag "\\answered";
        }
        if hasflag :contains "urg" { fileinto "urgent"; }
        if hasflag "\\flagged $work" { keep; }"#;
    let flags = &["\\Flagged", "$Work", "$Urgent"];
    assert_eq!(run(s, FROM_BOSS), [fileinto_flags("urgent", flags), keep_flags(flags)]);

    // Section 4 with variables: a named flag variable and :flags.
    let s = r#"require ["imap4flags", "fileinto", "variables"];
        if header :contains "from" "boss@frobnitzm.example.edu" {
            setflag "flagvar" "\\Flagged";
            addflag "flagvar" "\\Seen";
            fileinto :flags "${flagvar}" "INBOX.From Boss";
        }
        if hasflag "flagvar" "\\seen" { fileinto "seen"; }
        if hasflag "\\Seen" { fileinto "internal"; }"#;
    assert_eq!(run(s, FROM_BOSS), [fileinto_flags("INBOX.From Boss", &["\\Flagged", "\\Seen"]), fileinto("seen")]);
}

#[test]
fn implicit_keep_gets_the_internal_flags() {
    let s = r#"require "imap4flags"; if size :over 10 { setflag "\\Deleted"; }"#;
    assert_eq!(run(s, FROM_BOSS), [keep_flags(&["\\Deleted"])]);
    let s = r#"require "imap4flags"; addflag "a"; addflag "A b"; removeflag "B";"#;
    assert_eq!(run(s, FROM_BOSS), [keep_flags(&["a"])]);
    // :flags overrides the internal variable for that action only.
    let s = r#"require ["imap4flags", "fileinto"]; setflag "\\Seen"; fileinto :flags "$x" "a"; keep;"#;
    assert_eq!(run(s, FROM_BOSS), [fileinto_flags("a", &["$x"]), keep_flags(&["\\Seen"])]);
    // keep :flags [] keeps without flags.
    let s = r#"require "imap4flags"; setflag "\\Seen"; keep :flags "";"#;
    assert_eq!(run(s, FROM_BOSS), [keep()]);
}

#[test]
fn copy_keeps_the_implicit_keep() {
    let s = r#"require ["copy", "fileinto"]; fileinto :copy "archive"; redirect :copy "x@example.org";"#;
    let out = run_env(s, FROM_BOSS, &env());
    assert!(out.implicit_keep);
    assert_eq!(
        out.actions,
        [
            Action::FileInto { mailbox: "archive".into(), flags: vec![], copy: true },
            Action::Redirect { address: "x@example.org".into(), copy: true },
            keep()
        ]
    );
    // Without :copy the same commands cancel it.
    let s = r#"require ["copy", "fileinto"]; fileinto :copy "archive"; redirect "x@example.org";"#;
    let out = run_env(s, FROM_BOSS, &env());
    assert!(!out.implicit_keep);
    assert_eq!(out.actions.len(), 2);
}

#[test]
fn rfc5229_examples() {
    // Section 3: case-insensitive names, multi-line with references.
    let s = r#"require ["variables", "fileinto"];
        set "honorific"  "Mr";
        set "first_name" "Wile";
        set "last_name"  "Coyote";
        set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
        fileinto "${vacation}";"#;
    assert_eq!(run(s, FROM_BOSS), [fileinto("Dear Mr Coyote,\nI'm out, please leave a message after the meep.\n")]);

    // Section 3.2: match variables from :matches.
    let lists = r#"require ["variables", "fileinto"];
        if header :matches "List-ID" "*<*@*" { fileinto "INBOX.lists.${2}"; stop; }
        # Imagine the header
        # Subject: [acme-users] [fwd] version 1.0 is out
        if header :matches "Subject" "[*] *" {
            # ${1} will hold "acme-users",
            # ${2} will hold "[fwd] version 1.0 is out"
            fileinto "INBOX.lists.${1}"; stop;
        }
        # Imagine the header
        # To: coyote@ACME.Example.COM
        if address :matches ["To", "Cc"] ["coyote@**.com", "wile@**.com"] {
            # ${0} is the matching address
            # ${1} is always the empty string
            # ${2} is part of the domain name ("ACME.Example")
            fileinto "INBOX.business.${2}|${0}|${1}"; stop;
        } else {
            # Control wouldn't reach this block if any match was
            # successful, so no match variables are set at this
            # point.
        }
        if anyof (true, address :domain :matches "To" "*.com") {
            # The second test is never evaluated, so there are
            # still no match variables set.
            fileinto "none:${0}${1}"; stop;
        }"#;
    let table: &[(&str, &str)] = &[
        ("List-ID: Sieve list <sieve.ietf.org@example.net>\n\nx\n", "INBOX.lists.sieve.ietf.org"),
        ("Subject: [acme-users] [fwd] version 1.0 is out\n\nx\n", "INBOX.lists.acme-users"),
        ("To: coyote@ACME.Example.COM\n\nx\n", "INBOX.business.ACME.Example|coyote@ACME.Example.COM|"),
        ("To: road@runner.com\n\nx\n", "none:"),
    ];
    for (msg, folder) in table {
        assert_eq!(run(lists, msg), [fileinto(folder)], "message {msg}");
    }

    // Section 4.1: modifiers and their precedence.
    let s = r#"require ["variables", "fileinto"];
        set "a" "juMBlEd lETteRS";
        set :length "b" "${a}"; fileinto "${b}";
        set :lower "b" "${a}"; fileinto "${b}";
        set :upperfirst "b" "${a}"; fileinto "${b}";
        set :upperfirst :lower "b" "${a}"; fileinto "${b}";
        set :quotewildcard "b" "Rock*"; fileinto "${b}";
        set :upper "b" "${a}"; fileinto "${b}";
        set :lowerfirst "b" "ABC"; fileinto "${b}";
        set :length :quotewildcard "b" "a*?"; fileinto "${b}";"#;
    let want =
        ["15", "jumbled letters", "JuMBlEd lETteRS", "Jumbled letters", "Rock\\*", "JUMBLED LETTERS", "aBC", "5"];
    assert_eq!(run(s, FROM_BOSS), want.map(fileinto));

    // Section 5: the string test.
    let s = r#"require ["variables", "fileinto"];
        set "state" "${state} pending";
        if string :contains " ${state} " " pending " { fileinto "pending"; }
        if string :is "${undefined}" "" { fileinto "empty"; }
        if string :matches ["x", "user+detail"] "*+*" { fileinto "${2}"; }"#;
    assert_eq!(run(s, FROM_BOSS), [fileinto("pending"), fileinto("empty"), fileinto("detail")]);
}

#[test]
fn variable_expansion_rules() {
    let s = r#"require ["variables", "fileinto"];
        set "a" "${b}";
        set "b" "B";
        set "x" "${";
        fileinto "[${a}][${x}a}][${1}][$${b}][${b${b}}][${0000}][${B}]";"#;
    // No recursive expansion; malformed references are literal.
    assert_eq!(run(s, FROM_BOSS), [fileinto("[][${a}][][$B][${bB}][][B]")]);
    // Without "variables", ${...} is plain text.
    let s = r#"require "fileinto"; fileinto "${a}";"#;
    assert_eq!(run(s, FROM_BOSS), [fileinto("${a}")]);
    // A failed :matches leaves earlier match variables alone; a later
    // successful one replaces them.
    let s = r#"require ["variables", "fileinto"];
        if header :matches "subject" "u*" { set "one" "${1}"; }
        if header :matches "subject" "zzz*" { fileinto "never"; }
        fileinto "${one}-${1}";
        if header :matches "from" "*@*" { fileinto "${2}"; }"#;
    assert_eq!(run(s, FROM_BOSS), [fileinto("rgent-rgent"), fileinto("frobnitzm.example.edu")]);
    // :is and :contains do not set match variables.
    let s = r#"require ["variables", "fileinto"];
        if header :matches "subject" "*" { }
        if header :contains "from" "boss" { fileinto "${0}"; }"#;
    assert_eq!(run(s, FROM_BOSS), [fileinto("urgent")]);
}

const MULTIPART: &str = "From: a@example.org\nTo: me@example.com\nSubject: plans\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"XX\"\n\nThis is the prologue.\n--XX\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nThe missile co=\nordinates are caf=C3=A9.\n--XX\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\nPGI+cHJvamVjdCBzY2hlZHVsZTwvYj4=\n--XX\nContent-Type: audio/x-wav\nContent-Transfer-Encoding: base64\n\nUklGRg==\n--XX\nContent-Type: message/rfc822\n\nSubject: inner\n\nsecret tunnel\n--XX--\n";

#[test]
fn rfc5173_examples() {
    let s = r#"require ["body", "fileinto"];
        # Save any message with any text MIME part that contains the
        # words "missile" or "coordinates" in the "secrets" folder.
        if body :content "text" :contains ["missile", "coordinates"] {
            fileinto "secrets";
        }
        # Save any message with an audio attachment in the "music" folder.
        if body :content "audio" :contains "" {
            fileinto "music";
        }
        # Save messages mentioning the project schedule in the
        # project/schedule folder.
        if body :text :contains "project schedule" {
            fileinto "project/schedule";
        }
        # Discard mail that the raw body shows to be spam.
        if body :raw :contains "MAKE MONEY FAST" { discard; }"#;
    assert_eq!(run(s, MULTIPART), [fileinto("secrets"), fileinto("music"), fileinto("project/schedule")]);
    assert_eq!(run(s, "Subject: x\n\nmake money fast!\n"), [Action::Discard]);
    assert_eq!(run(s, "Subject: x\n\nnothing here\n"), [keep()]);
}

#[test]
fn body_transforms_decode_or_not() {
    let yes = |test: &str, msg: &str| {
        run(&format!("require [\"body\", \"fileinto\"]; if {test} {{ fileinto \"yes\"; }}"), msg) == [fileinto("yes")]
    };
    // Quoted-printable soft breaks and charsets are undone for :content/:text...
    assert!(yes(r#"body :content "text/plain" :contains "coordinates are café""#, MULTIPART));
    assert!(yes(r#"body :text :contains "coordinates are café""#, MULTIPART));
    assert!(yes(r#"body :contains "missile coordinates""#, MULTIPART));
    // ...and base64 too, but :content selects by type and subtype.
    assert!(yes(r#"body :content "text/html" :contains "project schedule""#, MULTIPART));
    assert!(!yes(r#"body :content "text/plain" :contains "project schedule""#, MULTIPART));
    assert!(yes(r#"body :content "audio/x-wav" :contains "RIFF""#, MULTIPART));
    assert!(!yes(r#"body :content "image" :contains """#, MULTIPART));
    // Parts of an attached message are searched as well.
    assert!(yes(r#"body :content "text" :contains "secret tunnel""#, MULTIPART));
    // :raw sees the encoded octets and the prologue.
    assert!(yes(r#"body :raw :contains "co=""#, MULTIPART));
    assert!(!yes(r#"body :raw :contains "coordinates""#, MULTIPART));
    assert!(yes(r#"body :raw :contains "prologue""#, MULTIPART));
    assert!(!yes(r#"body :text :contains "PGI+""#, MULTIPART));
    // Match type and comparator apply.
    assert!(yes(r#"body :raw :matches "*missile*""#, MULTIPART));
    assert!(!yes(r#"body :comparator "i;octet" :raw :contains "MISSILE""#, MULTIPART));
    // A single-part message is its own text part.
    assert!(yes(r#"body :content "text" :matches "hello world*""#, "Subject: x\n\nhello world\n"));
    assert!(!yes(r#"body :content "text" :matches "*hello""#, "Subject: x\n\nhello world\n"));
    // The header is not body.
    assert!(!yes(r#"body :text :contains "plans""#, MULTIPART));
}

#[test]
fn encoded_character() {
    let s = r#"require ["encoded-character", "fileinto"];
        if header :is "subject" "$${hex:24 24}${unicode:E9}" { fileinto "${hex: 61 62 }${HEX:63}${unicode:1F600}"; }
        fileinto "${hex:zz}${hex:}${other:41}${hex:4";"#;
    let msg = "Subject: $$$\u{e9}\n\nx\n";
    assert_eq!(run(s, msg), [fileinto("abc\u{1F600}"), fileinto("${hex:zz}${hex:}${other:41}${hex:4")]);
    // Without the capability the text is literal.
    assert_eq!(run(r#"require "fileinto"; fileinto "${hex:41}";"#, msg), [fileinto("${hex:41}")]);
    // Invalid UTF-8 or code points are errors.
    let (l, c, m) = parse_err("require [\"encoded-character\", \"fileinto\"];\nfileinto \"${hex:ff}\";");
    assert_eq!(
        (l, c, m.as_str()),
        (2, 10, "encoded character ${hex:ff} is not valid UTF-8 or not a Unicode character")
    );
    let (_, _, m) = parse_err("require [\"encoded-character\", \"fileinto\"];\nfileinto \"${unicode:D800}\";");
    assert!(m.contains("${unicode:D800}"), "{m}");
}
