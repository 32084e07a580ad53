"""Undelete (issue 6 item 5): `mailctl undelete list|restore` brings messages expunged within
the retention back into their folder with new UIDs, byte for byte, flags kept without
\\Deleted — after EXPUNGE and after a folder DELETE (the folder comes back)."""

from __future__ import annotations

import datetime
import json
import re
import time

import pytest

from harness import HarnessError, Server
from repl_support import mailctl


@pytest.fixture(scope="module")
def userver(material, tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("undelete"), material, tls=False, admin=True)
    try:
        s.start()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield s
    s.stop()


def msg(n: int) -> bytes:
    return (f"From: a@example.org\r\nSubject: undelete {n} \u00e9t\u00e9\r\nMessage-ID: <u{n}@x>\r\n"
            f"\r\nbody {n}\r\n" + "x" * (100 * n) + "\r\n").encode()


def folder(server: Server, user: str, name: str) -> dict[int, tuple[list[str], bytes]]:
    """UID -> (flags without \\Recent, full content) of every message in the folder."""
    m = server.imap(user)
    try:
        typ, _ = m.select(f'"{name}"', readonly=True)
        assert typ == "OK", name
        out = {}
        typ, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                head = item[0].decode()
                uid = int(re.search(r"UID (\d+)", head).group(1))
                flags = sorted(set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"})
                out[uid] = (flags, item[1])
        return out
    finally:
        m.logout()


def ctl(server: Server, *args: str, check: bool = True):
    return mailctl("undelete", *args, "--admin", f"s={server.admin_addr()}", check=check)


def listed(server: Server, user: str, *args: str) -> list[dict]:
    return json.loads(ctl(server, "list", "--user", user, "--json", *args).stdout)["messages"]


def test_undelete_after_expunge(userver):
    user = userver.new_user()
    m = userver.imap(user)
    for n in range(1, 4):
        assert m.append("INBOX", None, None, msg(n))[0] == "OK"
    m.select("INBOX")
    assert m.uid("STORE", "2", "+FLAGS", r"(\Seen \Flagged $Label1)")[0] == "OK"
    before = folder(userver, user, "INBOX")
    assert m.uid("STORE", "1:2", "+FLAGS", r"(\Deleted)")[0] == "OK"
    assert m.expunge()[0] == "OK"
    m.logout()
    assert sorted(folder(userver, user, "INBOX")) == [3]

    gone = listed(userver, user)
    assert [(g["mailbox"], g["uid"], g["size"]) for g in gone] == [
        ("INBOX", 1, len(msg(1))), ("INBOX", 2, len(msg(2)))]
    assert gone[0]["subject"] == "undelete 1 \u00e9t\u00e9"
    text = ctl(userver, "list", "--user", user).stdout
    assert "2 restorable message(s)" in text and "undelete 2" in text, text
    assert listed(userver, user, "--mailbox", "Trash") == []

    out = ctl(userver, "restore", "--user", user, "--mailbox", "INBOX").stdout
    assert "2 message(s) restored" in out, out
    after = folder(userver, user, "INBOX")
    assert sorted(after) == [3, 4, 5]  # new UIDs, never the old ones
    assert after[3] == before[3]
    assert after[4] == (before[1][0], before[1][1])
    assert after[5] == (["$Label1", "\\Flagged", "\\Seen"], before[2][1])
    assert after[5][1] == msg(2)
    assert listed(userver, user) == []
    q = userver.admin_get(f"/quota?user={user}")
    assert q["usage_bytes"] == q["counted_bytes"] == sum(len(c) for _, c in after.values())


def test_undelete_after_folder_delete_recreates_the_folder(userver):
    user = userver.new_user()
    m = userver.imap(user)
    assert m.create("Projects/2024")[0] == "OK"
    for n in range(4, 7):
        assert m.append("Projects/2024", r"(\Answered)", None, msg(n))[0] == "OK"
    before = folder(userver, user, "Projects/2024")
    m.select("Projects/2024")
    old_validity = int(m.untagged_responses["UIDVALIDITY"][-1])
    m.close()
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    assert m.delete("Projects/2024")[0] == "OK"
    assert not any(b"Projects/2024" in l for l in m.list()[1])
    m.logout()

    # --since in the future selects nothing; a bad --since is refused with the value named.
    future = str(int(time.time()) + 3600)
    assert listed(userver, user, "--since", future) == []
    r = ctl(userver, "list", "--user", user, "--since", "last week", check=False)
    assert r.returncode == 1 and "since" in r.stderr, r.stderr
    assert len(listed(userver, user, "--since", start.isoformat())) == 3

    out = ctl(userver, "restore", "--user", user, "--since", start.isoformat(timespec="seconds")).stdout
    assert "folder recreated" in out, out
    m = userver.imap(user)
    assert any(b"Projects/2024" in l for l in m.list()[1])
    m.select("Projects/2024")
    assert int(m.untagged_responses["UIDVALIDITY"][-1]) != old_validity
    m.logout()
    after = folder(userver, user, "Projects/2024")
    assert sorted(after) == [4, 5, 6], after.keys()  # above every UID the deleted folder gave
    assert [after[u] for u in sorted(after)] == [before[u] for u in sorted(before)]
    assert all(flags == ["\\Answered"] for flags, _ in after.values())
    assert listed(userver, user) == []


def test_no_second_restore_after_a_failover(tmp_path, material):
    """Restored on the primary, then the replica takes over: its own expunged area still lists
    the message, but restoring again finds it live in its folder and does not duplicate it."""
    from repl_support import Pair, message_ids, pair_certs
    (tmp_path / "certs").mkdir()
    pair = Pair(tmp_path, material, pair_certs(tmp_path / "certs")).start()
    try:
        user = "user10"
        for n in (1, 2):
            pair.a.deliver_ok(user, msg(n))
        m = pair.a.imap(user)
        m.select("INBOX")
        assert m.uid("STORE", "1:2", "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert m.expunge()[0] == "OK"
        m.logout()
        out = mailctl("undelete", "restore", "--user", user, "--admin", f"a1={pair.a.admin_addr()}").stdout
        assert "2" in out, out
        pair.wait_caught_up(pair.a)
        assert sorted(mid for _, mid in message_ids(pair.b, user)) == ["u1@x", "u2@x"]
        pair.a.kill9()
        pair.mailctl("failover", "a1", "--db", str(pair.roles))
        r = mailctl("undelete", "restore", "--user", user, "--admin", f"a2={pair.b.admin_addr()}")
        assert sorted(mid for _, mid in message_ids(pair.b, user)) == ["u1@x", "u2@x"], r.stdout
        assert "already live in its folder" in pair.b.log_text()
    finally:
        pair.stop()
