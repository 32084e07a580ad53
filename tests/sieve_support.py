"""Helpers for the Sieve and ManageSieve tests: a raw ManageSieve (RFC 5804) client, a private
Postfix that relays to one mailstored's LMTP (the `[sieve] relay` of redirect and vacation),
and IMAP look-ups of what was delivered where."""

from __future__ import annotations

import base64
import re
import sys
import time
from pathlib import Path

from harness import HOST, PASSWORD, RawClient, Server, insecure_context

sys.path.insert(0, str(Path(__file__).resolve().parent / "postfix"))

DOMAIN = "example.org"  # the private Postfix's relay_domains


def address(user: str) -> str:
    return f"{user}@{DOMAIN}"


class ManageSieve(RawClient):
    """ManageSieve over a plain socket (STARTTLS wraps it). `response()` reads up to the
    OK/NO/BYE line and returns (lines before it, that line)."""

    def __init__(self, server: Server, timeout: float = 10):
        super().__init__(HOST, server.ports["managesieve"], timeout)
        self.greeting = self.response()

    def response(self, timeout: float | None = None) -> tuple[list[bytes], bytes]:
        lines = []
        while True:
            line = self.readline(timeout)
            m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
            if m:
                line += self.read_exact(int(m.group(1)), timeout) + self.readline(timeout)
            if re.match(rb"(OK|NO|BYE)\b", line):
                return lines, line
            lines.append(line)

    def cmd(self, text: bytes | str) -> tuple[list[bytes], bytes]:
        self.send(text if isinstance(text, bytes) else text.encode())
        if not (text.endswith(b"\r\n") if isinstance(text, bytes) else text.endswith("\r\n")):
            self.send(b"\r\n")
        return self.response()

    def starttls(self) -> tuple[list[bytes], bytes]:
        _, st = self.cmd("STARTTLS")
        assert st.startswith(b"OK"), st
        self.sock = insecure_context().wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        return self.response()

    def login(self, user: str, password: str = PASSWORD) -> bytes:
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.cmd(f'AUTHENTICATE "PLAIN" "{blob}"')[1]

    def put(self, name: str, script: str | bytes) -> bytes:
        data = script.encode() if isinstance(script, str) else script
        return self.cmd(f'PUTSCRIPT "{name}" {{{len(data)}+}}\r\n'.encode() + data + b"\r\n")[1]


def install_script(server: Server, user: str, script: str, name: str = "main") -> None:
    """Uploads and activates `script` for `user` over ManageSieve (STARTTLS when the server
    has TLS)."""
    with ManageSieve(server) as ms:
        if b'"STARTTLS"' in b"".join(ms.greeting[0]):
            ms.starttls()
        assert ms.login(user).startswith(b"OK")
        status = ms.put(name, script)
        assert status.startswith(b"OK"), status
        _, st = ms.cmd(f'SETACTIVE "{name}"')
        assert st.startswith(b"OK"), st
        ms.cmd("LOGOUT")


def messages(server: Server, user: str, mailbox: str = "INBOX") -> list[dict]:
    """Every message in `mailbox`: {'subject', 'flags', 'raw'}; [] when it does not exist."""
    m = server.imap(user)
    try:
        typ, data = m.select(f'"{mailbox}"', readonly=True)
        if typ != "OK" or int(data[0]) == 0:
            return []
        typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[])")
        out = []
        if typ != "OK" or data == [None]:
            return out
        for item in data:
            if not isinstance(item, tuple):
                continue
            head, raw = item
            flags = re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split()
            subject = re.search(rb"(?im)^Subject: (.*?)\r?$", raw)
            out.append({"subject": subject.group(1).decode() if subject else "", "flags": flags, "raw": raw})
        return out
    finally:
        m.logout()


def subjects(server: Server, user: str, mailbox: str = "INBOX") -> list[str]:
    return [m["subject"] for m in messages(server, user, mailbox)]


def wait_for(server: Server, user: str, subject_part: str, timeout: float = 30,
             postfix=None, mailbox: str = "INBOX") -> dict:
    """Polls until a message whose subject contains `subject_part` is in `mailbox`."""
    deadline = time.monotonic() + timeout
    flushed = False
    while True:
        for msg in messages(server, user, mailbox):
            if subject_part in msg["subject"]:
                return msg
        left = deadline - time.monotonic()
        if left <= 0:
            diag = f"\n--- postfix ---\n{postfix.log_tail()}" if postfix else ""
            raise AssertionError(f"no message with {subject_part!r} reached {user}/{mailbox}; "
                                 f"mailstored log:\n{server.log_tail()}{diag}")
        if postfix is not None and not flushed and left < timeout / 2:
            postfix.flush()
            flushed = True
        time.sleep(0.2)


class RelayPostfix:
    """The private Postfix of tests/postfix/postfix.py, every recipient in example.org routed
    to one mailstored's LMTP (a static transport map instead of the roles socketmap)."""

    def __init__(self, lmtp_port: int):
        from postfix import Postfix, require_tools  # noqa: E402 (tests/postfix on sys.path)
        require_tools()
        self.pf = Postfix(0)
        self.pf.socketmap = f"static:lmtp:inet:{HOST}:{lmtp_port}"
        self.pf._write_config()

    def start(self) -> "RelayPostfix":
        self.pf.start()
        return self

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.pf.smtp_port}"

    def stop(self) -> None:
        self.pf.stop()
        self.pf.cleanup()

    def flush(self) -> None:
        self.pf.flush()

    def log_tail(self) -> str:
        return self.pf.log_tail()

