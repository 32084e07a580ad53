"""A move made on the roles primary reaches a running frontend through replication (issue 4):
`mailctl roles set` on the primary's database, `rolesd primary` streams the change over TLS to
`rolesd follower`, which writes the database nginx's module reads; the next IMAP login through
nginx lands on the new backend within 1 s, with no reload.

The primary starts from a copy of the frontend's database (same content, same changelog
numbering), so the follower resumes from its own sequence number instead of taking a snapshot."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from frontend import MAILCTL, REPO, message, private_dir
from harness import free_port
from test_fe_roles_change import landed_on, workers

FRONTEND = {"ldap": "bind", "fail_delay": "1s", "workers": 2}
ROLESD = REPO / "target" / "release" / "rolesd"
MOVED = "demo3"


def checksum(db: Path) -> str:
    return subprocess.run([str(ROLESD), "checksum", "--db", str(db)], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()


@pytest.fixture(scope="module")
def replicated(fe):
    if not ROLESD.is_file():
        pytest.fail(f"{ROLESD} is missing: cargo build --release")
    work = private_dir("rolesd")
    primary_db = work / "primary"
    primary_db.mkdir()
    # No writer runs now: a file copy of the LMDB data is a consistent copy.
    shutil.copy(fe.roles.dir / "data.mdb", primary_db / "data.mdb")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    (work / "token").write_text("replication-test-token-0123456789\n")
    port, status = free_port(), free_port()
    logs = []
    procs = []
    try:
        for name, args in (
            ("primary", ["primary", "--db", str(primary_db), "--listen", f"127.0.0.1:{port}",
                         "--cert", str(work / "cert.pem"), "--key", str(work / "key.pem"),
                         "--token-file", str(work / "token")]),
            ("follower", ["follower", "--db", str(fe.roles.dir), "--primary", f"127.0.0.1:{port}",
                          "--ca", str(work / "cert.pem"), "--token-file", str(work / "token"),
                          "--status", f"127.0.0.1:{status}"]),
        ):
            log = open(work / f"{name}.log", "wb")
            logs.append(log)
            procs.append(subprocess.Popen([str(ROLESD), *args], stdout=log, stderr=subprocess.STDOUT))
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        while checksum(fe.roles.dir) != checksum(primary_db):
            assert time.monotonic() < deadline, (work / "follower.log").read_text()
            time.sleep(0.1)
        yield fe, primary_db, work
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        for log in logs:
            log.close()
        shutil.rmtree(work, ignore_errors=True)


def test_move_on_the_primary_reaches_nginx_within_a_second(replicated):
    fe, primary_db, work = replicated
    fe.a.deliver_ok(MOVED, message(f"on-A-{MOVED}", MOVED))
    fe.b.deliver_ok(MOVED, message(f"on-B-{MOVED}", MOVED))
    for _ in range(6):
        assert landed_on(fe, MOVED) == "A"
    before = workers(fe)
    proc = subprocess.run([str(MAILCTL), "roles", "--db", str(primary_db), "set", MOVED, "B"],
                          capture_output=True, text=True, timeout=60)
    exited = time.monotonic()
    assert proc.returncode == 0, proc.stderr
    while landed_on(fe, MOVED) != "B":
        assert time.monotonic() - exited < 1.0, "the move did not reach nginx within 1 s:\n" + \
            (work / "follower.log").read_text()[-2000:]
    took = time.monotonic() - exited
    assert took < 1.0, took
    assert workers(fe) == before, "nginx was reloaded"
    assert checksum(fe.roles.dir) == checksum(primary_db)
