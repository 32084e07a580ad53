#!/usr/bin/env python3
"""Roles database benchmarks (issue 4): import of N users with `mailctl roles import`, lookup
latency from the module's read path, and the apply rate of changes.

    python3 bench/roles/run.py                  # 200,000 users, 1,000,000 lookups, 10,000 changes
    python3 bench/roles/run.py --users 20000    # quick run

Builds (cargo build --release -p mailctl --examples) and runs the real binaries in a private
directory under /var/tmp (the same disk as the other benchmarks), and prints every figure with
the date, the revision and the machine's load. Nothing is estimated.

- import: N users over 100 backends (2,000 each, as DESIGN.md's backends), added first with
  `mailctl roles backend add`; then the wall time of one `mailctl roles import FILE.csv` (one
  write transaction, one commit) into that database, and its CPU time (getrusage of the child);
  once with the file in name order, once shuffled, and the shuffled file again over the result.
- lookup: mailctl/examples/roles_lookup.rs on the imported database, opened read-only.
- apply: mailctl/examples/roles_apply.rs (one transaction per change, in batches, and a replay of
  the changelog in pages as a follower applies it).
- follower: roles-agent's `rolesd primary` + `rolesd follower` over TLS on loopback (token auth),
  the follower's progress read from its `GET /status`: a burst committed on a live follower, and
  the catch-up of a follower started that far behind (see bench_follower). `--no-follower` skips
  it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAILCTL = REPO / "target" / "release" / "mailctl"
EXAMPLES = REPO / "target" / "release" / "examples"
ROLESD = REPO / "target" / "release" / "rolesd"
BACKENDS = 100


def sh(*args: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def machine() -> str:
    load = os.getloadavg()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "?")
    rev = sh("git", "-C", str(REPO), "rev-parse", "--short", "HEAD").stdout.strip()
    dirty = " (+ uncommitted changes)" if sh("git", "-C", str(REPO), "status", "--porcelain", "--",
                                            "mailctl", "roles", "roles-agent", "bench/roles").stdout.strip() else ""
    return (f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; revision {rev}{dirty}; "
            f"{os.cpu_count()} CPUs ({cpu}); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def timed(*args: str) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and child CPU seconds (user+sys) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    proc = sh(*args)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def bench_import(work: Path, users: int) -> Path:
    """Imports the same users twice into fresh databases: in name order (as `export` writes them)
    and shuffled (seeded), the costlier order for a B-tree; then the shuffled file again over the
    full database. Returns the shuffled run's database."""
    names = [f"user{i:07d}@example.org,b{i % BACKENDS:03d}\n" for i in range(users)]
    shuffled = names[:]
    random.Random(4).shuffle(shuffled)
    db = None
    for order, lines in (("in name order", names), ("shuffled", shuffled)):
        db = work / f"roles-{order.split()[0]}"
        for i in range(BACKENDS):
            sh(str(MAILCTL), "roles", "--db", str(db), "backend", "add", f"b{i:03d}",
               f"10.0.{i // 250}.{i % 250 + 1}", "--imap", "143", "--pop3", "110", "--lmtp", "24")
        csv = work / f"users-{order.split()[0]}.csv"
        csv.write_text("".join(lines))
        wall, cpu, proc = timed(str(MAILCTL), "roles", "--db", str(db), "import", str(csv))
        size = (db / "data.mdb").stat().st_size
        print(f"import {order}: {users} users -> {BACKENDS} backends: wall {wall:.2f} s, CPU {cpu:.2f} s, "
              f"{users / wall:,.0f} users/s; data.mdb {size / 1e6:.1f} MB; mailctl: {proc.stderr.strip()}")
    # the same file again onto the full database: every user rewritten (and logged) in place
    wall2, cpu2, _ = timed(str(MAILCTL), "roles", "--db", str(db), "import", str(csv))
    print(f"import again (shuffled file over the full database): wall {wall2:.2f} s, CPU {cpu2:.2f} s")
    n = int(sh(str(MAILCTL), "roles", "--db", str(db), "seq").stdout)
    assert n == BACKENDS + 2 * users, n
    return db


