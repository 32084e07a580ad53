"""Postfix delivery routing: a real Postfix asks the roles agent's socketmap for each recipient's
transport and relays by LMTP to the mailstored backend that holds the mailbox."""

from __future__ import annotations

import smtplib
import socket
import time
import uuid

from harness import HOST, PASSWORD


def lmtp_of(server) -> str:
    return f"lmtp:inet:{HOST}:{server.ports['lmtp']}"


def lookup(stack, key: str) -> tuple[int, str]:
    proc = stack.postfix.postmap(key)
    return proc.returncode, proc.stdout.decode().strip() + proc.stderr.decode().strip()


def submit(stack, rcpt: str) -> str:
    """Send a message with a unique subject to Postfix's smtpd; returns the subject."""
    subject = f"routing test {uuid.uuid4().hex}"
    msg = (f"From: sender@example.net\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@example.net>\r\n\r\nHello through Postfix.\r\n")
    with smtplib.SMTP(HOST, stack.postfix.smtp_port, timeout=15) as smtp:
        refused = smtp.sendmail("sender@example.net", [rcpt], msg)
    assert not refused, refused
    return subject


def wait_for_message(stack, server, user: str, subject: str, timeout: float = 20) -> None:
    """Polls `user`'s INBOX on `server` by IMAP until a message with `subject` is there."""
    deadline = time.monotonic() + timeout
    flushed = False
    while True:
        m = server.imap(user, PASSWORD)
        try:
            m.select("INBOX")
            typ, data = m.search(None, "SUBJECT", f'"{subject}"')
            if typ == "OK" and data[0].split():
                return
        finally:
            m.logout()
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{subject!r} never reached {user} on port {server.ports['imap']}"
                                 + stack.diagnostics())
        if not flushed and left < timeout / 2:
            stack.postfix.flush()
            flushed = True
        time.sleep(0.2)


def test_postmap_finds_the_users_backend(stack):
    assert lookup(stack, "demo1@example.org") == (0, lmtp_of(stack.a1))
    # Postfix's own address forms: upper case, +detail.
    assert lookup(stack, "Demo1+Lists@Example.org") == (0, lmtp_of(stack.a1))


def test_unknown_users_and_domains_are_not_found(stack):
    for key in ("nobody@example.org", "example.org", "@example.org"):
        code, out = lookup(stack, key)
        assert (code, out) == (1, ""), f"{key}: {code} {out!r}"


def test_smtp_is_relayed_by_lmtp_to_the_backend(stack):
    subject = submit(stack, "demo1@example.org")
    wait_for_message(stack, stack.a1, "demo1", subject)
    assert f"relay={HOST}[{HOST}]:{stack.a1.ports['lmtp']}" in stack.postfix.log_text()


def test_moved_user_resolves_to_the_new_backend_without_restart(stack):
    assert lookup(stack, "demo2@example.org") == (0, lmtp_of(stack.a1))
    stack.roles.set_user("demo2", "a2")
    assert lookup(stack, "demo2@example.org") == (0, lmtp_of(stack.a2))
    subject = submit(stack, "demo2@example.org")
    wait_for_message(stack, stack.a2, "demo2", subject)


def test_failed_over_backend_resolves_to_the_partner(stack):
    stack.roles.set_state("a1", "failover")
    try:
        assert lookup(stack, "demo3@example.org") == (0, lmtp_of(stack.a2))
        subject = submit(stack, "demo3@example.org")
        wait_for_message(stack, stack.a2, "demo3", subject)
        # Partner down too: nobody serves the user; a temporary failure, not "not found".
        stack.roles.set_state("a2", "down")
        # (postmap exits 1 for both; NOTFOUND prints nothing, a TEMP reply is a query error.)
        code, out = lookup(stack, "demo3@example.org")
        assert code != 0 and "temporary error: backend unavailable" in out and "query error" in out, \
            f"postmap answered {code} {out!r} for an unserved user"
    finally:
        stack.roles.set_state("a2", "up")
        stack.roles.set_state("a1", "up")
    assert lookup(stack, "demo3@example.org") == (0, lmtp_of(stack.a1))


def ns(text: str) -> bytes:
    data = text.encode()
    return str(len(data)).encode() + b":" + data + b","


def netstring_exchange(port: int, data: bytes, timeout: float = 5) -> bytes:
    """Sends raw bytes to the socketmap server; returns all it sends back before closing (or
    before `timeout`)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out


def test_malformed_requests_get_an_error_and_the_server_keeps_serving(stack):
    port = stack.socketmap.port
    for bad in (b"xyz:transport demo1@example.org,", b"27:transport demo1@example.org;",
                b"999999999:", b"100001:" + b"a" * 1000, b":,", b"\x00\xff\r\n"):
        reply = netstring_exchange(port, bad)
        assert reply.split(b":", 1)[1].startswith(b"PERM "), f"{bad[:40]!r} -> {reply!r}"
        assert reply.endswith(b","), reply
    # A well-framed but malformed request, then a good one, on the same connection.
    reply = netstring_exchange(port, ns("transport") + ns("transport demo1@example.org"), timeout=1)
    first, rest = reply.split(b",", 1)
    assert first.split(b":", 1)[1].startswith(b"PERM malformed request"), reply
    assert rest == ns(f"OK {lmtp_of(stack.a1)}"), reply
    assert netstring_exchange(port, ns("virtual demo1@example.org"), timeout=1) == ns("PERM unknown map")
    assert stack.socketmap.running()
    assert lookup(stack, "demo1@example.org") == (0, lmtp_of(stack.a1))
