"""Sieve at LMTP delivery (RFC 5228 + fileinto, envelope, imap4flags, copy, body, variables,
vacation): scripts uploaded over ManageSieve, messages delivered by real LMTP into a real
mailstored, results read back by IMAP. Redirect and vacation go out through a real private
Postfix (tests/postfix/postfix.py) that relays example.org back to the same mailstored."""

from __future__ import annotations

import time
import uuid

import pytest

from harness import HarnessError, Server
from sieve_support import RelayPostfix, address, install_script, messages, subjects, wait_for


@pytest.fixture(scope="module")
def stack(material, tmp_path_factory):
    """One mailstored whose `[sieve] relay` is a private Postfix that delivers back to it."""
    srv = Server(tmp_path_factory.mktemp("sieve"), material, tls=False)
    try:
        relay = RelayPostfix(srv.ports["lmtp"]).start()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    srv.sieve = {"relay": relay.addr, "plaintext_auth": True}
    srv._write_config()
    try:
        srv.start()
    except HarnessError as e:
        relay.stop()
        pytest.fail(str(e), pytrace=False)
    yield srv, relay
    died = srv.proc is not None and srv.proc.poll() is not None
    srv.stop()
    relay.stop()
    assert not died, f"mailstored died during the tests:\n{srv.log_tail()}"


@pytest.fixture
def server(stack):
    return stack[0]


def msg(subject: str, to: str, frm: str = "alice@example.net", extra: str = "",
        body: str = "Hello.\r\n") -> bytes:
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.net>\r\n{extra}\r\n{body}").encode()


# (id, folders to create first, script, message fields, sender, expected {folder: [flags]})
# A folder maps to the flags of the one message expected there; folders not listed (of
# INBOX, Work, Lists, ...) must hold nothing.
CASES = [
    ("no-script", [], None, {}, None, {"INBOX": []}),
    ("implicit-keep", [], "# nothing\r\n", {}, None, {"INBOX": []}),
    ("rfc5228-fileinto-header", ["Lists"],
     'require "fileinto";\r\nif header :contains "subject" "[dev]" { fileinto "Lists"; }\r\n',
     {"subject": "[dev] release"}, None, {"Lists": []}),
    ("no-match-keeps", ["Lists"],
     'require "fileinto";\r\nif header :contains "subject" "[dev]" { fileinto "Lists"; }\r\n',
     {"subject": "lunch"}, None, {"INBOX": []}),
    ("discard", [], "discard;\r\n", {}, None, {}),
    ("rfc5228-stop", ["Work"],
     'require "fileinto";\r\nif header :is "X-Spam" "yes" { discard; stop; }\r\nfileinto "Work";\r\n',
     {"extra": "X-Spam: yes\r\n"}, None, {}),
    ("fileinto-copy", ["Work"],
     'require ["fileinto", "copy"];\r\nfileinto :copy "Work";\r\n', {}, None, {"INBOX": [], "Work": []}),
    ("keep-and-fileinto", ["Work"],
     'require "fileinto";\r\nkeep;\r\nfileinto "Work";\r\n', {}, None, {"INBOX": [], "Work": []}),
    ("missing-folder-to-inbox", [],
     'require "fileinto";\r\nfileinto "Does/Not/Exist";\r\n', {}, None, {"INBOX": []}),
    ("envelope-domain", ["Net"],
     'require ["envelope", "fileinto"];\r\n'
     'if envelope :domain :is "from" "example.net" { fileinto "Net"; }\r\n',
     {}, "bob@EXAMPLE.net", {"Net": []}),
    ("address-localpart", ["Boss"],
     'require "fileinto";\r\nif address :localpart :is "from" "boss" { fileinto "Boss"; }\r\n',
     {"frm": "The Boss <boss@corp.example>"}, None, {"Boss": []}),
    ("size-over", ["Big"],
     'require "fileinto";\r\nif size :over 2K { fileinto "Big"; }\r\n',
     {"body": "x" * 4000 + "\r\n"}, None, {"Big": []}),
    ("anyof-not-exists", ["Sorted"],
     'require "fileinto";\r\n'
     'if anyof (not exists "X-Nope", header :is "subject" "never") { fileinto "Sorted"; }\r\n',
     {}, None, {"Sorted": []}),
    ("matches-octet", ["Reports"],
     'require "fileinto";\r\n'
     'if header :matches :comparator "i;octet" "subject" "Report ????-*" { fileinto "Reports"; }\r\n',
     {"subject": "Report 2024-Q1"}, None, {"Reports": []}),
    ("body-text", ["Billing"],
     'require ["body", "fileinto"];\r\nif body :text :contains "invoice" { fileinto "Billing"; }\r\n',
     {"body": "Please find the INVOICE attached.\r\n"}, None, {"Billing": []}),
    ("variables-folder", ["lists/dev"],
     'require ["variables", "fileinto"];\r\n'
     'if header :matches "List-Id" "*<*.example.org>" { fileinto "lists/${2}"; }\r\n',
     {"extra": "List-Id: Developers <dev.example.org>\r\n"}, None, {"lists/dev": []}),
    ("rfc5232-imap4flags", ["Work"],
     'require ["imap4flags", "fileinto"];\r\n'
     'if header :contains "from" "boss@example.com" {\r\n'
     '  setflag "\\\\Flagged";\r\n  fileinto "Work";\r\n}\r\n',
     {"frm": "boss@example.com"}, None, {"Work": ["\\Flagged"]}),
    ("imap4flags-keep-and-fileinto-flags", ["Work"],
     'require ["imap4flags", "fileinto"];\r\n'
     'addflag "$Label1";\r\nfileinto :flags ["\\\\Seen", "$Work"] "Work";\r\nkeep;\r\n',
     {}, None, {"Work": ["$Work", "\\Seen"], "INBOX": ["$Label1"]}),
    ("runtime-error-to-inbox", ["Work"],
     'require ["variables", "fileinto"];\r\nset "box" "";\r\nfileinto "Work";\r\nfileinto "${box}";\r\n',
     {}, None, {"INBOX": []}),
    ("too-many-redirects-to-inbox", [],
     "".join(f'redirect "nobody{i}@example.org";\r\n' for i in range(6)),
     {}, None, {"INBOX": []}),
]

