"""TLS: IMAP STARTTLS, IMAPS, POP3 STLS, POP3S (rustls; the test trusts any certificate)."""

from __future__ import annotations

import imaplib
import ssl
import subprocess

from harness import HOST, PASSWORD, insecure_context
from imapdata import fetch_one, simple_message, strip_added_headers


def cert_der(server) -> bytes:
    out = subprocess.run(["openssl", "x509", "-in", str(server.dir / "cert.pem"), "-outform",
                          "DER"], capture_output=True, check=True)
    return out.stdout


def test_imap_starttls(server, user):
    msg = simple_message("over tls")
    server.deliver_ok(user, msg)
    m = server.imap()
    typ, _ = m.starttls(ssl_context=insecure_context())
    assert typ == "OK"
    assert m.sock.getpeercert(binary_form=True) == cert_der(server)
    caps = m.capability()[1][0].upper().split()
    assert b"STARTTLS" not in caps, "STARTTLS still advertised inside TLS"
    m.login(user, PASSWORD)
    m.select("INBOX")
    assert strip_added_headers(fetch_one(m, "1", "(BODY.PEEK[])")["BODY[]"])[0] == msg
    m.logout()


def test_starttls_after_login_refused(server, user):
    with server.raw() as s:
        s.readline()
        s.login(user)
        _, tagged = s.command("STARTTLS")
        assert tagged.split()[1] in (b"BAD", b"NO"), tagged
        _, tagged = s.command("NOOP")
        assert tagged.split()[1] == b"OK"


def test_starttls_discards_pipelined_plaintext(server):
    """Commands pipelined after STARTTLS in cleartext must not be run inside TLS (command
    injection, cf. CVE-2011-0411)."""
    with server.raw() as s:
        s.readline()
        s.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
        line = s.readline()
        assert line.startswith(b"a OK"), line
        ctx = insecure_context()
        try:
            tls = ctx.wrap_socket(s.sock, server_hostname="localhost")
        except (ssl.SSLError, OSError):
            return  # refusing the handshake is also safe
        tls.settimeout(5)
        tls.sendall(b"c NOOP\r\n")
        data = b""
        try:
            while b"c OK" not in data and b"c BAD" not in data:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ssl.SSLError, OSError):
            pass
        assert b"b OK" not in data and b"* CAPABILITY" not in data, \
            f"pipelined cleartext command was executed inside TLS: {data!r}"
        tls.close()


def test_imaps(server, user):
    m = server.imaps(user)
    assert m.select("INBOX")[0] == "OK"
    assert m.sock.getpeercert(binary_form=True) == cert_der(server)
    caps = m.capability()[1][0].upper().split()
    assert b"STARTTLS" not in caps
    m.logout()


def test_imaps_with_verification_fails_for_self_signed(server):
    ctx = ssl.create_default_context()
    try:
        imaplib.IMAP4_SSL(HOST, server.ports["imaps"], ssl_context=ctx, timeout=10)
    except ssl.SSLCertVerificationError:
        pass
    else:
        raise AssertionError("a verifying client accepted a self-signed certificate?")


def test_pop3_stls(server, user):
    msg = simple_message("pop over tls")
    server.deliver_ok(user, msg)
    p = server.pop3()
    assert p.stls(context=insecure_context()).startswith(b"+OK")
    assert "STLS" not in p.capa(), "STLS still advertised inside TLS"
    p.user(user)
    p.pass_(PASSWORD)
    _, lines, _ = p.retr(1)
    assert strip_added_headers(b"\r\n".join(lines) + b"\r\n")[0] == msg
    p.quit()


def test_pop3s(server, user):
    p = server.pop3s()
    assert p.getwelcome().startswith(b"+OK")
    p.user(user)
    p.pass_(PASSWORD)
    p.stat()
    p.quit()


def test_plain_connection_after_tls_sessions(server):
    """TLS errors on one connection must not affect plaintext service."""
    import socket

    s = socket.create_connection((HOST, server.ports["imaps"]), timeout=5)
    s.sendall(b"this is not a TLS client hello\r\n" * 10)
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    m = server.imap("demo1")
    assert m.noop()[0] == "OK"
    m.logout()
