"""IMAP extensions of issue 6, each against its RFC through a raw client session on a real
mailstored: SORT/THREAD (RFC 5256, DISPLAYFROM of RFC 5957), ESEARCH (RFC 4731), SEARCHRES
(RFC 5182), LIST-EXTENDED (RFC 5258) + LIST-STATUS (RFC 5819), CONDSTORE/QRESYNC (RFC 7162)
and QUOTA (RFC 9208)."""

from __future__ import annotations

import re

import pytest

from harness import RawClient

# (Date header, INTERNALDATE, header lines, body). Base subjects (RFC 5256 2.1): plans, plans,
# lunch, lunch ("[list] Fwd: Lunch (fwd)"), plans ("re: RE: Re: PLANS"), "" (no Subject).
MESSAGES = [
    ("Thu, 01 Feb 2024 10:00:00 +0000", "10-Mar-2024 10:00:00 +0000",
     "From: Zoe <zoe@x.org>\r\nTo: a@x.org\r\nSubject: Plans\r\nMessage-ID: <1@x>", "one"),
    ("Sat, 03 Feb 2024 10:00:00 +0000", "09-Mar-2024 10:00:00 +0000",
     "From: Zed <al@x.org>\r\nTo: b@x.org\r\nSubject: Re: plans\r\nMessage-ID: <2@x>\r\n"
     "In-Reply-To: <1@x>", "two two"),
    ("Fri, 02 Feb 2024 10:00:00 +0000", "08-Mar-2024 10:00:00 +0000",
     "From: bo@x.org\r\nTo: c@x.org\r\nSubject: Lunch\r\nMessage-ID: <3@x>", "three three three"),
    ("Sun, 04 Feb 2024 10:00:00 +0000", "07-Mar-2024 10:00:00 +0000",
     "From: Carl <carl@x.org>\r\nTo: d@x.org\r\nSubject: [list] Fwd: Lunch (fwd)\r\n"
     "Message-ID: <4@x>\r\nReferences: <3@x>", "four"),
    ("Mon, 05 Feb 2024 10:00:00 +0000", "06-Mar-2024 10:00:00 +0000",
     "From: dan@x.org\r\nTo: e@x.org\r\nSubject: re: RE: Re: PLANS\r\nMessage-ID: <5@x>\r\n"
     "References: <1@x> <2@x>", "five five five five five"),
    ("Tue, 30 Jan 2024 10:00:00 +0000", "05-Mar-2024 10:00:00 +0000",
     "From: eve@x.org\r\nTo: f@x.org\r\nMessage-ID: <6@x>", "six"),
]


def connect(server, user) -> RawClient:
    c = server.raw()
    assert c.readline().startswith(b"* OK")
    c.login(user)
    return c


def ok(c: RawClient, text: str) -> list[bytes]:
    untagged, tagged = c.command(text)
    assert b" OK" in tagged.split(b"[")[0] + b" ", (text, tagged, untagged)
    return untagged


def append(c: RawClient, box: str, idate: str, msg: bytes, flags: str = "()") -> int:
    tag = c.next_tag()
    c.send(f'{tag} APPEND {box} {flags} "{idate}" {{{len(msg)}+}}\r\n'.encode() + msg + b"\r\n")
    _, tagged = c.read_until_tag(tag)
    m = re.search(rb"\[APPENDUID \d+ (\d+)\]", tagged)
    assert m, tagged
    return int(m.group(1))


def one(untagged: list[bytes], prefix: bytes) -> bytes:
    lines = [u for u in untagged if u.startswith(prefix)]
    assert len(lines) == 1, (prefix, untagged)
    return lines[0].rstrip(b"\r\n")


def numbers(line: bytes, prefix: bytes) -> list[int]:
    return [int(x) for x in line[len(prefix):].split()]


@pytest.fixture(scope="module")
def sortbox(server):
    user = server.new_user()
    c = connect(server, user)
    ok(c, "CREATE Sort")
    uids = []
    for date, idate, head, body in MESSAGES:
        msg = f"Date: {date}\r\n{head}\r\n\r\n{body}\r\n".encode()
        uids.append(append(c, "Sort", idate, msg))
    c.close()
    return user, uids


@pytest.fixture
def sel(server, sortbox):
    user, uids = sortbox
    c = connect(server, user)
    ok(c, "SELECT Sort")
    yield c, uids
    c.close()


