"""Storage quota (issue 6 item 4): LMTP over quota answers 452 4.2.2 (552 5.2.2 when
configured permanent), APPEND and COPY answer NO [OVERQUOTA], MOVE is never refused, and the
usage the admin API reports equals the sum of RFC822.SIZE of every live message through
deliveries, COPY, MOVE, EXPUNGE, POP3 DELE, DELETE, undelete and replication."""

from __future__ import annotations

import re
import time

import pytest

from harness import HarnessError, Server, addr
from repl_support import Pair, converge, mailctl, pair_certs

LIMIT = 20000


def msg(n: int, size: int) -> bytes:
    head = f"From: a@example.org\r\nTo: b@example.org\r\nSubject: quota {n}\r\nMessage-ID: <q{n}@x>\r\n\r\n"
    body = (f"line {n} " * (size // 7 + 1)).encode()
    return head.encode() + body[: max(0, size - len(head))] + b"\r\n"


def start(material, tmp_path_factory, **store) -> Server:
    s = Server(tmp_path_factory.mktemp("quota"), material, tls=False, admin=True, store=store)
    try:
        s.start()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    return s


@pytest.fixture(scope="module")
def qserver(material, tmp_path_factory):
    s = start(material, tmp_path_factory, quota_bytes=LIMIT)
    yield s
    s.stop()


def quota(server: Server, user: str) -> dict:
    q = server.admin_get(f"/quota?user={user}")
    assert q["usage_bytes"] == q["counted_bytes"], q
    return q


def imap_total(server: Server, user: str) -> int:
    """Sum of RFC822.SIZE over every selectable folder, as a client sees it."""
    m = server.imap(user)
    try:
        total = 0
        for line in m.list()[1]:
            name = re.match(rb'\(([^)]*)\) "[^"]*" (.*)$', line).group(2).decode().strip('"')
            typ, count = m.select(f'"{name}"', readonly=True)
            if typ != "OK" or count[0] == b"0":
                continue
            typ, data = m.fetch("1:*", "(RFC822.SIZE)")
            for d in data:
                if d and (hit := re.search(rb"RFC822.SIZE (\d+)", d)):
                    total += int(hit.group(1))
            m.close()
        return total
    finally:
        m.logout()


def exact(server: Server, user: str) -> int:
    used = quota(server, user)["usage_bytes"]
    assert used == imap_total(server, user)
    return used


def test_lmtp_over_quota_is_452_and_nothing_is_stored(qserver):
    user = qserver.new_user()
    for n in range(3):
        qserver.deliver_ok(user, msg(n, 5000))
    used = exact(qserver, user)
    assert 15000 <= used < LIMIT
    code, text = qserver.deliver(user, msg(9, 8000))[addr(user)]
    assert (code, text[:5]) == (452, b"4.2.2"), (code, text)
    assert b"over quota" in text
    assert exact(qserver, user) == used
    qserver.deliver_ok(user, msg(10, 500))  # what still fits is delivered
    assert "delivery refused: over quota" in qserver.log_text()


def test_lmtp_over_quota_552_when_configured_permanent(material, tmp_path_factory):
    s = start(material, tmp_path_factory, quota_bytes=3000, quota_lmtp_permanent="true")
    try:
        user = s.new_user()
        s.deliver_ok(user, msg(1, 2000))
        code, text = s.deliver(user, msg(2, 2000))[addr(user)]
        assert (code, text[:5]) == (552, b"5.2.2"), (code, text)
    finally:
        s.stop()


def test_append_and_copy_over_quota_answer_overquota_and_move_still_works(qserver):
    user = qserver.new_user()
    m = qserver.imap(user)
    try:
        for n in range(3):
            assert m.append("INBOX", None, None, msg(n, 5000))[0] == "OK"
        typ, data = m.append("INBOX", None, None, msg(3, 6000))
        assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), (typ, data)
        m.select("INBOX")
        typ, data = m.uid("COPY", "1:2", "Trash")
        assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), (typ, data)
        used = exact(qserver, user)
        typ, data = m.uid("MOVE", "1:3", "Trash")
        assert typ == "OK", (typ, data)
        assert exact(qserver, user) == used
        m.select("Trash")
        assert m.uid("SEARCH", "ALL")[1][0].split() == [b"1", b"2", b"3"]
    finally:
        m.logout()


