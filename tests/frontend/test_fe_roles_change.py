"""A roles change reaches a running frontend without a reload (issue 4, Tests): `mailctl roles
set` moves a user and the next IMAP login through nginx lands on the new backend within 1 s; a
backend in failover sends its users to its partner.

Each backend holds a distinct message for the same user, so the subject a login sees proves which
backend nginx sent it to (as in test_fe_routing.py)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from frontend import MAILBOX_UNAVAILABLE, MAILCTL, imap_refusal, message, subjects_imap

FRONTEND = {"ldap": "bind", "fail_delay": "1s", "workers": 2}

# demo3 and demo1 start on A (frontend.Platform's routes).
MOVED = "demo3"
FAILED_OVER = "demo1"


@pytest.fixture(scope="module")
def delivered(fe):
    for user in (MOVED, FAILED_OVER):
        fe.a.deliver_ok(user, message(f"on-A-{user}", user))
        fe.b.deliver_ok(user, message(f"on-B-{user}", user))
    return fe


def landed_on(fe, user: str) -> str:
    """Logs in through nginx; returns "A" or "B", whichever backend's message the user sees."""
    m = fe.nginx.imap()
    assert m.login(user, "demo")[0] == "OK"
    subjects = subjects_imap(m)
    m.logout()
    assert subjects in ([f"on-A-{user}"], [f"on-B-{user}"]), subjects
    return subjects[0][3]


def workers(fe) -> set[int]:
    """PIDs of nginx's worker processes: a reload would replace them."""
    master = fe.nginx.proc.pid
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = open(f"/proc/{pid}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                out.add(int(pid))
    return out


def roles(fe, *args: str) -> float:
    """Runs mailctl on the platform's roles DB; returns the monotonic time at which it exited."""
    proc = subprocess.run([str(MAILCTL), "roles", "--db", str(fe.roles.dir), *args], capture_output=True,
                          text=True, timeout=60)
    done = time.monotonic()
    assert proc.returncode == 0, proc.stderr
    return done


def test_moved_user_reaches_the_new_backend_within_a_second(delivered):
    fe = delivered
    # Warm up: both workers have routed (and cached the credential of) the user on A.
    for _ in range(6):
        assert landed_on(fe, MOVED) == "A"
    before = workers(fe)
    assert len(before) == 2, before

    exited = roles(fe, "set", MOVED, "B")
    tries = 0
    while True:
        tries += 1
        where = landed_on(fe, MOVED)
        if where == "B":
            took = time.monotonic() - exited
            break
        assert time.monotonic() - exited < 5, "still on A 5 s after the change"
    print(f"\nroles set -> first login on B: {took * 1000:.1f} ms ({tries} login(s))")
    assert took < 1.0, f"the first login on B came {took:.3f}s after mailctl exited"
    # Every following login, whichever worker takes it, lands on B too.
    for _ in range(6):
        assert landed_on(fe, MOVED) == "B"
    assert workers(fe) == before, "nginx's workers were replaced (a reload?)"
    assert "SIGHUP" not in fe.nginx.log_text() and "reconfiguring" not in fe.nginx.log_text()

    roles(fe, "set", MOVED, "A")
    assert landed_on(fe, MOVED) == "A"


def test_failover_sends_users_to_the_partner(delivered):
    fe = delivered
    assert landed_on(fe, FAILED_OVER) == "A"
    roles(fe, "backend", "set", "A", "--partner", "B")
    assert landed_on(fe, FAILED_OVER) == "A", "a partner alone changes nothing"
    before = workers(fe)
    try:
        roles(fe, "backend", "set", "A", "--state", "failover")
        for _ in range(6):
            assert landed_on(fe, FAILED_OVER) == "B"
        # The partner down too: nobody can serve the user, a temporary failure (not a wrong
        # password, not a login on A).
        roles(fe, "backend", "set", "B", "--state", "down")
        text, _ = imap_refusal(fe.nginx, FAILED_OVER, "demo")
        assert MAILBOX_UNAVAILABLE in text, text
        roles(fe, "backend", "set", "B", "--state", "up")
        assert landed_on(fe, FAILED_OVER) == "B"
    finally:
        roles(fe, "backend", "set", "A", "--state", "up", "--partner", "none")
        roles(fe, "backend", "set", "B", "--state", "up")
    assert landed_on(fe, FAILED_OVER) == "A"
    assert workers(fe) == before, "nginx's workers were replaced (a reload?)"
