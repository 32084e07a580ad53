"""A second session on the same mailbox sees the first one's changes (RFC 3501 §5.2, §7.4)."""

from __future__ import annotations

from imapdata import fetch, flags_of, parse_fetch, simple_message, untagged


def two_sessions(server, user, n):
    for i in range(n):
        server.deliver_ok(user, simple_message(f"shared {i}"))
    a, b = server.imap(user), server.imap(user)
    for m in (a, b):
        typ, data = m.select("INBOX")
        assert data == [str(n).encode()]
        m.response("EXISTS")
    return a, b


def test_delivery_seen_as_exists_on_noop(server, user):
    a, b = two_sessions(server, user, 1)
    server.deliver_ok(user, simple_message("new arrival"))
    a.noop()
    assert untagged(a, "EXISTS") == [b"2"], "NOOP did not report the delivered message"
    res = fetch(a, "2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"new arrival" in res[2]["BODY[HEADER.FIELDS (SUBJECT)]"]
    a.logout()
    b.logout()


def test_append_in_one_session_seen_by_other(server, user):
    a, b = two_sessions(server, user, 1)
    b.append("INBOX", None, None, simple_message("appended by b"))
    a.noop()
    assert untagged(a, "EXISTS") == [b"2"]
    a.logout()
    b.logout()


def test_expunge_seen_by_other(server, user):
    a, b = two_sessions(server, user, 3)
    b.store("2", "+FLAGS", "(\\Deleted)")
    b.expunge()
    a.noop()
    assert untagged(a, "EXPUNGE") == [b"2"], "the other session was not told of the EXPUNGE"
    res = fetch(a, "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert len(res) == 2
    assert b"shared 2" in res[2]["BODY[HEADER.FIELDS (SUBJECT)]"]
    a.logout()
    b.logout()


def test_flag_change_seen_by_other(server, user):
    a, b = two_sessions(server, user, 2)
    b.store("2", "+FLAGS", "(\\Flagged)")
    a.noop()
    res = parse_fetch(untagged(a, "FETCH"))
    assert 2 in res and "\\Flagged" in flags_of(res[2]["FLAGS"]), f"untagged FETCH: {res}"
    a.logout()
    b.logout()


def test_move_seen_by_other(server, user):
    a, b = two_sessions(server, user, 2)
    b._simple_command("MOVE", "1", "Trash")
    a.noop()
    assert untagged(a, "EXPUNGE") == [b"1"]
    a.logout()
    b.logout()


def test_no_expunge_during_fetch_confusion(server, user):
    """After an EXPUNGE reported by NOOP, sequence numbers in the other session shift."""
    a, b = two_sessions(server, user, 3)
    uids_before = [v["UID"] for _, v in sorted(fetch(a, "1:*", "(UID)").items())]
    b.store("1", "+FLAGS", "(\\Deleted)")
    b.expunge()
    a.noop()
    untagged(a, "EXPUNGE")
    res = fetch(a, "1", "(UID)")
    assert res[1]["UID"] == uids_before[1]
    a.logout()
    b.logout()
