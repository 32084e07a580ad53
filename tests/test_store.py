"""Store guarantees a user or an operator notices: clean shutdown keeps everything, delayed
expunge purges only what no mailbox still references, one user's broken index does not affect
another user (issue 2, point 2)."""

from __future__ import annotations

import time

import pytest

from harness import addr
from imapdata import fetch_one, simple_message, strip_added_headers

RETENTION = 1
PURGE_INTERVAL = 1


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory(store={"expunge_retention_secs": RETENTION,
                                 "purge_interval_secs": PURGE_INTERVAL})


def mail_files_containing(server, marker: bytes) -> list:
    return [p for p in (server.dir / "data" / "mail").rglob("*")
            if p.is_file() and marker in p.read_bytes()]


def wait_purge():
    time.sleep(RETENTION + 2 * PURGE_INTERVAL + 1.5)


def test_sigterm_stops_cleanly_and_keeps_data(server, user):
    msg = simple_message("before restart", body="persist me\n")
    server.deliver_ok(user, msg)
    m = server.imap(user)
    m.create("Kept")
    m.append("Kept", "(\\Flagged)", None, msg)
    m.logout()
    t0 = time.monotonic()
    code = server.stop()
    assert code == 0, f"mailstored exited with {code} on SIGTERM"
    assert time.monotonic() - t0 < 5, "SIGTERM took more than 5 s"
    server.start()
    m = server.imap(user)
    assert m.select("INBOX")[1] == [b"1"]
    assert strip_added_headers(fetch_one(m, "1", "(BODY.PEEK[])")["BODY[]"])[0] == msg
    m.select("Kept")
    item = fetch_one(m, "1", "(FLAGS BODY.PEEK[])")
    assert item["BODY[]"] == msg and "\\Flagged" in [str(f) for f in item["FLAGS"]]
    m.logout()


def test_expunged_message_purged_after_retention(server, user):
    marker = b"purge-marker-7f3a91"
    m = server.imap(user)
    m.append("INBOX", None, None, simple_message("purge me", body=marker.decode() + "\n"))
    assert mail_files_containing(server, marker), "message file not found under data/mail"
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    assert m.select("INBOX")[1] == [b"0"]
    m.logout()
    wait_purge()
    assert not mail_files_containing(server, marker), \
        "expunged message still on disk after retention + purge interval"


def test_purge_keeps_copies_in_other_mailboxes(server, user):
    """COPY may share the content-addressed file: purging the expunged original must not take
    the copy's data with it."""
    marker = b"shared-copy-marker-2c81"
    msg = simple_message("copied", body=marker.decode() + "\n")
    m = server.imap(user)
    m.create("Archive")
    m.append("INBOX", None, None, msg)
    m.select("INBOX")
    m.copy("1", "Archive")
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.logout()
    wait_purge()
    m = server.imap(user)
    m.select("Archive")
    assert fetch_one(m, "1", "(BODY.PEEK[])")["BODY[]"] == msg, "the copy lost its content"
    m.logout()


def test_purge_keeps_other_recipients_copy(server):
    """One LMTP delivery to two users: one user expunging must not lose the other's mail."""
    a, b = server.new_user(), server.new_user()
    marker = b"two-rcpt-marker-9b0e"
    msg = simple_message("for two", body=marker.decode() + "\n")
    server.deliver_ok([a, b], msg)
    m = server.imap(a)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.logout()
    wait_purge()
    m = server.imap(b)
    m.select("INBOX")
    raw = fetch_one(m, "1", "(BODY.PEEK[])")["BODY[]"]
    assert strip_added_headers(raw)[0] == msg, "the other recipient lost the message"
    m.logout()


def test_broken_index_of_one_user_does_not_affect_others(server):
    victim, bystander = server.new_user(), server.new_user()
    msg = simple_message("survivor")
    server.deliver_ok([victim, bystander], msg)
    server.stop()
    index = server.dir / "data" / "metadata" / victim
    assert index.is_dir(), f"no per-user index at {index}"
    for f in index.iterdir():
        if f.is_file():
            f.write_bytes(b"\xde\xad\xbe\xef" * (max(f.stat().st_size, 4096) // 4))
    server.start()
    # the bystander is fully served
    m = server.imap(bystander)
    assert m.select("INBOX")[1] == [b"1"]
    assert strip_added_headers(fetch_one(m, "1", "(BODY.PEEK[])")["BODY[]"])[0] == msg
    m.logout()
    # the victim gets an error, not a crash; delivery to the victim is refused (not 250)
    try:
        m = server.imap(victim)
        typ, _ = m.select("INBOX")
        m.logout()
    except Exception:
        pass
    res = server.deliver([victim, bystander], simple_message("after damage"))
    assert res[addr(bystander)][0] == 250, res
    assert res[addr(victim)][0] != 250, \
        f"delivery acknowledged into a broken index: {res[addr(victim)]}"
    assert server.running(), "a broken index of one user took the daemon down:\n" + \
        server.log_tail()
    m = server.imap(bystander)
    assert m.select("INBOX")[1] == [b"2"]
    m.logout()
