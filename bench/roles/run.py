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
  the changelog in pages as a follower applies it). The follower itself (roles-agent's `rolesd`)
  is measured when `rolesd` exists and `--follower` is given; otherwise the report says
  "follower not yet measured".
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAILCTL = REPO / "target" / "release" / "mailctl"
EXAMPLES = REPO / "target" / "release" / "examples"
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
                                            "mailctl", "roles").stdout.strip() else ""
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--lookups", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    sh("cargo", "build", "--release", "-q", "-p", "mailctl", "--bin", "mailctl", "--examples", cwd=REPO)
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="ms-bench-roles-", dir="/var/tmp"))
    try:
        db = bench_import(work, a.users)
        bench_lookup(db, a.lookups)
        bench_apply(work, a.changes)
        print("follower: not yet measured (roles-agent's rolesd follower is not ready)")
        print(machine())
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
