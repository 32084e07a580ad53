#!/usr/bin/env python3
"""Replication benchmarks (issue 5), each on a private primary/replica pair of mailstored on
loopback (mutual TLS between them), built from the end-to-end tests' pieces (tests/harness.py,
tests/repl_support.py):

1. lag: a steady 50 deliveries/s (one LMTP connection, paced) spread over 20 users, with 20
   flag changes/s (IMAP STORE on the primary) for --lag-secs; lag measured two ways:
   (a) every 5th delivery is looked for on the replica's IMAP (UID SEARCH HEADER Message-ID,
       polled every 5 ms) from the moment its 250 arrived: the lag a reader of the replica sees;
   (b) the primary's own record: per synced user, the age of its oldest unsynced change at the
       moment the replica confirmed (admin API lag_ms_p50/p99).
   Side by side in the same run: the LMTP 250 latency in asynchronous and in synchronous mode
   (what waiting for the replica costs a sender).
2. catch-up: the replica is stopped, --catchup-count messages (3-5 KB, bench/lmtp_imap.py's
   generator) are delivered to one user, the replica is started; the time until the primary
   reports nothing pending gives messages/s. Side by side: Dovecot's own replication engine,
   `doveadm backup` (dsync) of the same messages from a private Dovecot (Maildir) to a local
   Maildir, timed the same way (no network, no TLS: a lower bound for a dsync replica).
3. failover: 2,000 users with one message each, replicated; kill -9 the primary; time
   `mailctl failover` and until a login + SELECT and an LMTP delivery succeed on the partner;
   then the old primary returns: time until it has stepped down and every user has been
   compared (fail-back catch-up).

Progress on stderr; a markdown section for BENCHMARKS.md on stdout.

    python3 bench/repl/run.py                      # 60 s lag phase, 20,000 messages, 2,000 users
    python3 bench/repl/run.py --lag-secs 10 --catchup-count 2000 --failover-users 200   # quick
"""

from __future__ import annotations

import argparse
import datetime as dt
import imaplib
import os
import platform
import random
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import harness  # noqa: E402
import lmtp_imap  # noqa: E402
from harness import HOST, PASSWORD, Material  # noqa: E402
from repl_support import Pair, mailctl, pair_certs  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p * len(v) + 0.5)) - 1))]


def wait(what: str, check, secs: float = 600, step: float = 0.05):
    deadline = time.monotonic() + secs
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {secs}s")
        time.sleep(step)


def caught_up(server) -> bool:
    st = server.admin_get()
    return st["role"] == "primary" and st["pending_users"] == 0 and st["link"] == "up"


# ---- 1. lag ------------------------------------------------------------------------------------

