"""SEARCH (RFC 3501 §6.4.4): flag keys, header/body/text keys, sizes, dates (internal and
Date: header), sequence and UID sets, NOT/OR/parentheses, CHARSET UTF-8."""

from __future__ import annotations

import pytest

from imapdata import appenduid, attempt, crlf, search

FILLER = "lorem ipsum dolor sit amet " * 120  # makes message 2 larger than 2000 octets

MESSAGES = [
    # (header Date, INTERNALDATE, flags, text)
    ("Thu, 01 Feb 2024 12:00:00 +0000", "03-Feb-2024 12:00:00 +0000", "(\\Seen)",
     "From: Alice Example <alice@example.org>\nTo: bob@example.net\n"
     "Subject: Meeting agenda\nMessage-ID: <s1@example.org>\n\n"
     "Let us discuss the budget.\n"),
    ("Sat, 10 Feb 2024 12:00:00 +0000", "12-Feb-2024 12:00:00 +0000", "(\\Draft)",
     "From: carol@example.com\nTo: Dave <dave@example.net>\nCc: erin@example.net\n"
     "Subject: Lunch plans\nX-Priority: 1\nMessage-ID: <s2@example.org>\n\n"
     f"How about pizza?\n{FILLER}\n"),
    ("Thu, 15 Feb 2024 12:00:00 +0000", "17-Feb-2024 12:00:00 +0000", "(\\Answered)",
     "From: Bob <bob@example.net>\nTo: alice@example.org\n"
     "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=\nMessage-ID: <s3@example.org>\n"
     "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
     "Content-Transfer-Encoding: quoted-printable\n\n"
     "Viele Gr=C3=BC=C3=9Fe aus der Stadt, und ein sehr langer Satz der umgebrochen =\n"
     "wird.\n"),
    ("Tue, 20 Feb 2024 12:00:00 +0000", "22-Feb-2024 12:00:00 +0000", "(\\Seen \\Flagged)",
     "From: Alice Example <alice@example.org>\nTo: bob@example.net\n"
     "Subject: Re: Meeting agenda\nIn-Reply-To: <s1@example.org>\n"
     "Message-ID: <s4@example.org>\n\nThe budget is approved.\n"),
    ("Fri, 01 Mar 2024 12:00:00 +0000", "03-Mar-2024 12:00:00 +0000", "(\\Deleted $Work)",
     "From: Zed Zulu <zed@example.com>\nTo: alice@example.org\nBcc: boss@example.com\n"
     "Subject: Invoice\nMessage-ID: <s5@example.org>\n\nInvoice attached, pay soon.\n"),
]


@pytest.fixture(scope="module")
def box(server):
    user = server.new_user()
    m = server.imap(user)
    m.create("Search")
    uids = []
    for date, idate, flags, text in MESSAGES:
        head, body = text.split("\n\n", 1)
        msg = crlf(f"Date: {date}\n{head}\n\n{body}")
        typ, data = m.append("Search", flags, f'"{idate}"', msg)
        assert typ == "OK", data
        uids.append(appenduid(data)[1])
    m.select("Search")
    yield m, uids
    m.logout()


