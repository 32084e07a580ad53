"""Slow and stuck clients are timed out without harming others (this module's server runs
with timeouts of a few seconds)."""

from __future__ import annotations

import threading
import time

import pytest

from harness import HOST, RawClient, SENDER, addr
from imapdata import crlf, fetch_one

TIMEOUT = 2
WRITE_TIMEOUT = 3


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(limits={
        "imap_idle_timeout_secs": TIMEOUT,
        "pop3_timeout_secs": TIMEOUT,
        "lmtp_timeout_secs": TIMEOUT,
        "write_timeout_secs": WRITE_TIMEOUT,
    })


def others_work(server, user):
    t0 = time.monotonic()
    m = server.imap(user)
    m.select("INBOX")
    m.noop()
    m.logout()
    assert time.monotonic() - t0 < 3, "another client was slowed down by a stuck one"


def test_imap_half_command_before_login_times_out(server, user):
    s = server.raw()
    s.readline()
    s.send(b"a1 LOGIN demo1")  # no CRLF, then silence
    others_work(server, user)
    t0 = time.monotonic()
    assert s.wait_closed(TIMEOUT + 6), "half a command kept the connection open"
    assert time.monotonic() - t0 >= 0.0
    s.close()


def test_imap_half_command_after_login_times_out(server, user):
    s = server.raw()
    s.readline()
    s.login(user)
    s.send(b"a2 SELECT IN")
    others_work(server, user)
    assert s.wait_closed(TIMEOUT + 6), "half a command kept the connection open"
    s.close()


def test_imap_half_literal_times_out(server, user):
    s = server.raw()
    s.readline()
    s.login(user)
    s.send(b"a3 APPEND INBOX {100}\r\n")
    assert s.readline().startswith(b"+")
    s.send(b"only part of the literal")
    assert s.wait_closed(TIMEOUT + 6), "a stalled literal kept the connection open"
    s.close()
    m = None
    from harness import PASSWORD
    import imaplib
    m = imaplib.IMAP4(HOST, server.ports["imap"], timeout=10)
    m.login(user, PASSWORD)
    typ, data = m.select("INBOX")
    assert data == [b"0"], "a half-sent APPEND created a message"
    m.logout()


def test_idle_timeout_not_before_it_is_due(server, user):
    """The timer measures silence: a client that keeps talking is not logged out."""
    s = server.raw()
    s.readline()
    s.login(user)
    for _ in range(4):
        time.sleep(TIMEOUT * 0.6)
        _, tagged = s.command("NOOP")
        assert tagged.split()[1] == b"OK"
    s.close()


def test_pop3_stall_times_out(server, user):
    s = RawClient(HOST, server.ports["pop3"])
    assert s.readline().startswith(b"+OK")
    s.send(b"USER " + user.encode())  # no CRLF
    others_work(server, user)
    assert s.wait_closed(TIMEOUT + 6), "a stalled POP3 client kept its connection"
    s.close()


def test_lmtp_stall_in_data_times_out_and_delivers_nothing(server, user):
    s = RawClient(HOST, server.ports["lmtp"])
    assert s.readline().startswith(b"220")
    s.send(b"LHLO x\r\n")
    while not s.readline().startswith(b"250 "):
        pass
    s.send(f"MAIL FROM:<{SENDER}>\r\n".encode())
    assert s.readline().startswith(b"250")
    s.send(f"RCPT TO:<{addr(user)}>\r\n".encode())
    assert s.readline().startswith(b"250")
    s.send(b"DATA\r\n")
    assert s.readline().startswith(b"354")
    s.send(b"Subject: half\r\n\r\nhalf a message")
    assert s.wait_closed(TIMEOUT + 6), "a stalled LMTP client kept its connection"
    s.close()
    m = server.imap(user)
    assert m.select("INBOX")[1] == [b"0"], "a message without its final dot was delivered"
    m.logout()


def test_client_that_never_reads_does_not_block_others(server, user):
    big = crlf("Subject: big\n\n" + ("x" * 998 + "\n") * 2000)  # ~2 MB
    m = server.imap(user)
    m.append("INBOX", None, None, big)
    m.select("INBOX")
    for _ in range(7):
        m.copy("1", "INBOX")
    m.logout()
    # a session that asks for ~16 MB and never reads it
    stuck = RawClient(HOST, server.ports["imap"], rcvbuf=4096)
    stuck.readline()
    stuck.login(user)
    stuck.command("SELECT INBOX")
    stuck.send(b"big FETCH 1:* BODY.PEEK[]\r\n")
    time.sleep(0.5)
    # meanwhile others, even on the same mailbox, are served normally
    for _ in range(3):
        t0 = time.monotonic()
        other = server.imap(user)
        other.select("INBOX")
        item = fetch_one(other, "8", "(RFC822.SIZE BODY.PEEK[]<0.20>)")
        assert item["RFC822.SIZE"] == len(big)
        server.deliver_ok(user, crlf("Subject: small\n\nsmall\n"))
        other.noop()
        other.logout()
        assert time.monotonic() - t0 < 3, "a client that doesn't read slowed the others down"
    # and the stuck one is dropped once its writes have stalled past write_timeout_secs
    time.sleep(WRITE_TIMEOUT + 2)
    got = b""
    closed = False
    stuck.sock.settimeout(5)
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            chunk = stuck.sock.recv(1 << 20)
            if not chunk:
                closed = True
                break
            got += chunk
    except (ConnectionResetError, TimeoutError):
        closed = True
    stuck.close()
    assert closed, "the server kept writing to a client that stopped reading"
    assert b"\r\nbig OK" not in got, \
        f"the whole 16 MB response was delivered ({len(got)} bytes): write timeout never hit"


def test_many_idle_connections_do_not_block(server, user):
    conns = []
    for _ in range(50):
        c = RawClient(HOST, server.ports["imap"])
        conns.append(c)
    for c in conns:
        assert c.readline().startswith(b"* OK")
    others_work(server, user)
    for c in conns:
        c.close()
