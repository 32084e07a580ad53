"""Crash safety: kill -9 during a stream of LMTP deliveries; after restart every message that
got a 250 is there, byte-exact, and the index is consistent (DESIGN principle 5)."""

from __future__ import annotations

import re
import threading
import time

from harness import SENDER, addr
from imapdata import by_uid, crlf, fetch, parse, search, strip_added_headers


def crash_message(stream: int, i: int) -> bytes:
    return crlf(
        f"From: load@example.org\nTo: someone@example.net\nSubject: crash {stream}-{i}\n"
        f"Message-ID: <crash-{stream}-{i}@example.org>\n\n"
        + "".join(f"stream {stream} message {i} line {j} {'x' * (i % 50)}\n" for j in range(i % 40))
        + "end\n"
    )


class Stream(threading.Thread):
    """Delivers numbered messages on one LMTP connection until the server goes away."""

    def __init__(self, server, stream: int, rcpts: list[str]):
        super().__init__(daemon=True)
        self.server, self.stream, self.rcpts = server, stream, rcpts
        self.acked: dict[str, list[int]] = {r: [] for r in rcpts}
        self.attempted = 0
        self.error: BaseException | None = None

    def run(self):
        try:
            c = self.server.lmtp()
            c.ehlo()
            for i in range(100000):
                msg = crash_message(self.stream, i)
                self.attempted = i + 1
                assert c.mail(SENDER)[0] == 250
                for r in self.rcpts:
                    assert c.rcpt(addr(r))[0] == 250
                replies = [c.data(msg)] + [c.getreply() for _ in self.rcpts[1:]]
                for r, (code, _) in zip(self.rcpts, replies):
                    if code == 250:
                        self.acked[r].append(i)
        except Exception as e:  # the kill ends the stream
            self.error = e


def check_mailbox(server, user, streams):
    """Every acked message present once and byte-exact; index answers consistent."""
    m = server.imap(user)
    typ, data = m.select("INBOX")
    assert typ == "OK", data
    exists = int(data[0])
    res = fetch(m, "1:*", "(UID RFC822.SIZE BODY.PEEK[] FLAGS)") if exists else {}
    assert sorted(res) == list(range(1, exists + 1)), "FETCH 1:* skipped sequence numbers"
    uids = [res[n]["UID"] for n in sorted(res)]
    assert uids == sorted(uids) and len(set(uids)) == len(uids), "UIDs not strictly ascending"
    seen: dict[tuple[int, int], int] = {}
    for n, item in res.items():
        raw = item["BODY[]"]
        assert item["RFC822.SIZE"] == len(raw), f"message {n}: RFC822.SIZE != size of BODY[]"
        body, _ = strip_added_headers(raw)
        mm = re.search(rb"Subject: crash (\d+)-(\d+)\r\n", body)
        assert mm, f"message {n} is not one of ours / damaged: {raw[:200]!r}"
        key = (int(mm.group(1)), int(mm.group(2)))
        assert body == crash_message(*key), f"message {key} damaged after restart"
        seen[key] = seen.get(key, 0) + 1
    missing, dup = [], [k for k, v in seen.items() if v > 1]
    for st in streams:
        if user in st.acked:
            missing += [(st.stream, i) for i in st.acked[user] if (st.stream, i) not in seen]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    assert not dup, f"messages stored twice: {dup[:5]}"
    # the index agrees with itself: SEARCH, STATUS and UIDNEXT
    assert search(m, "ALL") == list(range(1, exists + 1))
    if exists:
        st, i = next(iter(seen))
        got = search(m, "HEADER", "Message-ID", f"<crash-{st}-{i}@example.org>")
        assert len(got) == 1
    m.unselect()
    typ, data = m.status("INBOX", "(MESSAGES UIDNEXT)")
    v = parse(data[0])
    items = dict(zip([str(x).upper() for x in v[1][0::2]], v[1][1::2]))
    assert items["MESSAGES"] == exists
    assert not uids or items["UIDNEXT"] > uids[-1], "UIDNEXT not past the highest UID"
    m.logout()
    return exists, uids


def run_streams(server, specs, first_stream: int = 0):
    streams = [Stream(server, first_stream + n, rcpts) for n, rcpts in enumerate(specs)]
    for s in streams:
        s.start()
    time.sleep(1.0)
    return streams


def test_kill9_during_deliveries(server):
    a, b, c = server.new_user(), server.new_user(), server.new_user()
    streams = run_streams(server, [[a], [a], [b, c]])
    server.kill9()
    for s in streams:
        s.join(15)
        assert not s.is_alive(), "a delivery stream hung after the server was killed"
    acked = sum(len(v) for s in streams for v in s.acked.values())
    assert acked > 0, f"no delivery acknowledged in 1 s: {[repr(s.error) for s in streams]}"
    server.start()
    counts = {}
    for u in (a, b, c):
        counts[u] = check_mailbox(server, u, streams)
    # delivery goes on after the restart and gets fresh UIDs
    server.deliver_ok(a, crash_message(9, 1))
    m = server.imap(a)
    m.select("INBOX")
    res = by_uid(fetch(m, "1:*", "(UID)"))
    assert max(res) > max(counts[a][1] or [0])
    m.logout()


def test_kill9_twice_and_pop3_agrees(server):
    u = server.new_user()
    streams = []
    for round_ in range(2):
        new = run_streams(server, [[u]], first_stream=10 + round_)
        server.kill9()
        for s in new:
            s.join(15)
        streams += new
        server.start()
        exists, _ = check_mailbox(server, u, streams)
    p = server.pop3(u)
    assert p.stat()[0] == exists
    _, lines, _ = p.retr(exists)
    assert b"Subject: crash" in b"\r\n".join(lines)
    p.quit()


def test_kill9_during_imap_append_and_expunge(server):
    """Appends that got OK survive; a half-done session leaves a consistent mailbox."""
    u = server.new_user()
    m = server.imap(u)
    ok = []
    for i in range(20):
        typ, _ = m.append("INBOX", None, None, crash_message(50, i))
        assert typ == "OK"
        ok.append(i)
    m.select("INBOX")
    m.store("1:10", "+FLAGS", "(\\Deleted)")
    m.expunge()
    server.kill9()
    server.start()
    m = server.imap(u)
    typ, data = m.select("INBOX")
    assert int(data[0]) == 10, f"{data[0]!r} messages after an acknowledged EXPUNGE and kill -9"
    res = fetch(m, "1:*", "(BODY.PEEK[])")
    subjects = sorted(int(re.search(rb"crash 50-(\d+)", v["BODY[]"]).group(1)) for v in res.values())
    assert subjects == list(range(10, 20))
    m.logout()
