"""Harness for the frontend end-to-end tests (issue 3): stock nginx with the built ngx-mailauth
module in front of two mailstored backends, with a real slapd, a real redis-server and a roles
database made with mailctl. Every process runs on 127.0.0.1 with private directories and free
ports, and is stopped by the fixture that started it.

The nginx config comes from nginx-conf/render.sh (the template every frontend uses); the harness
then replaces the body of the template's `location = /auth` with the directives a test module
asks for, so that each module can choose its own fail delay, lockout, LDAP mode and so on.
"""

from __future__ import annotations

import base64
import hashlib
import imaplib
import os
import poplib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from harness import HOST, REPO, HarnessError, free_port

NGINX = Path("/usr/sbin/nginx")
SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
REDIS = Path("/usr/bin/redis-server")
MAILCTL = REPO / "target" / "release" / "mailctl"
RENDER = REPO / "nginx-conf" / "render.sh"
MODULE_SO = Path(os.environ.get("MAILAUTH_MODULE_SO", REPO / "target" / "release" / "libngx_mailauth.so"))
SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
LDAP_ADMIN_DN = f"cn=admin,{SUFFIX}"
LDAP_ADMIN_PASSWORD = "ldap-admin-secret"
LDAP_SCHEMAS = ["core", "cosine", "inetorgperson", "nis"]

# nginx's messages for refusals come from the module (ngx-mailauth/src/decision.rs).
INVALID_LOGIN = "Invalid login or password"
TEMP_FAILURE = "Temporary server problem, try again later"
LOCKED_OUT = "Too many failed logins, try again later"
NO_MAILBOX = "No mailbox for this user"
MAILBOX_UNAVAILABLE = "Mailbox temporarily unavailable, try again later"


