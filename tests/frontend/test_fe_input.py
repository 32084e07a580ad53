"""Hostile user names through nginx and straight at the auth location: refused, never injected
into an LDAP filter or an answer header, and nothing crashes (issue 3, Tests; DESIGN principle 3).
LDAP here is search-then-bind with `(uid=%u)`, where an unescaped `*` would match entries."""

from __future__ import annotations

import base64
import socket

import pytest

from frontend import (INVALID_LOGIN, MAILBOX_UNAVAILABLE, NO_MAILBOX, TEMP_FAILURE, auth_headers,
                      http_raw, imap_refusal, mailctl)
from harness import HOST

FRONTEND = {"ldap": "search", "fail_delay": "1s"}

HOSTILE = ["*)(uid=*", "*", "alic*", "alice)(|(uid=*", "alice\\2a", "uid=alice,ou=people", "alice\x00",
           "alice ", " alice", "(alice)", "alice\r\nAuth-Status: OK"]


def assert_refused(status: dict, message: str = INVALID_LOGIN) -> None:
    assert status.get("auth-status") == message, status
    assert "auth-server" not in status and "auth-port" not in status and "auth-pass" not in status


@pytest.mark.parametrize("user", HOSTILE)
def test_hostile_names_with_a_real_password_are_refused_at_the_auth_location(fe, user):
    """alice's real password: if `alic*` reached the filter unescaped it would find and bind
    alice and the answer would be OK (or "no mailbox" for the odd name)."""
    _, h, _ = fe.nginx.auth(auth_headers(user, "wonderland", client="127.0.0.9"))
    assert_refused(h)


@pytest.mark.parametrize("user", ["*)(uid=*", "alic*", "alice)(|(uid=*"])
def test_hostile_names_through_imap(fe, user):
    text, _ = imap_refusal(fe.nginx, user, "wonderland", source="127.0.0.10")
    assert INVALID_LOGIN in text, text


def literal_login(fe, user: bytes, password: bytes) -> bytes:
    """IMAP LOGIN with both arguments as literals, so CR/LF/NUL can be in them."""
    with socket.create_connection((HOST, fe.nginx.ports["imap"]), timeout=20,
                                  source_address=("127.0.0.11", 0)) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"* OK")
        f.write(b"a1 LOGIN {%d}\r\n" % len(user))
        f.flush()
        cont = f.readline()
        if not cont.startswith(b"+"):
            return cont
        f.write(user + b" {%d}\r\n" % len(password))
        f.flush()
        cont = f.readline()
        if not cont.startswith(b"+"):
            return cont
        f.write(password + b"\r\n")
        f.flush()
        while True:
            line = f.readline()
            if not line or line.startswith(b"a1 "):
                return line


@pytest.mark.parametrize("user", [b"alice\r\nAuth-Status: OK", b"ali\nce", b"alice\x00", b"al\rice"])
def test_control_characters_in_imap_literal_user_names_are_refused(fe, user):
    reply = literal_login(fe, user, b"wonderland")
    assert b" NO " in reply or b" BAD " in reply or reply == b"", reply
    assert b" OK" not in reply


def test_control_characters_in_authenticate_plain_are_refused(fe):
    with socket.create_connection((HOST, fe.nginx.ports["imap"]), timeout=20,
                                  source_address=("127.0.0.12", 0)) as s:
        f = s.makefile("rwb")
        f.readline()
        blob = base64.b64encode(b"\x00alice\r\nX-Injected: 1\x00wonderland")
        f.write(b"a1 AUTHENTICATE PLAIN " + blob + b"\r\n")
        f.flush()
        line = f.readline()
        while line.startswith(b"* "):
            line = f.readline()
        assert line.startswith(b"a1 NO") or line.startswith(b"a1 BAD"), line


@pytest.mark.parametrize("escaped", ["demo1%0D%0AAuth-Status:%20OK", "demo1%0A", "demo1%0D", "demo1%00",
                                     "demo1%0d%0aAuth-Server:%201.2.3.4"])
def test_cr_lf_nul_in_auth_user_refused(fe, escaped):
    h = auth_headers("demo1", "demo", client="127.0.0.13")
    h["Auth-User"] = escaped
    _, answer, items = fe.nginx.auth(h)
    assert_refused(answer)
    names = [k.lower() for k, _ in items]
    assert names.count("auth-status") == 1 and "x-injected" not in names