def test_capabilities_advertised(server, user):
    c = connect(server, user)
    caps = set(one(ok(c, "CAPABILITY"), b"* CAPABILITY").split()[2:])
    for cap in (b"SORT", b"SORT=DISPLAY", b"THREAD=REFERENCES", b"THREAD=ORDEREDSUBJECT", b"ESEARCH",
                b"SEARCHRES", b"LIST-EXTENDED", b"LIST-STATUS", b"CONDSTORE", b"QRESYNC", b"QUOTA",
                b"QUOTA=RES-STORAGE", b"COMPRESS=DEFLATE"):
        assert cap in caps, caps
    c.close()


SORTS = [
    ("(SUBJECT)", [6, 3, 4, 1, 2, 5]),
    ("(REVERSE DATE)", [5, 4, 2, 3, 1, 6]),
    ("(DATE)", [6, 1, 3, 2, 4, 5]),
    ("(ARRIVAL)", [6, 5, 4, 3, 2, 1]),
    ("(FROM)", [2, 3, 4, 5, 6, 1]),
    ("(DISPLAYFROM)", [3, 4, 5, 6, 2, 1]),
    ("(TO)", [1, 2, 3, 4, 5, 6]),
    ("(SUBJECT REVERSE DATE)", [6, 4, 3, 5, 2, 1]),
    ("(SIZE)", None),
]


@pytest.mark.parametrize("keys,expected", SORTS)
def test_sort_keys(sel, keys, expected):
    c, uids = sel
    if expected is None:
        sizes = {int(re.match(rb"\* (\d+)", l).group(1)): int(re.search(rb"RFC822.SIZE (\d+)", l).group(1))
                 for l in ok(c, "FETCH 1:* (RFC822.SIZE)")}
        assert len(set(sizes.values())) == 6, "the fixture's sizes must differ"
        expected = sorted(sizes, key=sizes.get)
    line = one(ok(c, f"SORT {keys} UTF-8 ALL"), b"* SORT")
    assert numbers(line, b"* SORT") == expected
    line = one(ok(c, f"UID SORT {keys} US-ASCII ALL"), b"* SORT")
    assert numbers(line, b"* SORT") == [uids[i - 1] for i in expected]


def test_sort_with_search_criteria_and_charset(sel):
    c, _ = sel
    line = one(ok(c, "SORT (REVERSE ARRIVAL) UTF-8 SUBJECT plans"), b"* SORT")
    assert numbers(line, b"* SORT") == [1, 2, 5]
    assert numbers(one(ok(c, "SORT (DATE) UTF-8 FROM nobody"), b"* SORT"), b"* SORT") == []
    _, tagged = c.command("SORT (DATE) KOI8-R ALL")
    assert b"NO [BADCHARSET" in tagged


def test_thread_orderedsubject(sel):
    c, uids = sel
    assert one(ok(c, "THREAD ORDEREDSUBJECT UTF-8 ALL"), b"* THREAD") == b"* THREAD (6)(1 (2)(5))(3 4)"
    u = uids
    expected = f"* THREAD ({u[5]})({u[0]} ({u[1]})({u[4]}))({u[2]} {u[3]})".encode()
    assert one(ok(c, "UID THREAD ORDEREDSUBJECT UTF-8 ALL"), b"* THREAD") == expected


def test_thread_references(sel):
    c, _ = sel
    assert one(ok(c, "THREAD REFERENCES UTF-8 ALL"), b"* THREAD") == b"* THREAD (6)(1 2 5)(3 4)"
    # A search that leaves out the message in the middle: 5 still hangs below 1 through <2@x>'s
    # dummy, which is pruned (RFC 5256 REFERENCES step 4).
    assert one(ok(c, "THREAD REFERENCES UTF-8 NOT HEADER Message-ID 2@x"), b"* THREAD") == \
        b"* THREAD (6)(1 5)(3 4)"
    _, tagged = c.command("THREAD SOMETHING UTF-8 ALL")
    assert b"BAD" in tagged or b"NO" in tagged


