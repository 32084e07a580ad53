"""APPEND (flags, date, APPENDUID), COPY (COPYUID), MOVE, EXPUNGE, UID EXPUNGE."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from imapdata import (appenduid, by_uid, copyuid, fetch, fetch_one, flags_of,
                      parse_internaldate, simple_message, untagged)


def fill(server, user, n):
    msgs = [simple_message(f"msg {i}", body=f"body of message {i}\n", msgid=f"<m{i}@x>")
            for i in range(n)]
    for msg in msgs:
        server.deliver_ok(user, msg)
    return msgs


def uids(m):
    res = fetch(m, "1:*", "(UID)")
    return [res[i]["UID"] for i in sorted(res)]


def test_append_with_flags_and_date(imap):
    msg = simple_message("appended", body="appended body\n")
    typ, data = imap.append("Drafts", "(\\Draft \\Seen $Label1)", '"05-Mar-2024 10:15:00 +0100"',
                            msg)
    assert typ == "OK", data
    validity, uid = appenduid(data)
    imap.select("Drafts")
    untag_validity = untagged(imap, "UIDVALIDITY")
    assert int(untag_validity[0]) == validity, "APPENDUID names another UIDVALIDITY"
    item = fetch_one(imap, str(uid), "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])", uid=True)
    assert item["BODY[]"] == msg
    assert item["RFC822.SIZE"] == len(msg)
    assert flags_of(item["FLAGS"]) - {"\\Recent"} == {"\\Draft", "\\Seen", "$Label1"}
    want = datetime(2024, 3, 5, 10, 15, tzinfo=timezone(timedelta(hours=1)))
    assert parse_internaldate(item["INTERNALDATE"]) == want, item["INTERNALDATE"]


def test_append_without_date_uses_now(imap):
    msg = simple_message("now")
    typ, data = imap.append("INBOX", None, None, msg)
    assert typ == "OK"
    _, uid = appenduid(data)
    imap.select("INBOX")
    item = fetch_one(imap, str(uid), "(INTERNALDATE)", uid=True)
    delta = abs(parse_internaldate(item["INTERNALDATE"]) - datetime.now(timezone.utc))
    assert delta < timedelta(minutes=2)


def test_append_uids_increase(imap):
    got = [appenduid(imap.append("INBOX", None, None, simple_message(f"a{i}"))[1])[1]
           for i in range(3)]
    assert got == sorted(got) and len(set(got)) == 3


def test_append_to_missing_mailbox_says_trycreate(server, user):
    with server.raw() as s:
        s.readline()
        s.login(user)
        msg = simple_message("x")
        s.send(f"a1 APPEND NoSuchBox {{{len(msg)}}}\r\n".encode())
        line = s.readline()
        if line.startswith(b"+"):
            s.send(msg + b"\r\n")
            _, tagged = s.read_until_tag("a1")
        else:
            tagged = line
        assert tagged.split()[1] == b"NO" and b"TRYCREATE" in tagged.upper(), tagged


def test_append_literal_plus(server, user):
    """LITERAL+ (RFC 7888): no continuation request for {n+}."""
    msg = simple_message("literal plus")
    with server.raw() as s:
        s.readline()
        s.login(user)
        s.send(b"a1 APPEND INBOX (\\Flagged) {" + str(len(msg)).encode() + b"+}\r\n" + msg
               + b"\r\n")
        untag, tagged = s.read_until_tag("a1")
        assert tagged.split()[1] == b"OK", tagged
        assert not any(u.startswith(b"+") for u in untag), "continuation sent for LITERAL+"
    m = server.imap(user)
    m.select("INBOX")
    assert fetch_one(m, "1", "(BODY.PEEK[])")["BODY[]"] == msg
    m.logout()


def test_copy_with_copyuid(server, user):
    msgs = fill(server, user, 3)
    m = server.imap(user)
    m.create("Archive")
    m.select("INBOX")
    src = uids(m)
    typ, data = m.copy("1,3", "Archive")
    assert typ == "OK", data
    validity, from_uids, to_uids = copyuid(m, data)
    assert from_uids == [src[0], src[2]]
    assert len(to_uids) == 2
    assert m.select("INBOX")[1] == [b"3"], "COPY removed messages from the source"
    m.select("Archive")
    assert int(untagged(m, "UIDVALIDITY")[0]) == validity
    res = by_uid(fetch(m, "1:*", "(UID BODY.PEEK[])"))
    assert sorted(res) == sorted(to_uids)
    from imapdata import strip_added_headers
    assert strip_added_headers(res[to_uids[0]]["BODY[]"])[0] == msgs[0]
    assert strip_added_headers(res[to_uids[1]]["BODY[]"])[0] == msgs[2]
    m.logout()


def test_copy_keeps_flags(server, user):
    fill(server, user, 1)
    m = server.imap(user)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Flagged Work)")
    m.copy("1", "Trash")
    m.select("Trash")
    assert {"\\Flagged", "Work"} <= flags_of(fetch_one(m, "1", "(FLAGS)")["FLAGS"])
    m.logout()


def test_copy_to_missing_mailbox(server, user):
    fill(server, user, 1)
    m = server.imap(user)
    m.select("INBOX")
    typ, data = m.copy("1", "Nowhere")
    assert typ == "NO", data
    m.logout()


def test_move(server, user):
    fill(server, user, 3)
    m = server.imap(user)
    m.select("INBOX")
    src = uids(m)
    typ, data = m._simple_command("MOVE", "2", "Trash")
    assert typ == "OK", data
    expunged = untagged(m, "EXPUNGE")
    assert expunged == [b"2"], f"MOVE sent EXPUNGE {expunged}"
    validity, from_uids, to_uids = copyuid(m, data)
    assert from_uids == [src[1]]
    assert uids(m) == [src[0], src[2]]
    m.select("Trash")
    res = by_uid(fetch(m, "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    assert list(res) == to_uids
    assert b"msg 1" in res[to_uids[0]]["BODY[HEADER.FIELDS (SUBJECT)]"]
    m.logout()


def test_uid_move(server, user):
    fill(server, user, 3)
    m = server.imap(user)
    m.select("INBOX")
    src = uids(m)
    typ, data = m.uid("MOVE", f"{src[0]}:{src[1]}", "Junk")
    assert typ == "OK", data
    assert uids(m) == [src[2]]
    assert m.select("Junk")[1] == [b"2"]
    m.logout()


def test_expunge_numbers(server, user):
    fill(server, user, 5)
    m = server.imap(user)
    m.select("INBOX")
    before = uids(m)
    m.store("2,4", "+FLAGS", "(\\Deleted)")
    typ, data = m.expunge()
    assert typ == "OK"
    # replay the untagged EXPUNGEs on the client's view: they must yield what is left
    view = list(before)
    for n in data:
        assert n is not None, data
        del view[int(n) - 1]
    assert view == [before[0], before[2], before[4]], f"EXPUNGE responses {data}"
    assert uids(m) == view
    m.logout()


def test_uid_expunge(server, user):
    fill(server, user, 3)
    m = server.imap(user)
    m.select("INBOX")
    u = uids(m)
    m.store("1:2", "+FLAGS", "(\\Deleted)")
    typ, data = m.uid("EXPUNGE", str(u[1]))
    assert typ == "OK", data
    assert untagged(m, "EXPUNGE") == [b"2"]
    assert uids(m) == [u[0], u[2]], "UID EXPUNGE removed a message outside its UID set"
    assert "\\Deleted" in flags_of(fetch_one(m, "1", "(FLAGS)")["FLAGS"])
    m.logout()


def test_expunged_message_is_gone_for_pop3_and_status(server, user):
    fill(server, user, 2)
    m = server.imap(user)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.logout()
    p = server.pop3(user)
    assert p.stat()[0] == 1
    p.quit()
