//! ENVELOPE / BODY / BODYSTRUCTURE known answers (RFC 3501 section 7.4.2).

use super::crlf;
use crate::analyze;

/// The message of the RFC 3501 section 6.3.11 APPEND example.
const RFC3501_APPEND: &str = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)
From: Fred Foobar <foobar@Blurdybloop.COM>
Subject: afternoon meeting
To: mooch@owatagu.siam.edu
Message-Id: <B27397-0100000@Blurdybloop.COM>
MIME-Version: 1.0
Content-Type: TEXT/PLAIN; CHARSET=US-ASCII

Hello Joe, do you think we can meet at 3:30 tomorrow?
";

#[test]
fn rfc3501_append_example() {
    let raw = crlf(RFC3501_APPEND);
    let a = analyze(&raw);
    let fred = r#"(("Fred Foobar" NIL "foobar" "Blurdybloop.COM"))"#;
    assert_eq!(
        a.envelope,
        format!(
            "(\"Mon, 7 Feb 1994 21:52:25 -0800 (PST)\" \"afternoon meeting\" {fred} {fred} {fred} \
             ((NIL NIL \"mooch\" \"owatagu.siam.edu\")) NIL NIL NIL \"<B27397-0100000@Blurdybloop.COM>\")"
        )
    );
    assert_eq!(a.body, r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1)"#);
    assert_eq!(a.bodystructure, r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1 NIL NIL NIL NIL)"#);
    assert_eq!(a.header_len, raw.len() - 55);
    // 1994-02-08T05:52:25Z
    assert_eq!(a.sent_date, Some(760_686_745));
}

/// Shaped like the RFC 3501 section 7.4.2 BODYSTRUCTURE example: a
/// multipart/mixed of a plain text part and a base64 text part with id,
/// description and a NAME parameter.
#[test]
fn rfc3501_bodystructure_example_shape() {
    let raw = crlf(
        "From: a@b
Content-Type: MULTIPART/MIXED; BOUNDARY=\"----- =_aaaaaaaaaa0\"

------- =_aaaaaaaaaa0
Content-Type: text/plain; charset=US-ASCII

line one
line two
------- =_aaaaaaaaaa0
Content-Type: text/plain; charset=US-ASCII; name=cc.diff
Content-ID: <960723163407.20117h@cac.washington.edu>
Content-Description: Compiler diff
Content-Transfer-Encoding: base64

aGVsbG8K
------- =_aaaaaaaaaa0--
",
    );
    let a = analyze(&raw);
    assert_eq!(
        a.body,
        concat!(
            r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 18 2)"#,
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "#,
            r#""<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 8 1) "MIXED")"#
        )
    );
    assert_eq!(
        a.bodystructure,
        concat!(
            r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 18 2 NIL NIL NIL NIL)"#,
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "#,
            r#""<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 8 1 NIL NIL NIL NIL) "#,
            r#""MIXED" ("BOUNDARY" "----- =_aaaaaaaaaa0") NIL NIL NIL)"#
        )
    );
}

/// multipart/mixed { multipart/alternative { text/plain, text/html },
/// image/png attachment, message/rfc822 { multipart/mixed { text/plain,
/// message/rfc822 { text/plain } } } }.
pub(crate) const NESTED: &str = "From: \"Ann Example\" <ann@example.org>
To: Team: bob@example.org, Carol <carol@example.org>;
Subject: =?ISO-8859-1?Q?caf=E9?= plans
Date: Tue, 2 Jan 2024 10:00:00 +0100
Message-ID: <outer@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

preamble
--outer
Content-Type: multipart/alternative; boundary=\"alt\"

--alt
Content-Type: text/plain; charset=utf-8

Hi Bob
--alt
Content-Type: text/html; charset=utf-8
Content-Language: en, de

<p>Hi Bob</p>
--alt--
--outer
Content-Type: image/png; name=dot.png
Content-Disposition: attachment; filename=\"dot.png\"
Content-Transfer-Encoding: base64
Content-Location: http://example.org/dot.png

iVBORw0K
--outer
Content-Type: message/rfc822
Content-Description: forwarded

From: Dave <dave@example.net>
Subject: inner
In-Reply-To: <x@y>
Content-Type: multipart/mixed; boundary=in

--in

inner text
--in
Content-Type: message/rfc822

Subject: deepest

deep body
--in--
--outer--
epilogue
";