def test_esearch(sel):
    c, uids = sel
    tag = c.next_tag()
    untagged, tagged = c.command("SEARCH RETURN (MIN MAX COUNT) SUBJECT plans", tag=tag)
    assert b"OK" in tagged
    assert one(untagged, b"* ESEARCH") == f'* ESEARCH (TAG "{tag}") MIN 1 MAX 5 COUNT 3'.encode()
    tag = c.next_tag()
    untagged, _ = c.command("UID SEARCH RETURN (ALL) SUBJECT lunch", tag=tag)
    assert one(untagged, b"* ESEARCH") == f'* ESEARCH (TAG "{tag}") UID ALL {uids[2]}:{uids[3]}'.encode()
    tag = c.next_tag()
    untagged, _ = c.command("SEARCH RETURN () FROM nobody", tag=tag)
    assert one(untagged, b"* ESEARCH") == f'* ESEARCH (TAG "{tag}")'.encode()
    tag = c.next_tag()
    untagged, _ = c.command("SEARCH RETURN (COUNT) FROM nobody", tag=tag)
    assert one(untagged, b"* ESEARCH") == f'* ESEARCH (TAG "{tag}") COUNT 0'.encode()
    tag = c.next_tag()
    untagged, _ = c.command("SEARCH RETURN (ALL) 1:3,5", tag=tag)
    assert one(untagged, b"* ESEARCH") == f'* ESEARCH (TAG "{tag}") ALL 1:3,5'.encode()
    assert not [u for u in untagged if u.startswith(b"* SEARCH")]
    _, tagged = c.command("SEARCH RETURN (FIRST) ALL")
    assert b" BAD " in tagged


def test_searchres(sel):
    c, uids = sel
    untagged = ok(c, "SEARCH RETURN (SAVE) SUBJECT lunch")
    assert not [u for u in untagged if u.startswith((b"* SEARCH", b"* ESEARCH"))], untagged
    fetched = ok(c, "FETCH $ (UID)")
    assert [int(re.match(rb"\* (\d+) FETCH", f).group(1)) for f in fetched] == [3, 4]
    assert numbers(one(ok(c, "SEARCH $ FROM carl"), b"* SEARCH"), b"* SEARCH") == [4]
    assert numbers(one(ok(c, "UID SEARCH UID $"), b"* SEARCH"), b"* SEARCH") == [uids[2], uids[3]]
    # RFC 5182 example: SAVE combined with MIN saves only the minimum.
    tag = c.next_tag()
    untagged, _ = c.command("SEARCH RETURN (SAVE MIN) SUBJECT plans", tag=tag)
    assert one(untagged, b"* ESEARCH") == f'* ESEARCH (TAG "{tag}") MIN 1'.encode()
    fetched = ok(c, "UID FETCH $ (FLAGS)")
    assert len(fetched) == 1 and f"UID {uids[0]}".encode() in fetched[0]
    # A new SELECT empties $.
    ok(c, "SELECT Sort")
    assert ok(c, "FETCH $ (FLAGS)") == []
    assert numbers(one(ok(c, "SEARCH $"), b"* SEARCH"), b"* SEARCH") == []