def wait_port(port: int, timeout: float, alive=lambda: True, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if not alive():
                raise HarnessError(f"{what} exited before listening on {HOST}:{port}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{what} did not listen on {HOST}:{port} within {timeout}s")
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def share_with_workers(path: Path, writable: bool = False) -> None:
    """nginx workers run as `nobody:nogroup` when the tests run as root: let that group read
    (and for the roles LMDB lock file, write) `path`, as an operator would."""
    if os.geteuid() != 0:
        return
    paths = [path] + (sorted(path.rglob("*")) if path.is_dir() else [])
    for p in paths:
        shutil.chown(p, group="nogroup")
        mode = p.stat().st_mode & 0o7777
        mode |= 0o050 if p.is_dir() else 0o040
        if writable:
            mode |= 0o020
        p.chmod(mode)


def module_so() -> Path:
    """The built module, refused clearly when it is missing or built without `--features nginx`."""
    build = ("vendor-nginx/prepare.sh && . target/nginx-env.sh && "
             "cargo build --release -p ngx-mailauth --features nginx")
    if not MODULE_SO.is_file():
        raise HarnessError(f"{MODULE_SO} is missing: build the module with `{build}` (or `make build`)")
    out = subprocess.run(["nm", "-D", "--defined-only", str(MODULE_SO)], capture_output=True, text=True)
    if not re.search(r" ngx_http_mailauth_module$", out.stdout, re.M):
        raise HarnessError(
            f"{MODULE_SO} has no ngx_http_mailauth_module symbol: it was built without "
            f"`--features nginx` (a plain `cargo build` overwrites it). Rebuild with `{build}`")
    return MODULE_SO


def require_tools() -> None:
    missing = [str(p) for p in (NGINX, SLAPD, SLAPADD, REDIS, MAILCTL) if not p.is_file()]
    if not Path("/usr/lib/nginx/modules/ngx_mail_module.so").is_file():
        missing.append("/usr/lib/nginx/modules/ngx_mail_module.so")
    if missing:
        raise HarnessError(f"missing {', '.join(missing)}: run scripts/install-deps.sh and "
                           "cargo build --release")


def private_dir(prefix: str) -> Path:
    """A fresh directory under /tmp that nginx's workers can enter (pytest's own tmp dirs are
    mode 0700 below /tmp/pytest-of-root), short enough for a unix socket path."""
    d = Path(tempfile.mkdtemp(prefix=f"ms-{prefix}-", dir="/tmp"))
    d.chmod(0o755)
    return d


# ---- mailctl ------------------------------------------------------------------------------------

def mailctl(*args: str) -> str:
    proc = subprocess.run([str(MAILCTL), *args], capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise HarnessError(f"mailctl {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode().strip()


class Roles:
    """A roles database (LMDB) made and changed with mailctl."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def backend(self, name: str, ip: str, imap: int, pop3: int, lmtp: int, state: str | None = None) -> None:
        args = ["roles", "--db", str(self.dir), "backend", "add", name, ip, "--imap", str(imap),
                "--pop3", str(pop3), "--lmtp", str(lmtp)]
        if state:
            args += ["--state", state]
        mailctl(*args)

    def set_backend_state(self, name: str, state: str) -> None:
        mailctl("roles", "--db", str(self.dir), "backend", "set", name, "--state", state)

    def set(self, user: str, backend: str) -> None:
        mailctl("roles", "--db", str(self.dir), "set", user, backend)


# ---- redis --------------------------------------------------------------------------------------

class Redis:
    def __init__(self, directory: Path):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def start(self) -> "Redis":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(REDIS), "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        wait_port(self.port, 10, lambda: self.proc.poll() is None, "redis-server")
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def command(self, *args: str) -> bytes:
        """One command over RESP; returns the raw reply (enough for the tests' checks)."""
        req = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
        with socket.create_connection((HOST, self.port), timeout=5) as s:
            s.sendall(req)
            time.sleep(0.05)
            return s.recv(1 << 20)


# ---- slapd --------------------------------------------------------------------------------------

def ssha(password: str) -> str:
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def dn_value(value: str) -> str:
    """RFC 4514 escaping of an attribute value, for the LDIF the tests load."""
    out = "".join("\\" + c if c in '",+;<>\\=' else c for c in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    return out


class Slapd:
    """A private OpenLDAP server: slapd.conf + an mdb database loaded with slapadd."""

    def __init__(self, directory: Path, people: dict[str, str], *, schemas: list[str] | None = None,
                 extra_entries: list[str] | None = None, database_lines: list[str] | None = None):
        """`schemas` replaces LDAP_SCHEMAS (names in /etc/ldap/schema); `extra_entries` are LDIF
        entries (without trailing blank line) loaded after the people; `database_lines` are added
        to the mdb database's section of slapd.conf (e.g. `limits ...`)."""
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "slapd.log"
        (self.dir / "db").mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "slapd.conf"
        self.conf.write_text("\n".join([
            *(f"include /etc/ldap/schema/{s}.schema" for s in (schemas or LDAP_SCHEMAS)),
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            f"pidfile {self.dir}/slapd.pid",
            f"argsfile {self.dir}/slapd.args",
            "database mdb",
            f'suffix "{SUFFIX}"',
            f'rootdn "{LDAP_ADMIN_DN}"',
            f"rootpw {LDAP_ADMIN_PASSWORD}",
            f"directory {self.dir}/db",
            "maxsize 10485760",
            *(database_lines or []),
            "",
        ]))
        entries = [
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n",
            f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        ]
        for uid, password in people.items():
            entries.append(
                f"dn: uid={dn_value(uid)},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
                f"cn: {uid}\nsn: {uid}\nuserPassword: {ssha(password)}\n")
        entries += [e.rstrip("\n") + "\n" for e in extra_entries or []]
        ldif = self.dir / "people.ldif"
        ldif.write_text("\n".join(entries))
        proc = subprocess.run([str(SLAPADD), "-f", str(self.conf), "-l", str(ldif)],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise HarnessError(f"slapadd failed: {proc.stderr}")

    @property
    def url(self) -> str:
        return f"ldap://{HOST}:{self.port}"

    def start(self) -> "Slapd":
        log = open(self.log_path, "ab")
        # -d 0: stay in the foreground (the fixture owns the process), log nothing extra.
        self.proc = subprocess.Popen(
            [str(SLAPD), "-f", str(self.conf), "-h", f"ldap://{HOST}:{self.port}/", "-d", "0"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        wait_port(self.port, 15, lambda: self.proc.poll() is None, "slapd")
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# ---- a TCP gate in front of slapd that can stall -------------------------------------------------

class LdapGate:
    """Listens on its own port. In `forward` mode it relays each connection to slapd; in `stall`
    mode it accepts connections and never answers (a hung LDAP server). Counts connections."""

    def __init__(self, target_port: int | None):
        self.target_port = target_port
        self.stall = target_port is None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ldap://{HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                stall = self.stall
                self.held.append(conn)
            if not stall:
                threading.Thread(target=self._forward, args=(conn,), daemon=True).start()

    def _forward(self, conn: socket.socket) -> None:
        try:
            up = socket.create_connection((HOST, self.target_port), timeout=10)
        except OSError:
            conn.close()
            return

        def pump(a: socket.socket, b: socket.socket) -> None:
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(up, conn), daemon=True).start()
        pump(conn, up)

    def set_stall(self, stall: bool) -> None:
        with self._lock:
            self.stall = stall

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        with self._lock:
            for c in self.held:
                try:
                    c.close()
                except OSError:
                    pass


# ---- a fake POP3 backend that records what nginx sends -------------------------------------------

class SpyPop3:
    """Answers like a POP3 server that accepts any USER/PASS; records (user, password) pairs."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.logins: list[tuple[str, str]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        f = conn.makefile("rwb")
        try:
            f.write(b"+OK spy ready\r\n")
            f.flush()
            user = None
            for raw in f:
                line = raw.decode(errors="replace").rstrip("\r\n")
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                if verb == "USER":
                    user = arg
                elif verb == "PASS":
                    self.logins.append((user or "", arg))
                elif verb == "QUIT":
                    f.write(b"+OK bye\r\n")
                    f.flush()
                    return
                f.write(b"+OK\r\n")
                f.flush()
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


# ---- nginx --------------------------------------------------------------------------------------

def set_directives(location: str, directives: list[str]) -> str:
    """Sets each directive in a rendered `location { ... }` block: replaces the (uncommented)
    line of the same name, or adds it before the closing brace."""
    for d in directives:
        name = d.split()[0]
        pattern = re.compile(rf"^([ \t]*){re.escape(name)}(\s[^\n]*)?;[ \t]*$", re.M)
        location, n = pattern.subn(lambda m: f"{m.group(1)}{d};", location, count=1)
        if n == 0:
            location = location[: location.rindex("}")] + f"    {d};\n        " + location[location.rindex("}"):]
    return location


class Nginx:
    """Stock nginx with the module. The config is nginx-conf/render.sh's (roles, users file,
    ticket key, Redis, LDAP bind template as options); then each of `directives` replaces the
    line of the same name in `location = /auth` (or is added there), and `main_lines` are added
    at the top level."""

    def __init__(self, directory: Path, render_args: list[str], directives: list[str],
                 main_lines: list[str] | None = None, workers: int = 2):
        self.dir = directory
        self.ports = {"imap": free_port(), "pop3": free_port(), "auth": free_port()}
        self.proc: subprocess.Popen | None = None
        env = dict(os.environ, IMAP_LISTEN=f"{HOST}:{self.ports['imap']}",
                   POP3_LISTEN=f"{HOST}:{self.ports['pop3']}", AUTH_PORT=str(self.ports["auth"]),
                   WORKERS=str(workers))
        proc = subprocess.run([str(RENDER), str(self.dir), str(module_so()), *render_args],
                              capture_output=True, text=True, env=env, timeout=60)
        if proc.returncode != 0:
            raise HarnessError(f"nginx-conf/render.sh failed: {proc.stderr}")
        self.conf = self.dir / "nginx.conf"
        text = self.conf.read_text()
        m = re.search(r"location = /auth \{.*?\n        \}", text, flags=re.S)
        if not m:
            raise HarnessError(f"{self.conf}: no `location = /auth {{ ... }}` block to fill in "
                               "(nginx-conf/nginx.conf.in changed shape?)")
        text = text[: m.start()] + set_directives(m.group(0), directives) + text[m.end():]
        if main_lines:
            text, n = re.subn(r"^(worker_processes [^\n]*\n)", lambda mm: mm.group(1) + "".join(
                f"{line};\n" for line in main_lines), text, count=1, flags=re.M)
            assert n == 1, "no worker_processes line in the rendered config"
        self.conf.write_text(text)
        self.error_log = self.dir / "logs" / "error.log"

    def check(self) -> None:
        proc = subprocess.run([str(NGINX), "-t", "-q", "-c", str(self.conf)], capture_output=True,
                              text=True, timeout=60)
        if proc.returncode != 0:
            raise HarnessError(f"nginx -t refused {self.conf}:\n{proc.stderr.strip()}")

    def start(self) -> "Nginx":
        self.check()
        out = open(self.dir / "nginx.stderr", "ab")
        self.proc = subprocess.Popen([str(NGINX), "-c", str(self.conf), "-g", "daemon off;"],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        out.close()
        for name in ("imap", "pop3", "auth"):
            try:
                wait_port(self.ports[name], 15, lambda: self.proc.poll() is None, "nginx")
            except HarnessError as e:
                raise HarnessError(f"{e}; error log tail:\n{self.log_tail()}") from None
        return self

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM)

    def log_text(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def crashes(self) -> list[str]:
        """Lines where a worker died of a signal or Rust panicked (a crash inside the module)."""
        try:
            stderr = (self.dir / "nginx.stderr").read_text(errors="replace")
        except FileNotFoundError:
            stderr = ""
        return [line for line in (self.log_text() + "\n" + stderr).splitlines()
                if re.search(r"exited on signal|worker process \d+ exited with fatal|panicked at", line)]

    def assert_no_secrets_logged(self, secrets: list[str]) -> None:
        """DESIGN principle 3: logs never contain passwords or tickets."""
        text = self.log_text()
        try:
            text += (self.dir / "nginx.stderr").read_text(errors="replace")
        except FileNotFoundError:
            pass
        found = [s for s in [*secrets, "MST1."] if s in text]
        assert not found, f"nginx's logs contain {found}"

    # ---- clients ---------------------------------------------------------------------------

    def imap(self, source: str | None = None, timeout: float = 20) -> "Imap":
        return Imap(HOST, self.ports["imap"], source=source, timeout=timeout)

    def pop3(self, source: str | None = None, timeout: float = 20) -> "Pop3":
        return Pop3(HOST, self.ports["pop3"], source=source, timeout=timeout)

    def auth(self, headers: dict[str, str] | list[tuple[str, str]], timeout: float = 20
             ) -> tuple[int, dict[str, str], list[tuple[str, str]]]:
        """One request to the auth location over loopback, headers written byte for byte (nginx
        mail sends escaped values; the tests send what they need). Returns (status, headers as
        a dict of the last value per lower-case name, all headers in order)."""
        items = list(headers.items()) if isinstance(headers, dict) else list(headers)
        req = (b"GET /auth HTTP/1.0\r\nHost: localhost\r\n"
               + b"".join(k.encode() + b": " + v.encode("latin-1") + b"\r\n" for k, v in items)
               + b"\r\n")
        return http_raw(self.ports["auth"], req, timeout)


def http_raw(port: int, request: bytes, timeout: float = 20
             ) -> tuple[int, dict[str, str], list[tuple[str, str]]]:
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    items = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        items.append((k.strip(), v.strip()))
    return status, {k.lower(): v for k, v in items}, items


def auth_headers(user: str, password: str, protocol: str = "imap", attempt: int = 1,
                 client: str = "127.0.0.1", method: str = "plain") -> dict[str, str]:
    """Headers as nginx mail sends them (user and password %-escaped like nginx does)."""
    return {"Auth-Method": method, "Auth-User": nginx_escape(user), "Auth-Pass": nginx_escape(password),
            "Auth-Protocol": protocol, "Auth-Login-Attempt": str(attempt), "Client-IP": client,
            "Client-Host": "[UNAVAILABLE]"}


def nginx_escape(value: str) -> str:
    """ngx_escape_uri(NGX_ESCAPE_MAIL_AUTH): %XX for controls, space, %, and bytes >= 0x7f."""
    out = []
    for b in value.encode():
        out.append(f"%{b:02X}" if b <= 0x20 or b >= 0x7f or b == 0x25 else chr(b))
    return "".join(out)


class Imap(imaplib.IMAP4):
    """imaplib with a chosen source address (127.0.0.x), so that tests don't share the per
    client-IP lockout counter."""

    def __init__(self, host: str, port: int, source: str | None = None, timeout: float = 20):
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0) if self._source else None)


class Pop3(poplib.POP3):
    def __init__(self, host: str, port: int, source: str | None = None, timeout: float = 20):
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0) if self._source else None)


def imap_refusal(nginx: Nginx, user: str, password: str, source: str | None = None) -> tuple[str, float]:
    """Logs in expecting a refusal; returns (the NO text nginx sent, seconds it took)."""
    m = nginx.imap(source)
    t = time.monotonic()
    try:
        typ, data = m.login(user, password)
    except imaplib.IMAP4.error as e:
        took = time.monotonic() - t
        m.shutdown()
        text = e.args[0]
        return (text.decode(errors="replace") if isinstance(text, bytes) else str(text)), took
    m.logout()
    raise AssertionError(f"login of {user!r} was accepted: {typ} {data}")


def subjects_imap(m: imaplib.IMAP4) -> list[str]:
    typ, data = m.select("INBOX")
    assert typ == "OK", data
    if int(data[0]) == 0:
        return []
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    if typ != "OK" or data == [None]:
        return []
    out = []
    for item in data:
        if isinstance(item, tuple):
            out.append(item[1].decode(errors="replace").strip().removeprefix("Subject:").strip())
    return out


def message(subject: str, to: str) -> bytes:
    return (f"From: sender@example.org\r\nTo: {to}@localhost\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}.{time.time_ns()}@test>\r\n\r\nbody of {subject}\r\n").encode()


# ---- the whole frontend ---------------------------------------------------------------------------

# LDAP-only users (not in any users file): uid -> password. `carol+mail` needs escaping in a DN
# (RFC 4514: `uid=carol\+mail`), s01..s50 are the stalled-LDAP test's uncached users.
LDAP_PEOPLE = {"alice": "wonderland", "bob": "builder", "carol+mail": "c4rol-Pass", "ldapnorole": "nowhere",
               **{f"s{i:02d}": "stall-pass" for i in range(1, 51)}}
# Users of the frontend's users file besides the harness's demo and pool users (password demo).
EXTRA_FILE_USERS = ["norole", "downuser", "spyuser"]


class Platform:
    """nginx + module, two mailstored backends A and B sharing one ticket key, a roles DB, a
    redis-server and a slapd. Routes: demo1, demo3, odd pool users, alice, s01..s50 -> A;
    demo2, even pool users, bob, carol+mail -> B; downuser -> C (down); spyuser -> a fake POP3
    backend that records the password nginx hands it; norole and ldapnorole have no role."""

    def __init__(self, material, make_server, *, ldap: str = "bind", ldap_gate: bool = False,
                 fail_delay: str = "1s", lockout: str | None = None, ticket_ttl: str = "30s",
                 cache_ttl: str = "5m", extra: list[str] | None = None,
                 main_lines: list[str] | None = None, workers: int = 2):
        require_tools()
        module_so()
        self.dir = private_dir("fe")
        self.procs_started = False
        self.key = self.dir / "ticket.key"
        self.key.write_text(mailctl("ticket-key", "generate") + "\n")
        self.key.chmod(0o640)
        share_with_workers(self.key)
        self.secret = self.dir / "cache.secret"
        self.secret.write_bytes(os.urandom(32).hex().encode() + b"\n")
        self.secret.chmod(0o640)
        share_with_workers(self.secret)
        self.ldap_password_file = self.dir / "ldap.password"
        self.ldap_password_file.write_text(LDAP_ADMIN_PASSWORD + "\n")
        self.ldap_password_file.chmod(0o640)
        share_with_workers(self.ldap_password_file)

        demo_hash = material.users_text.splitlines()[0].split(":", 1)[1]
        self.users_file = self.dir / "users"
        self.users_file.write_text(material.users_text
                                   + "".join(f"{u}:{demo_hash}\n" for u in EXTRA_FILE_USERS))
        self.users_file.chmod(0o640)
        share_with_workers(self.users_file)

        self.redis = Redis(self.dir / "redis")
        self.slapd = Slapd(self.dir / "slapd", LDAP_PEOPLE)
        frontend = {"ticket_key": self.key, "trusted": [HOST]}
        self.a = make_server(frontend)
        self.b = make_server(frontend)
        self.spy = SpyPop3()
        self.gate = None
        self._make = dict(ldap=ldap, ldap_gate=ldap_gate, fail_delay=fail_delay, lockout=lockout,
                          ticket_ttl=ticket_ttl, cache_ttl=cache_ttl, extra=extra or [],
                          main_lines=main_lines or [], workers=workers)
        self.roles = Roles(self.dir / "roles")
        self.nginx: Nginx | None = None

    def _roles(self) -> None:
        closed = free_port()
        a, b = self.a.ports, self.b.ports
        self.roles.backend("A", HOST, a["imap"], a["pop3"], a["lmtp"])
        self.roles.backend("B", HOST, b["imap"], b["pop3"], b["lmtp"])
        self.roles.backend("C", HOST, a["imap"], a["pop3"], a["lmtp"], state="down")
        self.roles.backend("spy", HOST, closed, self.spy.port, closed)
        pool = [line.split(":", 1)[0] for line in self.users_file.read_text().splitlines()
                if line.startswith("user")]
        routes = {"demo1": "A", "demo2": "B", "demo3": "A", "alice": "A", "bob": "B",
                  "carol+mail": "B", "downuser": "C", "spyuser": "spy",
                  **{u: ("A" if int(u[4:]) % 2 else "B") for u in pool},
                  **{f"s{i:02d}": "A" for i in range(1, 51)}}
        lines = "".join(f"{u},{b}\n" for u, b in routes.items())
        csv = self.dir / "roles.csv"
        csv.write_text(lines)
        mailctl("roles", "--db", str(self.roles.dir), "import", str(csv))
        share_with_workers(self.roles.dir, writable=True)

    def ldap_url(self) -> str:
        return self.gate.url if self.gate else self.slapd.url

    def render_args(self) -> list[str]:
        return ["--roles", str(self.roles.dir), "--users", str(self.users_file),
                "--ticket-key", str(self.key), "--redis", self.redis.url,
                "--cache-secret", str(self.secret), "--ldap", self.ldap_url(), f"uid=%u,{PEOPLE}"]

    def directives(self) -> list[str]:
        """What this module's tests change from the rendered config."""
        o = self._make
        url = self.ldap_url()
        if o["ldap"] == "bind":
            ldap = f'mailauth_ldap {url} "bind_dn=uid=%u,{PEOPLE}" timeout=3s'
        else:
            ldap = (f'mailauth_ldap {url} "base={PEOPLE}" "filter=(uid=%u)" "search_dn={LDAP_ADMIN_DN}" '
                    f"search_password_file={self.ldap_password_file} timeout=3s")
        return [
            ldap,
            f"mailauth_cache_ttl {o['cache_ttl']}",
            f"mailauth_ticket_ttl {o['ticket_ttl']}",
            f"mailauth_fail_delay {o['fail_delay']}",
            f"mailauth_lockout {o['lockout'] or 'off'}",
            *o["extra"],
        ]

    def start(self) -> "Platform":
        self.redis.start()
        self.slapd.start()
        if self._make["ldap_gate"]:
            self.gate = LdapGate(self.slapd.port)
        self._roles()
        self.nginx = Nginx(self.dir / "nginx", self.render_args(), self.directives(),
                           self._make["main_lines"], self._make["workers"])
        self.nginx.start()
        return self

    def stop(self) -> list[str]:
        """Stops everything; returns problems seen (crashed nginx workers)."""
        problems = []
        if self.nginx is not None:
            crashes = self.nginx.crashes()
            if crashes:
                problems.append("nginx workers crashed:\n" + "\n".join(crashes))
            if self.nginx.proc is not None and self.nginx.proc.poll() is not None:
                problems.append(f"nginx master exited with {self.nginx.proc.returncode} during the "
                                f"tests; error log tail:\n{self.nginx.log_tail()}")
            self.nginx.stop()
        if self.gate:
            self.gate.close()
        self.spy.close()
        self.slapd.stop()
        self.redis.stop()
        return problems

    def cleanup(self) -> None:
        if os.environ.get("KEEP_FRONTEND_DIRS") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
