"""IMAP session basics: greeting, CAPABILITY, special-use folders, SELECT/EXAMINE, STATUS,
NAMESPACE, ID, ENABLE, UNSELECT, CLOSE, CHECK, LOGOUT, state errors."""

from __future__ import annotations

import imaplib
import re

import pytest

from imapdata import attempt, fetch, flags_of, list_mailboxes, parse, simple_message, untagged

REQUIRED_CAPS = ["IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "ID", "ENABLE",
                 "UNSELECT", "LITERAL+", "SPECIAL-USE", "CHILDREN"]


def test_greeting_and_capabilities(server):
    with server.raw() as s:
        greeting = s.readline()
        assert greeting.startswith(b"* OK"), greeting
        untag, tagged = s.command("CAPABILITY")
        assert tagged.split()[1] == b"OK"
        caps_lines = [u for u in untag if u.upper().startswith(b"* CAPABILITY ")]
        assert len(caps_lines) == 1, untag
        caps = set(caps_lines[0].decode().upper().split()[2:])
        # before login a server may list fewer capabilities (RFC 3501 §7.2.1)
        missing = [c for c in ["IMAP4REV1", "LITERAL+", "STARTTLS", "AUTH=PLAIN"] if c not in caps]
        assert not missing, f"CAPABILITY lacks {missing}: {caps_lines[0]!r}"


def test_capabilities_after_login(server, user):
    m = server.imap(user)
    typ, data = m.capability()
    caps = set(data[0].decode().upper().split())
    missing = [c for c in REQUIRED_CAPS if c not in caps]
    assert not missing, f"CAPABILITY after login lacks {missing}"
    m.logout()


def test_new_user_has_special_use_folders(imap):
    boxes = list_mailboxes(imap)
    for name, attr in [("INBOX", None), ("Drafts", "\\drafts"), ("Sent", "\\sent"),
                       ("Trash", "\\trash"), ("Junk", "\\junk")]:
        assert name in boxes, f"{name} missing from LIST: {boxes}"
        if attr:
            assert attr in boxes[name], f"LIST {name} lacks {attr}: {boxes[name]}"


def test_list_separator_is_slash(imap):
    typ, data = imap.list('""', '""')
    assert typ == "OK"
    v = parse(data[0])
    assert v[1] == b"/", f"hierarchy separator is {v[1]!r}, documented as '/'"
    assert "\\noselect" in {str(a).lower() for a in v[0]}


def test_select_response(imap, server, user):
    server.deliver_ok(user, simple_message("one"))
    server.deliver_ok(user, simple_message("two"))
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    flags = untagged(imap, "FLAGS")
    assert flags, "SELECT sent no FLAGS"
    assert {"\\Seen", "\\Deleted", "\\Flagged", "\\Answered", "\\Draft"} <= set(
        flags_of(parse(flags[0])[0]))
    uidvalidity = untagged(imap, "UIDVALIDITY")
    assert uidvalidity and int(uidvalidity[0]) > 0, f"UIDVALIDITY {uidvalidity}"
    uidnext = untagged(imap, "UIDNEXT")
    assert uidnext and int(uidnext[0]) >= 3, f"UIDNEXT {uidnext}"
    assert untagged(imap, "PERMANENTFLAGS"), "no PERMANENTFLAGS response code"
    # imaplib drops response codes of tagged replies: check those on a raw session
    with server.raw() as s:
        s.readline()
        s.login(user)
        untag, tagged = s.command("SELECT INBOX")
        assert b"[READ-WRITE]" in tagged.upper(), tagged
        assert any(re.match(rb"\* 2 EXISTS", u) for u in untag), untag
        assert any(re.match(rb"\* \d+ RECENT", u) for u in untag), untag
        assert any(b"[UIDVALIDITY " in u.upper() for u in untag), untag
        untag, tagged = s.command("EXAMINE INBOX")
        assert b"[READ-ONLY]" in tagged.upper(), tagged


def test_uidvalidity_is_stable(server, user):
    def uidvalidity():
        m = server.imap(user)
        m.select("INBOX")
        v = untagged(m, "UIDVALIDITY")
        m.logout()
        return v

    first = uidvalidity()
    assert first and first == uidvalidity()


def test_examine_is_read_only(server, user):
    server.deliver_ok(user, simple_message("read only"))
    m = server.imap(user)
    typ, _ = m.select("INBOX", readonly=True)
    assert typ == "OK"
    attempt(m.store, "1", "+FLAGS", "(\\Flagged)")  # refused or ignored, never applied
    fetch(m, "1", "(BODY[])")  # must not set \Seen in a read-only mailbox
    m.select("INBOX")
    flags = flags_of(fetch(m, "1", "(FLAGS)")[1]["FLAGS"])
    assert "\\Seen" not in flags and "\\Flagged" not in flags, flags
    m.logout()