CASES = [
    ("ALL", [1, 2, 3, 4, 5]),
    ("SEEN", [1, 4]),
    ("UNSEEN", [2, 3, 5]),
    ("FLAGGED", [4]),
    ("UNFLAGGED", [1, 2, 3, 5]),
    ("ANSWERED", [3]),
    ("UNANSWERED", [1, 2, 4, 5]),
    ("DELETED", [5]),
    ("UNDELETED", [1, 2, 3, 4]),
    ("DRAFT", [2]),
    ("UNDRAFT", [1, 3, 4, 5]),
    ("KEYWORD $Work", [5]),
    ("UNKEYWORD $Work", [1, 2, 3, 4]),
    ("FROM alice", [1, 4]),
    ('FROM "Zed Zulu"', [5]),
    ("FROM ALICE@EXAMPLE.ORG", [1, 4]),
    ("TO dave", [2]),
    ("CC erin", [2]),
    ("BCC boss", [5]),
    ("SUBJECT meeting", [1, 4]),
    ('SUBJECT "re: meeting"', [4]),
    ("HEADER X-Priority 1", [2]),
    ('HEADER X-Priority ""', [2]),
    ("HEADER In-Reply-To s1@example.org", [4]),
    ("HEADER Message-ID <s3@example.org>", [3]),
    ("BODY budget", [1, 4]),
    ("BODY meeting", []),
    ("TEXT meeting", [1, 4]),
    ("TEXT pizza", [2]),
    ("BODY zed", []),
    ("TEXT zed", [5]),
    ("BODY umgebrochen", [3]),
    ("BODY \"umgebrochen wird\"", [3]),  # across a quoted-printable soft line break
    ("LARGER 2000", [2]),
    ("SMALLER 2000", [1, 3, 4, 5]),
    ("ON 12-Feb-2024", [2]),
    ("ON 10-Feb-2024", []),
    ("SINCE 17-Feb-2024", [3, 4, 5]),
    ("BEFORE 12-Feb-2024", [1]),
    ("SENTON 10-Feb-2024", [2]),
    ("SENTON 12-Feb-2024", []),
    ("SENTSINCE 15-Feb-2024", [3, 4, 5]),
    ("SENTBEFORE 15-Feb-2024", [1, 2]),
    ("NOT SEEN", [2, 3, 5]),
    ("OR FROM alice TO dave", [1, 2, 4]),
    ("NOT OR FROM alice TO dave", [3, 5]),
    ("(OR SEEN FLAGGED) NOT FROM bob", [1, 4]),
    ("FROM alice UNSEEN", []),
    ("OR (SEEN FLAGGED) DRAFT", [2, 4]),
    ("2:3", [2, 3]),
    ("4:*", [4, 5]),
    ("*", [5]),
    ("1,3,5 UNSEEN", [3, 5]),
]


@pytest.mark.parametrize("criteria,want", CASES, ids=[c for c, _ in CASES])
def test_search(box, criteria, want):
    m, _ = box
    assert search(m, criteria) == want


def test_uid_ranges(box):
    m, uids = box
    assert search(m, f"UID {uids[1]}:{uids[3]}") == [2, 3, 4]
    assert search(m, f"UID {uids[3]}:*", uid=True) == [uids[3], uids[4]]
    assert search(m, f"UID {uids[0]},{uids[4]}", uid=True) == [uids[0], uids[4]]
    assert search(m, "SEEN", uid=True) == [uids[0], uids[3]]
    assert search(m, f"UID {uids[4] + 100}:{uids[4] + 200}", uid=True) in ([], [uids[4]]), \
        "a UID range past the end matches at most the last message (RFC 3501 §6.4.8)"


def test_charset_utf8_body_quoted_printable(box):
    m, _ = box
    m.literal = "Grüße aus der Stadt".encode()
    assert search(m, "BODY", charset="UTF-8") == [3]


def test_charset_utf8_encoded_word_subject(box):
    m, _ = box
    m.literal = "München".encode()
    assert search(m, "SUBJECT", charset="UTF-8") == [3]


def test_charset_utf8_text_and_no_match(box):
    m, _ = box
    m.literal = "Grüße".encode()
    assert search(m, "TEXT", charset="UTF-8") == [3]
    m.literal = "Straße".encode()
    assert search(m, "TEXT", charset="UTF-8") == []


def test_charset_us_ascii(box):
    m, _ = box
    assert search(m, "BODY", "budget", charset="US-ASCII") == [1, 4]


def test_unknown_charset_is_no_badcharset(server, box):
    m, _ = box
    typ, data = attempt(m.search, "X-NO-SUCH-CHARSET", "BODY", "x")
    assert typ == "NO", f"unknown CHARSET answered {typ} {data!r}"
    assert b"BADCHARSET" in b" ".join(d for d in data if d).upper(), data


def test_bad_search_syntax_is_bad(box):
    m, _ = box
    typ, data = attempt(m.search, None, "FROBNICATE")
    assert typ == "BAD", (typ, data)
    assert m.noop()[0] == "OK"


def test_search_after_expunge_renumbers(server):
    user = server.new_user()
    m = server.imap(user)
    for i in range(3):
        m.append("INBOX", None, None, crlf(f"Subject: n{i}\n\nbody{i}\n"))
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    assert search(m, "BODY body2") == [2]
    assert search(m, "ALL") == [1, 2]
    m.logout()
