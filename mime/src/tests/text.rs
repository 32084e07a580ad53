//! SEARCH helpers: RFC 2047 header decoding and body text decoding.

use super::crlf;
use super::structure::NESTED;
use crate::{body_text, contains_ci, header_text, header_values};

#[test]
fn encoded_word_subject() {
    let raw = crlf(NESTED);
    assert_eq!(header_values(&raw, "subject"), vec!["caf\u{e9} plans".to_string()]);
    assert_eq!(header_values(&raw, "From"), vec!["\"Ann Example\" <ann@example.org>".to_string()]);
    assert!(header_values(&raw, "X-Missing").is_empty());
    let raw =
        crlf("Subject: =?UTF-8?B?w6l0w6k=?=\n =?utf-8?q?_d=C3=A9j=C3=A0?=\nX-A: 1\nx-a: 2\n\nbody mentions x-a: 3\n");
    assert_eq!(header_values(&raw, "SUBJECT"), vec!["\u{e9}t\u{e9} d\u{e9}j\u{e0}".to_string()]);
    assert_eq!(header_values(&raw, "x-a"), vec!["1".to_string(), "2".to_string()]);
    let all = header_text(&raw);
    assert!(all.contains("Subject: \u{e9}t\u{e9} d\u{e9}j\u{e0}\n"), "{all}");
    assert!(!all.contains("body"));
    assert!(contains_ci(&all, "\u{c9}T\u{c9}"));
}

#[test]
fn body_decoding() {
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

SGVsbG8gd8O2cmxk
--b
Content-Type: text/html; charset=\"iso-8859-1\"
Content-Transfer-Encoding: quoted-printable

<p>Gr=FC=DFe, soft=
 break</p>
--b
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

c2VjcmV0
--b
Content-Type: message/rfc822

Subject: fwd

forwarded text
--b--
",
    );
    let text = body_text(&raw);
    assert!(text.contains("Hello w\u{f6}rld"), "{text:?}");
    assert!(text.contains("<p>Gr\u{fc}\u{df}e, soft break</p>"), "{text:?}");
    assert!(!text.contains("secret") && !text.contains("c2VjcmV0"), "{text:?}");
    assert!(text.contains("forwarded text"));
    assert!(!text.contains("fwd"));
    assert!(contains_ci(&text, "GR\u{dc}\u{df}E, SOFT"));
}

#[test]
fn body_text_plain_and_broken() {
    let raw = crlf("Subject: s\n\nJust text.\n");
    assert_eq!(body_text(&raw), "Just text.\r\n");
    // Unpadded base64, junk characters and a dangling '=' in QP survive.
    let raw = crlf("Content-Transfer-Encoding: base64\n\naGk\n!!\n");
    assert_eq!(body_text(&raw), "hi");
    let raw = crlf("Content-Transfer-Encoding: quoted-printable\n\na=ZZb=\n");
    assert_eq!(body_text(&raw), "a=ZZb");
    let raw = crlf("Content-Type: image/gif\n\nGIF89a");
    assert_eq!(body_text(&raw), "");
    assert_eq!(body_text(b""), "");
}
