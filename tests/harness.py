"""Harness for the end-to-end tests: runs the real `mailstored` binary on 127.0.0.1.

Each `Server` gets a private directory holding its config, users file, TLS key pair, data dir
and captured stderr log, listens on free ports, and is driven with Python's stdlib clients
(imaplib, poplib, smtplib.LMTP) or with `RawImap` for things those clients cannot express
(IDLE, pipelining, garbage input, stalled commands).
"""

from __future__ import annotations

import base64
import imaplib
import json
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BINARY = REPO / "target" / "release" / "mailstored"
HOST = "127.0.0.1"
PASSWORD = "demo"
# A user whose password is distinctive enough to grep the server log for.
SECRET_USER = "secretuser"
SECRET_PASSWORD = "Zq8-Corr3ct-H0rse-Battery-Stap1e"
DEMO_USERS = ["demo1", "demo2", "demo3"]
# Extra users with password "demo", handed out one per test so tests don't see each other's mail.
POOL_USERS = [f"user{i:02d}" for i in range(1, 61)]
SENDER = "sender@example.org"

# imaplib only sends commands it knows about.
imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))
imaplib.Commands.setdefault("IDLE", ("AUTH", "SELECTED"))


class HarnessError(RuntimeError):
    pass


def require_binary() -> Path:
    if not BINARY.is_file() or not os.access(BINARY, os.X_OK):
        raise HarnessError(
            f"{BINARY} is missing: run `cargo build --release` from {REPO} before the tests"
        )
    return BINARY


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, never the same twice in this test run: a port handed out
    but not yet bound by its server must not be handed out again."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def hash_password(password: str) -> str:
    """Hash with `mailstored hash-password`, which reads one line from stdin."""
    proc = subprocess.run(
        [str(require_binary()), "hash-password"],
        input=(password + "\n").encode(),
        capture_output=True,
        timeout=120,
    )
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or not out.startswith("$argon2id$"):
        raise HarnessError(
            f"`mailstored hash-password` failed (exit {proc.returncode}): stdout={out!r} "
            f"stderr={proc.stderr.decode(errors='replace')!r}"
        )
    return out.splitlines()[-1].strip()


def make_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@dataclass
class Material:
    """Things that are slow to make, made once per test session and copied into each server."""

    users_text: str
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> "Material":
        demo_hash = hash_password(PASSWORD)
        secret_hash = hash_password(SECRET_PASSWORD)
        lines = [f"{u}:{demo_hash}" for u in DEMO_USERS + POOL_USERS]
        lines.append(f"{SECRET_USER}:{secret_hash}")
        cert, key = make_cert(directory)
        return cls("\n".join(lines) + "\n", cert, key)


def insecure_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def addr(user: str) -> str:
    return f"{user}@localhost"


DEFAULT_LIMITS = {
    "max_line_bytes": 65536,
    "max_literal_bytes": 52428800,
    "max_connections": 2000,
    "imap_idle_timeout_secs": 1800,
    "pop3_timeout_secs": 600,
    "lmtp_timeout_secs": 300,
    "write_timeout_secs": 60,
}


DEFAULT_STORE = {
    "expunge_retention_secs": 604800,
    "purge_interval_secs": 3600,
}


