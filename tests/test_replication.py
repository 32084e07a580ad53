"""Rolling replication (DESIGN principle 6, issue 5): a primary mailstored pushes each changed
user's differences to its replica over TLS with mutual authentication; the replica converges,
catches up after an outage from the primary's change log, serves IMAP read-only and refuses
LMTP."""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from harness import HOST, PASSWORD, HarnessError, Server, free_port
from repl_support import converge, message, pair_certs, snapshot

@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict:
    return pair_certs(tmp_path_factory.mktemp("replcerts"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory, material, certs):
    repl_port = free_port()
    replica = Server(tmp_path_factory.mktemp("replica"), material, tls=False, replication={
        "role": "replica", "listen": f"{HOST}:{repl_port}", "cert": certs["replica"][0],
        "key": certs["replica"][1], "ca": certs["ca"]})
    primary = Server(tmp_path_factory.mktemp("primary"), material, tls=False, replication={
        "role": "primary", "partner": f"{HOST}:{repl_port}", "server_name": "replica.test",
        "cert": certs["primary"][0], "key": certs["primary"][1], "ca": certs["ca"],
        "interval_ms": 100})
    try:
        replica.start()
        primary.start()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield primary, replica, repl_port
    for s in (primary, replica):
        s.stop()


def test_replica_converges_and_catches_up_after_an_outage(pair):
    primary, replica, _ = pair
    user = primary.new_user()
    t = time.monotonic()
    for n in range(50):
        primary.deliver_ok(user, message(n))
    m = primary.imap(user)
    m.select("INBOX")
    assert m.uid("STORE", "1:10", "+FLAGS", r"(\Flagged)")[0] == "OK"
    assert m.uid("STORE", "5:15", "+FLAGS", r"(\Seen)")[0] == "OK"
    assert m.uid("STORE", "20", "+FLAGS", "($Label1)")[0] == "OK"
    assert m.create("Projects")[0] == "OK"
    assert m.uid("COPY", "1:3", "Projects")[0] == "OK"
    assert m.rename("Projects", "Archive")[0] == "OK"
    assert m.subscribe("Archive")[0] == "OK"
    assert m.uid("STORE", "30:32", "+FLAGS", r"(\Deleted)")[0] == "OK"
    assert m.expunge()[0] == "OK"
    state = converge(primary, replica, user)
    took = time.monotonic() - t
    assert "Archive" in state and "Projects" not in state
    inbox = state["INBOX"][1]
    assert sorted(inbox) == [u for u in range(1, 51) if u not in (30, 31, 32)]
    assert inbox[20][0] == ["$Label1"] and r"\Flagged" in inbox[1][0]
    assert inbox[7][1].endswith(b"body of message 6\r\n")
    assert len(state["Archive"][1]) == 3
    r = replica.imap(user)
    assert r.lsub()[1] == m.lsub()[1], "subscriptions replicate"
    r.logout()
    assert re.search(rf"user synced user={user} ops=\d+ ms=\d+", primary.log_text())
    print(f"50 deliveries + changes replicated within {took:.1f}s")

    # The replica goes away; the primary keeps accepting mail and changes.
    replica.stop()
    for n in range(50, 60):
        primary.deliver_ok(user, message(n))
    assert m.uid("STORE", "40:45", "+FLAGS", r"(\Answered)")[0] == "OK"
    assert m.create("Later")[0] == "OK"
    assert m.delete("Archive")[0] == "OK"
    m.logout()
    deadline = time.monotonic() + 10
    while "replica unreachable" not in primary.log_text():
        assert time.monotonic() < deadline, primary.log_tail()
        time.sleep(0.1)
    replica.start()
    state = converge(primary, replica, user)
    assert "Later" in state and "Archive" not in state
    assert len(state["INBOX"][1]) == 57


def test_replica_imap_is_read_only(pair):
    primary, replica, _ = pair
    user = primary.new_user()
    primary.deliver_ok(user, message(1))
    converge(primary, replica, user)
    r = replica.imap(user)
    typ, data = r.append("INBOX", None, None, message(2))
    assert typ == "NO" and b"READ-ONLY" in data[0] and b"replica" in data[0]
    with pytest.raises(imaplib.IMAP4.readonly):
        r.select("INBOX")  # imaplib refuses a SELECT answered [READ-ONLY]
    r.select("INBOX", readonly=True)
    for args in (("STORE", "1", "+FLAGS", r"(\Seen)"), ("COPY", "1", "Trash")):
        typ, data = r.uid(*args)
        assert typ == "NO" and b"replica" in data[0], (args, typ, data)
    assert r.create("New")[0] == "NO"
    r.logout()
    assert snapshot(replica, user) == snapshot(primary, user)


def test_replica_refuses_lmtp(pair):
    _, replica, _ = pair
    with pytest.raises(smtplib.SMTPConnectError) as e:
        smtplib.LMTP(HOST, replica.ports["lmtp"], timeout=10)
    assert e.value.smtp_code == 421 and b"replica" in e.value.smtp_error


def tls_exchange(port: int, certs: dict, client: tuple[Path, Path] | None) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(certs["ca"]))
    if client:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    with socket.create_connection((HOST, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="replica.test") as s:
            # A UserState request frame would follow a successful handshake; a refused client
            # learns it from an alert or EOF here at the latest.
            s.sendall(b"\0\0\0\0")
            return s.recv(100)


def test_replica_refuses_bad_client_certificates(pair, certs):
    _, replica, port = pair
    before = replica.log_text().count("handshake refused")
    for client in (certs["intruder"], None):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            got = tls_exchange(port, certs, client)
            if got == b"":
                raise ConnectionResetError("closed")
    deadline = time.monotonic() + 5
    while replica.log_text().count("handshake refused") < before + 2:
        assert time.monotonic() < deadline, replica.log_tail()
        time.sleep(0.1)


def test_replica_pop3_deletes_nothing(pair):
    primary, replica, _ = pair
    user = primary.new_user()
    primary.deliver_ok(user, message(1))
    converge(primary, replica, user)
    p = poplib.POP3(HOST, replica.ports["pop3"], timeout=10)
    p.user(user)
    p.pass_(PASSWORD)
    assert p.retr(1)[1][-1] == b"body of message 1"
    p.dele(1)
    with pytest.raises(poplib.error_proto, match="replica"):
        p.quit()
    state = snapshot(replica, user)
    assert len(state["INBOX"][1]) == 1 and state["INBOX"][1][1][0] == [], "not deleted, not \\Seen"
