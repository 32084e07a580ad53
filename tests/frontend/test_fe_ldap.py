"""LDAP users from a real slapd, the Redis credential cache, and what happens when either one is
stopped (issue 3, Tests)."""

from __future__ import annotations

import poplib

import pytest

from frontend import INVALID_LOGIN, TEMP_FAILURE, auth_headers, imap_refusal

FRONTEND = {"ldap": "search", "fail_delay": "1s"}


def login_ok(fe, user: str, password: str) -> None:
    m = fe.nginx.imap()
    typ, _ = m.login(user, password)
    assert typ == "OK"
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_ldap_users_log_in(fe):
    login_ok(fe, "alice", "wonderland")
    p = fe.nginx.pop3()
    p.user("bob")
    assert p.pass_("builder").startswith(b"+OK")
    p.quit()
    login_ok(fe, "carol+mail", "c4rol-Pass")


def test_ldap_wrong_password_and_unknown_user(fe):
    text, _ = imap_refusal(fe.nginx, "alice", "wrong", source="127.0.0.21")
    assert INVALID_LOGIN in text
    text, _ = imap_refusal(fe.nginx, "nosuchperson", "wonderland", source="127.0.0.21")
    assert INVALID_LOGIN in text


def test_cache_holds_keyed_hashes_not_passwords(fe):
    login_ok(fe, "alice", "wonderland")
    keys = fe.redis.command("KEYS", "*")
    assert b"mailauth:" in keys, keys
    dump = b""
    for key in [k for k in keys.split(b"\r\n") if k.startswith(b"mailauth:")]:
        dump += key + fe.redis.command("GET", key.decode())
    for secret in (b"wonderland", b"alice"):
        assert secret not in dump, dump


def test_slapd_stopped_cached_user_still_logs_in(fe):
    login_ok(fe, "alice", "wonderland")  # cached now
    fe.slapd.stop()
    try:
        for _ in range(4):  # several connections: whichever worker gets them
            login_ok(fe, "alice", "wonderland")
        # ... but not with another password, and an uncached user gets a temporary failure
        # (the directory can't answer), never "wrong password" nor OK.
        text, _ = imap_refusal(fe.nginx, "alice", "not-wonderland", source="127.0.0.22")
        assert INVALID_LOGIN in text or TEMP_FAILURE in text, text
        text, _ = imap_refusal(fe.nginx, "s01", "stall-pass", source="127.0.0.22")
        assert TEMP_FAILURE in text, text
        # users-file users don't need LDAP
        login_ok(fe, "demo3", "demo")
    finally:
        fe.slapd.start()
    login_ok(fe, "s01", "stall-pass")


def test_redis_stopped_logins_still_work_through_ldap(fe):
    fe.redis.stop()
    try:
        login_ok(fe, "s02", "stall-pass")  # never cached: straight to slapd
        login_ok(fe, "bob", "builder")
        login_ok(fe, "demo1", "demo")
        text, _ = imap_refusal(fe.nginx, "s03", "wrong", source="127.0.0.23")
        assert INVALID_LOGIN in text, text
        _, h, _ = fe.nginx.auth(auth_headers("s04", "stall-pass"))
        assert h.get("auth-status") == "OK", h
    finally:
        fe.redis.start()
    assert "redis" in fe.nginx.log_text().lower(), "Redis being down should be logged"
    login_ok(fe, "s05", "stall-pass")


def test_pop3_ldap_user_refused_with_wrong_password(fe):
    p = fe.nginx.pop3(source="127.0.0.24")
    p.user("bob")
    with pytest.raises(poplib.error_proto, match=INVALID_LOGIN):
        p.pass_("not-builder")
    p.close()


def test_logs_hold_no_passwords_or_tickets(fe):
    """Runs last in this file, after the logins above."""
    fe.nginx.assert_no_secrets_logged(["wonderland", "builder", "stall-pass", "not-wonderland", "not-builder"])
