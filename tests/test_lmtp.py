"""LMTP (RFC 2033): delivery read back by IMAP and POP3, per-recipient replies, pipelining."""

from __future__ import annotations

from harness import SENDER, addr
from imapdata import crlf, fetch_one, strip_added_headers

MESSAGE = crlf(
    "From: Alice Example <alice@example.org>\n"
    "To: Bob <bob@example.net>\n"
    "Subject: Delivery test\n"
    "Date: Mon, 04 Mar 2024 12:00:00 +0000\n"
    "Message-ID: <delivery-1@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "Hello Bob,\n"
    ".a line that starts with a dot\n"
    "..and one with two\n"
    "Grüße — 8-bit UTF-8 text\n"
    "\n"
    "trailing blank line above\n"
)


def test_lhlo_advertises_extensions(server):
    with server.lmtp() as c:
        code, _ = c.ehlo()
        assert code == 250
        for ext in ("pipelining", "8bitmime", "enhancedstatuscodes", "size"):
            assert c.has_extn(ext), f"LHLO does not advertise {ext.upper()}: {c.esmtp_features}"


def test_deliver_then_read_by_imap_byte_exact(server, user):
    res = server.deliver(user, MESSAGE)
    assert res[addr(user)][0] == 250, res
    m = server.imap(user)
    typ, data = m.select("INBOX")
    assert typ == "OK" and int(data[0]) == 1, data
    item = fetch_one(m, "1", "(BODY.PEEK[] RFC822.SIZE FLAGS)")
    raw = item["BODY[]"]
    assert item["RFC822.SIZE"] == len(raw)
    rest, added = strip_added_headers(raw)
    assert rest == MESSAGE
    assert added["return-path"] == [f"<{SENDER}>".encode()], raw[:300]
    assert len(added["delivered-to"]) == 1 and addr(user).encode() in added["delivered-to"][0]
    assert "\\Seen" not in [str(f) for f in item["FLAGS"]]
    m.logout()


def test_deliver_then_read_by_pop3_byte_exact(server, user):
    server.deliver_ok(user, MESSAGE)
    p = server.pop3(user)
    count, size = p.stat()
    assert count == 1
    resp, lines, octets = p.retr(1)
    assert resp.startswith(b"+OK")
    raw = b"\r\n".join(lines) + b"\r\n"
    assert len(raw) == size, "STAT size differs from the RETR content length"
    rest, added = strip_added_headers(raw)
    assert rest == MESSAGE
    assert added["return-path"] and added["delivered-to"]
    p.quit()


def test_multiple_recipients_one_unknown(server):
    a, b = server.new_user(), server.new_user()
    with server.lmtp() as c:
        assert c.ehlo()[0] == 250
        assert c.mail(SENDER)[0] == 250
        assert c.rcpt(addr(a))[0] == 250
        code, text = c.rcpt("nosuchuser@localhost")
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
        assert c.rcpt(addr(b))[0] == 250
        code, text = c.data(MESSAGE)
        assert code == 250, (code, text)
        # RFC 2033 §4.2: one reply per accepted recipient, none for the refused one.
        code, text = c.getreply()
        assert code == 250, (code, text)
        # The session is in step: the next reply belongs to NOOP, not to a stray recipient.
        assert c.noop()[0] == 250
    for u in (a, b):
        m = server.imap(u)
        typ, data = m.select("INBOX")
        assert int(data[0]) == 1, f"{u} has {data[0]!r} messages"
        raw = fetch_one(m, "1", "(BODY.PEEK[])")["BODY[]"]
        rest, added = strip_added_headers(raw)
        assert rest == MESSAGE
        assert addr(u).encode() in added["delivered-to"][0], "Delivered-To names the wrong user"
        m.logout()


def test_all_recipients_unknown_then_data_refused(server):
    with server.lmtp() as c:
        c.ehlo()
        c.mail(SENDER)
        code, text = c.rcpt("ghost@localhost")
        assert code == 550 and text.startswith(b"5.1.1")
        c.putcmd("DATA")
        code, text = c.getreply()
        assert code == 503 or 500 <= code < 600, f"DATA with no recipient answered {code} {text!r}"


def test_pipelined_transaction(server, user):
    """PIPELINING: the whole transaction in one write; replies come back in order."""
    s = server.raw("lmtp")
    assert s.readline().startswith(b"220")
    body = MESSAGE.replace(b"\r\n.", b"\r\n..")
    s.send(b"LHLO client.example\r\n")
    while True:
        line = s.readline()
        assert line.startswith(b"250"), line
        if line[3:4] == b" ":
            break
    s.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{addr(user)}>\r\nRCPT TO:<nobody@localhost>\r\n"
           "DATA\r\n".encode())
    assert s.readline().startswith(b"250")
    assert s.readline().startswith(b"250")
    assert s.readline().startswith(b"550 5.1.1")
    assert s.readline().startswith(b"354")
    s.send(body + b".\r\nQUIT\r\n")
    assert s.readline().startswith(b"250")
    assert s.readline().startswith(b"221")
    s.close()
    m = server.imap(user)
    typ, data = m.select("INBOX")
    assert int(data[0]) == 1
    rest, _ = strip_added_headers(fetch_one(m, "1", "(BODY.PEEK[])")["BODY[]"])
    assert rest == MESSAGE
    m.logout()


def test_rset_discards_transaction(server, user):
    with server.lmtp() as c:
        c.ehlo()
        c.mail(SENDER)
        assert c.rcpt(addr(user))[0] == 250
        assert c.rset()[0] == 250
        assert c.mail(SENDER)[0] == 250
        c.putcmd("DATA")
        assert c.getreply()[0] >= 500, "DATA after RSET must not deliver to the old recipient"
    m = server.imap(user)
    typ, data = m.select("INBOX")
    assert int(data[0]) == 0
    m.logout()


def test_delivery_sets_recent_and_internaldate(server, user):
    import datetime as dt

    before = dt.datetime.now(dt.timezone.utc)
    server.deliver_ok(user, MESSAGE)
    m = server.imap(user)
    m.select("INBOX")
    from imapdata import parse_internaldate

    item = fetch_one(m, "1", "(INTERNALDATE FLAGS)")
    when = parse_internaldate(item["INTERNALDATE"])
    assert abs((when - before).total_seconds()) < 120, f"INTERNALDATE {when} is not now"
    m.logout()
