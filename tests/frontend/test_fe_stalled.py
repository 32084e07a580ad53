"""A stalled LDAP server must not delay cache hits or other users (issue 3, point 6 and Tests):
50 concurrent logins hang on an LDAP server that accepts and never answers, while cached users
keep logging in promptly. LDAP goes through a gate (frontend.LdapGate) that relays to the real
slapd until the test switches it to stalling."""

from __future__ import annotations

import imaplib
import threading
import time

import pytest

from frontend import TEMP_FAILURE, auth_headers

FRONTEND = {"ldap": "bind", "ldap_gate": True, "fail_delay": "1s"}
STALLED = [f"s{i:02d}" for i in range(1, 51)]
CACHE_HIT_BOUND = 1.0


class Stalled:
    """50 IMAP logins of uncached LDAP users, each in its own thread."""

    def __init__(self, fe, users: list[str]):
        self.results: dict[str, tuple[str, float]] = {}
        self.threads = [threading.Thread(target=self._one, args=(fe, u), daemon=True) for u in users]
        self.accepted_before = fe.gate.accepted

    def _one(self, fe, user: str) -> None:
        t = time.monotonic()
        try:
            m = fe.nginx.imap(timeout=60)
            try:
                typ, data = m.login(user, "stall-pass")
                self.results[user] = (f"{typ} {data}", time.monotonic() - t)
                m.logout()
            except imaplib.IMAP4.error as e:
                self.results[user] = (str(e.args[0]), time.monotonic() - t)
                m.shutdown()
        except Exception as e:  # noqa: BLE001 - recorded and asserted on by the test
            self.results[user] = (f"client error: {e!r}", time.monotonic() - t)

    def start(self, fe, waiting_for: int = 20, within: float = 10) -> None:
        for th in self.threads:
            th.start()
        deadline = time.monotonic() + within
        while fe.gate.accepted - self.accepted_before < waiting_for:
            if time.monotonic() > deadline:
                pytest.fail(f"only {fe.gate.accepted - self.accepted_before} LDAP connections reached the "
                            f"stalled server within {within}s (expected {waiting_for})")
            time.sleep(0.05)

    def join(self, timeout: float = 60) -> None:
        for th in self.threads:
            th.join(timeout)


def timed_login(fe, user: str, password: str) -> float:
    t = time.monotonic()
    m = fe.nginx.imap(timeout=30)
    assert m.login(user, password)[0] == "OK"
    took = time.monotonic() - t
    m.logout()
    return took


@pytest.fixture
def stall(fe):
    fe.gate.set_stall(True)
    yield
    fe.gate.set_stall(False)


def test_cache_hits_stay_prompt_while_ldap_is_stalled(fe, stall):
    fe.gate.set_stall(False)
    timed_login(fe, "alice", "wonderland")  # cached in Redis and in that worker
    fe.gate.set_stall(True)

    stalled = Stalled(fe, STALLED)
    stalled.start(fe)
    hits = [timed_login(fe, "alice", "wonderland") for _ in range(6)]
    _, h, _ = fe.nginx.auth(auth_headers("alice", "wonderland"))
    assert h.get("auth-status") == "OK", h
    still_waiting = 50 - len(stalled.results)
    stalled.join()

    assert max(hits) < CACHE_HIT_BOUND, f"cache-hit logins took {[round(x, 2) for x in hits]} s"
    assert still_waiting >= 20, f"the stalled logins were not still waiting ({still_waiting} were)"
    assert len(stalled.results) == 50, "some stalled logins never finished"
    wrong = {u: r for u, r in stalled.results.items() if TEMP_FAILURE not in r[0]}
    assert not wrong, f"stalled logins must end with a temporary failure: {wrong}"
    slowest = max(t for _, t in stalled.results.values())
    assert slowest < 30, f"a stalled login took {slowest:.1f}s"


def test_users_file_users_stay_prompt_while_ldap_is_stalled(fe, stall):
    """Other users (verified by the built-in users file, never by LDAP) are not held up behind
    the stalled LDAP binds either."""
    stalled = Stalled(fe, STALLED)
    stalled.start(fe)
    took = [timed_login(fe, user, "demo") for user in ("user21", "user22", "user23")]
    stalled.join()
    ends = sorted(round(t, 1) for _, t in stalled.results.values())
    assert max(took) < 2.0, (f"users-file logins took {[round(x, 2) for x in took]} s during the stall "
                             f"(the stalled LDAP logins ended after {ends} s)")


def test_ldap_works_again_after_the_stall(fe):
    fe.gate.set_stall(False)
    assert timed_login(fe, "s50", "stall-pass") < 5
