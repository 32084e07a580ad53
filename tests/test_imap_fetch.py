"""FETCH items (RFC 3501 §6.4.5, §7.4.2): BODYSTRUCTURE of nested multipart and message/rfc822
messages, body sections, partial fetches, RFC822.*, ENVELOPE, INTERNALDATE.

Messages are APPENDed, so the stored bytes are exactly the bytes below and every expected
value is derived from them by the RFC's definitions."""

from __future__ import annotations

import pytest

from imapdata import appenduid, body_text, fetch_one, flags_of, parse, parse_internaldate, serialize

CRLF = b"\r\n"


def header(*lines: str) -> bytes:
    return b"".join(line.encode() + CRLF for line in lines)


def multipart(boundary: str, parts: list[tuple[bytes, bytes]], preamble: bytes = b"") -> bytes:
    out = preamble
    for h, body in parts:
        out += b"--" + boundary.encode() + CRLF + h + CRLF + body + CRLF
    return out + b"--" + boundary.encode() + b"--" + CRLF


# ---- message 1: multipart/mixed > (multipart/alternative > text/plain, text/html), pdf -------

PLAIN_H = header("Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 7bit")
PLAIN_B = b"Hello Bob,\r\nthe report is attached.\r\n"
HTML_H = header("Content-Type: text/html; charset=utf-8",
                "Content-Transfer-Encoding: quoted-printable")
HTML_B = b"<p>Hello Bob,</p>\r\n<p>the report is =\r\nattached.</p>\r\n"
ALT_H = header('Content-Type: multipart/alternative; boundary="inner-b"')
ALT_B = multipart("inner-b", [(PLAIN_H, PLAIN_B), (HTML_H, HTML_B)])
PDF_H = header('Content-Type: application/pdf; name="report.pdf"',
               'Content-Disposition: attachment; filename="report.pdf"',
               "Content-Transfer-Encoding: base64")
PDF_B = (b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n"
         b"ZW5kc3RyZWFtCmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK\r\n")
NESTED_H = header(
    "From: Alice Example <alice@example.org>",
    "To: Bob <bob@example.net>, carol@example.com",
    "Cc: Dave <dave@example.net>",
    "Subject: Quarterly report",
    "Date: Tue, 05 Mar 2024 10:15:00 +0100",
    "Message-ID: <nested-1@example.org>",
    "In-Reply-To: <earlier@example.net>",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="outer-b"',
)
NESTED_B = multipart("outer-b", [(ALT_H, ALT_B), (PDF_H, PDF_B)],
                     preamble=b"This is a multi-part message in MIME format.\r\n")
NESTED = NESTED_H + CRLF + NESTED_B

NESTED_STRUCTURE = (
    '((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" {ps} {pl} NIL NIL NIL NIL)'
    '("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" {hs} {hl} NIL NIL NIL NIL)'
    ' "alternative" ("boundary" "inner-b") NIL NIL NIL)'
    '("application" "pdf" ("name" "report.pdf") NIL NIL "base64" {fs} NIL'
    ' ("attachment" ("filename" "report.pdf")) NIL NIL)'
    ' "mixed" ("boundary" "outer-b") NIL NIL NIL)'
).format(ps=len(PLAIN_B), pl=PLAIN_B.count(b"\n"), hs=len(HTML_B), hl=HTML_B.count(b"\n"),
         fs=len(PDF_B))

NESTED_ENVELOPE = (
    '("Tue, 05 Mar 2024 10:15:00 +0100" "Quarterly report"'
    ' (("Alice Example" NIL "alice" "example.org"))'
    ' (("Alice Example" NIL "alice" "example.org"))'
    ' (("Alice Example" NIL "alice" "example.org"))'
    ' (("Bob" NIL "bob" "example.net")(NIL NIL "carol" "example.com"))'
    ' (("Dave" NIL "dave" "example.net")) NIL "<earlier@example.net>" "<nested-1@example.org>")'
)

# ---- message 2: multipart/mixed > text/plain, message/rfc822 (> text/plain) -------------------

