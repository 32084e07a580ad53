"""POP3 (RFC 1939 + RFC 2449 CAPA, UIDL, TOP, STLS, RFC 5034 SASL PLAIN)."""

from __future__ import annotations

import poplib

import pytest

from imapdata import crlf, simple_message, strip_added_headers


def fill(server, user, n):
    msgs = [crlf(f"From: a@example.org\nSubject: pop {i}\nMessage-ID: <p{i}@x>\n\n"
                 f"line one of {i}\n.dotted line\nline three\nline four\n") for i in range(n)]
    for msg in msgs:
        server.deliver_ok(user, msg)
    return msgs


def retr(p, n) -> bytes:
    resp, lines, _ = p.retr(n)
    assert resp.startswith(b"+OK")
    return b"\r\n".join(lines) + b"\r\n"


def test_greeting_and_capa(server):
    p = server.pop3()
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    for c in ("UIDL", "TOP", "USER", "STLS", "SASL"):
        assert c in caps, f"CAPA lacks {c}: {caps}"
    assert "PLAIN" in caps["SASL"], caps["SASL"]
    p.quit()


def test_stat_list_retr(server, user):
    msgs = fill(server, user, 3)
    p = server.pop3(user)
    count, size = p.stat()
    assert count == 3
    resp, listing, _ = p.list()
    sizes = {int(a): int(b) for a, b in (line.split() for line in listing)}
    assert sorted(sizes) == [1, 2, 3]
    assert sum(sizes.values()) == size
    for i, msg in enumerate(msgs, 1):
        raw = retr(p, i)
        assert len(raw) == sizes[i], f"LIST says {sizes[i]} octets, RETR gives {len(raw)}"
        assert strip_added_headers(raw)[0] == msg
        single = p.list(i)
        assert single.split()[1:] == [str(i).encode(), str(sizes[i]).encode()]
    p.quit()


def test_uidl_stable_across_sessions(server, user):
    fill(server, user, 3)
    p = server.pop3(user)
    _, first, _ = p.uidl()
    first = dict(line.split() for line in first)
    assert len(set(first.values())) == 3, "UIDLs are not unique"
    for uid in first.values():
        assert 1 <= len(uid) <= 70 and all(0x21 <= c <= 0x7E for c in uid), uid
    p.quit()
    p = server.pop3(user)
    _, second, _ = p.uidl()
    assert dict(line.split() for line in second) == first
    assert p.uidl(2).split()[2] == first[b"2"]
    # deleting message 1 keeps the others' UIDLs
    p.dele(1)
    p.quit()
    p = server.pop3(user)
    _, third, _ = p.uidl()
    assert sorted(v for _, v in (line.split() for line in third)) == sorted(
        [first[b"2"], first[b"3"]])
    p.quit()


def test_top(server, user):
    msgs = fill(server, user, 1)
    p = server.pop3(user)
    raw = retr(p, 1)
    head, body = raw.split(b"\r\n\r\n", 1)
    resp, lines, _ = p.top(1, 0)
    assert b"\r\n".join(lines) + b"\r\n" == head + b"\r\n\r\n"
    resp, lines, _ = p.top(1, 2)
    assert b"\r\n".join(lines) + b"\r\n" == head + b"\r\n\r\n" + b"line one of 0\r\n.dotted line\r\n"
    p.quit()


def test_dele_applies_only_at_quit(server, user):
    fill(server, user, 3)
    p = server.pop3(user)
    assert p.dele(2).startswith(b"+OK")
    with pytest.raises(poplib.error_proto):
        p.retr(2)
    with pytest.raises(poplib.error_proto):
        p.dele(2)
    count, _ = p.stat()
    assert count == 2, "STAT must not count a message marked as deleted"
    # other sessions still see it until QUIT
    m = server.imap(user)
    assert m.select("INBOX")[1] == [b"3"]
    m.logout()
    assert p.quit().startswith(b"+OK")
    p = server.pop3(user)
    assert p.stat()[0] == 2
    subjects = [retr(p, i).split(b"Subject: ")[1].split(b"\r\n")[0] for i in (1, 2)]
    assert subjects == [b"pop 0", b"pop 2"]
    p.quit()
    m = server.imap(user)
    assert m.select("INBOX")[1] == [b"2"], "IMAP still shows the message POP3 deleted"
    m.logout()


def test_dropped_connection_does_not_delete(server, user):
    fill(server, user, 2)
    p = server.pop3(user)
    p.dele(1)
    p.dele(2)
    p.sock.close()  # no QUIT: the UPDATE state is never entered (RFC 1939 §6)
    import time
    time.sleep(0.3)
    p = server.pop3(user)
    assert p.stat()[0] == 2, "messages DELEted in a dropped session were removed"
    p.quit()


def test_rset_undeletes(server, user):
    fill(server, user, 2)
    p = server.pop3(user)
    p.dele(1)
    assert p.stat()[0] == 1
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == 2
    retr(p, 1)
    p.quit()
    p = server.pop3(user)
    assert p.stat()[0] == 2
    p.quit()


def test_noop_and_errors(server, user):
    fill(server, user, 1)
    p = server.pop3()
    with pytest.raises(poplib.error_proto):
        p.stat()  # before authentication
    p.user(user)
    p.pass_("demo")
    assert p.noop().startswith(b"+OK")
    for bad in (lambda: p.retr(9), lambda: p.dele(0), lambda: p._shortcmd("FROB"),
                lambda: p._shortcmd("RETR abc")):
        with pytest.raises(poplib.error_proto):
            bad()
    assert p.stat()[0] == 1, "session must go on after errors"
    p.quit()


def test_retr_does_not_delete(server, user):
    fill(server, user, 1)
    p = server.pop3(user)
    retr(p, 1)
    p.quit()
    p = server.pop3(user)
    assert p.stat()[0] == 1
    p.quit()


def test_large_message_dot_stuffing(server, user):
    body = "".join(f".{i:05d} a line starting with a dot\n" for i in range(3000))
    msg = simple_message("big", body=body)
    server.deliver_ok(user, msg)
    p = server.pop3(user)
    raw = retr(p, 1)
    assert strip_added_headers(raw)[0] == msg
    p.quit()