def lag_phase(workdir: Path, material, certs, mode: str, secs: float) -> dict:
    pair = Pair(workdir / f"lag-{mode}", material, certs, mode=mode, unreachable="tempfail").start()
    users = harness.POOL_USERS[:20]
    try:
        for u in users:  # every user exists and holds a message before the clock starts
            pair.a.deliver_ok(u, lmtp_imap.make_messages(1, 1)[0])
        wait("initial sync", lambda: caught_up(pair.a))
        pair.a.admin_call("POST", "/repl/reset-lag")
        stop = threading.Event()
        lmtp_lat: list[float] = []
        seen_lag: list[float] = []
        flag_ops = [0]
        to_watch: list[tuple[str, str, float]] = []
        cv = threading.Condition()

        def deliver() -> None:
            c = smtplib.LMTP(HOST, pair.a.ports["lmtp"], timeout=60)
            c.ehlo()
            n = 0
            t0 = time.monotonic()
            while not stop.is_set():
                due = t0 + n / 50.0
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                u = users[n % len(users)]
                mid = f"lag-{mode}-{n}@bench"
                msg = (f"From: a@example.org\r\nTo: {u}@localhost\r\nSubject: lag {n}\r\n"
                       f"Message-ID: <{mid}>\r\n\r\nbody {n}\r\n").encode()
                t = time.monotonic()
                c.sendmail("a@example.org", [f"{u}@localhost"], msg)
                acked = time.monotonic()
                lmtp_lat.append(acked - t)
                if n % 5 == 0:
                    with cv:
                        to_watch.append((u, mid, acked))
                        cv.notify()
                n += 1
            c.quit()

        def flags() -> None:
            conns = {}
            rng = random.Random(7)
            while not stop.is_set():
                u = rng.choice(users)
                if u not in conns:
                    conns[u] = pair.a.imap(u)
                    conns[u].select("INBOX")
                m = conns[u]
                flag = rng.choice([r"\Seen", r"\Flagged", "$Label1", r"\Answered"])
                m.store("1:*" if rng.random() < 0.1 else "1", rng.choice(["+FLAGS", "-FLAGS"]), f"({flag})")
                flag_ops[0] += 1
                time.sleep(0.05)
            for m in conns.values():
                m.logout()

        def watch() -> None:
            conns: dict[str, imaplib.IMAP4] = {}
            while True:
                with cv:
                    while not to_watch and not stop.is_set():
                        cv.wait(0.2)
                    if not to_watch:
                        break
                    u, mid, acked = to_watch.pop(0)
                if u not in conns:
                    conns[u] = pair.b.imap(u)
                    conns[u].select("INBOX", readonly=True)
                m = conns[u]
                while True:
                    m.noop()
                    typ, data = m.uid("SEARCH", "HEADER", "Message-ID", f"<{mid}>")
                    if data and data[0].split():
                        seen_lag.append(time.monotonic() - acked)
                        break
                    time.sleep(0.005)
            for m in conns.values():
                m.logout()

        threads = [threading.Thread(target=f) for f in (deliver, flags, watch)]
        for t in threads:
            t.start()
        time.sleep(secs)
        stop.set()
        for t in threads:
            t.join(120)
        wait("final sync", lambda: caught_up(pair.a))
        st = pair.a.admin_get()
        return {
            "mode": mode, "deliveries": len(lmtp_lat), "flag_ops": flag_ops[0], "secs": secs,
            "lmtp_p50": pct(lmtp_lat, 0.5) * 1000, "lmtp_p99": pct(lmtp_lat, 0.99) * 1000,
            "seen_n": len(seen_lag), "seen_p50": pct(seen_lag, 0.5) * 1000,
            "seen_p99": pct(seen_lag, 0.99) * 1000, "seen_max": max(seen_lag) * 1000 if seen_lag else 0,
            "own_p50": st["lag_ms_p50"], "own_p99": st["lag_ms_p99"], "own_n": st["lag_samples"],
        }
    finally:
        pair.stop()


# ---- 2. catch-up -------------------------------------------------------------------------------

def catchup_phase(workdir: Path, material, certs, count: int) -> dict:
    msgs = lmtp_imap.make_messages(count, 42)
    size = sum(len(m) for m in msgs)
    pair = Pair(workdir / "catchup", material, certs).start()
    user = "user01"
    try:
        pair.b.stop()
        log(f"catch-up: delivering {count} messages to the primary with the replica down")
        t = lmtp_imap.lmtp_deliver(pair.a.ports["lmtp"], f"{user}@localhost", msgs)
        log(f"  delivered at {count / t:.0f} msg/s")
        time.sleep(1)
        t0 = time.monotonic()
        pair.b.start()
        wait("catch-up", lambda: caught_up(pair.a), secs=1800, step=0.02)
        ours = time.monotonic() - t0
        n = len([1 for _ in harness_ids(pair.b, user)])
        assert n == count, f"replica holds {n} of {count}"
        log(f"  replica caught up in {ours:.1f}s ({count / ours:.0f} msg/s)")
    finally:
        pair.stop()
    dove_dir = workdir / "dovecot"
    dove_dir.mkdir()
    dove = lmtp_imap.Dovecot(dove_dir, "maildir")
    dove.start()
    try:
        log(f"catch-up baseline: {count} messages into Dovecot, then doveadm backup to a local Maildir")
        lmtp_imap.lmtp_deliver(dove.lmtp_port, lmtp_imap.RCPT, msgs)
        dest = dove_dir / "home" / "dsync-dest"
        dest.mkdir()
        import pwd
        pw = pwd.getpwnam(lmtp_imap.MAIL_OWNER)
        os.chown(dest, pw.pw_uid, pw.pw_gid)
        subprocess.run(["sync"], check=True)
        t0 = time.monotonic()
        r = subprocess.run(["doveadm", "-c", str(dove.conf), "backup", "-u", lmtp_imap.USER,
                            f"maildir:{dest}/Maildir"], capture_output=True, text=True, timeout=1800)
        dsync = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError(f"doveadm backup failed: {r.stderr}")
        log(f"  dsync took {dsync:.1f}s ({count / dsync:.0f} msg/s)")
        version = dove.version
    finally:
        dove.stop()
    return {"count": count, "mb": size / 1e6, "ours": ours, "dsync": dsync, "dovecot": version}