INNER_H = header(
    'From: "Carol C." <carol@example.com>',
    "To: bob@example.net",
    "Subject: Lunch",
    "Date: Tue, 05 Mar 2024 12:00:00 -0500",
    "Message-ID: <lunch-1@example.com>",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii",
    "Content-Transfer-Encoding: 7bit",
)
INNER_B = b"Lunch at noon?\r\nCarol\r\n"
INNER = INNER_H + CRLF + INNER_B
NOTE_H = header("Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit")
NOTE_B = b"See below.\r\n"
RFC822_H = header("Content-Type: message/rfc822", "Content-Transfer-Encoding: 7bit",
                  "Content-Description: forwarded message")
FWD_H = header(
    "From: Bob <bob@example.net>",
    "To: Alice Example <alice@example.org>",
    "Subject: Fwd: Lunch",
    "Date: Wed, 06 Mar 2024 09:00:00 +0000",
    "Message-ID: <fwd-1@example.net>",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="fwd-b"',
)
FWD = FWD_H + CRLF + multipart("fwd-b", [(NOTE_H, NOTE_B), (RFC822_H, INNER)])

INNER_ENVELOPE = (
    '("Tue, 05 Mar 2024 12:00:00 -0500" "Lunch"'
    ' (("Carol C." NIL "carol" "example.com"))'
    ' (("Carol C." NIL "carol" "example.com"))'
    ' (("Carol C." NIL "carol" "example.com"))'
    ' ((NIL NIL "bob" "example.net")) NIL NIL NIL "<lunch-1@example.com>")'
)
FWD_STRUCTURE = (
    '(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" {ns} {nl} NIL NIL NIL NIL)'
    '("message" "rfc822" NIL NIL "forwarded message" "7bit" {ms} {env}'
    ' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" {is_} {il} NIL NIL NIL NIL)'
    ' {ml} NIL NIL NIL NIL)'
    ' "mixed" ("boundary" "fwd-b") NIL NIL NIL)'
).format(ns=len(NOTE_B), nl=NOTE_B.count(b"\n"), ms=len(INNER), env=INNER_ENVELOPE,
         is_=len(INNER_B), il=INNER_B.count(b"\n"), ml=INNER.count(b"\n"))

# ---- message 3: a plain single-part message ---------------------------------------------------

SIMPLE_H = header(
    "From: alice@example.org",
    "To: bob@example.net",
    "Subject: Simple",
    "Date: Thu, 07 Mar 2024 08:00:00 +0000",
    "Message-ID: <simple@example.org>",
)
SIMPLE_B = b"Line one\r\nLine two\r\n"
SIMPLE = SIMPLE_H + CRLF + SIMPLE_B
SIMPLE_STRUCTURE = (
    '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" {s} {l} NIL NIL NIL NIL)'
).format(s=len(SIMPLE_B), l=SIMPLE_B.count(b"\n"))


def expected(text: str) -> str:
    return body_text(parse(text.encode())[0])


@pytest.fixture(scope="module")
def box(server):
    """(imap session with "Fetch" selected, {name: uid})."""
    user = server.new_user()
    m = server.imap(user)
    m.create("Fetch")
    uids = {}
    for name, msg, date in (("nested", NESTED, '"05-Mar-2024 10:16:00 +0100"'),
                            ("fwd", FWD, '"06-Mar-2024 09:01:00 +0000"'),
                            ("simple", SIMPLE, '"07-Mar-2024 08:01:00 -0700"')):
        typ, data = m.append("Fetch", None, date, msg)
        assert typ == "OK", data
        uids[name] = appenduid(data)[1]
    m.select("Fetch")
    yield m, uids
    m.logout()


def get(box, name, items):
    m, uids = box
    return fetch_one(m, str(uids[name]), f"({items})", uid=True)


def test_bodystructure_nested_multipart(box):
    got = get(box, "nested", "BODYSTRUCTURE")["BODYSTRUCTURE"]
    assert body_text(got) == expected(NESTED_STRUCTURE), serialize(got)


def test_bodystructure_message_rfc822(box):
    got = get(box, "fwd", "BODYSTRUCTURE")["BODYSTRUCTURE"]
    assert body_text(got) == expected(FWD_STRUCTURE), serialize(got)