FOLDERS = ["INBOX", "Work", "Lists", "Net", "Boss", "Big", "Sorted", "Reports", "Billing", "lists/dev"]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_script_table(server, case):
    name, folders, script, fields, sender, expected = case
    user = server.new_user()
    if folders:
        m = server.imap(user)
        for f in folders:
            assert m.create(f'"{f}"')[0] == "OK"
        m.logout()
    if script is not None:
        install_script(server, user, script)
    fields = dict(fields)
    subject = fields.pop("subject", f"case {name}")
    res = server.deliver(address(user), msg(subject, address(user), **fields),
                         **({"sender": sender} if sender else {}))
    assert res[address(user)][0] == 250, res
    for folder in FOLDERS:
        got = messages(server, user, folder)
        if folder in expected:
            assert [g["subject"] for g in got] == [subject], (folder, server.log_tail())
            flags = sorted(f for f in got[0]["flags"] if f != "\\Recent")
            assert flags == sorted(expected[folder]), (folder, got[0]["flags"])
        else:
            assert got == [], (folder, [g["subject"] for g in got])


def test_failures_are_logged(server):
    log = server.log_text()
    assert "fileinto a mailbox that does not exist; kept in INBOX" in log
    assert "runtime error; kept in INBOX" in log


def test_discard_still_answers_250(server):
    user = server.new_user()
    install_script(server, user, "discard;\r\n")
    res = server.deliver([address(user), "demo1"], msg("two rcpts", address(user)))
    assert [v[0] for v in res.values()] == [250, 250]
    assert subjects(server, user) == []
    assert "two rcpts" in subjects(server, "demo1")


def test_script_change_takes_effect_on_next_delivery(server):
    user = server.new_user()
    m = server.imap(user)
    m.create("A")
    m.create("B")
    m.logout()
    install_script(server, user, 'require "fileinto";\r\nfileinto "A";\r\n')
    server.deliver_ok(address(user), msg("first", address(user)))
    install_script(server, user, 'require "fileinto";\r\nfileinto "B";\r\n')
    server.deliver_ok(address(user), msg("second", address(user)))
    assert subjects(server, user, "A") == ["first"]
    assert subjects(server, user, "B") == ["second"]


# ---- through the relay ------------------------------------------------------------------------

def test_redirect_arrives_at_the_target(stack):
    server, relay = stack
    user, target = server.new_user(), server.new_user()
    install_script(server, user, f'redirect "{address(target)}";\r\n')
    sender = address(server.new_user())
    server.deliver_ok(address(user), msg("redirect me", address(user)), sender=sender)
    got = wait_for(server, target, "redirect me", postfix=relay)
    assert subjects(server, user) == [], "redirect without :copy cancels the implicit keep"
    # RFC 5228 4.2: the envelope sender is the original one (the Return-Path it arrives with).
    assert f"Return-Path: <{sender}>".encode() in got["raw"]
    assert f"Delivered-To: {address(user)}".encode() in got["raw"]


def test_redirect_copy_keeps_a_copy(stack):
    server, relay = stack
    user, target = server.new_user(), server.new_user()
    install_script(server, user, f'require "copy";\r\nredirect :copy "{address(target)}";\r\n')
    server.deliver_ok(address(user), msg("copy me", address(user)))
    wait_for(server, target, "copy me", postfix=relay)
    assert subjects(server, user) == ["copy me"]


