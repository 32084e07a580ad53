"""ManageSieve (RFC 5804) on mailstored's `[listen] managesieve`: a round trip with the real
`sivtest` client (Debian's cyrus-clients) over STARTTLS, raw-socket checks of the protocol's
corners, and a script uploaded over ManageSieve filing the next LMTP delivery."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import HOST, PASSWORD, REPO, Server
from sieve_support import ManageSieve, subjects

SIVTEST = shutil.which("sivtest") or "/usr/lib/cyrus/bin/sivtest"
MAILCTL = REPO / "target" / "release" / "mailctl"


def sivtest(server: Server, user: str, commands: str, password: str = PASSWORD) -> subprocess.CompletedProcess:
    """Runs sivtest (STARTTLS without a client certificate, SASL PLAIN) with `commands` typed
    into its interactive mode."""
    if not Path(SIVTEST).exists():
        pytest.fail("sivtest is missing: apt-get install cyrus-clients (scripts/install-deps.sh)",
                    pytrace=False)
    return subprocess.run(
        [SIVTEST, "-t", "", "-p", str(server.ports["managesieve"]), "-m", "PLAIN",
         "-a", user, "-u", user, "-w", password, HOST],
        input=commands.encode(), capture_output=True, timeout=30,
    )


def putscript(name: str, script: str) -> str:
    return f'PUTSCRIPT "{name}" {{{len(script.encode())}+}}\r\n{script}\r\n'


def tls_login(server: Server, user: str) -> ManageSieve:
    ms = ManageSieve(server)
    ms.starttls()
    assert ms.login(user).startswith(b"OK")
    return ms


FILE_WORK = 'require "fileinto";\r\nif header :contains "subject" "[work]" { fileinto "Work"; }\r\n'


def test_sivtest_round_trip_then_delivery_is_filed(server):
    user = server.new_user()
    m = server.imap(user)
    assert m.create("Work")[0] == "OK"
    m.logout()
    commands = ("LISTSCRIPTS\r\n" + putscript("filters", FILE_WORK) + 'SETACTIVE "filters"\r\n'
                'GETSCRIPT "filters"\r\n' + putscript("spare", "keep;\r\n") + "LISTSCRIPTS\r\nLOGOUT\r\n")
    p = sivtest(server, user, commands)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert "Authenticated." in out
    assert '"STARTTLS"' in out and "TLS connection established" in out + p.stderr.decode(errors="replace")
    assert FILE_WORK.replace("\r\n", "\n") in out.replace("\r\n", "\n"), out
    assert '"filters" ACTIVE' in out and '"spare"' in out
    assert 'OK "Logout completed"' in out
    # The uploaded script files the next delivery.
    server.deliver_ok(f"{user}@localhost", b"Subject: [work] report\r\n\r\nbody\r\n")
    server.deliver_ok(f"{user}@localhost", b"Subject: private\r\n\r\nbody\r\n")
    assert subjects(server, user, "Work") == ["[work] report"]
    assert subjects(server, user) == ["private"]


def test_sivtest_wrong_password_is_refused(server):
    p = sivtest(server, server.new_user(), "LISTSCRIPTS\r\nLOGOUT\r\n", password="wrong")
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert "Authenticated." not in out
    assert "Authentication failed" in out or p.returncode != 0, out


def test_greeting_and_plain_needs_tls(server):
    with ManageSieve(server) as ms:
        caps = b"".join(ms.greeting[0])
        assert ms.greeting[1].startswith(b"OK")
        assert b'"STARTTLS"' in caps and b'"SASL" ""' in caps
        assert b'"SIEVE" "fileinto envelope imap4flags copy vacation body variables' in caps
        assert ms.login(server.new_user()).startswith(b"NO (ENCRYPT-NEEDED)")
        caps, ok = ms.starttls()
        assert ok.startswith(b"OK")
        caps = b"".join(caps)
        assert b'"SASL" "PLAIN"' in caps and b'"STARTTLS"' not in caps
        assert ms.login(server.new_user()).startswith(b"OK")
        lines, ok = ms.cmd("CAPABILITY")
        assert any(line.startswith(b'"OWNER"') for line in lines)


def test_bad_auth_then_bye(server):
    user = server.new_user()
    wrong = "Wr0ng-Pa55-xyzzy"
    with ManageSieve(server) as ms:
        ms.starttls()
        assert ms.login(user, wrong).startswith(b"NO")
        assert ms.login("nobody", PASSWORD).startswith(b"NO")
        _, st = ms.cmd("LISTSCRIPTS")
        assert st.startswith(b"NO"), "not authenticated"
        blob = base64.b64encode(b"\0" + user.encode() + b"\0" + wrong.encode()).decode()
        lines, st = ms.cmd(f'AUTHENTICATE "PLAIN" "{blob}"')
        assert st.startswith(b"BYE"), (lines, st)
        assert ms.wait_closed(5)
    assert wrong not in server.log_text() and blob not in server.log_text()


def test_syntax_error_reports_line_and_column(server):
    with tls_login(server, server.new_user()) as ms:
        bad = 'require "fileinto";\r\nif true {\r\n  fileinto "x"\r\n}\r\n'
        status = ms.put("broken", bad)
        assert status.startswith(b"NO"), status
        assert status == b'NO "line 4, column 1: missing \';\' after \'fileinto\' (found \'}\')"\r\n', status
        _, st = ms.cmd(f'CHECKSCRIPT {{{len(bad)}+}}\r\n{bad}\r\n')
        assert st.startswith(b"NO") and b"line " in st and b"column " in st, st
        _, st = ms.cmd('CHECKSCRIPT {5+}\r\nkeep;')
        assert st.startswith(b"OK"), st
        _, st = ms.cmd('PUTSCRIPT "ext" {20+}\r\nrequire "nosuchext";')
        assert st.startswith(b"NO") and b"line 1" in st, st
        lines, st = ms.cmd("LISTSCRIPTS")
        assert lines == [] and st.startswith(b"OK"), "nothing stored"


def test_havespace_delete_rename_rules(server):
    with tls_login(server, server.new_user()) as ms:
        assert ms.cmd('HAVESPACE "a" 100')[1].startswith(b"OK")
        assert ms.cmd('HAVESPACE "a" 999999999')[1].startswith(b"NO (QUOTA/MAXSIZE)")
        assert ms.put("a", "keep;").startswith(b"OK")
        assert ms.put("b", "discard;").startswith(b"OK")
        assert ms.cmd('SETACTIVE "nope"')[1].startswith(b"NO (NONEXISTENT)")
        assert ms.cmd('SETACTIVE "a"')[1].startswith(b"OK")
        assert ms.cmd('DELETESCRIPT "a"')[1].startswith(b"NO (ACTIVE)")
        assert ms.cmd('RENAMESCRIPT "a" "b"')[1].startswith(b"NO (ALREADYEXISTS)")
        assert ms.cmd('RENAMESCRIPT "a" "main"')[1].startswith(b"OK")
        lines, _ = ms.cmd("LISTSCRIPTS")
        assert sorted(lines) == [b'"b"\r\n', b'"main" ACTIVE\r\n']
        assert ms.cmd('DELETESCRIPT "nope"')[1].startswith(b"NO (NONEXISTENT)")
        assert ms.cmd('SETACTIVE ""')[1].startswith(b"OK")
        assert ms.cmd('DELETESCRIPT "main"')[1].startswith(b"OK")
        lines, _ = ms.cmd("LISTSCRIPTS")
        assert lines == [b'"b"\r\n']
        lines, st = ms.cmd('GETSCRIPT "b"')
        assert st.startswith(b"OK") and lines == [b"{8}\r\ndiscard;\r\n"], lines


def test_scripts_survive_a_restart(server_factory):
    srv = server_factory()
    user = srv.new_user()
    with tls_login(srv, user) as ms:
        assert ms.put("keepme", "keep;\r\n").startswith(b"OK")
        assert ms.cmd('SETACTIVE "keepme"')[1].startswith(b"OK")
    srv.restart()
    with tls_login(srv, user) as ms:
        lines, _ = ms.cmd("LISTSCRIPTS")
        assert lines == [b'"keepme" ACTIVE\r\n']


def test_frontend_ticket_login(material, tmp_path_factory):
    key = tmp_path_factory.mktemp("key") / "ticket.key"
    key.write_text(subprocess.run([str(MAILCTL), "ticket-key", "generate"], capture_output=True,
                                  check=True).stdout.decode().strip() + "\n")
    srv = Server(tmp_path_factory.mktemp("fe"), material, frontend={"ticket_key": str(key)}).start()
    try:
        ticket = subprocess.run([str(MAILCTL), "ticket", "issue", "--key", str(key), "--user", "demo2",
                                 "--ttl", "60"], capture_output=True, check=True).stdout.decode().strip()
        with ManageSieve(srv) as ms:
            ms.starttls()
            assert ms.login("demo2", ticket).startswith(b"OK")
        with ManageSieve(srv) as ms:
            ms.starttls()
            assert ms.login("demo2", ticket).startswith(b"NO"), "a ticket is good for one login"
        assert ticket not in srv.log_text()
    finally:
        srv.stop()


def test_replica_reads_but_refuses_writes(material, tmp_path_factory):
    from repl_support import Pair, pair_certs
    d = tmp_path_factory.mktemp("pair")
    pair = Pair(d, material, pair_certs(tmp_path_factory.mktemp("certs")))
    for s in (pair.a, pair.b):
        s.sieve = {"plaintext_auth": True}  # tls=False servers: PLAIN without STARTTLS
        s._write_config()
    pair.start()
    try:
        with ManageSieve(pair.b) as ms:
            assert ms.login("demo3").startswith(b"OK")
            lines, st = ms.cmd("LISTSCRIPTS")
            assert st.startswith(b"OK") and lines == []
            status = ms.put("s", "keep;")
            assert status.startswith(b"NO") and b"replica" in status, status
            assert ms.cmd('SETACTIVE ""')[1].startswith(b"NO")
        with ManageSieve(pair.a) as ms:
            assert ms.login("demo3").startswith(b"OK")
            assert ms.put("s", "keep;").startswith(b"OK")
    finally:
        pair.stop()
