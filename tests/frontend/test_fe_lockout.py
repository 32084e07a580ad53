"""`mailauth_lockout 3 6s`: after 3 failures within 6 s a user name (or a client address) is
refused even with the right password, until the window from the first failure has passed
(issue 3, Tests). Each test uses its own client addresses (127.0.0.x) and users."""

from __future__ import annotations

import time

from frontend import INVALID_LOGIN, LOCKED_OUT, imap_refusal

FRONTEND = {"ldap": "bind", "fail_delay": "1s", "lockout": "3 6s"}
WINDOW = 6.0


def login(fe, user: str, source: str) -> None:
    m = fe.nginx.imap(source)
    assert m.login(user, "demo")[0] == "OK"
    m.logout()


def wait_until(t: float) -> None:
    left = t - time.monotonic()
    if left > 0:
        time.sleep(left)


def test_user_locked_after_failures_and_released_after_the_window(fe):
    first = time.monotonic()
    for i in range(3):  # from three addresses: only the user's counter reaches 3
        text, _ = imap_refusal(fe.nginx, "user05", "wrong", source=f"127.0.1.{i + 1}")
        assert INVALID_LOGIN in text, text
    text, _ = imap_refusal(fe.nginx, "user05", "demo", source="127.0.1.9")
    assert LOCKED_OUT in text, f"right password during the lockout: {text}"
    assert time.monotonic() - first < WINDOW, "too slow to observe the lockout"
    # other users are not affected
    login(fe, "user07", "127.0.1.9")
    wait_until(first + WINDOW + 1.5)
    login(fe, "user05", "127.0.1.10")


def test_client_address_locked_after_failures_on_several_users(fe):
    first = time.monotonic()
    for user in ("user09", "user11", "user13"):
        text, _ = imap_refusal(fe.nginx, user, "wrong", source="127.0.2.1")
        assert INVALID_LOGIN in text, text
    text, _ = imap_refusal(fe.nginx, "user15", "demo", source="127.0.2.1")
    assert LOCKED_OUT in text, f"right password from a locked address: {text}"
    login(fe, "user15", "127.0.2.2")  # the same user from elsewhere is fine
    wait_until(first + WINDOW + 1.5)
    login(fe, "user15", "127.0.2.1")


def test_failures_below_the_limit_do_not_lock(fe):
    for i in range(2):
        imap_refusal(fe.nginx, "user17", "wrong", source=f"127.0.3.{i + 1}")
    login(fe, "user17", "127.0.3.9")
