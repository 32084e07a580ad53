//! The messages of the end-to-end FETCH tests (tests/test_imap_fetch.py), checked here
//! byte-for-byte up to letter case, so a change in this crate shows up before the e2e run.

use super::crlf;
use crate::analyze;

const NESTED: &str = r#"From: Alice Example <alice@example.org>
To: Bob <bob@example.net>, carol@example.com
Cc: Dave <dave@example.net>
Subject: Quarterly report
Date: Tue, 05 Mar 2024 10:15:00 +0100
Message-ID: <nested-1@example.org>
In-Reply-To: <earlier@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer-b"

This is a multi-part message in MIME format.
--outer-b
Content-Type: multipart/alternative; boundary="inner-b"

--inner-b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Hello Bob,
the report is attached.

--inner-b
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Hello Bob,</p>
<p>the report is =
attached.</p>

--inner-b--

--outer-b
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K
ZW5kc3RyZWFtCmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK

--outer-b--
"#;
const NESTED_STRUCTURE: &str = r#"((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 37 2 NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 54 3 NIL NIL NIL NIL) "alternative" ("boundary" "inner-b") NIL NIL NIL)("application" "pdf" ("name" "report.pdf") NIL NIL "base64" 116 NIL ("attachment" ("filename" "report.pdf")) NIL NIL) "mixed" ("boundary" "outer-b") NIL NIL NIL)"#;
const NESTED_ENVELOPE: &str = r#"("Tue, 05 Mar 2024 10:15:00 +0100" "Quarterly report" (("Alice Example" NIL "alice" "example.org")) (("Alice Example" NIL "alice" "example.org")) (("Alice Example" NIL "alice" "example.org")) (("Bob" NIL "bob" "example.net")(NIL NIL "carol" "example.com")) (("Dave" NIL "dave" "example.net")) NIL "<earlier@example.net>" "<nested-1@example.org>")"#;
const FWD: &str = r#"From: Bob <bob@example.net>
To: Alice Example <alice@example.org>
Subject: Fwd: Lunch
Date: Wed, 06 Mar 2024 09:00:00 +0000
Message-ID: <fwd-1@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="fwd-b"

--fwd-b
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

See below.

--fwd-b
Content-Type: message/rfc822
Content-Transfer-Encoding: 7bit
Content-Description: forwarded message

From: "Carol C." <carol@example.com>
To: bob@example.net
Subject: Lunch
Date: Tue, 05 Mar 2024 12:00:00 -0500
Message-ID: <lunch-1@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

Lunch at noon?
Carol

--fwd-b--
"#;
const FWD_STRUCTURE: &str = r#"(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)("message" "rfc822" NIL NIL "forwarded message" "7bit" 270 ("Tue, 05 Mar 2024 12:00:00 -0500" "Lunch" (("Carol C." NIL "carol" "example.com")) (("Carol C." NIL "carol" "example.com")) (("Carol C." NIL "carol" "example.com")) ((NIL NIL "bob" "example.net")) NIL NIL NIL "<lunch-1@example.com>") ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 23 2 NIL NIL NIL NIL) 11 NIL NIL NIL NIL) "mixed" ("boundary" "fwd-b") NIL NIL NIL)"#;
const SIMPLE: &str = r#"From: alice@example.org
To: bob@example.net
Subject: Simple
Date: Thu, 07 Mar 2024 08:00:00 +0000
Message-ID: <simple@example.org>

Line one
Line two
"#;
const SIMPLE_STRUCTURE: &str = r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2 NIL NIL NIL NIL)"#;

fn check(msg: &str, structure: &str) -> crate::Analysis {
    let a = analyze(&crlf(msg));
    assert_eq!(a.bodystructure.to_uppercase(), structure.to_uppercase());
    a
}

#[test]
fn nested_multipart() {
    let a = check(NESTED, NESTED_STRUCTURE);
    assert_eq!(a.envelope, NESTED_ENVELOPE);
}

#[test]
fn forwarded_message() {
    check(FWD, FWD_STRUCTURE);
}

#[test]
fn simple_message() {
    check(SIMPLE, SIMPLE_STRUCTURE);
}
