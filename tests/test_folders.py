"""Folders: CREATE, DELETE, RENAME (with children, and INBOX), LIST/LSUB with CHILDREN
attributes, SUBSCRIBE/UNSUBSCRIBE, modified UTF-7 names."""

from __future__ import annotations

from imapdata import attempt, fetch, list_mailboxes, parse, simple_message, strip_added_headers


def names(m, pattern='"*"'):
    return set(list_mailboxes(m, '""', pattern))


def count(m, box):
    typ, data = m.select(box)
    assert typ == "OK", f"SELECT {box}: {data}"
    return int(data[0])


def test_create_and_list_children_attributes(imap):
    assert imap.create("Projects")[0] == "OK"
    assert imap.create("Projects/2024")[0] == "OK"
    assert imap.create("Projects/2024/Q1")[0] == "OK"
    boxes = list_mailboxes(imap)
    assert "\\haschildren" in boxes["Projects"], boxes["Projects"]
    assert "\\haschildren" in boxes["Projects/2024"], boxes["Projects/2024"]
    assert "\\hasnochildren" in boxes["Projects/2024/Q1"], boxes["Projects/2024/Q1"]
    assert "\\hasnochildren" in boxes["Trash"]


def test_create_makes_missing_parents(imap):
    assert imap.create("Auto/Parent/Child")[0] == "OK"
    got = names(imap)
    assert {"Auto", "Auto/Parent", "Auto/Parent/Child"} <= got, got


def test_create_trailing_separator(imap):
    assert imap.create("Trailing/")[0] == "OK"
    assert "Trailing" in names(imap)


def test_create_existing_fails(imap):
    imap.create("Twice")
    assert imap.create("Twice")[0] == "NO"
    assert imap.create("INBOX")[0] == "NO"
    assert imap.create("inbox")[0] == "NO"


def test_list_patterns(imap):
    for n in ("Lp", "Lp/a", "Lp/a/b", "Lp/c"):
        imap.create(n)
    assert names(imap, '"Lp/%"') == {"Lp/a", "Lp/c"}
    assert names(imap, '"Lp/*"') == {"Lp/a", "Lp/a/b", "Lp/c"}
    top = names(imap, '"%"')
    assert "Lp" in top and "Lp/a" not in top and "INBOX" in top
    assert names(imap, '"lp"') == set(), "LIST pattern matching must be case-sensitive"
    assert names(imap, '"inbox"') == {"INBOX"}, "INBOX matches case-insensitively"
    got = set(list_mailboxes(imap, '"Lp/"', '"%"'))
    assert got == {"Lp/a", "Lp/c"}, "reference name not applied"


def test_subscribe_lsub_unsubscribe(imap):
    imap.create("Sub")
    imap.create("Sub/Child")
    assert imap.subscribe("Sub/Child")[0] == "OK"
    lsub = list_mailboxes(imap, '""', '"*"', cmd="LSUB")
    assert "Sub/Child" in lsub and "Sub" not in lsub, lsub
    # LSUB "%" shows an unsubscribed parent of a subscribed child as \Noselect (RFC 3501 §6.3.9)
    lsub_top = list_mailboxes(imap, '""', '"Sub"', cmd="LSUB")
    assert "Sub" not in lsub_top or "\\noselect" in lsub_top["Sub"], lsub_top
    assert imap.unsubscribe("Sub/Child")[0] == "OK"
    assert "Sub/Child" not in list_mailboxes(imap, '""', '"*"', cmd="LSUB")


def test_subscriptions_persist(server, user):
    m = server.imap(user)
    m.create("Keep")
    m.subscribe("Keep")
    m.logout()
    m = server.imap(user)
    assert "Keep" in list_mailboxes(m, '""', '"*"', cmd="LSUB")
    m.logout()


