"""Bad input: malformed and unknown commands get BAD and the session goes on; commands in the
wrong state are refused with a reason; oversized literals are refused before they are read;
mailbox names with `..`, a leading `/` or NUL are refused."""

from __future__ import annotations

import os
import time

import pytest

from harness import PASSWORD
from imapdata import list_mailboxes

GARBAGE = [
    b"\x01\x02\x03 garbage",
    b"a1",
    b"a2 FETCH",
    b"a3 SELECT",
    b"a4 LOGIN onlyone",
    b"a5 (((((",
    b"a6 LOGIN \"unterminated",
    b")))",
    b"\xff\xfe\xfd",
    b"a7 UID",
    b"a8 UID FROB 1",
    b"*",
    b"+",
    b"a9 FETCH 1:* (FLAGS",
    b"a10 SEARCH (OR)",
    b"a11 STORE 1 +FLAGS (\\Seen",
]


def status(tagged: bytes) -> bytes:
    return tagged.split()[1].upper() if len(tagged.split()) > 1 else b""


def bad_reply(s, line: bytes) -> bytes:
    """Send one garbage line; return the reply that answers it (tagged, or * BAD / * BYE)."""
    s.send(line + b"\r\n")
    tag = line.split(b" ", 1)[0] if b" " in line else None
    while True:
        reply = s.readline(timeout=5)
        if reply.startswith((b"* BAD", b"* BYE")) or (tag and reply.startswith(tag + b" ")):
            return reply
        if not tag and not reply.startswith(b"* "):
            return reply


def assert_alive(s, tag="z"):
    _, tagged = s.command("NOOP", tag=tag, timeout=5)
    assert status(tagged) == b"OK", tagged


@pytest.fixture
def session(server, user):
    s = server.raw()
    s.readline()
    yield s
    s.close()


def test_garbage_lines_get_bad_and_session_continues(session):
    for i, line in enumerate(GARBAGE):
        reply = bad_reply(session, line)
        assert b"BAD" in reply.upper().split()[:2], f"{line!r} answered {reply!r}"
        assert_alive(session, tag=f"z{i}")


def test_garbage_after_login(server, user, session):
    session.login(user)
    session.command("SELECT INBOX")
    for i, line in enumerate(GARBAGE):
        reply = bad_reply(session, line)
        assert b"BAD" in reply.upper().split()[:2], f"{line!r} answered {reply!r}"
        assert_alive(session, tag=f"z{i}")


def test_unknown_command_is_bad(session):
    _, tagged = session.command("FROBNICATE now", tag="u1")
    assert status(tagged) == b"BAD", tagged
    assert tagged.split(None, 2)[2].strip(), "BAD without a reason"
    assert_alive(session)


def test_select_before_login(session):
    _, tagged = session.command("SELECT INBOX", tag="s1")
    assert status(tagged) in (b"BAD", b"NO"), tagged
    assert len(tagged.split(None, 2)) == 3 and tagged.split(None, 2)[2].strip()
    assert_alive(session)


def test_fetch_before_select(server, user, session):
    session.login(user)
    _, tagged = session.command("FETCH 1 (FLAGS)", tag="f1")
    assert status(tagged) in (b"BAD", b"NO"), tagged
    assert tagged.split(None, 2)[2].strip()
    assert_alive(session)


def test_oversized_literal_refused_before_it_is_read(server, user, session):
    session.login(user)
    limit = server.limits["max_literal_bytes"]
    session.send(f"big APPEND INBOX {{{limit + 1}}}\r\n".encode())
    reply = session.readline(timeout=5)
    assert not reply.startswith(b"+"), "server asked for an oversized literal"
    assert reply.startswith(b"big ") and status(reply) in (b"NO", b"BAD"), reply
    assert_alive(session)
    # nothing was appended
    _, tagged = session.command("STATUS INBOX (MESSAGES)")
    assert status(tagged) == b"OK"


def test_oversized_literal_before_login(session):
    session.send(b"l1 LOGIN {100000000}\r\n")
    reply = session.readline(timeout=5)
    assert not reply.startswith(b"+"), "server asked for a 100 MB literal before login"
    # a tagged refusal, or BYE and hang up: either way nothing is read
    assert (reply.startswith(b"l1 ") and status(reply) in (b"NO", b"BAD")) \
        or reply.startswith(b"* BYE"), reply