class Server:
    def __init__(self, workdir: Path, material: Material, limits: dict | None = None,
                 tls: bool = True, env: dict | None = None, frontend: dict | None = None,
                 store: dict | None = None, replication: dict | None = None,
                 admin: bool = False, sieve: dict | None = None):
        """`frontend`, when given, becomes the `[frontend]` section (ticket logins), e.g.
        {"ticket_key": "/path/ticket.key", "trusted": ["127.0.0.1"]}. `replication` becomes
        the `[replication]` section as given (strings quoted, numbers as they are); a replica's
        `listen` address is waited for by `start()`. `admin` adds an `[admin]` listener on a
        free loopback port (`admin_get` / `admin_post`). `sieve` becomes the `[sieve]` section
        (e.g. {"relay": "127.0.0.1:25"}); every server listens for ManageSieve on
        `ports["managesieve"]`."""
        require_binary()
        self.frontend = frontend
        self.replication = replication
        self.sieve = sieve
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.limits = dict(DEFAULT_LIMITS, **(limits or {}))
        self.store = dict(DEFAULT_STORE, **(store or {}))
        self.env = dict(os.environ, **(env or {}))
        self.ports = {name: free_port() for name in ("imap", "pop3", "lmtp", "imaps", "pop3s",
                                                         "managesieve")}
        self.admin = free_port() if admin else None
        self.config = self.dir / "mailstored.toml"
        self.log_path = self.dir / "mailstored.log"
        self.proc: subprocess.Popen | None = None
        self._pool = list(POOL_USERS)
        (self.dir / "users").write_text(material.users_text)
        shutil.copy(material.cert, self.dir / "cert.pem")
        shutil.copy(material.key, self.dir / "key.pem")
        self._write_config()

    # ---- lifecycle -------------------------------------------------------------------------

    def _write_config(self) -> None:
        p = self.ports
        listen = [f'imap = "{HOST}:{p["imap"]}"', f'pop3 = "{HOST}:{p["pop3"]}"',
                  f'lmtp = "{HOST}:{p["lmtp"]}"', f'managesieve = "{HOST}:{p["managesieve"]}"']
        if self.tls:
            listen += [f'imaps = "{HOST}:{p["imaps"]}"', f'pop3s = "{HOST}:{p["pop3s"]}"']
        text = "\n".join([
            'name = "test"',
            'hostname = "localhost"',
            'data_dir = "data"',
            'users_file = "users"',
            "",
            "[listen]",
            *listen,
            "",
            *(["[tls]", 'cert = "cert.pem"', 'key = "key.pem"', ""] if self.tls else []),
            "[limits]",
            *(f"{k} = {v}" for k, v in self.limits.items()),
            "",
            "[store]",
            *(f"{k} = {v}" for k, v in self.store.items()),
            "",
        ])
        if self.frontend is not None:
            text += "\n".join([
                "[frontend]",
                f"ticket_key = {json.dumps(str(self.frontend['ticket_key']))}",
                *([f"trusted = {json.dumps(self.frontend['trusted'])}"]
                  if "trusted" in self.frontend else []),
                "",
            ])
        if self.replication is not None:
            text += "\n".join([
                "[replication]",
                *(f"{k} = {json.dumps(v if isinstance(v, (int, float)) else str(v))}"
                  for k, v in self.replication.items()),
                "",
            ])
        if self.sieve is not None:
            text += "\n".join([
                "[sieve]",
                *(f"{k} = {json.dumps(v)}" for k, v in self.sieve.items()),
                "",
            ])
        if self.admin is not None:
            text += f'[admin]\nlisten = "{HOST}:{self.admin}"\n'
        self.config.write_text(text)

    def listening_ports(self) -> list[int]:
        names = ["imap", "pop3", "lmtp", "managesieve"] + (["imaps", "pop3s"] if self.tls else [])
        ports = [self.ports[n] for n in names]
        if self.replication and "listen" in self.replication:
            ports.append(int(str(self.replication["listen"]).rsplit(":", 1)[1]))
        if self.admin is not None:
            ports.append(self.admin)
        return ports

    # ---- admin API -------------------------------------------------------------------------

    def admin_call(self, method: str, path: str, timeout: float = 30) -> tuple[int, dict]:
        """One admin API request; (HTTP status, decoded JSON body)."""
        assert self.admin is not None, "Server(admin=True) needed"
        with socket.create_connection((HOST, self.admin), timeout=timeout) as s:
            s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), json.loads(body)

    def admin_get(self, path: str = "/status") -> dict:
        status, body = self.admin_call("GET", path)
        assert status == 200, (status, body)
        return body

    def admin_addr(self) -> str:
        return f"{HOST}:{self.admin}"

    def start(self, timeout: float = 20.0) -> "Server":
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(BINARY), "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir, env=self.env,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        pending = self.listening_ports()
        while pending:
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"mailstored exited with {self.proc.returncode} during start-up; log tail:\n"
                    + self.log_tail()
                )
            try:
                socket.create_connection((HOST, pending[0]), timeout=1).close()
                pending.pop(0)
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise HarnessError(
                        f"mailstored did not listen on {HOST}:{pending[0]} within {timeout}s; "
                        "log tail:\n" + self.log_tail()
                    )
                time.sleep(0.05)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def restart(self) -> "Server":
        self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    # ---- users -----------------------------------------------------------------------------

    def new_user(self) -> str:
        """A user nobody else in this server's tests has touched."""
        if not self._pool:
            raise HarnessError("user pool exhausted; add names to POOL_USERS")
        return self._pool.pop(0)

    # ---- clients ---------------------------------------------------------------------------

    def imap(self, user: str | None = None, password: str = PASSWORD,
             timeout: float = 15) -> imaplib.IMAP4:
        m = imaplib.IMAP4(HOST, self.ports["imap"], timeout=timeout)
        if user:
            m.login(user, password)
        return m

    def imaps(self, user: str | None = None, password: str = PASSWORD) -> imaplib.IMAP4_SSL:
        m = imaplib.IMAP4_SSL(HOST, self.ports["imaps"], ssl_context=insecure_context(),
                              timeout=15)
        if user:
            m.login(user, password)
        return m

    def pop3(self, user: str | None = None, password: str = PASSWORD) -> poplib.POP3:
        p = poplib.POP3(HOST, self.ports["pop3"], timeout=15)
        if user:
            p.user(user)
            p.pass_(password)
        return p

    def pop3s(self) -> poplib.POP3_SSL:
        return poplib.POP3_SSL(HOST, self.ports["pop3s"], context=insecure_context(), timeout=15)

    def lmtp(self) -> smtplib.LMTP:
        return smtplib.LMTP(HOST, self.ports["lmtp"], timeout=15)

    def raw(self, proto: str = "imap", timeout: float = 10) -> "RawClient":
        return RawClient(HOST, self.ports[proto], timeout)

    def deliver(self, rcpts: str | list[str], msg: bytes, sender: str = SENDER
                ) -> dict[str, tuple[int, bytes]]:
        """Deliver `msg` by LMTP. Returns {recipient: (code, text)}: the RCPT reply for refused
        recipients, the per-recipient DATA reply (RFC 2033 §4.2) for accepted ones."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        rcpts = [r if "@" in r else addr(r) for r in rcpts]
        result: dict[str, tuple[int, bytes]] = {}
        with self.lmtp() as c:
            code, text = c.ehlo()
            assert code == 250, f"LHLO answered {code} {text!r}"
            code, text = c.mail(sender)
            assert code == 250, f"MAIL FROM answered {code} {text!r}"
            accepted = []
            for r in rcpts:
                code, text = c.rcpt(r)
                if code == 250:
                    accepted.append(r)
                else:
                    result[r] = (code, text)
            if accepted:
                result[accepted[0]] = c.data(msg)
                for r in accepted[1:]:
                    result[r] = c.getreply()
        return result

    def deliver_ok(self, rcpts: str | list[str], msg: bytes, sender: str = SENDER) -> None:
        res = self.deliver(rcpts, msg, sender)
        bad = {r: v for r, v in res.items() if v[0] != 250}
        assert not bad, f"LMTP delivery refused: {bad}"


class RawClient:
    """Line-oriented client over a plain socket, for what the stdlib clients can't do."""

    def __init__(self, host: str, port: int, timeout: float = 10,
                 rcvbuf: int | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""
        self._tag = 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout: float | None) -> None:
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by server")
        self.buf += chunk

    def readline(self, timeout: float | None = None) -> bytes:
        while b"\n" not in self.buf:
            self._fill(timeout)
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        while len(self.buf) < n:
            self._fill(timeout)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, timeout: float | None = None) -> bytes:
        """One IMAP response line with its literals inlined as `{n}\\r\\n<bytes>`."""
        out = self.readline(timeout)
        while True:
            m = re.search(rb"\{(\d+)\}\r\n$", out)
            if not m:
                return out
            out += self.read_exact(int(m.group(1)), timeout)
            out += self.readline(timeout)

    def next_tag(self) -> str:
        self._tag += 1
        return f"r{self._tag}"

    def command(self, text: bytes | str, tag: str | None = None,
                timeout: float | None = None) -> tuple[list[bytes], bytes]:
        """Send `<tag> <text>` and read up to the tagged reply. Returns (untagged, tagged)."""
        tag = tag or self.next_tag()
        if isinstance(text, str):
            text = text.encode()
        self.send(tag.encode() + b" " + text + b"\r\n")
        return self.read_until_tag(tag, timeout)

    def read_until_tag(self, tag: str, timeout: float | None = None
                       ) -> tuple[list[bytes], bytes]:
        untagged = []
        while True:
            line = self.read_response(timeout)
            if line.startswith(tag.encode() + b" "):
                return untagged, line
            untagged.append(line)

    def login(self, user: str, password: str = PASSWORD) -> None:
        _, tagged = self.command(f'LOGIN "{user}" "{password}"')
        assert b" OK" in tagged, tagged

    def wait_closed(self, secs: float) -> bool:
        """Read and discard until the server closes the connection or `secs` pass."""
        deadline = time.monotonic() + secs
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._fill(left)
                self.buf = b""
            except EOFError:
                return True
            except ConnectionResetError:
                return True
            except socket.timeout:
                return False


def plain_blob(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()
