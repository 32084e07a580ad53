"""Replication under faults (issue 5): a split with writes on both sides then fail-back, a
stalled and a dropped replication link (a TCP proxy between the partners), a replica killed in
the middle of a large message, synchronous mode's policies for an unreachable replica, and what
operators see (`mailctl repl status|sync`, `mailctl check repl`, metrics)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter

import pytest

from repl_support import (Pair, converge, deliver_many, mailctl, message, message_ids,
                          pair_certs)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict:
    return pair_certs(tmp_path_factory.mktemp("faultcerts"))


def wait_for(what, check, secs: float = 20, server=None):
    deadline = time.monotonic() + secs
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {secs}s" + (f"\n{server.log_tail()}" if server else ""),
                        pytrace=False)
        time.sleep(0.1)


def test_split_writes_on_both_sides_then_fail_back(tmp_path, material, certs):
    pair = Pair(tmp_path, material, certs).start()
    try:
        user = "user02"
        for n in range(20):
            pair.a.deliver_ok(user, message(n, tag="base"))
        pair.wait_caught_up(pair.a)
        converge(pair.a, pair.b, user)

        # Split: the replica is gone; the primary takes mail and a new folder nobody replicates.
        pair.b.stop()
        for n in range(10):
            pair.a.deliver_ok(user, message(n, tag="only-a"))
        m = pair.a.imap(user)
        assert m.create("FromA")[0] == "OK"
        assert m.append("FromA", None, None, message(1, tag="folder-a"))[0] == "OK"
        m.logout()
        assert sorted(u for u, _ in message_ids(pair.a, user))[-10:] == list(range(21, 31))
        pair.a.kill9()

        # The replica comes back alone; the operator fails over; it takes mail under UIDs the
        # dead primary had given to other messages.
        pair.b.start()
        out = pair.mailctl("failover", "a1", "--db", str(pair.roles)).stdout
        assert "a2: promoted to primary" in out
        for n in range(5):
            pair.b.deliver_ok(user, message(n, tag="only-b"))
        before = message_ids(pair.b, user)
        assert [u for u, m in before if m.startswith("only-b")] == [21, 22, 23, 24, 25]

        # Fail-back: the old primary returns, steps down, and is compared.
        pair.a.start()
        wait_for("a1 steps down", lambda: pair.a.admin_get()["role"] == "replica", server=pair.a)
        want = ({f"base{n}@example.org" for n in range(20)} | {f"only-a{n}@example.org" for n in range(10)}
                | {f"only-b{n}@example.org" for n in range(5)})
        got = wait_for("every message of both sides on a2",
                       lambda: (g := message_ids(pair.b, user)) and want <= {m for _, m in g} and g,
                       secs=30, server=pair.b)
        mids = [m for _, m in got]
        assert Counter(mids) == Counter(want), "each message exactly once"
        uids = [u for u, _ in got]
        assert len(uids) == len(set(uids))
        # UIDs 21-30 named different messages on the two sides: none of those keeps them.
        assert not [u for u, m in got if 21 <= u <= 30], got
        assert [m for _, m in message_ids(pair.b, user, "FromA")] == ["folder-a1@example.org"]
        log = pair.b.log_text()
        assert "UID conflict after a split: this side's message renumbered" in log
        assert "rescued a message only the partner held" in log
        pair.wait_caught_up(pair.b)
        converge(pair.b, pair.a, user, secs=30)
    finally:
        pair.stop()


def test_link_stalled_then_dropped_during_changes_then_identical(tmp_path, material, certs):
    pair = Pair(tmp_path, material, certs, proxy=True, link_timeout_secs=3).start()
    try:
        user = "user03"
        for n in range(20):
            pair.a.deliver_ok(user, message(n))
        pair.wait_caught_up(pair.a)
        converge(pair.a, pair.b, user)

        # A black hole: connections stay open, nothing gets through.
        pair.proxy.set("stall")
        m = pair.a.imap(user)
        m.select("INBOX")
        for n in range(20, 40):
            pair.a.deliver_ok(user, message(n))
            if n % 4 == 0:
                assert m.uid("STORE", f"{n - 15}:{n - 10}", "+FLAGS", r"(\Seen $Work)")[0] == "OK"
        assert m.uid("STORE", "3:5", "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert m.expunge()[0] == "OK"
        assert m.create("Stalled")[0] == "OK"
        wait_for("the primary notices the dead link", lambda: pair.a.admin_get()["link"] == "down",
                 secs=30, server=pair.a)
        st = pair.a.admin_get()
        assert st["pending_users"] >= 1 and st["lag_seconds"] > 0
        pair.proxy.set("forward")
        pair.wait_caught_up(pair.a, secs=40)
        converge(pair.a, pair.b, user)

        # Connections cut in the middle of the traffic, several times.
        def cutter():
            for _ in range(5):
                time.sleep(0.15)
                pair.proxy.set("drop")
                time.sleep(0.1)
                pair.proxy.set("forward")

        t = threading.Thread(target=cutter)
        t.start()
        acked, other = deliver_many(pair.a, user, [f"cut-{i}" for i in range(300)], conns=3)
        for n in range(0, 300, 30):
            assert m.uid("STORE", f"{n + 1}:{n + 10}", "+FLAGS", r"(\Flagged)")[0] == "OK"
        t.join()
        m.logout()
        assert len(acked) == 300, other[:5]
        pair.wait_caught_up(pair.a, secs=40)
        state = converge(pair.a, pair.b, user)
        assert "Stalled" in state
        # Every mailbox's state (UIDs, MODSEQs, flags, GUIDs, counters) is identical: a full
        # compare finds nothing to send.
        out = pair.mailctl("repl", "sync", "--user", user, "--full").stdout
        assert "0 change(s) sent, replica identical" in out, out
    finally:
        pair.stop()


def test_replica_killed_mid_transfer_of_a_large_message(tmp_path, material, certs):
    pair = Pair(tmp_path, material, certs, proxy=True).start()
    try:
        user = "user04"
        pair.a.deliver_ok(user, message(1))
        pair.wait_caught_up(pair.a)
        start = pair.proxy.forwarded
        killed = threading.Event()

        def kill_midway(total: int) -> None:
            if total - start > 4 << 20 and not killed.is_set():
                killed.set()
                pair.b.kill9()

        pair.proxy.on_bytes = kill_midway
        big = message(2, tag="big", size=20 << 20)
        pair.a.deliver_ok(user, big)
        wait_for("the replica is killed mid-transfer", killed.is_set, server=pair.a)
        pair.proxy.on_bytes = None
        pair.b.start()
        pair.wait_caught_up(pair.a, secs=60)
        state = converge(pair.a, pair.b, user, secs=60)
        bodies = [b for _, b in state["INBOX"][1].values()]
        assert any(b.endswith(big) for b in bodies), "the large message arrived whole"
        assert "replication link lost" in pair.a.log_text()
    finally:
        pair.stop()


def test_synchronous_mode_tempfails_while_the_replica_is_unreachable(tmp_path, material, certs):
    pair = Pair(tmp_path, material, certs, mode="sync", unreachable="tempfail",
                sync_timeout_ms=3000).start()
    try:
        user = "user05"
        pair.a.deliver_ok(user, message(1))
        # Acknowledged means: on the replica already, at the moment of the 250.
        assert [m for _, m in message_ids(pair.b, user)] == ["m1@example.org"]
        m = pair.a.imap(user)
        assert m.append("INBOX", None, None, message(2))[0] == "OK"
        assert "m2@example.org" in {x for _, x in message_ids(pair.b, user)}

        pair.b.stop()
        codes = []
        for n in range(3, 6):
            code, text = pair.a.deliver(user, message(n))[f"{user}@localhost"]
            codes.append(code)
            assert code == 451 and b"replica" in text, (code, text)
        typ, data = m.append("INBOX", None, None, message(9))
        assert typ == "NO" and b"UNAVAILABLE" in data[0] and b"replica" in data[0], data
        st = pair.a.admin_get()
        assert st["link"] == "down" and st["mode"] == "sync"
        pair.b.start()
        wait_for("link up", lambda: pair.a.admin_get()["link"] == "up", server=pair.a)
        pair.a.deliver_ok(user, message(10))
        assert "m10@example.org" in {x for _, x in message_ids(pair.b, user)}
        m.logout()
    finally:
        pair.stop()


def test_synchronous_mode_can_fall_back_to_async_and_alerts(tmp_path, material, certs):
    pair = Pair(tmp_path, material, certs, mode="sync", unreachable="async",
                sync_timeout_ms=2000).start()
    try:
        user = "user06"
        pair.a.deliver_ok(user, message(1))
        assert not pair.a.admin_get()["degraded"]
        pair.b.stop()
        pair.a.deliver_ok(user, message(2))
        assert pair.a.admin_get()["degraded"] is True
        assert "ALERT synchronous replication degraded to asynchronous" in pair.a.log_text()
        r = mailctl("check", "repl", "--warn", "600", "--crit", "1200", "--admin",
                    f"a1={pair.a.admin_addr()}", check=False)
        assert r.returncode == 1 and "DEGRADED" in r.stdout, r.stdout
        pair.b.start()
        pair.wait_caught_up(pair.a)
        wait_for("whole again", lambda: not pair.a.admin_get()["degraded"], server=pair.a)
        assert pair.mailctl("check", "repl", "--warn", "600", "--crit", "1200",
                            check=False).returncode == 0
    finally:
        pair.stop()


def test_operators_status_check_metrics_and_full_sync_repair(tmp_path, material, certs):
    pair = Pair(tmp_path, material, certs).start()
    try:
        user = "user07"
        for n in range(5):
            pair.a.deliver_ok(user, message(n))
        pair.wait_caught_up(pair.a)
        out = pair.mailctl("repl", "status").stdout
        assert re.search(r"^a1 primary epoch=0 partner=\S+ link=up mode=async pending_users=0 "
                         r"lag_seconds=0\.0 degraded=no", out, re.M), out
        assert re.search(r"^a2 replica epoch=0", out, re.M), out
        r = pair.mailctl("check", "repl", "--warn", "30", "--crit", "60", check=False)
        assert r.returncode == 0, r.stdout
        assert re.fullmatch(r"REPL OK - a1: lag 0\.0s, 0 pending user\(s\), link up; a2 replica \| "
                            r"a1_lag=0\.000s;30;60;0 a1_pending=0;;;0\n", r.stdout), r.stdout

        # A message file lost on the replica: a full compare of the user finds and repairs it.
        files = sorted(p for p in (pair.b.dir / "data" / "mail" / user).rglob("*")
                       if p.is_file() and len(p.name) == 64)
        assert len(files) == 5
        victim = files[2]
        content = victim.read_bytes()
        victim.unlink()
        out = pair.mailctl("repl", "sync", "--user", user).stdout
        assert "quick compare" in out and not victim.exists(), "a quick compare trusts the digest"
        out = pair.mailctl("repl", "sync", "--user", user, "--full").stdout
        assert "full compare from a1 done, 1 change(s) sent, replica identical" in out, out
        assert victim.read_bytes() == content
        assert "replica lacked a message file; sent again" in pair.a.log_text()

        # The replica goes away and changes pile up: WARNING, then CRITICAL on the lag (the
        # check asks the primary only; a backend that does not answer is CRITICAL by itself).
        pair.b.stop()
        pair.a.deliver_ok(user, message(99))
        time.sleep(2.2)
        only_a = ("--admin", f"a1={pair.a.admin_addr()}")
        r = mailctl("check", "repl", "--warn", "1", "--crit", "60", *only_a, check=False)
        assert r.returncode == 1 and r.stdout.startswith("REPL WARNING - a1: lag "), r.stdout
        assert "1 pending user(s)" in r.stdout and "link down" in r.stdout
        r = mailctl("check", "repl", "--warn", "1", "--crit", "2", *only_a, check=False)
        assert r.returncode == 2 and r.stdout.startswith("REPL CRITICAL - a1: lag"), r.stdout
        r = pair.mailctl("check", "repl", "--warn", "600", "--crit", "1200", check=False)
        assert r.returncode == 2 and "a2 unreachable" in r.stdout, r.stdout
        out = pair.mailctl("repl", "status", check=False)
        assert out.returncode == 1 and "a2 unreachable" in out.stdout
        assert "pending_users=1" in out.stdout and "link=down" in out.stdout
        r = mailctl("check", "repl", "--warn", "1", check=False)
        assert r.returncode == 3 and r.stdout.startswith("REPL UNKNOWN"), r.stdout
        r = mailctl("repl", "sync", "--user", user, "--admin", f"a2={pair.b.admin_addr()}", check=False)
        assert r.returncode == 1 and "reachable primary" in r.stderr
        pair.b.start()
        pair.wait_caught_up(pair.a)
        assert pair.mailctl("check", "repl", "--warn", "1", "--crit", "2", check=False).returncode == 0
        st = pair.a.admin_get()
        assert st["lag_samples"] >= 1 and st["lag_ms_p99"] >= st["lag_ms_p50"] >= 0
        # Bad admin requests get clear answers.
        assert pair.a.admin_call("POST", "/repl/sync")[1]["error"] == "user=NAME is required"
        assert "not a valid user name" in pair.a.admin_call("POST", "/repl/sync?user=a%0Db")[1]["error"]
        assert pair.a.admin_call("GET", "/nope")[0] == 404
        assert "replica" in pair.b.admin_call("POST", f"/repl/sync?user={user}")[1]["error"]
    finally:
        pair.stop()


def test_the_metrics_text_is_prometheus(tmp_path, material, certs):
    pair = Pair(tmp_path, material, certs).start()
    try:
        pair.a.deliver_ok("user08", message(1))
        pair.wait_caught_up(pair.a)
        with socket.create_connection(("127.0.0.1", pair.a.admin), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        text = data.split(b"\r\n\r\n", 1)[1].decode()
        for name in ("mailstored_repl_primary 1", "mailstored_repl_pending_users 0",
                     "mailstored_repl_link_up 1", "mailstored_repl_degraded 0"):
            assert name in text, text
        assert re.search(r"^mailstored_repl_synced_users_total [1-9]", text, re.M), text
    finally:
        pair.stop()



def test_admin_api_token(tmp_path, material):
    from harness import Server
    s = Server(tmp_path / "tok", material, tls=False, admin=True)
    (s.dir / "admin.token").write_text("s3cret-admin-token\n")
    s.config.write_text(s.config.read_text() + 'token_file = "admin.token"\n')
    s.start()
    try:
        status, body = s.admin_call("GET", "/status")
        assert status == 401 and body["error"] == "bad or missing bearer token"
        token = tmp_path / "mailctl.token"
        token.write_text("s3cret-admin-token\n")
        r = mailctl("repl", "status", "--admin", f"t={s.admin_addr()}", "--token-file", str(token))
        assert r.stdout.startswith("t primary epoch=0"), r.stdout
        token.write_text("wrong\n")
        r = mailctl("repl", "status", "--admin", f"t={s.admin_addr()}", "--token-file", str(token),
                    check=False)
        assert r.returncode == 1 and "bad or missing bearer token" in r.stdout, r.stdout + r.stderr
        assert "s3cret-admin-token" not in s.log_text()
    finally:
        s.stop()


def test_sieve_scripts_and_quota_limit_replicate_and_serve_after_failover(tmp_path, material, certs):
    from repl_support import message_ids
    from sieve_support import ManageSieve
    pair = Pair(tmp_path, material, certs, sieve={"plaintext_auth": True}).start()
    try:
        user = "user09"
        script = 'require "fileinto";\r\nif header :contains "subject" "[work]" { fileinto "Work"; }\r\n'
        with ManageSieve(pair.a) as ms:
            assert ms.login(user).startswith(b"OK")
            assert ms.put("main", script).startswith(b"OK")
            assert ms.put("spare", "keep;\r\n").startswith(b"OK")
            assert ms.cmd('SETACTIVE "main"')[1].startswith(b"OK")
        status, body = pair.a.admin_call("POST", f"/quota?user={user}&bytes=5000000")
        assert status == 200, body
        m = pair.a.imap(user)
        assert m.create("Work")[0] == "OK"  # fileinto does not create folders
        m.logout()
        pair.wait_caught_up(pair.a)
        with ManageSieve(pair.b) as ms:
            assert ms.login(user).startswith(b"OK")
            lines, st = ms.cmd("LISTSCRIPTS")
            assert st.startswith(b"OK") and sorted(lines) == [b'"main" ACTIVE\r\n', b'"spare"\r\n'], lines
            lines, st = ms.cmd('GETSCRIPT "main"')
            assert st.startswith(b"OK") and script.encode() in b"".join(lines)
        status, body = pair.b.admin_call("GET", f"/quota?user={user}")
        assert status == 200 and body["limit_bytes"] == 5000000, body
        # Changes travel too: the spare script goes, the limit changes.
        with ManageSieve(pair.a) as ms:
            assert ms.login(user).startswith(b"OK")
            assert ms.cmd('DELETESCRIPT "spare"')[1].startswith(b"OK")
        assert pair.a.admin_call("POST", f"/quota?user={user}&bytes=default")[0] == 200
        pair.wait_caught_up(pair.a)
        with ManageSieve(pair.b) as ms:
            assert ms.login(user).startswith(b"OK")
            assert ms.cmd("LISTSCRIPTS")[0] == [b'"main" ACTIVE\r\n']
        assert pair.b.admin_call("GET", f"/quota?user={user}")[1]["override"] is None
        # After a failover the new primary files mail with the replicated script.
        pair.a.kill9()
        pair.mailctl("failover", "a1", "--db", str(pair.roles))
        pair.b.deliver_ok(user, b"Subject: [work] report\r\nMessage-ID: <w1@x>\r\n\r\nbody\r\n")
        assert [m for _, m in message_ids(pair.b, user, "Work")] == ["w1@x"]
    finally:
        pair.stop()