@pytest.mark.parametrize("escaped", ["demo%0D%0AAuth-Status:%20OK", "demo%00", "de%0Amo"])
def test_cr_lf_nul_in_auth_pass_refused(fe, escaped):
    h = auth_headers("demo1", "demo", client="127.0.0.13")
    h["Auth-Pass"] = escaped
    _, answer, _ = fe.nginx.auth(h)
    assert_refused(answer)


def test_raw_control_bytes_in_headers_do_not_crash(fe):
    """nginx's HTTP parser sees these before the module; whatever it answers, no OK and the
    server keeps working."""
    for raw in (b"GET /auth HTTP/1.0\r\nAuth-Method: plain\r\nAuth-User: de\x00mo1\r\nAuth-Pass: demo\r\n"
                b"Auth-Protocol: imap\r\n\r\n",
                b"GET /auth HTTP/1.0\r\nAuth-Method: plain\r\nAuth-User: demo1\rAuth-Status: OK\r\n"
                b"Auth-Pass: demo\r\nAuth-Protocol: imap\r\n\r\n"):
        try:
            _, answer, _ = http_raw(fe.nginx.ports["auth"], raw)
        except OSError:
            continue
        assert answer.get("auth-status") != "OK", answer
    _, answer, _ = fe.nginx.auth(auth_headers("demo1", "demo"))
    assert answer.get("auth-status") == "OK", answer


# ---- each answer kind, straight at the auth location ----------------------------------------------

def test_answer_ok_imap_and_pop3(fe):
    for proto, port in (("imap", fe.a.ports["imap"]), ("pop3", fe.a.ports["pop3"])):
        status, h, _ = fe.nginx.auth(auth_headers("demo1", "demo", protocol=proto))
        assert h["auth-status"] == "OK", h
        assert h["auth-server"] == HOST
        assert h["auth-port"] == str(port)
        assert h["auth-pass"] != "demo" and h["auth-pass"].startswith("MST1."), h
        assert "demo1" in mailctl("ticket", "verify", "--key", str(fe.key), h["auth-pass"])
        assert "auth-wait" not in h
    _, h, _ = fe.nginx.auth(auth_headers("bob", "builder", protocol="pop3"))
    assert (h["auth-status"], h["auth-port"]) == ("OK", str(fe.b.ports["pop3"])), h


def test_answer_wrong_password_has_wait_until_the_last_attempt(fe):
    _, h, _ = fe.nginx.auth(auth_headers("demo1", "bad", client="127.0.0.14"))
    assert_refused(h)
    assert h.get("auth-wait") == "1", h
    _, h, _ = fe.nginx.auth(auth_headers("demo1", "bad", attempt=3, client="127.0.0.14"))
    assert_refused(h)
    assert "auth-wait" not in h, "from the 3rd attempt on nginx must close the connection"


def test_answer_unknown_user(fe):
    _, h, _ = fe.nginx.auth(auth_headers("nosuchuser", "demo", client="127.0.0.14"))
    assert_refused(h)


def test_answer_no_role_and_unavailable(fe):
    _, h, _ = fe.nginx.auth(auth_headers("norole", "demo"))
    assert_refused(h, NO_MAILBOX)
    _, h, _ = fe.nginx.auth(auth_headers("downuser", "demo"))
    assert_refused(h, MAILBOX_UNAVAILABLE)
    assert "auth-wait" in h


def test_answer_to_a_malformed_request(fe):
    h = auth_headers("demo1", "demo")
    del h["Auth-Method"]
    _, answer, _ = fe.nginx.auth(h)
    assert_refused(answer, TEMP_FAILURE)
    h = auth_headers("demo1", "demo", protocol="gopher")
    _, answer, _ = fe.nginx.auth(h)
    assert answer.get("auth-status") != "OK", answer


def test_smtp_is_not_served(fe):
    _, h, _ = fe.nginx.auth(auth_headers("demo1", "demo", protocol="smtp"))
    assert h.get("auth-status") != "OK", h


def test_still_serving_after_all_that(fe):
    m = fe.nginx.imap()
    assert m.login("alice", "wonderland")[0] == "OK"
    m.logout()
