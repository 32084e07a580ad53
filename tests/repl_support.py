"""What the replication tests share: a private CA for the pair's mutual TLS, a backend pair that
can fail over both ways (each side has a replication listener, a partner and an admin API), a
roles database naming them, a TCP proxy that can stall or drop the replication link, bulk LMTP
delivery that records every acknowledged message, and IMAP snapshots to compare both sides."""

from __future__ import annotations

import re
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import HOST, REPO, SENDER, Server, addr, free_port

MAILCTL = REPO / "target" / "release" / "mailctl"
CONVERGE_SECS = 20


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def make_leaf(d: Path, ca: tuple[Path, Path], name: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (d / f"{name}.pem", d / f"{name}.key", d / f"{name}.csr",
                           d / f"{name}.ext")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    ext.write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\n"
                   "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext))
    return cert, key


def pair_certs(d: Path) -> dict:
    ca = make_ca(d, "pair-ca")
    other_ca = make_ca(d, "other-ca")
    return {
        "ca": ca[0],
        "primary": make_leaf(d, ca, "primary.test"),
        "replica": make_leaf(d, ca, "replica.test"),
        "intruder": make_leaf(d, other_ca, "intruder.test"),
    }


def mailctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(MAILCTL), *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"mailctl {' '.join(args)} exited {r.returncode}: {r.stderr}{r.stdout}")
    return r


