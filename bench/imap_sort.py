#!/usr/bin/env python3
"""SORT and THREAD on a large folder: mailstored vs Dovecot 2.3, side by side (issue 6,
"Benchmark").

Both servers get the same N generated messages (bench/lmtp_imap.py's generator, default 50,000)
delivered to one user's INBOX by LMTP. Then, for each server and each command:

1. first call: the server is stopped, the page cache dropped, the server started; a fresh IMAP
   connection, LOGIN and SELECT INBOX (not timed), then the timed command;
2. repeated call: the same command again on that connection, --repeat times; the median counts.

Commands (all answered by UID, all messages, UTF-8):

    UID SORT (SUBJECT) UTF-8 ALL
    UID SORT (REVERSE DATE) UTF-8 ALL
    UID SORT (FROM) UTF-8 ALL
    UID THREAD REFERENCES UTF-8 ALL
    UID THREAD ORDEREDSUBJECT UTF-8 ALL

Checks: every SORT answer names all N messages once; a THREAD answer names all N once. The
answers of the two servers are compared and differences reported (the position of the first
difference and how many positions differ) — RFC 5256 leaves little room, so a difference is a
finding, not noise.

Progress on stderr; a markdown section for BENCHMARKS.md on stdout.

    python3 bench/imap_sort.py                   # 50,000 messages
    python3 bench/imap_sort.py --count 2000      # quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import lmtp_imap  # noqa: E402
from lmtp_imap import (RCPT, USER, PASSWORD, BenchError, Dovecot, LineReader, Mailstored,  # noqa: E402
                       Server, connect, drop_caches, lmtp_deliver, log, make_messages, run_text)

COMMANDS = [
    ("SORT (SUBJECT)", "UID SORT (SUBJECT) UTF-8 ALL"),
    ("SORT (REVERSE DATE)", "UID SORT (REVERSE DATE) UTF-8 ALL"),
    ("SORT (FROM)", "UID SORT (FROM) UTF-8 ALL"),
    ("THREAD REFERENCES", "UID THREAD REFERENCES UTF-8 ALL"),
    ("THREAD ORDEREDSUBJECT", "UID THREAD ORDEREDSUBJECT UTF-8 ALL"),
]


class Session:
    """One logged-in IMAP connection with INBOX selected."""

    def __init__(self, port: int):
        self.sock = connect(port)
        self.r = LineReader(self.sock)
        self.n = 0
        greeting = self.r.line()
        if not greeting.startswith(b"* OK"):
            raise BenchError(f"IMAP greeting: {greeting!r}")
        self.run(f'LOGIN "{USER}" "{PASSWORD}"')
        self.run("SELECT INBOX")

    def run(self, command: str) -> tuple[bytes, float]:
        self.n += 1
        tag = f"T{self.n}".encode()
        t0 = time.perf_counter()
        self.sock.sendall(tag + b" " + command.encode() + b"\r\n")
        data, tagged = self.r.until_tagged(tag)
        elapsed = time.perf_counter() - t0
        if not tagged.startswith(tag + b" OK"):
            raise BenchError(f"{command}: {tagged!r}")
        return data, elapsed

    def close(self) -> None:
        try:
            self.sock.sendall(b"Z LOGOUT\r\n")
            self.r.until_tagged(b"Z")
        except (BenchError, OSError):
            pass
        self.sock.close()


def answer(data: bytes, kind: str) -> str:
    """The `* SORT ...` or `* THREAD ...` payload (without the keyword)."""
    prefix = f"* {kind}".encode()
    for line in data.split(b"\r\n"):
        if line == prefix or line.startswith(prefix + b" "):
            return line[len(prefix):].strip().decode()
    raise BenchError(f"no {kind} response in {data[:200]!r}")


def ids(payload: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", payload)]


def compare(a: str, b: str, kind: str) -> str:
    """How two answers differ, in words ("identical" when they don't)."""
    if a == b:
        return "identical"
    if kind == "SORT":
        x, y = ids(a), ids(b)
        diff = [i for i in range(min(len(x), len(y))) if x[i] != y[i]]
        first = diff[0] if diff else min(len(x), len(y))
        return (f"differ at {len(diff):,} of {len(x):,} positions (first at position {first + 1:,}: "
                f"dovecot {x[first:first + 3]}…, mailstored {y[first:first + 3]}…)")
    return (f"differ (string lengths {len(a):,} / {len(b):,}; top-level threads "
            f"{top_level(a):,} / {top_level(b):,}; first difference at character "
            f"{next(i for i in range(min(len(a), len(b)) + 1) if a[i:i + 1] != b[i:i + 1]):,})")


def top_level(payload: str) -> int:
    depth = n = 0
    for c in payload:
        if c == "(":
            if depth == 0:
                n += 1
            depth += 1
        elif c == ")":
            depth -= 1
    return n


def measure(server: Server, count: int, repeat: int) -> dict:
    out = {}
    for label, command in COMMANDS:
        kind = command.split()[1]
        server.stop()
        dropped = drop_caches()
        server.start()
        s = Session(server.imap_port)
        data, first = s.run(command)
        payload = answer(data, kind)
        got = ids(payload)
        if len(got) != count or len(set(got)) != count:
            raise BenchError(f"{server.name}: {command} named {len(got):,} messages "
                             f"({len(set(got)):,} distinct), expected {count:,}")
        again = []
        for _ in range(repeat):
            d2, t = s.run(command)
            if answer(d2, kind) != payload:
                raise BenchError(f"{server.name}: {command} answered differently when repeated")
            again.append(t)
        s.close()
        out[label] = {"first": first, "repeat": statistics.median(again), "payload": payload,
                      "kind": kind, "dropped": dropped}
        log(f"{server.name}: {command}: first {first * 1000:,.1f} ms, repeated "
            f"{out[label]['repeat'] * 1000:,.1f} ms (median of {repeat}), {len(got):,} messages")
    return out


def fmt(x: float) -> str:
    return f"{x * 1000:,.0f} ms" if x >= 0.1 else f"{x * 1000:,.1f} ms"


def report(args, servers: list[Server], rates: dict, results: dict, sizes: list[int]) -> str:
    names = [s.name for s in servers]
    both = names == ["dovecot", "mailstored"]
    now = dt.datetime.now().astimezone()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")
    fs = run_text(["df", "--output=fstype", str(args.workdir)]).splitlines()[-1:] or ["?"]
    out = [f"### SORT and THREAD, {args.count:,} messages in one folder — {now:%Y-%m-%d %H:%M %Z}", ""]
    out.append(f"Command: `python3 bench/imap_sort.py --count {args.count} --repeat {args.repeat}"
               + (f" --servers {','.join(names)}" if not both else "") + "`  ")
    out.append(f"Machine: {platform.node()}, {os.cpu_count()} CPUs ({cpu}), {platform.system()} "
               f"{platform.release()}, work dir on {fs[0]}, load average at start "
               f"{args.load_at_start:.2f}, before the timed phase {args.load_at_sort:.2f}  ")
    out.append(f"Messages: {len(sizes):,}, {min(sizes):,}–{max(sizes):,} bytes (mean "
               f"{sum(sizes) / len(sizes):,.0f}), delivered by LMTP to INBOX: "
               + ", ".join(f"{n} {rates[n]:,.0f} msg/s" for n in names) + "  ")
    for s in servers:
        out.append(f"{s.name}: {s.version} — {s.notes}  ")
    out.append("")
    head = "| command | " + " | ".join(f"{n} first | {n} repeated" for n in names)
    sep = "|---|" + "---:|---:|" * len(names)
    if both:
        head += " | speed-up first | speed-up repeated"
        sep += "---:|---:|"
    out += [head + " |", sep]
    for label, _ in COMMANDS:
        cells = []
        for n in names:
            r = results[n][label]
            cells += [fmt(r["first"]), fmt(r["repeat"])]
        line = f"| {label} | " + " | ".join(cells)
        if both:
            d, m = results["dovecot"][label], results["mailstored"][label]
            line += f" | {d['first'] / m['first']:.1f}× | {d['repeat'] / m['repeat']:.1f}×"
        out.append(line + " |")
    out.append("")
    out.append(f"First: server restarted with the page cache dropped, fresh connection (LOGIN and "
               f"SELECT not timed). Repeated: median of {args.repeat} more calls on that connection. "
               "Speed-up: dovecot time / mailstored time. Every answer named all "
               f"{args.count:,} messages exactly once.")
    if both:
        out.append("")
        out.append("Answers compared (dovecot vs mailstored):")
        out.append("")
        for label, _ in COMMANDS:
            d, m = results["dovecot"][label], results["mailstored"][label]
            out.append(f"- {label}: {compare(d['payload'], m['payload'], d['kind'])}")
    return "\n".join(out)


def main() -> int:
    ap = lmtp_imap.side_by_side_args(__doc__, 50000, "messages in the folder")
    ap.add_argument("--repeat", type=int, default=5, help="repeated calls per command (default 5)")
    ap.add_argument("--dump", type=Path, help="write each server's answers into this directory")
    args = ap.parse_args()

    wanted = [n.strip() for n in args.servers.split(",") if n.strip()]
    if not wanted or any(n not in ("dovecot", "mailstored") for n in wanted):
        ap.error("--servers takes dovecot and/or mailstored")
    if args.count < 1 or args.repeat < 1:
        ap.error("--count and --repeat must be positive")
    if os.geteuid() != 0:
        ap.error("run as root (page cache drop; Dovecot's mail_uid)")
    if "dovecot" in wanted and not shutil.which("dovecot"):
        ap.error("dovecot not found: run scripts/install-deps.sh")
    if "mailstored" in wanted and not os.access(args.mailstored, os.X_OK):
        ap.error(f"{args.mailstored} not found: cargo build --release -p backend-daemon")

    args.load_at_start = os.getloadavg()[0]
    servers: list[Server] = []

    def work(tmp: Path) -> str:
        log(f"generating {args.count} messages")
        messages = make_messages(args.count, args.seed)
        sizes = [len(m) for m in messages]
        for name in ("dovecot", "mailstored"):
            if name in wanted:
                servers.append(Dovecot(tmp / "dovecot", "maildir") if name == "dovecot"
                               else Mailstored(tmp / "mailstored", args.mailstored))
        rates = {}
        for s in servers:
            s.start()
            log(f"{s.name}: delivering {args.count} messages")
            rates[s.name] = args.count / lmtp_deliver(s.lmtp_port, RCPT, messages)
            s.stop()
        args.load_at_sort = os.getloadavg()[0]
        if args.load_at_sort > 0.5 * (os.cpu_count() or 1):
            log(f"WARNING: load average {args.load_at_sort:.2f}: figures will be noisy")
        results = {}
        for s in servers:
            results[s.name] = measure(s, args.count, args.repeat)
            s.stop()
        if args.dump:
            args.dump.mkdir(parents=True, exist_ok=True)
            for n, r in results.items():
                for label, v in r.items():
                    (args.dump / f"{n}-{label.replace(' ', '_')}.txt").write_text(v["payload"] + "\n")
        return report(args, servers, rates, results, sizes)

    return lmtp_imap.in_work_dir(args, "mailscale-sort-", servers, work)

if __name__ == "__main__":
    sys.exit(main())