def harness_ids(server, user: str) -> list[int]:
    m = server.imap(user)
    try:
        m.select("INBOX", readonly=True)
        typ, data = m.uid("SEARCH", "ALL")
        return [int(x) for x in data[0].split()]
    finally:
        m.logout()


# ---- 3. failover -------------------------------------------------------------------------------

def failover_phase(workdir: Path, material, certs, nusers: int) -> dict:
    names = [f"fo{i:05d}" for i in range(nusers)]
    pair = Pair(workdir / "failover", material, certs)
    demo_hash = next(l for l in material.users_text.splitlines() if l.startswith("demo1:")).split(":", 1)[1]
    for s in (pair.a, pair.b):
        with open(s.dir / "users", "a") as f:
            f.write("".join(f"{n}:{demo_hash}\n" for n in names))
    pair.start()
    try:
        log(f"failover: one message to each of {nusers} users")
        for i in range(0, nusers, 50):  # 50 recipients per LMTP transaction
            pair.a.deliver_ok(names[i:i + 50], b"Subject: hello\r\n\r\nhello\r\n")
        wait("replicated", lambda: caught_up(pair.a), secs=600)
        pair.a.kill9()
        t0 = time.monotonic()
        out = pair.mailctl("failover", "a1", "--db", str(pair.roles)).stdout
        t_cmd = time.monotonic() - t0
        u = random.Random(1).choice(names)

        def login_ok() -> bool:
            try:
                m = pair.b.imap(u)
                ok = m.select("INBOX")[0] == "OK" and m.store("1", "+FLAGS", r"(\Seen)")[0] == "OK"
                m.logout()
                return ok
            except (imaplib.IMAP4.error, OSError):
                return False

        wait("read-write login on the new primary", login_ok, secs=60, step=0.01)
        t_login = time.monotonic() - t0
        pair.b.deliver_ok(u, b"Subject: after\r\n\r\nafter\r\n")
        t_lmtp = time.monotonic() - t0
        log(f"  failover command {t_cmd * 1000:.0f} ms, login+STORE {t_login * 1000:.0f} ms, "
            f"LMTP {t_lmtp * 1000:.0f} ms")
        t1 = time.monotonic()
        pair.a.start()
        wait("old primary steps down", lambda: pair.a.admin_get()["role"] == "replica", secs=60)
        t_down = time.monotonic() - t1
        wait("fail-back catch-up", lambda: caught_up(pair.b), secs=1800, step=0.05)
        t_back = time.monotonic() - t1
        log(f"  old primary stepped down after {t_down:.2f}s; all {nusers} users compared after {t_back:.1f}s")
        return {"users": nusers, "cmd_ms": t_cmd * 1000, "login_ms": t_login * 1000,
                "lmtp_ms": t_lmtp * 1000, "down_s": t_down, "back_s": t_back, "out": out}
    finally:
        pair.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lag-secs", type=float, default=60)
    ap.add_argument("--catchup-count", type=int, default=20000)
    ap.add_argument("--failover-users", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    harness.require_binary()
    base = Path(tempfile.mkdtemp(prefix="bench-repl-", dir="/var/tmp"))
    base.chmod(0o755)  # Dovecot's mail user must reach its home under it
    log(f"work directory {base}")
    try:
        (base / "material").mkdir()
        material = Material.create(base / "material")
        certs = pair_certs(base)
        load0 = os.getloadavg()
        lags = []
        for mode in ("async", "sync"):
            log(f"lag phase, {mode} mode, {args.lag_secs:.0f} s")
            lags.append(lag_phase(base, material, certs, mode, args.lag_secs))
            log(f"  {lags[-1]}")
        cu = catchup_phase(base, material, certs, args.catchup_count)
        fo = failover_phase(base, material, certs, args.failover_users)
        load1 = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    a, s = lags
    print(f"""## 4. Replication (issue 5)

Command: `python3 bench/repl/run.py --lag-secs {args.lag_secs:.0f} --catchup-count {args.catchup_count} --failover-users {args.failover_users}`, {dt.date.today().isoformat()}, {platform.node()}, {os.cpu_count()} CPUs, load {load0[0]:.1f} before / {load1[0]:.1f} after; revision {lmtp_imap.git_describe()}. A primary and its replica (two mailstored on loopback, mutual TLS), `interval_ms = 100`.

**Lag under a steady 50 deliveries/s with flag changes** ({a['secs']:.0f} s per mode; 20 users; {a['flag_ops']} / {s['flag_ops']} STOREs in async / sync mode):

| | asynchronous | synchronous |
|---|---|---|
| deliveries | {a['deliveries']} | {s['deliveries']} |
| LMTP 250 latency p50 / p99 | {a['lmtp_p50']:.1f} / {a['lmtp_p99']:.1f} ms | {s['lmtp_p50']:.1f} / {s['lmtp_p99']:.1f} ms |
| seen on the replica's IMAP after the 250, p50 / p99 / max (n) | {a['seen_p50']:.1f} / {a['seen_p99']:.1f} / {a['seen_max']:.1f} ms ({a['seen_n']}) | {s['seen_p50']:.1f} / {s['seen_p99']:.1f} / {s['seen_max']:.1f} ms ({s['seen_n']}) |
| primary's own lag record, p50 / p99 (syncs) | {a['own_p50']} / {a['own_p99']} ms ({a['own_n']}) | {s['own_p50']} / {s['own_p99']} ms ({s['own_n']}) |

"Seen on the replica" includes the 5 ms polling step and the IMAP round trip. In synchronous mode the 250 comes only after the replica holds the message, which is what the latency ratio {s['lmtp_p50'] / a['lmtp_p50']:.1f}× (p50) costs.

**Catch-up after an outage** ({cu['count']} messages, {cu['mb']:.1f} MB, one user, replica down during the deliveries): mailstored replica caught up in {cu['ours']:.1f} s = **{cu['count'] / cu['ours']:.0f} messages/s** over TLS on loopback. Same run, same messages, Dovecot {cu['dovecot']} `doveadm backup` (dsync) Maildir → local Maildir: {cu['dsync']:.1f} s = {cu['count'] / cu['dsync']:.0f} messages/s; ratio {cu['dsync'] / cu['ours']:.1f}×.

**Failover of {fo['users']} users** (one message each, replicated; primary killed with SIGKILL): `mailctl failover a1` returned after {fo['cmd_ms']:.0f} ms; a login with SELECT and STORE on the new primary succeeded {fo['login_ms']:.0f} ms after the command started, an LMTP delivery {fo['lmtp_ms']:.0f} ms after. Fail-back: the old primary, restarted, stepped down after {fo['down_s']:.2f} s; every one of the {fo['users']} users had been compared (and the new primary's changes sent) {fo['back_s']:.1f} s after the restart.
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