#[test]
fn nested_multipart_and_messages() {
    let raw = crlf(NESTED);
    let a = analyze(&raw);
    assert_eq!(
        a.envelope,
        concat!(
            r#"("Tue, 2 Jan 2024 10:00:00 +0100" "=?ISO-8859-1?Q?caf=E9?= plans" "#,
            r#"(("Ann Example" NIL "ann" "example.org")) (("Ann Example" NIL "ann" "example.org")) "#,
            r#"(("Ann Example" NIL "ann" "example.org")) "#,
            r#"((NIL NIL "Team" NIL)(NIL NIL "bob" "example.org")("Carol" NIL "carol" "example.org")(NIL NIL NIL NIL)) "#,
            r#"NIL NIL NIL "<outer@example.org>")"#
        )
    );
    let inner_env = concat!(
        r#"(NIL "inner" (("Dave" NIL "dave" "example.net")) (("Dave" NIL "dave" "example.net")) "#,
        r#"(("Dave" NIL "dave" "example.net")) NIL NIL NIL "<x@y>" NIL)"#
    );
    let deep_env = r#"(NIL "deepest" NIL NIL NIL NIL NIL NIL NIL NIL)"#;
    let expected_bs = [
        "((",
        r#"("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 6 1 NIL NIL NIL NIL)"#,
        r#"("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 13 1 NIL NIL ("en" "de") NIL)"#,
        r#" "ALTERNATIVE" ("BOUNDARY" "alt") NIL NIL NIL)"#,
        r#"("IMAGE" "PNG" ("NAME" "dot.png") NIL NIL "BASE64" 8 NIL ("ATTACHMENT" ("FILENAME" "dot.png")) NIL "http://example.org/dot.png")"#,
        r#"("MESSAGE" "RFC822" NIL NIL "forwarded" "7BIT" 208 "#,
        inner_env,
        r#" (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL)"#,
        r#"("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 29 "#,
        deep_env,
        r#" ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 9 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)"#,
        r#" "MIXED" ("BOUNDARY" "in") NIL NIL NIL) 15 NIL NIL NIL NIL)"#,
        r#" "MIXED" ("BOUNDARY" "outer") NIL NIL NIL)"#,
    ]
    .concat();
    assert_eq!(a.bodystructure, expected_bs);
    let expected_body = [
        "((",
        r#"("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 6 1)"#,
        r#"("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 13 1)"#,
        r#" "ALTERNATIVE")"#,
        r#"("IMAGE" "PNG" ("NAME" "dot.png") NIL NIL "BASE64" 8)"#,
        r#"("MESSAGE" "RFC822" NIL NIL "forwarded" "7BIT" 208 "#,
        inner_env,
        r#" (("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1)"#,
        r#"("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 29 "#,
        deep_env,
        r#" ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 9 1) 3)"#,
        r#" "MIXED") 15)"#,
        r#" "MIXED")"#,
    ]
    .concat();
    assert_eq!(a.body, expected_body);
    assert_eq!(a.sent_date, Some(1_704_186_000));
}

#[test]
fn missing_headers_and_defaults() {
    let raw = crlf("X-Other: 1\n\nbody\n");
    let a = analyze(&raw);
    assert_eq!(a.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
    assert_eq!(a.body, r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 6 1)"#);
    assert_eq!(a.sent_date, None);
    assert_eq!(a.header_len, 14);
    // Present but empty: strings become "", address lists NIL.
    let raw = crlf("Subject:\nFrom: \nDate: not a date\n\n");
    let a = analyze(&raw);
    assert_eq!(a.envelope, r#"("not a date" "" NIL NIL NIL NIL NIL NIL NIL NIL)"#);
    assert_eq!(a.sent_date, None);
}

#[test]
fn sender_and_reply_to() {
    let raw = crlf("From: a@x\nSender: s@x\nReply-To: \nTo: undisclosed-recipients:;\nCc: c@x\nBcc: <b@x>\n\n");
    let a = analyze(&raw);
    assert_eq!(
        a.envelope,
        concat!(
            r#"(NIL NIL ((NIL NIL "a" "x")) ((NIL NIL "s" "x")) ((NIL NIL "a" "x")) "#,
            r#"((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) ((NIL NIL "c" "x")) "#,
            r#"((NIL NIL "b" "x")) NIL NIL)"#
        )
    );
}

#[test]
fn eight_bit_and_folded_subject() {
    let raw = "Subject: caf\u{e9}\r\n  au lait\r\nFrom: \"J\\\"o\" <j@x>\r\n\r\n".as_bytes();
    let a = analyze(raw);
    assert_eq!(
        a.envelope,
        "(NIL {14}\r\ncaf\u{e9}  au lait ((\"J\\\"o\" NIL \"j\" \"x\")) ((\"J\\\"o\" NIL \"j\" \"x\")) \
         ((\"J\\\"o\" NIL \"j\" \"x\")) NIL NIL NIL NIL NIL)"
    );
}

#[test]
fn broken_mime() {
    // Missing close delimiter: the last part runs to the end.
    let raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n");
    assert_eq!(
        analyze(&raw).body,
        r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3 1)("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 5 1) "MIXED")"#
    );
    // Boundary never occurs: one empty text part, as Dovecot does.
    let raw = crlf("Content-Type: multipart/mixed; boundary=zz\n\nno parts\n");
    assert_eq!(
        analyze(&raw).bodystructure,
        r#"(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0) "MIXED" ("BOUNDARY" "zz") NIL NIL NIL)"#
    );
    // Multipart without boundary, garbage type: RFC 2045 5.2 default.
    for ct in ["multipart/mixed", "garbage", "text/", "/plain", "te xt/plain", "\u{1}"] {
        let raw = crlf(&format!("Content-Type: {ct}\n\nx"));
        assert_eq!(analyze(&raw).body, r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1)"#, "{ct}");
    }
    // No blank line: all header, empty body.
    let raw = b"Subject: x\r\nFrom: a@b";
    let a = analyze(raw);
    assert_eq!(a.header_len, raw.len());
    assert_eq!(a.body, r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 0 0)"#);
    assert!(a.envelope.starts_with(r#"(NIL "x" ((NIL NIL "a" "b"))"#));
    // Empty input.
    let a = analyze(b"");
    assert_eq!(a.header_len, 0);
    assert_eq!(a.envelope, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
}

#[test]
fn digest_defaults_to_message() {
    let raw = crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: s\n\nb\n--d--\n");
    assert_eq!(
        analyze(&raw).body,
        concat!(
            r#"(("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 15 (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL) "#,
            r#"("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1 1) 3) "DIGEST")"#
        )
    );
}
