"""Login tickets (DESIGN principle 4): a frontend logs in to mailstored with a signed, short-lived
ticket instead of the user's password. Tickets come from `mailctl ticket issue`, signed with the
key named in `[frontend] ticket_key`; mailstored accepts each only once, only from a trusted
address, only for its user, and only before it expires. Refusals look like a wrong password."""

from __future__ import annotations

import imaplib
import os
import poplib
import subprocess

import pytest

from harness import REPO, HarnessError, Server, plain_blob

MAILCTL = REPO / "target" / "release" / "mailctl"


def mailctl(*args: str) -> str:
    if not MAILCTL.is_file() or not os.access(MAILCTL, os.X_OK):
        pytest.fail(f"{MAILCTL} is missing: run `cargo build --release` first", pytrace=False)
    proc = subprocess.run([str(MAILCTL), *args], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().strip()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ticketkey") / "ticket.key"
    path.write_text(mailctl("ticket-key", "generate") + "\n")
    return path


def start(tmp_path_factory, material, **kw) -> Server:
    s = Server(tmp_path_factory.mktemp("mailstored"), material, tls=False, **kw)
    try:
        s.start()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    return s


@pytest.fixture(scope="module")
def fe_server(tmp_path_factory, material, key_file):
    s = start(tmp_path_factory, material,
              frontend={"ticket_key": key_file, "trusted": ["127.0.0.1", "::1"]})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def untrusting_server(tmp_path_factory, material, key_file):
    """Knows the key but trusts another address than the tests' 127.0.0.1."""
    s = start(tmp_path_factory, material,
              frontend={"ticket_key": key_file, "trusted": ["192.0.2.1"]})
    yield s
    s.stop()


def ticket(key_file, user: str, ttl: int = 60) -> str:
    return mailctl("ticket", "issue", "--key", str(key_file), "--user", user, "--ttl", str(ttl))


def imap_login_fails(server: Server, user: str, password: str) -> None:
    m = server.imap()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(user, password)
    m.shutdown()


def test_imap_login_with_ticket(fe_server, key_file):
    user = fe_server.new_user()
    m = fe_server.imap()
    typ, _ = m.login(user, ticket(key_file, user))
    assert typ == "OK"
    typ, data = m.select("INBOX")
    assert typ == "OK", data
    m.logout()


def test_user_known_only_to_the_frontend(fe_server, key_file):
    """The backend needs no directory: a ticket logs in a user absent from its users file."""
    m = fe_server.imap()
    assert m.login("ticketonly", ticket(key_file, "ticketonly"))[0] == "OK"
    m.logout()
    imap_login_fails(fe_server, "ticketonly", "demo")


def test_imap_authenticate_plain_with_ticket(fe_server, key_file):
    user = fe_server.new_user()
    with fe_server.raw("imap") as s:
        s.read_response()
        _, tagged = s.command(f"AUTHENTICATE PLAIN {plain_blob(user, ticket(key_file, user))}")
        assert b" OK" in tagged, tagged


def test_pop3_user_pass_and_auth_plain_with_ticket(fe_server, key_file):
    user = fe_server.new_user()
    p = fe_server.pop3()
    p.user(user)
    assert p.pass_(ticket(key_file, user)).startswith(b"+OK")
    assert p.stat()[0] == 0
    p.quit()

    p = fe_server.pop3()
    assert p._shortcmd("AUTH PLAIN " + plain_blob(user, ticket(key_file, user))).startswith(b"+OK")
    p.quit()


def test_replayed_ticket_is_refused(fe_server, key_file):
    user = fe_server.new_user()
    t = ticket(key_file, user)
    m = fe_server.imap()
    assert m.login(user, t)[0] == "OK"
    m.logout()
    imap_login_fails(fe_server, user, t)
    # nor by the other protocol
    p = fe_server.pop3()
    p.user(user)
    with pytest.raises(poplib.error_proto):
        p.pass_(t)
    assert "replay" in fe_server.log_text()


def tamper(t: str) -> list[str]:
    """Variants of a ticket: another user, a later expiry, another nonce, a flipped MAC byte."""
    prefix, user, expiry, nonce, mac = t.split(".")
    flip = "A" if mac[5] != "A" else "B"
    return [
        ".".join([prefix, "cm9vdA", expiry, nonce, mac]),  # "root"
        ".".join([prefix, user, str(int(expiry) + 3600), nonce, mac]),
        ".".join([prefix, user, expiry, "0" * 32, mac]),
        ".".join([prefix, user, expiry, nonce, mac[:5] + flip + mac[6:]]),
    ]


def test_tampered_tickets_are_refused(fe_server, key_file):
    user = fe_server.new_user()
    for bad in tamper(ticket(key_file, user)):
        imap_login_fails(fe_server, user, bad)
    assert "signature does not match" in fe_server.log_text()


def test_expired_tickets_are_refused(fe_server, key_file):
    user = fe_server.new_user()
    imap_login_fails(fe_server, user, ticket(key_file, user, ttl=0))
    imap_login_fails(fe_server, user, ticket(key_file, user, ttl=-30))
    p = fe_server.pop3()
    p.user(user)
    with pytest.raises(poplib.error_proto):
        p.pass_(ticket(key_file, user, ttl=-30))
    assert "expired ticket" in fe_server.log_text()


def test_ticket_for_another_user_is_refused(fe_server, key_file):
    user, other = fe_server.new_user(), fe_server.new_user()
    imap_login_fails(fe_server, other, ticket(key_file, user))


def test_ticket_signed_with_another_key_is_refused(fe_server, tmp_path):
    other_key = tmp_path / "other.key"
    other_key.write_text(mailctl("ticket-key", "generate") + "\n")
    user = fe_server.new_user()
    imap_login_fails(fe_server, user, ticket(other_key, user))


def test_untrusted_peer_cannot_use_a_ticket(untrusting_server, key_file):
    user = untrusting_server.new_user()
    t = ticket(key_file, user)
    imap_login_fails(untrusting_server, user, t)
    p = untrusting_server.pop3()
    p.user(user)
    with pytest.raises(poplib.error_proto):
        p.pass_(t)
    assert "not in [frontend] trusted" in untrusting_server.log_text()
    # the ordinary password still works there
    untrusting_server.imap(user).logout()


def test_passwords_still_work_and_tickets_never_logged(fe_server, key_file):
    user = fe_server.new_user()
    fe_server.imap(user).logout()
    fe_server.pop3(user).quit()
    t = ticket(key_file, user)
    m = fe_server.imap()
    m.login(user, t)
    m.logout()
    log = fe_server.log_text()
    assert "MST1." not in log
    _, _, _, _, mac = t.split(".")
    assert mac not in log
