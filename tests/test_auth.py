"""Authentication over IMAP and POP3, and no password in the server's log (DESIGN principle 3).

This module's server runs with RUST_LOG=trace so that even the most verbose log is checked."""

from __future__ import annotations

import imaplib
import poplib

import pytest

from harness import PASSWORD, SECRET_PASSWORD, SECRET_USER, plain_blob

WRONG_PASSWORD = "Wr0ng-Pa55word-Kx7vQ"


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(env={"RUST_LOG": "trace"})


def test_imap_login_ok(server):
    m = server.imap()
    typ, data = m.login(SECRET_USER, SECRET_PASSWORD)
    assert typ == "OK"
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_imap_login_wrong_password_is_no(server):
    m = server.imap()
    with pytest.raises(imaplib.IMAP4.error) as e:
        m.login(SECRET_USER, WRONG_PASSWORD)
    assert str(e.value), "a failed LOGIN needs a human-readable reason"
    # the session must still be usable afterwards
    typ, _ = m.login(SECRET_USER, SECRET_PASSWORD)
    assert typ == "OK"
    m.logout()


def test_imap_login_wrong_password_answer_is_tagged_no(server):
    with server.raw() as s:
        s.readline()
        _, tagged = s.command(f'LOGIN {SECRET_USER} "{WRONG_PASSWORD}"')
        assert tagged.split()[1] == b"NO", tagged
        _, tagged = s.command("LOGIN nosuchuser whatever")
        assert tagged.split()[1] == b"NO", tagged
        _, tagged = s.command("NOOP")
        assert tagged.split()[1] == b"OK", "session must go on after a failed login"


def test_imap_authenticate_plain(server):
    m = server.imap()
    typ, _ = m.authenticate("PLAIN", lambda _: f"\0{SECRET_USER}\0{SECRET_PASSWORD}".encode())
    assert typ == "OK"
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_imap_authenticate_plain_wrong_password(server):
    m = server.imap()
    with pytest.raises(imaplib.IMAP4.error):
        m.authenticate("PLAIN", lambda _: f"\0{SECRET_USER}\0{WRONG_PASSWORD}".encode())
    m.logout()


def test_imap_authenticate_plain_initial_response(server):
    """SASL-IR style: the blob on the command line (RFC 4959), or a clear refusal."""
    with server.raw() as s:
        s.readline()
        _, tagged = s.command(f"AUTHENTICATE PLAIN {plain_blob(SECRET_USER, SECRET_PASSWORD)}")
        status = tagged.split()[1]
        if status == b"OK":
            _, tagged = s.command("SELECT INBOX")
            assert tagged.split()[1] == b"OK"
        else:
            assert status == b"BAD", tagged


def test_pop3_user_pass(server):
    p = server.pop3()
    assert p.user(SECRET_USER).startswith(b"+OK")
    assert p.pass_(SECRET_PASSWORD).startswith(b"+OK")
    p.stat()
    p.quit()


def test_pop3_wrong_password(server):
    p = server.pop3()
    p.user(SECRET_USER)
    with pytest.raises(poplib.error_proto) as e:
        p.pass_(WRONG_PASSWORD)
    assert str(e.value).startswith("b'-ERR") or "-ERR" in str(e.value)
    p.close()


def test_pop3_auth_plain(server):
    p = server.pop3()
    resp = p._shortcmd("AUTH PLAIN " + plain_blob(SECRET_USER, SECRET_PASSWORD))
    assert resp.startswith(b"+OK")
    p.stat()
    p.quit()


def test_pop3_auth_plain_wrong(server):
    p = server.pop3()
    with pytest.raises(poplib.error_proto):
        p._shortcmd("AUTH PLAIN " + plain_blob(SECRET_USER, WRONG_PASSWORD))
    p.close()


def test_demo_users_can_log_in(server):
    for u in ("demo1", "demo2", "demo3"):
        m = server.imap(u, PASSWORD)
        m.logout()


def test_no_password_in_log(server):
    """Runs last in this module: every login above has gone through the server by now."""
    # one more of each, so this test stands on its own when run alone
    m = server.imap(SECRET_USER, SECRET_PASSWORD)
    m.logout()
    m = server.imap()
    with pytest.raises(imaplib.IMAP4.error):
        m.login(SECRET_USER, WRONG_PASSWORD)
    m.logout()
    log = server.log_text()
    assert log.strip(), "the server logged nothing at all: cannot check the log"
    for secret in (SECRET_PASSWORD, WRONG_PASSWORD, plain_blob(SECRET_USER, SECRET_PASSWORD),
                   plain_blob(SECRET_USER, WRONG_PASSWORD)):
        assert secret not in log, f"the server log contains a password ({secret[:6]}...)"