def test_bodystructure_single_part(box):
    """No Content-Type: text/plain; charset=us-ascii, 7bit by default (RFC 2045 §5.2)."""
    got = get(box, "simple", "BODYSTRUCTURE")["BODYSTRUCTURE"]
    assert body_text(got) == expected(SIMPLE_STRUCTURE), serialize(got)


def test_body_is_bodystructure_without_extensions(box):
    got = get(box, "nested", "BODY")["BODY"]
    assert body_text(got, extensions=False) == body_text(parse(NESTED_STRUCTURE.encode())[0],
                                                         extensions=False)
    assert serialize(got).upper() == body_text(got, extensions=False), \
        f"BODY carries extension data: {serialize(got)}"


def test_body_sections_nested(box):
    item = get(box, "nested", "BODY.PEEK[1] BODY.PEEK[1.1] BODY.PEEK[1.2] BODY.PEEK[2] "
                              "BODY.PEEK[1.MIME] BODY.PEEK[2.MIME] BODY.PEEK[1.1.MIME]")
    assert item["BODY[1]"] == ALT_B
    assert item["BODY[1.1]"] == PLAIN_B
    assert item["BODY[1.2]"] == HTML_B
    assert item["BODY[2]"] == PDF_B
    assert item["BODY[1.MIME]"] == ALT_H + CRLF
    assert item["BODY[2.MIME]"] == PDF_H + CRLF
    assert item["BODY[1.1.MIME]"] == PLAIN_H + CRLF


def test_body_sections_rfc822_part(box):
    item = get(box, "fwd", "BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] "
                           "BODY.PEEK[2.1] BODY.PEEK[2.HEADER.FIELDS (SUBJECT FROM)]")
    assert item["BODY[1]"] == NOTE_B
    assert item["BODY[2]"] == INNER
    assert item["BODY[2.HEADER]"] == INNER_H + CRLF
    assert item["BODY[2.TEXT]"] == INNER_B
    assert item["BODY[2.1]"] == INNER_B
    assert item["BODY[2.HEADER.FIELDS (SUBJECT FROM)]"] == (
        b'From: "Carol C." <carol@example.com>\r\nSubject: Lunch\r\n\r\n')


def test_body_single_part_section_1(box):
    item = get(box, "simple", "BODY.PEEK[1] BODY.PEEK[TEXT] BODY.PEEK[HEADER]")
    assert item["BODY[1]"] == SIMPLE_B
    assert item["BODY[TEXT]"] == SIMPLE_B
    assert item["BODY[HEADER]"] == SIMPLE_H + CRLF