def test_oversized_nonsync_literal(server, user):
    """{n+} can't be refused before it is sent: BAD (and maybe a disconnect), never a crash."""
    s = server.raw()
    s.readline()
    s.login(user)
    s.send(f"np APPEND INBOX {{{server.limits['max_literal_bytes'] + 1}+}}\r\n".encode())
    s.send(b"x" * 65536)
    try:
        reply = s.readline(timeout=5)
        assert reply.startswith((b"np BAD", b"np NO", b"* BYE")), reply
    except TimeoutError:
        raise AssertionError("no answer within 5 s to a {n+} literal above max_literal_bytes")
    except (EOFError, ConnectionResetError):
        pass
    s.close()
    m = server.imap(user)
    assert m.noop()[0] == "OK"
    m.logout()


def test_overlong_line(server, user):
    s = server.raw()
    s.readline()
    s.send(b"a1 NOOP " + b"x" * (server.limits["max_line_bytes"] * 2) + b"\r\n")
    try:
        reply = s.readline(timeout=5)
        assert reply.startswith((b"a1 BAD", b"* BAD", b"* BYE")), reply[:100]
    except (EOFError, ConnectionResetError):
        pass
    s.close()
    m = server.imap(user)
    assert m.noop()[0] == "OK"
    m.logout()


BAD_NAMES = [
    b'"../evil"',
    b'"a/../../evil"',
    b'"Projects/.."',
    b'".."',
    b'"/abs"',
    b'"/etc/passwd"',
    b"{5}\r\nev\x00il",
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[n.decode("latin-1").replace("\x00", "NUL")
                                                  .replace("\r\n", " ") for n in BAD_NAMES])
def test_bad_mailbox_names_refused(server, user, name):
    s = server.raw()
    s.readline()
    s.login(user)
    for verb in (b"CREATE ", b"SELECT ", b"DELETE ", b"SUBSCRIBE ", b"STATUS ", b"RENAME INBOX "):
        tag = s.next_tag()
        cmd = verb + name + (b" (MESSAGES)" if verb == b"STATUS " else b"")
        if b"{" in name:
            head, lit = name.split(b"\r\n", 1)
            s.send(tag.encode() + b" " + verb + head + b"\r\n")
            cont = s.readline()
            if cont.startswith(b"+"):
                s.send(lit + (b" (MESSAGES)" if verb == b"STATUS " else b"") + b"\r\n")
                _, tagged = s.read_until_tag(tag)
            else:
                tagged = cont
        else:
            _, tagged = s.command(cmd, tag=tag)
        want = (b"NO", b"BAD") if b"\x00" in name else (b"NO",)
        if verb == b"SUBSCRIBE " and b"\x00" not in name:
            want = (b"NO", b"BAD")
        assert status(tagged) in want, f"{cmd!r} answered {tagged!r}"
    untag, tagged = s.command('LIST "" "*"')
    assert not any(b"evil" in u or b"abs" in u or b"passwd" in u for u in untag), untag
    assert_alive(s)
    s.close()


def test_bad_names_touch_nothing_on_disk(server, user):
    s = server.raw()
    s.readline()
    s.login(user)
    before = set(os.listdir(server.dir))
    for name in ("../../../../escape-test", "../escape-test", "/tmp/escape-test-abs"):
        s.command(f'CREATE "{name}"')
        s.command(f'RENAME INBOX "{name}"')
    s.close()
    assert set(os.listdir(server.dir)) == before
    assert not os.path.exists(server.dir.parent / "escape-test")
    assert not os.path.exists("/tmp/escape-test-abs")


def test_append_into_bad_name_refused(server, user):
    m = server.imap(user)
    typ, data = m.append('"../evil"', None, None, b"Subject: x\r\n\r\nx\r\n")
    assert typ == "NO", data
    assert "../evil" not in list_mailboxes(m)
    m.logout()


def test_server_survives_and_serves_others(server):
    m = server.imap("demo2", PASSWORD)
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_many_bad_logins_do_not_break_server(server, user):
    for _ in range(5):
        s = server.raw()
        s.readline()
        _, tagged = s.command(f"LOGIN {user} wrong")
        assert status(tagged) == b"NO"
        s.close()
    t0 = time.monotonic()
    m = server.imap(user)
    m.logout()
    assert time.monotonic() - t0 < 10
