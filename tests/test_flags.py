"""STORE of system flags and keywords, \\Seen side effects of FETCH (RFC 3501 §6.4.5-6)."""

from __future__ import annotations

from imapdata import attempt, fetch, fetch_one, flags_of, parse_fetch, simple_message


def setup(server, user, n=1):
    for i in range(n):
        server.deliver_ok(user, simple_message(f"flags {i}", body=f"body {i}\n"))
    m = server.imap(user)
    typ, data = m.select("INBOX")
    assert data == [str(n).encode()]
    return m


def flags(m, seq="1"):
    return flags_of(fetch_one(m, seq, "(FLAGS)")["FLAGS"]) - {"\\Recent"}


def test_store_add_remove_replace(server, user):
    m = setup(server, user)
    typ, data = m.store("1", "+FLAGS", "(\\Flagged \\Answered)")
    assert typ == "OK"
    # the untagged FETCH tells the client the new flags
    echoed = parse_fetch(data)
    assert {"\\Flagged", "\\Answered"} <= flags_of(echoed[1]["FLAGS"]), data
    assert flags(m) == {"\\Flagged", "\\Answered"}
    m.store("1", "-FLAGS", "(\\Answered)")
    assert flags(m) == {"\\Flagged"}
    m.store("1", "FLAGS", "(\\Seen \\Draft)")
    assert flags(m) == {"\\Seen", "\\Draft"}
    m.store("1", "FLAGS", "()")
    assert flags(m) == set()
    m.logout()


def test_store_silent_sends_no_fetch(server, user):
    m = setup(server, user)
    typ, data = m.store("1", "+FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK"
    assert not [d for d in data if d], f"+FLAGS.SILENT echoed {data!r}"
    assert flags(m) == {"\\Flagged"}
    m.logout()


def test_keywords_persist_across_sessions(server, user):
    m = setup(server, user)
    m.store("1", "+FLAGS", "($Forwarded Work)")
    m.logout()
    m = server.imap(user)
    m.select("INBOX")
    assert flags(m) == {"$Forwarded", "Work"}
    m.store("1", "-FLAGS", "(Work)")
    assert flags(m) == {"$Forwarded"}
    m.logout()


def test_uid_store_and_ranges(server, user):
    m = setup(server, user, 4)
    res = fetch(m, "1:*", "(UID)")
    uids = [res[i]["UID"] for i in sorted(res)]
    typ, _ = m.uid("STORE", f"{uids[1]}:{uids[2]}", "+FLAGS", "(\\Flagged)")
    assert typ == "OK"
    assert [("\\Flagged" in flags(m, str(i))) for i in range(1, 5)] == [False, True, True, False]
    m.store("2:*", "-FLAGS", "(\\Flagged)")
    assert all("\\Flagged" not in flags(m, str(i)) for i in range(1, 5))
    m.logout()


def test_body_fetch_sets_seen_peek_does_not(server, user):
    m = setup(server, user, 5)
    fetch(m, "1", "(BODY.PEEK[])")
    fetch(m, "2", "(BODY.PEEK[TEXT])")
    fetch(m, "3", "(RFC822.HEADER)")
    assert all("\\Seen" not in flags(m, str(i)) for i in (1, 2, 3)), "PEEK set \\Seen"
    res = fetch(m, "1", "(BODY[])")
    fetch(m, "2", "(BODY[TEXT])")
    fetch(m, "3", "(RFC822)")
    fetch(m, "4", "(RFC822.TEXT)")
    assert all("\\Seen" in flags(m, str(i)) for i in (1, 2, 3, 4)), \
        [flags(m, str(i)) for i in range(1, 6)]
    assert "\\Seen" not in flags(m, "5")
    m.logout()


def test_seen_visible_to_other_session(server, user):
    m = setup(server, user)
    fetch(m, "1", "(BODY[])")
    m.logout()
    m = server.imap(user)
    m.select("INBOX")
    assert "\\Seen" in flags(m)
    m.logout()


def test_store_to_invalid_message_fails(server, user):
    m = setup(server, user, 1)
    typ, data = attempt(m.store, "5", "+FLAGS", "(\\Seen)")
    assert typ in ("NO", "BAD"), f"STORE on message 5 of 1 answered {typ} {data!r}"
    m.logout()