def test_list_extended_and_status(server, user):
    c = connect(server, user)
    for box in ("Ext", "Ext/A", "Ext/B"):
        ok(c, f"CREATE {box}")
    ok(c, "UNSUBSCRIBE Ext")
    ok(c, "SUBSCRIBE Ext/A")
    ok(c, "SUBSCRIBE Gone")
    lines = ok(c, 'LIST (SUBSCRIBED) "" "Ext/*"')
    assert lines == [b'* LIST (\\HasNoChildren \\Subscribed) "/" "Ext/A"\r\n']
    lines = ok(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    assert b'* LIST (\\HasChildren) "/" "Ext" ("CHILDINFO" ("SUBSCRIBED"))\r\n' in lines
    assert b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"\r\n' in lines
    assert not any(b'"Ext/A"' in l for l in lines)
    lines = ok(c, 'LIST "" ("Ext" "Ext/B" "Ext/A") RETURN (SUBSCRIBED CHILDREN)')
    assert lines == [
        b'* LIST (\\HasChildren) "/" "Ext"\r\n',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Ext/A"\r\n',
        b'* LIST (\\HasNoChildren) "/" "Ext/B"\r\n',
    ]
    lines = ok(c, 'LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)')
    names = sorted(re.search(rb'"/" "?([^"\r]+)', l).group(1) for l in lines)
    assert names == [b"Drafts", b"Junk", b"Sent", b"Trash"]
    # LIST-STATUS (RFC 5819): STATUS right after each selectable mailbox's LIST line.
    ok(c, "APPEND Ext/A {5+}\r\nhi\r\n\r\n")
    lines = ok(c, 'LIST "" "Ext*" RETURN (STATUS (MESSAGES UIDNEXT HIGHESTMODSEQ))')
    i = lines.index(b'* LIST (\\HasNoChildren) "/" "Ext/A"\r\n')
    assert re.match(rb'\* STATUS "Ext/A" \(MESSAGES 1 UIDNEXT 2 HIGHESTMODSEQ \d+\)', lines[i + 1]), lines
    assert len([l for l in lines if l.startswith(b"* STATUS")]) == 3
    _, tagged = c.command('LIST (RECURSIVEMATCH) "" "%"')
    assert b" BAD " in tagged
    # The RFC 3501 form is unchanged.
    assert ok(c, 'LIST "" "Ext/B"') == [b'* LIST (\\HasNoChildren) "/" "Ext/B"\r\n']
    c.close()


def modseq_of(line: bytes) -> int:
    return int(re.search(rb"MODSEQ \((\d+)\)", line).group(1))


def highest(untagged: list[bytes]) -> int:
    return int(re.search(rb"\[HIGHESTMODSEQ (\d+)\]", b"".join(untagged)).group(1))


def test_condstore(server, user):
    a = connect(server, user)
    b = connect(server, user)
    ok(a, "CREATE Cs")
    for i in range(3):
        append(a, "Cs", "01-Jan-2024 00:00:00 +0000", f"Subject: m{i}\r\n\r\nx\r\n".encode())
    untagged = ok(a, "SELECT Cs (CONDSTORE)")
    h0 = highest(untagged)
    m1 = modseq_of(one(ok(a, "FETCH 1 (MODSEQ)"), b"* 1 FETCH"))
    assert m1 <= h0
    # Another session changes message 1: a STORE based on the old MODSEQ must fail.
    ok(b, "SELECT Cs")
    ok(b, "STORE 1 +FLAGS (\\Seen)")
    untagged, tagged = a.command(f"STORE 1,2 (UNCHANGEDSINCE {h0}) +FLAGS.SILENT (\\Flagged)")
    assert b"OK [MODIFIED 1]" in tagged, tagged
    # Message 2 was stored: its new MODSEQ comes even with .SILENT (RFC 7162 3.1.3).
    assert any(re.match(rb"\* 2 FETCH \(MODSEQ \(\d+\)\)", u) for u in untagged), untagged
    flags = one(ok(a, "FETCH 1 (FLAGS)"), b"* 1 FETCH")
    assert b"\\Flagged" not in flags and b"\\Seen" in flags
    # UNCHANGEDSINCE 0 always fails for an existing message.
    _, tagged = a.command("UID STORE 1:* (UNCHANGEDSINCE 0) +FLAGS (x)")
    assert b"[MODIFIED " in tagged
    # FETCH CHANGEDSINCE: only what changed after h0, with MODSEQ.
    changed = ok(a, f"FETCH 1:* (FLAGS) (CHANGEDSINCE {h0})")
    assert sorted(int(re.match(rb"\* (\d+)", l).group(1)) for l in changed if b"FETCH" in l) == [1, 2]
    assert all(b"MODSEQ (" in l for l in changed if b"FETCH" in l)
    # SEARCH MODSEQ answers with the highest MODSEQ of the hits.
    line = one(ok(a, f"SEARCH MODSEQ {h0 + 1}"), b"* SEARCH")
    assert re.fullmatch(rb"\* SEARCH 1 2 \(MODSEQ \d+\)", line), line
    status = one(ok(b, "STATUS Cs (HIGHESTMODSEQ MESSAGES)"), b"* STATUS")
    assert re.search(rb"HIGHESTMODSEQ (\d+)", status) and b"MESSAGES 3" in status
    # An unsolicited flag change reaches a CONDSTORE session with its MODSEQ.
    ok(b, "STORE 3 +FLAGS (\\Answered)")
    noop = ok(a, "NOOP")
    assert any(re.match(rb"\* 3 FETCH \(UID \d+ FLAGS \(\\Answered[^)]*\) MODSEQ \(\d+\)\)", l) for l in noop), noop
    # Selecting another mailbox closes this one with [CLOSED].
    untagged = ok(a, "SELECT INBOX")
    assert untagged[0].startswith(b"* OK [CLOSED]"), untagged
    a.close()
    b.close()


def test_qresync(server, user):
    a = connect(server, user)
    ok(a, "CREATE Qr")
    uids = [append(a, "Qr", "01-Jan-2024 00:00:00 +0000", f"Subject: q{i}\r\n\r\nx\r\n".encode())
            for i in range(6)]
    _, tagged = a.command("SELECT Qr (QRESYNC (1 1))")
    assert b" BAD " in tagged, "QRESYNC needs ENABLE first"
    untagged = ok(a, "ENABLE QRESYNC")
    assert b"* ENABLED QRESYNC\r\n" in untagged
    untagged = ok(a, "SELECT Qr")
    validity = int(re.search(rb"\[UIDVALIDITY (\d+)\]", b"".join(untagged)).group(1))
    h = highest(untagged)
    ok(a, "UNSELECT")
    # Another session expunges two messages and flags a third.
    b = connect(server, user)
    ok(b, "SELECT Qr")
    ok(b, f"UID STORE {uids[1]},{uids[4]} +FLAGS (\\Deleted)")
    ok(b, "EXPUNGE")
    ok(b, f"UID STORE {uids[2]} +FLAGS (\\Flagged)")
    untagged = ok(a, f"SELECT Qr (QRESYNC ({validity} {h}))")
    assert one(untagged, b"* VANISHED") == f"* VANISHED (EARLIER) {uids[1]},{uids[4]}".encode()
    fetches = [l for l in untagged if b" FETCH " in l]
    # Only the flag change: the \Deleted messages are gone.
    assert len(fetches) == 1 and f"UID {uids[2]} ".encode() in fetches[0] and b"\\Flagged" in fetches[0]
    # known-uids limits what is reported.
    untagged = ok(a, f"SELECT Qr (QRESYNC ({validity} {h} {uids[0]}:{uids[3]}))")
    assert untagged[0].startswith(b"* OK [CLOSED]")
    assert one(untagged, b"* VANISHED") == f"* VANISHED (EARLIER) {uids[1]}".encode()
    # A wrong UIDVALIDITY means no resync data.
    untagged = ok(a, f"SELECT Qr (QRESYNC ({validity + 1} {h}))")
    assert not [l for l in untagged if l.startswith(b"* VANISHED") or b" FETCH " in l]
    # While selected, another session's expunge arrives as VANISHED, not EXPUNGE.
    h2 = highest(untagged)
    ok(b, f"UID STORE {uids[5]} +FLAGS (\\Deleted)")
    ok(b, "EXPUNGE")
    noop = ok(a, "NOOP")
    assert f"* VANISHED {uids[5]}\r\n".encode() in noop, noop
    assert not [l for l in noop if l.endswith(b" EXPUNGE\r\n")]
    # UID FETCH ... (CHANGEDSINCE m VANISHED).
    untagged = ok(a, f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {h2} VANISHED)")
    assert one(untagged, b"* VANISHED") == f"* VANISHED (EARLIER) {uids[5]}".encode()
    assert not [l for l in untagged if b" FETCH " in l]
    a.close()
    b.close()


def test_quota_unlimited(server, user):
    c = connect(server, user)
    untagged = ok(c, "GETQUOTAROOT INBOX")
    assert untagged == [b"* QUOTAROOT INBOX\r\n"]
    _, tagged = c.command('GETQUOTA ""')
    assert b" NO " in tagged
    _, tagged = c.command("GETQUOTAROOT Nope")
    assert b"NO [NONEXISTENT]" in tagged
    c.close()


def test_quota_storage(server_factory):
    srv = server_factory(store={"quota_bytes": 8192})
    user = srv.new_user()
    c = connect(srv, user)
    msg = b"Subject: q\r\n\r\n" + b"x" * 3000 + b"\r\n"
    append(c, "INBOX", "01-Jan-2024 00:00:00 +0000", msg)
    used = -(-len(msg) // 1024)
    untagged = ok(c, "GETQUOTAROOT INBOX")
    assert untagged == [b'* QUOTAROOT INBOX ""\r\n', f'* QUOTA "" (STORAGE {used} 8)\r\n'.encode()]
    assert ok(c, 'GETQUOTA ""') == [f'* QUOTA "" (STORAGE {used} 8)\r\n'.encode()]
    append(c, "INBOX", "01-Jan-2024 00:00:00 +0000", msg)
    tag = c.next_tag()
    c.send(f"{tag} APPEND INBOX {{{len(msg)}+}}\r\n".encode() + msg + b"\r\n")
    _, tagged = c.read_until_tag(tag)
    assert b"NO [OVERQUOTA]" in tagged
    _, tagged = c.command('SETQUOTA "" (STORAGE 100)')
    assert b" NO " in tagged or b" BAD " in tagged
    c.close()
