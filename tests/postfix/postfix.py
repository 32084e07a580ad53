"""A private Postfix instance for the delivery-routing tests, and the socketmap server it asks.

`Postfix` runs the distribution's Postfix (as root) with its own config_directory, queue and data
directories under one temp directory, listening for SMTP on 127.0.0.1 only, with local delivery
disabled and `transport_maps = socketmap:inet:127.0.0.1:PORT:transport`. Its log goes to a file
(`maillog_file`), so no syslog is needed. The system Postfix (if any) is never touched.

`Socketmap` runs the roles agent's socketmap server on a roles database directory:
`rolesd socketmap --db DIR --listen ADDR` when the built rolesd has that mode, else the
standalone `roles-agent/examples/socketmap.rs` (cargo build --release -p mailscale-rolesd
--examples).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from harness import HOST, REPO, HarnessError, free_port

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/postfix"
POSTMAP = shutil.which("postmap", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/postmap"
POSTQUEUE = shutil.which("postqueue", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/postqueue"
MAILCTL = REPO / "target" / "release" / "mailctl"
ROLESD = REPO / "target" / "release" / "rolesd"
SOCKETMAP_EXAMPLE = REPO / "target" / "release" / "examples" / "socketmap"
RELAY_DOMAIN = "example.org"

# Each service as Postfix's own master.cf has it, but nothing chrooted (a chroot would need copies
# of /etc files inside the queue directory) and no local delivery agents.
# Postfix's services, shared with scripts/up-postfix.sh (the smtpd listener is added per instance).
MASTER_SERVICES = (REPO / "scripts" / "postfix-master.cf").read_text()


def require_tools() -> None:
    missing = [p for p in (POSTFIX, POSTMAP, POSTQUEUE) if not os.access(p, os.X_OK)]
    if missing:
        raise HarnessError(f"Postfix is not installed ({', '.join(missing)} missing): run scripts/install-deps.sh")
    if os.geteuid() != 0:
        raise HarnessError("the Postfix tests run a private Postfix instance, which must be started as root")
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        raise HarnessError("no 'postfix' user: the postfix package is not installed properly") from None
    if not MAILCTL.is_file():
        raise HarnessError(f"{MAILCTL} is missing: run `cargo build --release`")


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, timeout=timeout)


def mailctl(*args: str) -> str:
    proc = run(MAILCTL, *args)
    if proc.returncode != 0:
        raise HarnessError(f"mailctl {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


def wait_listening(port: int, proc: subprocess.Popen | None, what: str, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"{what} exited with {proc.returncode} during start-up:\n{tail(log)}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise HarnessError(f"{what} did not listen on {HOST}:{port} within {timeout}s:\n{tail(log)}")
            time.sleep(0.05)


def tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return f"({path} does not exist)"


class Socketmap:
    """The socketmap server on a roles DB, on a free port of 127.0.0.1."""

    def __init__(self, db: Path, workdir: Path):
        self.db = db
        self.port = free_port()
        self.log_path = workdir / "socketmap.log"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def command(db: Path, listen: str) -> list[str]:
        if ROLESD.is_file():
            usage = run(ROLESD, "help")
            if b"rolesd socketmap " in usage.stdout + usage.stderr:
                return [str(ROLESD), "socketmap", "--db", str(db), "--listen", listen]
        if SOCKETMAP_EXAMPLE.is_file():
            return [str(SOCKETMAP_EXAMPLE), str(db), listen]
        raise HarnessError(
            f"no socketmap server: {ROLESD} has no `socketmap` mode and {SOCKETMAP_EXAMPLE} is missing "
            "(cargo build --release -p mailscale-rolesd --examples)"
        )

    def start(self) -> "Socketmap":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(self.db, f"{HOST}:{self.port}"),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=dict(os.environ, RUST_LOG="info"),
            )
        wait_listening(self.port, self.proc, "the socketmap server", self.log_path)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self) -> str:
        return tail(self.log_path)


class Postfix:
    """A private Postfix: `postfix -c DIR start|stop`, SMTP on a free port of 127.0.0.1."""

    def __init__(self, socketmap_port: int):
        # Short path: Postfix's unix sockets live under the queue directory (sun_path is 108 bytes).
        # mode 0755 so that Postfix's unprivileged daemons can reach their directories.
        self.base = Path(tempfile.mkdtemp(prefix="mspf-", dir="/tmp"))
        self.base.chmod(0o755)
        self.conf = self.base / "etc"
        self.queue = self.base / "queue"
        self.data = self.base / "data"
        self.log_path = self.base / "maillog"
        self.smtp_port = free_port()
        self.socketmap = f"socketmap:inet:{HOST}:{socketmap_port}:transport"
        self.started = False
        for d in (self.conf, self.queue, self.data):
            d.mkdir(mode=0o755)
        shutil.chown(self.data, "postfix", "postfix")
        self._write_config()

    def _write_config(self) -> None:
        main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "maillog_file": self.log_path,
            "maillog_file_prefixes": self.base,
            "myhostname": "frontend.mailscale.test",
            "inet_interfaces": HOST,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_peername_lookup": "no",
            # Local delivery disabled: nothing is "local", no aliases, no local(8) in master.cf.
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:5.1.1 local delivery disabled",
            "alias_maps": "",
            "alias_database": "",
            "relay_domains": RELAY_DOMAIN,
            # Mailboxes come from the roles DB; whatever it does not know is refused, not sent out.
            "transport_maps": self.socketmap,
            "relay_transport": "error:5.1.1 mailbox unknown",
            "default_transport": "error:5.7.1 outside delivery disabled",
            "smtputf8_enable": "no",
            "biff": "no",
            "append_dot_mydomain": "no",
            # A deferred message is retried within seconds (postqueue -f also forces a run).
            "queue_run_delay": "2s",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
        }
        text = "".join(f"{k} = {v}\n" for k, v in main.items())
        (self.conf / "main.cf").write_text(text)
        smtpd = f"{HOST}:{self.smtp_port} inet n - n - - smtpd\n"
        (self.conf / "master.cf").write_text(smtpd + MASTER_SERVICES)

    def _postfix(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return run(POSTFIX, "-c", self.conf, *args, timeout=timeout)

    def check(self) -> None:
        proc = self._postfix("check")
        if proc.returncode != 0:
            raise HarnessError(f"postfix -c {self.conf} check failed:\n{self.log_tail()}\n{proc.stderr.decode()}")

    def start(self) -> "Postfix":
        self.check()
        proc = self._postfix("start")
        if proc.returncode != 0:
            raise HarnessError(f"postfix -c {self.conf} start failed:\n{self.log_tail()}\n{proc.stderr.decode()}")
        self.started = True
        wait_listening(self.smtp_port, None, "Postfix smtpd", self.log_path)
        return self

    def master_pid(self) -> int | None:
        try:
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if not self.started:
            return
        pid = self.master_pid()
        self._postfix("stop")
        # `postfix stop` returns before the master has exited; wait, then insist (only on our pid).
        deadline = time.monotonic() + 10
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.started = False

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def postmap(self, key: str, table: str | None = None) -> subprocess.CompletedProcess:
        return run(POSTMAP, "-c", self.conf, "-q", key, table or self.socketmap)

    def flush(self) -> None:
        run(POSTQUEUE, "-c", self.conf, "-f")

    def queue_listing(self) -> str:
        return run(POSTQUEUE, "-c", self.conf, "-p").stdout.decode(errors="replace")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return tail(self.log_path, n)


class RolesDb:
    """A roles database made and changed with mailctl."""

    def __init__(self, directory: Path):
        self.dir = directory

    def roles(self, *args: str) -> str:
        return mailctl("roles", "--db", str(self.dir), *args)

    def add_backend(self, name: str, server, partner: str | None = None) -> None:
        p = server.ports
        self.roles("backend", "add", name, HOST, "--imap", str(p["imap"]), "--pop3", str(p["pop3"]),
                   "--lmtp", str(p["lmtp"]), *(["--partner", partner] if partner else []))

    def set_user(self, user: str, backend: str) -> None:
        self.roles("set", user, backend)

    def set_state(self, backend: str, state: str) -> None:
        self.roles("backend", "set", backend, "--state", state)