def test_usage_exact_through_copy_expunge_pop3_and_delete(qserver):
    user = qserver.new_user()
    for n in range(4):
        qserver.deliver_ok(user, msg(n, 2000))
    m = qserver.imap(user)
    try:
        assert m.create("Keep")[0] == "OK"
        m.select("INBOX")
        assert m.uid("COPY", "1:2", "Keep")[0] == "OK"
        after_copy = exact(qserver, user)
        assert m.uid("STORE", "1", "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert m.expunge()[0] == "OK"
        after_expunge = exact(qserver, user)
        assert after_expunge < after_copy
        m.close()
    finally:
        m.logout()
    p = qserver.pop3(user)
    p.dele(1)
    p.quit()
    after_pop = exact(qserver, user)
    assert after_pop < after_expunge
    m = qserver.imap(user)
    assert m.delete("Keep")[0] == "OK"
    m.logout()
    assert exact(qserver, user) < after_pop


def test_mailctl_quota_set_and_get(qserver):
    user = qserver.new_user()
    admin = f"s={qserver.admin_addr()}"
    qserver.deliver_ok(user, msg(1, 1500))
    out = mailctl("quota", "get", "--user", user, "--admin", admin).stdout
    assert f"of {LIMIT} bytes" in out and "default" in out, out
    mailctl("quota", "set", "--user", user, "--bytes", "1000", "--admin", admin)
    q = quota(qserver, user)
    assert (q["limit_bytes"], q["override"]) == (1000, 1000), q
    assert qserver.deliver(user, msg(2, 100))[addr(user)][0] == 452
    mailctl("quota", "set", "--user", user, "--bytes", "none", "--admin", admin)
    assert quota(qserver, user)["limit_bytes"] is None
    qserver.deliver_ok(user, msg(3, 30000))
    assert "unlimited" in mailctl("quota", "get", "--user", user, "--admin", admin).stdout
    mailctl("quota", "set", "--user", user, "--bytes", "default", "--admin", admin)
    q = quota(qserver, user)
    assert (q["limit_bytes"], q["override"]) == (LIMIT, None), q
    r = mailctl("quota", "set", "--user", user, "--bytes", "lots", "--admin", admin, check=False)
    assert r.returncode == 1 and "--bytes" in r.stderr
    r = mailctl("quota", "get", "--user", "nobody-here", "--admin", admin, check=False)
    assert r.returncode == 1 and "no mailbox" in r.stderr


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict:
    return pair_certs(tmp_path_factory.mktemp("quotacerts"))


def test_usage_exact_on_the_replica_after_replication(tmp_path_factory, material, certs):
    pair = Pair(tmp_path_factory.mktemp("quotapair"), material, certs).start()
    try:
        a, b = pair.a, pair.b
        user = a.new_user()
        for n in range(5):
            a.deliver_ok(user, msg(n, 1500))
        m = a.imap(user)
        assert m.create("Folder")[0] == "OK"
        m.select("INBOX")
        assert m.uid("COPY", "1:3", "Folder")[0] == "OK"
        assert m.uid("MOVE", "4", "Trash")[0] == "OK"
        assert m.uid("STORE", "2", "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert m.expunge()[0] == "OK"
        m.logout()
        m = a.imap(user)
        assert m.delete("Folder")[0] == "OK"
        m.logout()
        pair.wait_caught_up(a)
        converge(a, b, user)
        used = exact(a, user)
        assert quota(b, user)["usage_bytes"] == used == imap_total(b, user)
        # Undelete on the primary travels as new messages; the replica's usage follows.
        pair.mailctl("undelete", "restore", "--user", user)
        assert exact(a, user) > used
        pair.wait_caught_up(a)
        converge(a, b, user)
        assert quota(b, user)["usage_bytes"] == exact(a, user) == imap_total(b, user)
        # A replica does not restore (its partner would not learn of it).
        status, body = b.admin_call("POST", f"/undelete/restore?user={user}")
        assert status == 409 and "replica" in body["error"], body
        # mailctl quota set reaches both backends.
        pair.mailctl("quota", "set", "--user", user, "--bytes", "12345")
        assert quota(a, user)["limit_bytes"] == quota(b, user)["limit_bytes"] == 12345
    finally:
        pair.stop()


def test_sieve_copies_are_admitted_all_or_none(material, tmp_path_factory):
    """A script that files two copies (fileinto :copy + the implicit keep) of a message that
    fits once but not twice: 452 and nothing stored, so the MTA's retry cannot duplicate."""
    from sieve_support import install_script
    s = Server(tmp_path_factory.mktemp("quota-sieve"), material, tls=False, admin=True,
               store={"quota_bytes": LIMIT}, sieve={"plaintext_auth": True})
    s.start()
    try:
        user = s.new_user()
        m = s.imap(user)
        assert m.create("Copies")[0] == "OK"
        m.logout()
        install_script(s, user, 'require ["fileinto", "copy"];\r\nfileinto :copy "Copies";\r\n')
        res = s.deliver(user, msg(1, 12000))
        assert res[addr(user)][0] == 452, res
        assert quota(s, user)["usage_bytes"] == 0, "nothing stored"
        s.deliver_ok(user, msg(2, 5000))  # two copies of 5,000 bytes fit
        assert quota(s, user)["usage_bytes"] == imap_total(s, user) > 10000
    finally:
        s.stop()