def test_status(server, user):
    for i in range(3):
        server.deliver_ok(user, simple_message(f"status {i}"))
    m = server.imap(user)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Seen)")
    m.unselect()
    typ, data = m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    assert typ == "OK", data
    v = parse(data[0])
    items = dict(zip([str(x).upper() for x in v[1][0::2]], v[1][1::2]))
    assert items["MESSAGES"] == 3 and items["UNSEEN"] == 2, items
    assert items["UIDNEXT"] >= 4 and items["UIDVALIDITY"] > 0, items
    typ, data = m.status("NoSuchFolder", "(MESSAGES)")
    assert typ == "NO"
    m.logout()


def test_namespace(imap):
    typ, data = imap.namespace()
    assert typ == "OK"
    v = parse(data[0])
    assert v[0] == [[b"", b"/"]], f"personal namespace is {v[0]!r}, expected ((\"\" \"/\"))"


def test_id(server):
    m = server.imap()
    typ, data = m._simple_command("ID", '("name" "pytest" "version" "1")')
    assert typ == "OK", data
    idresp = untagged(m, "ID")
    assert idresp, "no untagged ID response"
    v = parse(idresp[0])
    assert v[0] is None or (isinstance(v[0], list) and len(v[0]) % 2 == 0), idresp
    m.logout()


def test_enable(imap):
    typ, data = imap.enable("X-NOT-AN-EXTENSION")
    assert typ == "OK", data


def test_unselect_keeps_deleted_messages(server, user):
    server.deliver_ok(user, simple_message("keep me"))
    m = server.imap(user)
    m.select("INBOX")
    m.store("1", "+FLAGS", "(\\Deleted)")
    typ, _ = m.unselect()
    assert typ == "OK"
    typ, data = m.select("INBOX")
    assert data == [b"1"], "UNSELECT expunged a \\Deleted message"
    m.logout()
    with server.raw() as s:
        s.readline()
        s.login(user)
        s.command("SELECT INBOX")
        _, tagged = s.command("UNSELECT")
        assert tagged.split()[1] == b"OK"
        _, tagged = s.command("FETCH 1 FLAGS")
        assert tagged.split()[1] in (b"BAD", b"NO"), f"FETCH after UNSELECT: {tagged!r}"


def test_close_expunges_silently(server, user):
    server.deliver_ok(user, simple_message("gone at close"))
    server.deliver_ok(user, simple_message("stays"))
    with server.raw() as s:
        s.readline()
        s.login(user)
        s.command("SELECT INBOX")
        s.command("STORE 1 +FLAGS.SILENT (\\Deleted)")
        untag, tagged = s.command("CLOSE")
        assert tagged.split()[1] == b"OK"
        assert not any(b"EXPUNGE" in u for u in untag), f"CLOSE sent EXPUNGE: {untag}"
        _, tagged = s.command("FETCH 1 FLAGS")
        assert tagged.split()[1] in (b"BAD", b"NO"), "FETCH after CLOSE must fail"
    m = server.imap(user)
    assert m.select("INBOX")[1] == [b"1"]
    m.logout()


def test_check(imap):
    imap.select("INBOX")
    assert imap.check()[0] == "OK"


def test_logout_says_bye(server):
    with server.raw() as s:
        s.readline()
        untag, tagged = s.command("LOGOUT")
        assert any(u.startswith(b"* BYE") for u in untag), untag
        assert tagged.split()[1] == b"OK"
        assert s.wait_closed(5), "server did not close the connection after LOGOUT"


def test_commands_in_wrong_state_get_text(server):
    with server.raw() as s:
        s.readline()
        for cmd in ("SELECT INBOX", "LIST \"\" \"*\"", "STATUS INBOX (MESSAGES)"):
            _, tagged = s.command(cmd)
            parts = tagged.split(None, 2)
            assert parts[1] in (b"BAD", b"NO"), f"{cmd} before LOGIN answered {tagged!r}"
            assert len(parts) == 3 and parts[2].strip(), f"{cmd}: no explanation in {tagged!r}"
        s.login("demo1")
        for cmd in ("FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "SEARCH ALL",
                    "UID FETCH 1 FLAGS", "COPY 1 Trash", "CLOSE"):
            _, tagged = s.command(cmd)
            parts = tagged.split(None, 2)
            assert parts[1] in (b"BAD", b"NO"), f"{cmd} before SELECT answered {tagged!r}"
            assert len(parts) == 3 and parts[2].strip(), f"{cmd}: no explanation in {tagged!r}"
        _, tagged = s.command("LOGIN demo1 demo")
        assert tagged.split()[1] in (b"BAD", b"NO"), "second LOGIN must be refused"
        _, tagged = s.command("NOOP")
        assert tagged.split()[1] == b"OK"


def test_noop_before_login(server):
    m = server.imap()
    assert m.noop()[0] == "OK"
    m.logout()


def test_mailbox_names_case(imap):
    """INBOX is case-insensitive (RFC 3501 §5.1), other names are not."""
    assert imap.select("inbox")[0] == "OK"
    assert imap.select("InBoX")[0] == "OK"
    assert imap.create("CaseTest")[0] == "OK"
    assert imap.select("casetest")[0] == "NO"