def test_redirect_loop_is_stopped(stack):
    server, relay = stack
    a, b = server.new_user(), server.new_user()
    install_script(server, a, f'redirect "{address(b)}";\r\n')
    install_script(server, b, f'redirect "{address(a)}";\r\n')
    server.deliver_ok(address(a), msg("ping pong", address(a)))
    # a -> b -> a: seen at a's second delivery and kept there.
    wait_for(server, a, "ping pong", postfix=relay)
    time.sleep(1)
    assert subjects(server, a) == ["ping pong"]
    assert subjects(server, b) == []


VACATION = ('require "vacation";\r\n'
            'vacation :days 7 :subject "Out of office" "I am away until Monday.";\r\n')


def test_vacation_replies_once_per_days(stack):
    server, relay = stack
    user, sender = server.new_user(), server.new_user()
    install_script(server, user, VACATION)
    server.deliver_ok(address(user), msg("question 1", address(user)), sender=address(sender))
    reply = wait_for(server, sender, "Out of office", postfix=relay)
    assert b"Auto-Submitted: auto-replied" in reply["raw"]
    # RFC 3834 / RFC 5230 5.1: sent with the null envelope sender.
    assert b"Return-Path: <>" in reply["raw"]
    assert b"I am away until Monday." in reply["raw"]
    assert subjects(server, user) == ["question 1"], "vacation keeps the message"
    server.deliver_ok(address(user), msg("question 2", address(user)), sender=address(sender))
    # A control message from another sender is answered; by then question 2's reply, had
    # there been one, would have arrived too.
    other = server.new_user()
    server.deliver_ok(address(user), msg("question 3", address(user)), sender=address(other))
    wait_for(server, other, "Out of office", postfix=relay)
    time.sleep(1)
    assert [s for s in subjects(server, sender) if "Out of office" in s] == ["Out of office"]
    assert "vacation already answered this sender" in server.log_text()


@pytest.mark.parametrize("extra,sender_local", [
    ("List-Id: <dev.example.org>\r\n", None),
    ("Precedence: bulk\r\n", None),
    ("Auto-Submitted: auto-generated\r\n", None),
    ("", "MAILER-DAEMON"),
    ("", "owner-dev"),
], ids=["list", "bulk", "auto-submitted", "mailer-daemon", "owner"])
def test_vacation_never_answers_lists_bulk_or_robots(stack, extra, sender_local):
    server, relay = stack
    user = server.new_user()
    install_script(server, user, VACATION)
    sender = server.new_user()
    envelope_sender = f"{sender_local}@{'example.org'}" if sender_local else address(sender)
    server.deliver_ok(address(user), msg("robot mail", address(user), extra=extra), sender=envelope_sender)
    # Control: a plain message from another sender gets its reply.
    control = server.new_user()
    server.deliver_ok(address(user), msg("human mail", address(user)), sender=address(control))
    wait_for(server, control, "Out of office", postfix=relay)
    time.sleep(1)
    assert subjects(server, sender) == []
    assert sorted(subjects(server, user)) == ["human mail", "robot mail"]


def test_redirect_survives_a_crash_between_the_250_and_the_relay(material, tmp_path):
    """A redirect-only message exists nowhere but in the outbox once it is acknowledged: kill -9
    while the relay stalls, restart with a working relay, and it arrives."""
    import socket
    import threading
    stall = socket.socket()
    stall.bind(("127.0.0.1", 0))
    stall.listen(8)
    held = []
    def hold() -> None:
        try:
            for _ in range(8):
                held.append(stall.accept())
        except OSError:
            pass  # closed at the end of the test

    threading.Thread(target=hold, daemon=True).start()
    srv = Server(tmp_path / "crash", material, tls=False)
    srv.sieve = {"relay": f"127.0.0.1:{stall.getsockname()[1]}", "plaintext_auth": True,
                 "relay_timeout_secs": 120}
    srv._write_config()
    srv.start()
    relay = None
    try:
        user, target = srv.new_user(), srv.new_user()
        install_script(srv, user, f'redirect "{address(target)}";\r\n')
        srv.deliver_ok(address(user), msg("survive the crash", address(user)))
        outbox = srv.dir / "data" / "outbox"
        assert len(list(outbox.glob("*.json"))) == 1, "acknowledged = in the outbox"
        deadline = time.monotonic() + 10
        while not held:  # the send is under way (stalled) when the process dies
            assert time.monotonic() < deadline
            time.sleep(0.05)
        srv.kill9()
        relay = RelayPostfix(srv.ports["lmtp"]).start()
        srv.sieve["relay"] = relay.addr
        srv._write_config()
        srv.start()
        wait_for(srv, target, "survive the crash", postfix=relay)
        assert subjects(srv, user) == []
        deadline = time.monotonic() + 10
        while list(outbox.glob("*.json")):
            assert time.monotonic() < deadline, "sent entries leave the outbox"
            time.sleep(0.1)
        assert "outbox: sending a redirect left by the previous run" in srv.log_text()
    finally:
        srv.stop()
        if relay:
            relay.stop()
        stall.close()