def test_rename_with_children(server, user):
    m = server.imap(user)
    assert m.create("Old")[0] == "OK"
    assert m.create("Old/Sub")[0] == "OK"
    assert m.append("Old", None, None, simple_message("in parent"))[0] == "OK"
    assert m.append("Old/Sub", None, None, simple_message("in child"))[0] == "OK"
    typ, data = m.rename("Old", "New")
    assert typ == "OK", data
    got = names(m)
    assert {"New", "New/Sub"} <= got and not {"Old", "Old/Sub"} & got, got
    assert count(m, "New") == 1 and count(m, "New/Sub") == 1
    res = fetch(m, "1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"in child" in res[1]["BODY[HEADER.FIELDS (SUBJECT)]"]
    m.logout()


def test_rename_into_new_hierarchy(imap):
    imap.create("Flat")
    typ, data = imap.rename("Flat", "Deep/Er/Flat")
    assert typ == "OK", data
    assert "Deep/Er/Flat" in names(imap)


def test_rename_to_existing_fails(imap):
    imap.create("R1")
    imap.create("R2")
    assert imap.rename("R1", "R2")[0] == "NO"
    assert imap.rename("Nope", "R3")[0] == "NO"


def test_rename_inbox_moves_messages(server, user):
    msgs = [simple_message(f"inbox {i}") for i in range(3)]
    for msg in msgs:
        server.deliver_ok(user, msg)
    m = server.imap(user)
    typ, data = m.rename("INBOX", "Old-Inbox")
    assert typ == "OK", data
    assert count(m, "INBOX") == 0, "INBOX must stay, empty, after RENAME INBOX"
    assert count(m, "Old-Inbox") == 3
    res = fetch(m, "1:*", "(BODY.PEEK[])")
    assert sorted(strip_added_headers(v["BODY[]"])[0] for v in res.values()) == sorted(msgs)
    m.logout()
    server.deliver_ok(user, simple_message("after rename"))
    m = server.imap(user)
    assert count(m, "INBOX") == 1, "delivery after RENAME INBOX did not go to INBOX"
    m.logout()


def test_delete_empty_leaf(imap):
    imap.create("Leaf")
    assert imap.delete("Leaf")[0] == "OK"
    assert "Leaf" not in names(imap)
    assert imap.select("Leaf")[0] == "NO"


def test_delete_with_messages(imap):
    imap.create("Full")
    imap.append("Full", None, None, simple_message("doomed"))
    assert imap.delete("Full")[0] == "OK"
    assert "Full" not in names(imap)
    imap.create("Full")
    assert count(imap, "Full") == 0, "a re-created folder shows the deleted folder's mail"


def test_delete_folder_with_children(imap):
    """RFC 3501 §6.3.4: either refused, or the parent's messages go and it stays as \\Noselect;
    the children must survive either way."""
    assert imap.create("Parent")[0] == "OK"
    assert imap.create("Parent/Kid")[0] == "OK"
    assert imap.append("Parent", None, None, simple_message("parent mail"))[0] == "OK"
    assert imap.append("Parent/Kid", None, None, simple_message("kid mail"))[0] == "OK"
    typ, data = imap.delete("Parent")
    boxes = list_mailboxes(imap)
    assert "Parent/Kid" in boxes, "DELETE of a parent lost its child folder"
    assert count(imap, "Parent/Kid") == 1, "DELETE of a parent lost its child's messages"
    if typ == "OK":
        assert "Parent" in boxes and "\\noselect" in boxes["Parent"], boxes.get("Parent")
        assert imap.select("Parent")[0] == "NO"
        # a \Noselect parent with children cannot be deleted (RFC 3501 §6.3.4)
        assert imap.delete("Parent")[0] == "NO"
    else:
        assert typ == "NO", data
        assert count(imap, "Parent") == 1
    # deleting the child, then the parent, removes both
    imap.unselect() if imap.state == "SELECTED" else None
    assert imap.delete("Parent/Kid")[0] == "OK"
    assert imap.delete("Parent")[0] == "OK"
    assert not {"Parent", "Parent/Kid"} & names(imap)


def test_delete_inbox_refused(imap):
    assert attempt(imap.delete, "INBOX")[0] in ("NO", "BAD")
    assert "INBOX" in names(imap)


def test_delete_selected_mailbox(server, user):
    """Another session deletes the mailbox this one has selected: this session may be told
    (BYE or NO), but the server keeps serving."""
    import imaplib

    m = server.imap(user)
    m.create("Sel")
    m.select("Sel")
    other = server.imap(user)
    assert other.delete("Sel")[0] == "OK"
    other.logout()
    try:
        m.noop()
        m.logout()
    except imaplib.IMAP4.abort:
        pass
    m = server.imap(user)
    assert "Sel" not in names(m)
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_status_on_folder(imap):
    imap.create("St")
    imap.append("St", "(\\Seen)", None, simple_message("seen"))
    imap.append("St", None, None, simple_message("unseen"))
    typ, data = imap.status("St", "(MESSAGES UNSEEN UIDNEXT)")
    v = parse(data[0])
    items = dict(zip([str(x).upper() for x in v[1][0::2]], v[1][1::2]))
    assert items["MESSAGES"] == 2 and items["UNSEEN"] == 1


def test_modified_utf7_name(server, user):
    m = server.imap(user)
    assert m.create("Entw&APw-rfe")[0] == "OK"
    assert m.create("Entw&APw-rfe/&AMk-t&AOk-")[0] == "OK"  # Été
    got = names(m)
    assert "Entw&APw-rfe" in got and "Entw&APw-rfe/&AMk-t&AOk-" in got, got
    typ, data = m.append("Entw&APw-rfe", None, None, simple_message("draft in umlaut folder"))
    assert typ == "OK", data
    assert count(m, "Entw&APw-rfe") == 1
    typ, data = m.status("Entw&APw-rfe", "(MESSAGES)")
    assert typ == "OK" and b"MESSAGES 1" in data[0]
    m.select("INBOX")
    server.deliver_ok(user, simple_message("to inbox"))
    m.noop()
    typ, data = m.copy("1", "Entw&APw-rfe")
    assert typ == "OK", data
    assert count(m, "Entw&APw-rfe") == 2
    typ, data = m.rename("Entw&APw-rfe", "&AMk-t&AOk-")
    assert typ == "OK", data
    assert {"&AMk-t&AOk-", "&AMk-t&AOk-/&AMk-t&AOk-"} <= names(m)
    m.logout()


def test_invalid_modified_utf7_refused(server, user):
    with server.raw() as s:
        s.readline()
        s.login(user)
        # "&" must be written "&-"; "&Jjo" is not terminated; raw 8-bit is not 7-bit IMAP
        for bad in (b'"Bad&Jjo"', b'"Caf\xc3\xa9"'):
            _, tagged = s.command(b"CREATE " + bad)
            assert tagged.split()[1] in (b"NO", b"BAD"), f"CREATE {bad!r} answered {tagged!r}"
        _, tagged = s.command('CREATE "Tom &- Jerry"')
        assert tagged.split()[1] == b"OK", tagged
        untag, _ = s.command('LIST "" "Tom*"')
        assert any(b'"Tom &- Jerry"' in u for u in untag), untag