class Proxy:
    """A TCP forwarder for the replication link. `mode`: "forward"; "stall" (connections stay
    open, nothing moves — a black-holed path); "drop" (every connection is closed, new ones are
    closed at once). `forwarded` counts bytes sent upstream; `on_bytes(total)` is called after
    each chunk (a test's hook, e.g. to kill the replica mid-transfer)."""

    def __init__(self, upstream_port: int):
        self.upstream = (HOST, upstream_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.mode = "forward"
        self.forwarded = 0
        self.on_bytes = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, mode: str) -> None:
        assert mode in ("forward", "stall", "drop")
        self.mode = mode
        if mode == "drop":
            with self.lock:
                for c in self.conns:
                    try:
                        c.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    c.close()
                self.conns.clear()

    def close(self) -> None:
        self.closed = True
        self.set("drop")
        self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(down,), daemon=True).start()

    def _serve(self, down: socket.socket) -> None:
        while self.mode == "stall" and not self.closed:
            time.sleep(0.05)
        if self.mode == "drop" or self.closed:
            down.close()
            return
        try:
            up = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            down.close()
            return
        up.settimeout(None)
        with self.lock:
            self.conns += [down, up]
        threading.Thread(target=self._pump, args=(down, up, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(up, down, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while True:
                while self.mode == "stall" and not self.closed:
                    time.sleep(0.05)
                data = src.recv(65536)
                if not data or self.mode == "drop":
                    break
                while self.mode == "stall" and not self.closed:
                    time.sleep(0.05)
                dst.sendall(data)
                if upstream:
                    self.forwarded += len(data)
                    if self.on_bytes:
                        self.on_bytes(self.forwarded)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass


class Pair:
    """Backends a1 (primary) and a2 (replica) that can swap roles: each has a replication
    listener, the other as partner, and an admin API; a roles database names them as partners.
    With `proxy`, a1's link to a2 goes through a [`Proxy`]."""

    def __init__(self, workdir: Path, material, certs: dict, mode: str = "async",
                 unreachable: str = "tempfail", proxy: bool = False, sync_timeout_ms: int = 5000,
                 link_timeout_secs: int = 30, limits: dict | None = None,
                 sieve: dict | None = None):
        self.dir = workdir
        a_listen, b_listen = free_port(), free_port()
        self.proxy = Proxy(b_listen) if proxy else None
        a_partner = self.proxy.port if self.proxy else b_listen
        common = {"ca": certs["ca"], "interval_ms": 100, "mode": mode, "unreachable": unreachable,
                  "sync_timeout_ms": sync_timeout_ms, "link_timeout_secs": link_timeout_secs}
        self.a = Server(workdir / "a1", material, tls=False, admin=True, limits=limits, sieve=sieve,
                        replication={
            "role": "primary", "listen": f"{HOST}:{a_listen}", "partner": f"{HOST}:{a_partner}",
            "server_name": "replica.test", "cert": certs["primary"][0], "key": certs["primary"][1],
            **common})
        self.b = Server(workdir / "a2", material, tls=False, admin=True, limits=limits, sieve=sieve,
                        replication={
            "role": "replica", "listen": f"{HOST}:{b_listen}", "partner": f"{HOST}:{a_listen}",
            "server_name": "primary.test", "cert": certs["replica"][0], "key": certs["replica"][1],
            **common})
        self.roles = workdir / "roles"
        for name, s in (("a1", self.a), ("a2", self.b)):
            mailctl("roles", "--db", str(self.roles), "backend", "add", name, HOST,
                    "--imap", str(s.ports["imap"]), "--pop3", str(s.ports["pop3"]),
                    "--lmtp", str(s.ports["lmtp"]))
        for name, partner in (("a1", "a2"), ("a2", "a1")):
            mailctl("roles", "--db", str(self.roles), "backend", "set", name, "--partner", partner)

    def start(self) -> "Pair":
        self.b.start()
        self.a.start()
        return self

    def stop(self) -> None:
        for s in (self.a, self.b):
            s.stop()
        if self.proxy:
            self.proxy.close()

    def admin(self) -> str:
        return f"a1={self.a.admin_addr()},a2={self.b.admin_addr()}"

    def mailctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return mailctl(*args, "--admin", self.admin(), check=check)

    def wait_caught_up(self, primary: Server, secs: float = CONVERGE_SECS) -> dict:
        deadline = time.monotonic() + secs
        while True:
            st = primary.admin_get()
            if st["role"] == "primary" and st["pending_users"] == 0 and st["link"] == "up":
                return st
            if time.monotonic() > deadline:
                pytest.fail(f"primary did not catch up within {secs}s: {st}\n{primary.log_tail()}",
                            pytrace=False)
            time.sleep(0.1)


def message(n: int, tag: str = "", size: int = 0) -> bytes:
    body = f"body of message {tag}{n}\r\n" + ("x" * 76 + "\r\n") * (size // 78)
    return (f"From: sender@example.org\r\nTo: someone@localhost\r\nSubject: message {tag}{n}\r\n"
            f"Message-ID: <{tag or 'm'}{n}@example.org>\r\n\r\n{body}").encode()


def deliver_many(server: Server, user: str, ids: list[str], conns: int = 4,
                 on_ack=None) -> tuple[set[str], list[str]]:
    """Delivers one message per id over `conns` parallel LMTP connections, until done or the
    server goes away. Returns (ids acknowledged with 250, other replies seen)."""
    acked: set[str] = set()
    other: list[str] = []
    lock = threading.Lock()
    chunks = [ids[i::conns] for i in range(conns)]

    def worker(chunk: list[str]) -> None:
        try:
            c = smtplib.LMTP(HOST, server.ports["lmtp"], timeout=30)
            c.ehlo()
        except (OSError, smtplib.SMTPException) as e:
            with lock:
                other.append(f"connect: {e}")
            return
        try:
            for mid in chunk:
                msg = (f"From: sender@example.org\r\nSubject: {mid}\r\nMessage-ID: <{mid}>\r\n\r\n"
                       f"body {mid}\r\n").encode()
                code, text = c.mail(SENDER)
                if code != 250:
                    with lock:
                        other.append(f"{code} {text!r}")
                    return
                code, text = c.rcpt(addr(user))
                if code != 250:
                    with lock:
                        other.append(f"{code} {text!r}")
                    c.rset()
                    continue
                code, text = c.data(msg)
                with lock:
                    if code == 250:
                        acked.add(mid)
                        if on_ack:
                            on_ack(len(acked))
                    else:
                        other.append(f"{code} {text!r}")
        except (OSError, smtplib.SMTPException) as e:
            with lock:
                other.append(f"connection: {type(e).__name__}")

    threads = [threading.Thread(target=worker, args=(ch,)) for ch in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return acked, other


def message_ids(server: Server, user: str, mailbox: str = "INBOX") -> list[tuple[int, str]]:
    """(UID, Message-ID) of every message in the mailbox, read-only."""
    m = server.imap(user)
    try:
        m.select(mailbox, readonly=True)
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        out = []
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                mid = re.search(rb"<([^>]*)>", item[1])
                out.append((uid, mid.group(1).decode() if mid else ""))
        return out
    finally:
        m.logout()


def snapshot(server: Server, user: str) -> dict:
    """Every folder of `user` as an operator would see it: UIDVALIDITY and, per UID, flags
    (without \\Recent, which is per server) and body."""
    m = server.imap(user)
    try:
        typ, lines = m.list()
        assert typ == "OK"
        names = sorted(re.match(rb'\(([^)]*)\) "[^"]*" (.*)$', l).group(2).decode().strip('"')
                       for l in lines)
        out = {}
        for name in names:
            typ, _ = m.select(f'"{name}"', readonly=True)
            if typ != "OK":
                out[name] = None
                continue
            validity = m.untagged_responses.get("UIDVALIDITY", [b"?"])[-1]
            typ, data = m.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            msgs = {}
            for item in data:
                if not isinstance(item, tuple):
                    continue
                head = item[0].decode()
                uid = int(re.search(r"UID (\d+)", head).group(1))
                flags = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()) - {"\\Recent"}
                msgs[uid] = (sorted(flags), item[1])
            out[name] = (validity, msgs)
            m.close()
        return out
    finally:
        m.logout()


def converge(primary: Server, replica: Server, user: str, secs: float = CONVERGE_SECS) -> dict:
    deadline = time.monotonic() + secs
    want = snapshot(primary, user)
    while True:
        got = snapshot(replica, user)
        if got == want:
            return want
        if time.monotonic() > deadline:
            diff = {k: (want.get(k) is not None, got.get(k) is not None)
                    for k in set(want) | set(got) if want.get(k) != got.get(k)}
            pytest.fail(f"replica did not converge within {secs}s; differing folders "
                        f"(primary has, replica has): {diff}\nprimary log:\n{primary.log_tail()}"
                        f"\nreplica log:\n{replica.log_tail()}", pytrace=False)
        time.sleep(0.2)
        want = snapshot(primary, user)
