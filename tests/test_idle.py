"""IDLE (RFC 2177): woken by an LMTP delivery and by another session's changes."""

from __future__ import annotations

import re
import time

from harness import addr
from imapdata import simple_message


def idle_session(server, user):
    s = server.raw()
    s.readline()
    s.login(user)
    untag, tagged = s.command("SELECT INBOX")
    assert tagged.split()[1] == b"OK"
    s.send(b"i1 IDLE\r\n")
    line = s.readline(timeout=5)
    assert line.startswith(b"+"), f"IDLE answered {line!r} instead of a continuation"
    return s


def wait_for(s, pattern: bytes, secs: float) -> tuple[bytes, float]:
    start = time.monotonic()
    seen = []
    while True:
        left = secs - (time.monotonic() - start)
        assert left > 0, f"nothing matching {pattern!r} within {secs}s; got {seen}"
        try:
            line = s.readline(timeout=left)
        except TimeoutError:
            raise AssertionError(f"nothing matching {pattern!r} within {secs}s; got {seen}")
        seen.append(line)
        if re.match(pattern, line):
            return line, time.monotonic() - start


def finish(s):
    s.send(b"DONE\r\n")
    _, tagged = s.read_until_tag("i1")
    assert tagged.split()[1] == b"OK", tagged
    _, tagged = s.command("NOOP")
    assert tagged.split()[1] == b"OK"
    s.close()


def test_idle_woken_by_delivery(server, user):
    s = idle_session(server, user)
    time.sleep(0.3)
    t0 = time.monotonic()
    server.deliver_ok(addr(user), simple_message("wake up"))
    line, _ = wait_for(s, rb"\* 1 EXISTS", 3)
    assert time.monotonic() - t0 < 2.5, "IDLE was woken too late"
    finish(s)


def test_idle_woken_by_several_deliveries(server, user):
    s = idle_session(server, user)
    for i in range(3):
        server.deliver_ok(addr(user), simple_message(f"wake {i}"))
        wait_for(s, rb"\* %d EXISTS" % (i + 1), 3)
    finish(s)


def test_idle_sees_other_sessions_expunge_and_flags(server, user):
    for i in range(2):
        server.deliver_ok(user, simple_message(f"m{i}"))
    s = idle_session(server, user)
    other = server.imap(user)
    other.select("INBOX")
    other.store("2", "+FLAGS", "(\\Flagged)")
    wait_for(s, rb"\* 2 FETCH \(.*\\Flagged", 3)
    other.store("1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    wait_for(s, rb"\* 1 EXPUNGE", 3)
    other.logout()
    finish(s)


def test_idle_only_for_own_mailbox(server):
    """A delivery to another user must not wake this user's IDLE with an EXISTS."""
    me, other = server.new_user(), server.new_user()
    s = idle_session(server, me)
    server.deliver_ok(other, simple_message("not for you"))
    try:
        line = s.readline(timeout=1.5)
    except TimeoutError:
        line = b""
    assert b"EXISTS" not in line, f"IDLE of {me} reported {line!r} for {other}'s mail"
    finish(s)