def test_header_fields(box):
    item = get(box, "nested", "BODY.PEEK[HEADER.FIELDS (SUBJECT)] "
                              "BODY.PEEK[HEADER.FIELDS (subject message-id)] "
                              "BODY.PEEK[HEADER.FIELDS (X-NOT-THERE)]")
    assert item["BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: Quarterly report\r\n\r\n"
    key = [k for k in item if k.startswith("BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID")]
    assert key, item.keys()
    assert item[key[0]] == b"Subject: Quarterly report\r\nMessage-ID: <nested-1@example.org>\r\n\r\n"
    assert item["BODY[HEADER.FIELDS (X-NOT-THERE)]"] == CRLF


def test_header_fields_not(box):
    item = get(box, "simple", "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT DATE MESSAGE-ID)]")
    assert item["BODY[HEADER.FIELDS.NOT (SUBJECT DATE MESSAGE-ID)]"] == header(
        "From: alice@example.org", "To: bob@example.net") + CRLF


def test_partial_fetch(box):
    item = get(box, "nested", "BODY.PEEK[]<0.10>")
    assert item["BODY[]<0>"] == NESTED[:10]
    item = get(box, "nested", "BODY.PEEK[]<20.15>")
    assert item["BODY[]<20>"] == NESTED[20:35]
    item = get(box, "nested", "BODY.PEEK[1.1]<6.100>")
    assert item["BODY[1.1]<6>"] == PLAIN_B[6:106]
    item = get(box, "nested", f"BODY.PEEK[]<{len(NESTED) + 5}.10>")
    assert item[f"BODY[]<{len(NESTED) + 5}>"] == b""


def test_rfc822_items(box):
    item = get(box, "nested", "RFC822.SIZE RFC822.HEADER")
    assert item["RFC822.SIZE"] == len(NESTED)
    assert item["RFC822.HEADER"] == NESTED_H + CRLF
    item = get(box, "fwd", "RFC822.TEXT RFC822")
    assert item["RFC822.TEXT"] == FWD[len(FWD_H) + 2:]
    assert item["RFC822"] == FWD


def test_envelope(box):
    got = get(box, "nested", "ENVELOPE")["ENVELOPE"]
    assert serialize(got) == serialize(parse(NESTED_ENVELOPE.encode())[0])
    got = get(box, "simple", "ENVELOPE")["ENVELOPE"]
    assert serialize(got) == serialize(parse(
        b'("Thu, 07 Mar 2024 08:00:00 +0000" "Simple" ((NIL NIL "alice" "example.org"))'
        b' ((NIL NIL "alice" "example.org")) ((NIL NIL "alice" "example.org"))'
        b' ((NIL NIL "bob" "example.net")) NIL NIL NIL "<simple@example.org>")')[0])


def test_envelope_encoded_words_kept_raw(server):
    """ENVELOPE carries header text as is: RFC 2047 words are the client's to decode."""
    user = server.new_user()
    m = server.imap(user)
    msg = header("From: =?utf-8?q?J=C3=BCrgen?= <j@example.de>",
                 "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=") + CRLF + b"x\r\n"
    m.append("INBOX", None, None, msg)
    m.select("INBOX")
    env = fetch_one(m, "1", "(ENVELOPE)")["ENVELOPE"]
    assert env[1] == b"=?utf-8?q?Gr=C3=BC=C3=9Fe?="
    assert env[2][0][0] == b"=?utf-8?q?J=C3=BCrgen?="
    m.logout()


def test_internaldate(box):
    import datetime as dt

    got = parse_internaldate(get(box, "simple", "INTERNALDATE")["INTERNALDATE"])
    assert got == dt.datetime(2024, 3, 7, 8, 1, tzinfo=dt.timezone(dt.timedelta(hours=-7)))


def test_fetch_macros(box):
    m, uids = box
    uid = str(uids["simple"])
    item = fetch_one(m, uid, "FAST", uid=True)
    assert {"FLAGS", "INTERNALDATE", "RFC822.SIZE"} <= set(item), item.keys()
    item = fetch_one(m, uid, "FULL", uid=True)
    assert {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"} <= set(item)
    item = fetch_one(m, uid, "ALL", uid=True)
    assert {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"} <= set(item)


def test_uid_fetch_always_returns_uid(box):
    m, uids = box
    item = fetch_one(m, str(uids["simple"]), "(FLAGS)", uid=True)
    assert item.get("UID") == uids["simple"]


def test_fetch_many_items_at_once(box):
    m, uids = box
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE ENVELOPE INTERNALDATE BODYSTRUCTURE)")
    assert typ == "OK"
    from imapdata import parse_fetch

    res = parse_fetch(data)
    assert sorted(v["UID"] for v in res.values()) == sorted(uids.values())


def test_missing_part_is_empty_or_no(box):
    m, uids = box
    typ, data = m.uid("FETCH", str(uids["simple"]), "(BODY.PEEK[5])")
    if typ == "OK":
        from imapdata import parse_fetch

        res = parse_fetch(data)
        assert list(res.values())[0]["BODY[5]"] in (b"", None)
    else:
        assert typ == "NO"


def test_body_fetch_sets_seen_flag_in_response(box):
    m, uids = box
    item = get(box, "simple", "BODY[TEXT] FLAGS")
    assert item["BODY[TEXT]"] == SIMPLE_B
    flags = flags_of(get(box, "simple", "FLAGS")["FLAGS"])
    assert "\\Seen" in flags