def bench_lookup(db: Path, lookups: int) -> None:
    out = sh(str(EXAMPLES / "roles_lookup"), str(db), str(lookups)).stdout
    print("lookup (mailctl/examples/roles_lookup.rs, read-only handle, random users):")
    for line in out.splitlines():
        print("  " + line)


def bench_apply(work: Path, changes: int) -> None:
    out = sh(str(EXAMPLES / "roles_apply"), str(work / "apply"), str(changes), "100", "1000").stdout
    print("apply (mailctl/examples/roles_apply.rs, one process, no network):")
    for line in out.splitlines():
        print("  " + line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{what} did not listen on 127.0.0.1:{port}")
            time.sleep(0.01)


def applied_seq(port: int) -> int | None:
    """The follower's applied sequence from its `GET /status`; None while it is not answering."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /status HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    body = data.split(b"\r\n\r\n", 1)[-1]
    try:
        return int(json.loads(body)["applied_seq"])
    except (ValueError, KeyError):
        return None


def wait_applied(port: int, target: int, proc: subprocess.Popen, timeout: float = 60) -> float:
    """Polls every millisecond until the follower has applied `target`; returns that moment."""
    deadline = time.monotonic() + timeout
    while True:
        seq = applied_seq(port)
        if seq is not None and seq >= target:
            return time.monotonic()
        if proc.poll() is not None:
            sys.exit(f"rolesd follower exited ({proc.returncode}) at seq {seq}, want {target}")
        if time.monotonic() > deadline:
            sys.exit(f"rolesd follower at seq {seq} after {timeout}s, want {target} (see rolesd.log, --keep)")
        time.sleep(0.001)


def bench_follower(work: Path, changes: int) -> None:
    """roles-agent's rolesd: a primary and one follower over TLS on loopback. (a) live: the
    follower is up to date, then `changes` changes are committed on the primary at once (one
    mailctl import); time from mailctl's exit to the follower's applied_seq reaching the
    primary's. (b) catch-up: the follower is stopped, `changes` changes are committed, the
    follower is started; time from its start to caught up. Checksums compared after each."""
    if not ROLESD.is_file():
        print("follower: not yet measured (no target/release/rolesd)")
        return
    d = work / "repl"
    d.mkdir()
    # A private CA and the primary's certificate signed by it (webpki refuses a CA certificate
    # used as the server's own).
    ca, ca_key, cert, key, csr = (d / n for n in ("ca.pem", "ca.key", "cert.pem", "key.pem", "cert.csr"))
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
       "-days", "2", "-subj", "/CN=bench roles CA")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
       "-subj", "/CN=localhost")
    ext = d / "ext.cnf"
    ext.write_text("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
       "-out", str(cert), "-days", "2", "-extfile", str(ext))
    token = d / "token"
    token.write_text(secrets.token_hex(24) + "\n")
    pdb, fdb = d / "primary", d / "follower"
    for name, port in (("a1", 1000), ("b1", 2000)):
        sh(str(MAILCTL), "roles", "--db", str(pdb), "backend", "add", name, "127.0.0.1", "--imap", str(port),
           "--pop3", str(port + 1), "--lmtp", str(port + 2))

    def moves(backend: str) -> Path:
        csv = d / f"to-{backend}.csv"
        csv.write_text("".join(f"user{i:07d}@example.org,{backend}\n" for i in range(changes)))
        return csv

    def import_(csv: Path) -> tuple[float, int]:
        sh(str(MAILCTL), "roles", "--db", str(pdb), "import", str(csv))
        done = time.monotonic()
        return done, int(sh(str(MAILCTL), "roles", "--db", str(pdb), "seq").stdout)

    pport, sport = free_port(), free_port()
    logs = open(d / "rolesd.log", "ab")
    primary = subprocess.Popen([str(ROLESD), "primary", "--db", str(pdb), "--listen", f"127.0.0.1:{pport}",
                                "--cert", str(cert), "--key", str(key), "--token-file", str(token)],
                               stdout=logs, stderr=logs, env=dict(os.environ, RUST_LOG="warn"))
    follower = None

    def start_follower() -> subprocess.Popen:
        return subprocess.Popen([str(ROLESD), "follower", "--db", str(fdb), "--primary", f"127.0.0.1:{pport}",
                                 "--ca", str(ca), "--server-name", "localhost", "--token-file", str(token),
                                 "--status", f"127.0.0.1:{sport}"],
                                stdout=logs, stderr=logs, env=dict(os.environ, RUST_LOG="warn"))

    def same() -> str:
        a = sh(str(ROLESD), "checksum", "--db", str(pdb)).stdout.strip()
        b = sh(str(ROLESD), "checksum", "--db", str(fdb)).stdout.strip()
        return "identical checksums" if a == b else f"CHECKSUMS DIFFER: primary {a} / follower {b}"

    try:
        wait_port(pport, primary, "rolesd primary")
        _, seq = import_(moves("a1"))
        follower = start_follower()
        wait_applied(sport, seq, follower)
        print(f"follower (rolesd over TLS, loopback): initial sync of {changes} users + 2 backends done")

        t0, seq = import_(moves("b1"))
        t1 = wait_applied(sport, seq, follower)
        print(f"  live: {changes} changes committed at once on the primary -> applied by the follower "
              f"{(t1 - t0) * 1000:.0f} ms after mailctl exited: {changes / (t1 - t0):,.0f} changes/s; {same()}")

        # many small transactions: the primary commits (and fsyncs) 100 changes per mailctl run
        chunks = []
        for c in range(0, changes, 100):
            csv = d / f"chunk{c}.csv"
            csv.write_text("".join(f"user{i:07d}@example.org,a1\n" for i in range(c, min(c + 100, changes))))
            chunks.append(csv)
        start = time.monotonic()
        for csv in chunks:
            t0, seq = import_(csv)
        t1 = wait_applied(sport, seq, follower)
        print(f"  stream: {changes} changes in {len(chunks)} transactions of 100 (one mailctl import each, "
              f"{t0 - start:.2f} s on the primary): follower applied the last {(t1 - t0) * 1000:.0f} ms after "
              f"its commit; {changes / (t1 - start):,.0f} changes/s end to end; {same()}")

        follower.send_signal(signal.SIGINT)
        follower.wait(15)
        _, seq = import_(moves("b1"))
        t0 = time.monotonic()
        follower = start_follower()
        t1 = wait_applied(sport, seq, follower)
        print(f"  catch-up: follower started {changes} changes behind -> caught up in "
              f"{(t1 - t0) * 1000:.0f} ms (process start, TLS, apply): {changes / (t1 - t0):,.0f} changes/s; {same()}")
    finally:
        for p in (follower, primary):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        logs.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--lookups", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--follower", action=argparse.BooleanOptionalAction, default=True,
                    help="measure roles-agent's rolesd follower (default: on)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    sh("cargo", "build", "--release", "-q", "-p", "mailctl", "--bin", "mailctl", "--examples", cwd=REPO)
    if a.follower:
        sh("cargo", "build", "--release", "-q", "-p", "mailscale-rolesd", "--bin", "rolesd", cwd=REPO)
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="ms-bench-roles-", dir="/var/tmp"))
    try:
        db = bench_import(work, a.users)
        bench_lookup(db, a.lookups)
        bench_apply(work, a.changes)
        if a.follower:
            bench_follower(work, a.changes)
        else:
            print("follower: not measured (--follower not given)")
        print(machine())
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
