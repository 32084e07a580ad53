"""Logins through stock nginx + ngx-mailauth reach the right backend of two, with a signed ticket
instead of the password; refusals are clear and delayed (issue 3, Tests)."""

from __future__ import annotations

import imaplib
import poplib
import time

import pytest

from frontend import (INVALID_LOGIN, MAILBOX_UNAVAILABLE, NO_MAILBOX, imap_refusal, mailctl,
                      message, subjects_imap)

FRONTEND = {"ldap": "bind", "fail_delay": "2s", "ticket_ttl": "3s"}


@pytest.fixture(scope="module")
def delivered(fe):
    """A distinct message on each backend's copy of the same mailboxes: which one a login sees
    proves where nginx sent it."""
    for user in ("demo1", "demo2", "user01", "user02"):
        fe.a.deliver_ok(user, message(f"on-A-{user}", user))
        fe.b.deliver_ok(user, message(f"on-B-{user}", user))
    return fe


@pytest.mark.parametrize("user,backend", [("demo1", "A"), ("demo2", "B")])
def test_imap_login_reaches_the_users_backend(delivered, user, backend):
    m = delivered.nginx.imap()
    typ, _ = m.login(user, "demo")
    assert typ == "OK"
    assert subjects_imap(m) == [f"on-{backend}-{user}"]
    m.logout()


@pytest.mark.parametrize("user,backend", [("user01", "A"), ("user02", "B")])
def test_pop3_login_reaches_the_users_backend(delivered, user, backend):
    p = delivered.nginx.pop3()
    p.user(user)
    assert p.pass_("demo").startswith(b"+OK")
    assert p.stat()[0] == 1
    _, lines, _ = p.top(1, 0)
    assert f"Subject: on-{backend}-{user}".encode() in lines
    p.quit()


def test_ldap_user_unknown_to_the_backends_logs_in_with_a_ticket(fe):
    """alice is only in slapd: the backend's users file doesn't have her, so the login that
    succeeds there used the module's ticket, not her password."""
    assert "alice:" not in (fe.a.dir / "users").read_text()
    m = fe.nginx.imap()
    assert m.login("alice", "wonderland")[0] == "OK"
    assert m.append("INBOX", None, None, message("from-alice", "alice"))[0] == "OK"
    m.logout()
    # It landed on A (alice's backend), not on B: log in to each directly with a ticket.
    for server, expected in ((fe.a, ["from-alice"]), (fe.b, [])):
        direct = server.imap()
        t = mailctl("ticket", "issue", "--key", str(fe.key), "--user", "alice", "--ttl", "60")
        assert direct.login("alice", t)[0] == "OK"
        assert subjects_imap(direct) == expected
        direct.logout()
    # The backend was never told alice's password.
    assert "wonderland" not in fe.a.log_text()


def test_uid_that_needs_dn_escaping(fe):
    """`carol+mail` binds as `uid=carol\\+mail,ou=people,...` (RFC 4514) and reaches B."""
    m = fe.nginx.imap()
    assert m.login("carol+mail", "c4rol-Pass")[0] == "OK"
    m.logout()
    text, _ = imap_refusal(fe.nginx, "carol+mail", "wrong")
    assert INVALID_LOGIN in text


def test_backend_gets_a_ticket_not_the_password(fe):
    """A fake POP3 backend records what nginx sends after the module said OK."""
    p = fe.nginx.pop3()
    p.user("spyuser")
    assert p.pass_("demo").startswith(b"+OK")
    p.quit()
    user, password = fe.spy.logins[-1]
    assert user == "spyuser"
    assert password != "demo"
    assert password.startswith("MST1."), password
    assert "spyuser" in mailctl("ticket", "verify", "--key", str(fe.key), password)


def spy_ticket(fe) -> str:
    p = fe.nginx.pop3()
    p.user("spyuser")
    p.pass_("demo")
    p.quit()
    return fe.spy.logins[-1][1]


def test_tampered_ticket_from_nginx_is_refused_by_mailstored(fe):
    """A ticket the module issued (for spyuser) works at a backend sharing the key; a tampered
    copy does not."""
    t = spy_ticket(fe)
    prefix, user, expiry, nonce, mac = t.split(".")
    flip = "A" if mac[3] != "A" else "B"
    for bad in (".".join([prefix, user, expiry, nonce, mac[:3] + flip + mac[4:]]),
                ".".join([prefix, user, str(int(expiry) + 600), nonce, mac])):
        m = fe.a.imap()
        with pytest.raises(imaplib.IMAP4.error):
            m.login("spyuser", bad)
        m.shutdown()
    m = fe.a.imap()
    assert m.login("spyuser", t)[0] == "OK"
    m.logout()


def test_expired_ticket_from_nginx_is_refused_by_mailstored(fe):
    t = spy_ticket(fe)  # mailauth_ticket_ttl 3s
    time.sleep(4.2)
    m = fe.a.imap()
    with pytest.raises(imaplib.IMAP4.error):
        m.login("spyuser", t)
    m.shutdown()
    assert "expired" in fe.a.log_text()


def test_wrong_password_is_refused_after_the_fail_delay(fe):
    text, took = imap_refusal(fe.nginx, "demo1", "not-the-password")
    assert INVALID_LOGIN in text
    assert took >= 1.8, f"refused after {took:.2f}s, mailauth_fail_delay is 2s"
    assert took < 6, f"refused after {took:.2f}s"
    # The right password is answered without that delay.
    m = fe.nginx.imap()
    t = time.monotonic()
    assert m.login("demo1", "demo")[0] == "OK"
    assert time.monotonic() - t < 1.5
    m.logout()


def test_pop3_wrong_password_is_refused_after_the_fail_delay(fe):
    p = fe.nginx.pop3()
    p.user("demo2")
    t = time.monotonic()
    with pytest.raises(poplib.error_proto, match=INVALID_LOGIN):
        p.pass_("nope")
    assert time.monotonic() - t >= 1.8
    p.close()


def test_user_without_a_role_gets_a_clear_refusal(fe):
    for user, password in (("norole", "demo"), ("ldapnorole", "nowhere")):
        text, took = imap_refusal(fe.nginx, user, password)
        assert NO_MAILBOX in text, text
    p = fe.nginx.pop3()
    p.user("norole")
    with pytest.raises(poplib.error_proto, match=NO_MAILBOX):
        p.pass_("demo")
    p.close()


def test_user_on_a_down_backend_gets_a_temporary_failure(fe):
    text, _ = imap_refusal(fe.nginx, "downuser", "demo")
    assert MAILBOX_UNAVAILABLE in text, text
    assert INVALID_LOGIN not in text


def test_wrong_password_of_a_user_without_role_is_just_a_wrong_password(fe):
    text, _ = imap_refusal(fe.nginx, "norole", "bad")
    assert INVALID_LOGIN in text


def test_logs_hold_no_passwords_or_tickets(fe):
    """Runs last in this file, after the logins above."""
    fe.nginx.assert_no_secrets_logged(["wonderland", "c4rol-Pass", "not-the-password", "nope"])
