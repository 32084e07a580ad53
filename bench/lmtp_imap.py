#!/usr/bin/env python3
"""mailstored vs Dovecot 2.3, side by side, in one run (issue 2, "Benchmark").

For each server, on the same machine and the same disk:

1. delivery: N messages (3-5 KB, varied headers and MIME shapes) to one user over ONE LMTP
   connection, the way Postfix's LMTP client talks (MAIL, RCPT and DATA pipelined when the
   server offers PIPELINING, then the body); every message must get its 250, the rate is
   messages/s over the whole stream;
2. first open: the server is stopped, the page cache dropped (`sync; echo 3 >
   /proc/sys/vm/drop_caches`), the server started again; then a fresh IMAP connection, LOGIN,
   and the timed part: `SELECT INBOX` + `UID FETCH 1:* (FLAGS ENVELOPE INTERNALDATE
   RFC822.SIZE)`;
3. second open: the same on a new connection.

Both servers are private instances under one temporary directory (on disk, not tmpfs), on free
loopback ports; nothing of the system's Dovecot is used except its binaries. Dovecot keeps its
defaults (mail_fsync=optimized, index files); its mailbox format is Maildir unless
--dovecot-format says otherwise.

Progress goes to stderr; the result is a markdown section on stdout, ready for BENCHMARKS.md.
Exit status is non-zero, with the server's log tail, when a server does not come up or refuses
a message.

    python3 bench/lmtp_imap.py                 # 10,000 messages
    python3 bench/lmtp_imap.py --count 500     # quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER = "bench"
RCPT = "bench@localhost"  # LMTP recipient; both servers map it to the user `bench`
PASSWORD = "bench-password"
MAIL_OWNER = "mail"  # Dovecot's mail_uid/mail_gid: Debian's `mail` user (uid 8)
START_TIMEOUT = 30.0
IO_TIMEOUT = 120.0


class BenchError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# messages


FIRST = ["Anna", "Bernd", "Chloé", "David", "Emre", "Fatima", "Georg", "Hanna", "Ivan", "Julia",
         "Kenji", "Lena", "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tereza"]
LAST = ["Müller", "Schmidt", "Dubois", "Rossi", "García", "Nowak", "Jensen", "Smith", "Kowalski",
        "Novák", "Yamamoto", "Okafor", "Larsen", "Silva", "Fischer", "Martin", "Weber", "Costa"]
DOMAINS = ["uni-example.de", "example.org", "mail.example.com", "lists.example.net",
           "students.example.edu", "cs.example.ac.uk"]
TOPICS = ["Exam schedule", "Re: Lab report", "Meeting notes", "Fwd: Conference travel",
          "Seminar room booking", "Re: Re: Thesis draft", "Invoice 2024-{n}", "Build failed",
          "Reading list", "[course-{n}] Assignment {n} feedback", "Kaffee?", "Grant proposal",
          "Server maintenance window", "Über die Prüfung", "Reminder: deadline Friday"]
WORDS = ("the of and to in is that for it as with was on be by this are from at or an "
         "which have not they has had were but all can been one would their more will "
         "there if so what about out up into than them only other new some could time "
         "these two may then do first any like now my such make over our even most me "
         "state after also made many did must before back see through way where get much "
         "go well your know should down work year because come people just say each "
         "mailbox server index message folder delivery replication backend student exam "
         "seminar library thesis lecture grade research project deadline meeting").split()


def _addr(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = f"{first}.{last}".lower().encode("ascii", "ignore").decode()
    return f"{first} {last}", f"{local}@{rng.choice(DOMAINS)}"


def _display(name: str) -> str:
    # Non-ASCII display names as RFC 2047 encoded words, the way clients send them.
    try:
        name.encode("ascii")
        return f'"{name}"'
    except UnicodeEncodeError:
        import base64
        return "=?UTF-8?B?" + base64.b64encode(name.encode()).decode() + "?="


def _paragraphs(rng: random.Random, target: int) -> str:
    out: list[str] = []
    size = 0
    while size < target:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 13)))
        line = line[0].upper() + line[1:] + "."
        out.append(line)
        size += len(line) + 2
        if rng.random() < 0.15:
            out.append("")
    return "\r\n".join(out)


def make_message(i: int, rng: random.Random, base: dt.datetime) -> bytes:
    """One realistic message of about 3-5 KB (CRLF line ends)."""
    from_name, from_addr = _addr(rng)
    to_name, to_addr = _addr(rng)
    date = base + dt.timedelta(seconds=i * 37 + rng.randint(0, 30))
    datestr = date.strftime("%a, %d %b %Y %H:%M:%S +0000")
    subject = rng.choice(TOPICS).format(n=rng.randint(1, 99))
    if not subject.isascii():
        subject = _display(subject).strip('"')
    msgid = f"<{i}.{rng.getrandbits(48):012x}@{from_addr.split('@')[1]}>"
    h = [
        f"Received: from mx{rng.randint(1, 4)}.{rng.choice(DOMAINS)} (mx.example [192.0.2.{rng.randint(1, 254)}])\r\n"
        f"\tby mail.uni-example.de (Postfix) with ESMTPS id {rng.getrandbits(40):010X}\r\n"
        f"\tfor <{USER}@uni-example.de>; {datestr}",
        f"Received: from [10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}] by smtp.example\r\n"
        f"\twith ESMTPSA id {rng.getrandbits(32):08x}; {datestr}",
        f"Date: {datestr}",
        f"From: {_display(from_name)} <{from_addr}>",
        f"To: {_display(to_name)} <{to_addr}>",
    ]
    if rng.random() < 0.4:
        cc = [_addr(rng) for _ in range(rng.randint(1, 4))]
        h.append("Cc: " + ",\r\n\t".join(f"{_display(n)} <{a}>" for n, a in cc))
    h.append(f"Subject: {subject}")
    h.append(f"Message-ID: {msgid}")
    if subject.startswith("Re:") or rng.random() < 0.2:
        ref = f"<{rng.randint(0, max(i, 1))}.{rng.getrandbits(48):012x}@{rng.choice(DOMAINS)}>"
        h.append(f"In-Reply-To: {ref}")
        h.append(f"References: {ref}")
    if rng.random() < 0.3:
        h.append(f"List-Id: <course-{rng.randint(1, 40)}.lists.uni-example.de>")
    h.append("User-Agent: " + rng.choice(["Thunderbird 115.6", "Roundcube 1.6.5", "SOGo 5.9",
                                           "Apple Mail (2.3774)", "Outlook 16.0"]))
    h.append("MIME-Version: 1.0")

    target = rng.randint(2400, 4000)  # headers add ~0.7-1 KB: 3-5 KB in all
    shape = rng.random()
    if shape < 0.55:
        h.append("Content-Type: text/plain; charset=UTF-8; format=flowed")
        h.append("Content-Transfer-Encoding: 8bit")
        body = _paragraphs(rng, target)
    elif shape < 0.85:
        b = f"=_alt_{rng.getrandbits(64):016x}"
        h.append(f'Content-Type: multipart/alternative; boundary="{b}"')
        text = _paragraphs(rng, target // 2)
        html = "<html><body><p>" + _paragraphs(rng, target // 2 - 40).replace("\r\n", "</p>\r\n<p>") + "</p></body></html>"
        body = (f"--{b}\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n{text}\r\n"
                f"--{b}\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n{html}\r\n--{b}--")
    else:
        import base64
        b = f"=_mix_{rng.getrandbits(64):016x}"
        h.append(f'Content-Type: multipart/mixed; boundary="{b}"')
        text = _paragraphs(rng, target - 1400)
        blob = base64.encodebytes(rng.randbytes(1000)).decode().replace("\n", "\r\n").rstrip()
        body = (f"--{b}\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n{text}\r\n"
                f"--{b}\r\nContent-Type: application/pdf; name=\"scan-{i}.pdf\"\r\n"
                f"Content-Disposition: attachment; filename=\"scan-{i}.pdf\"\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{blob}\r\n--{b}--")
    return ("\r\n".join(h) + "\r\n\r\n" + body + "\r\n").encode()


def make_messages(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    base = dt.datetime(2024, 1, 8, 7, 0, 0)
    return [make_message(i, rng, base) for i in range(count)]


# --------------------------------------------------------------------------------------------
# wire helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class LineReader:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError(f"connection closed by server (pending: {self.buf[:200]!r})")
            self.buf += chunk

    def smtp_reply(self) -> tuple[int, str]:
        """One (possibly multi-line) SMTP/LMTP reply."""
        lines = []
        while True:
            line = self.line().decode("utf-8", "replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "\n".join(lines)

    def until_tagged(self, tag: bytes) -> tuple[bytes, bytes]:
        """Everything up to the tagged completion `tag ...`; returns (untagged data, tagged line).

        Scans only the newly received bytes for CRLF + tag, so it costs little even for
        megabytes of FETCH responses. Good enough for a benchmark whose messages we wrote: no
        literal in the responses can contain CRLF followed by our tag.
        """
        needle = b"\r\n" + tag + b" "
        data = b"\r\n" + self.buf
        self.buf = b""
        start = 0
        while True:
            i = data.find(needle, start)
            if i >= 0:
                j = data.find(b"\r\n", i + 2)
                if j >= 0:
                    self.buf = data[j + 2:]
                    return data[2:i + 2], data[i + 2:j]
            start = max(0, len(data) - len(needle) - 2)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise BenchError(f"connection closed while waiting for {tag.decode()} completion")
            data += chunk


def dot_stuff(msg: bytes) -> bytes:
    if msg.startswith(b"."):
        msg = b"." + msg
    return msg.replace(b"\r\n.", b"\r\n..")


def lmtp_deliver(port: int, rcpt: str, messages: list[bytes]) -> float:
    """Deliver all messages over one LMTP connection; returns elapsed seconds."""
    s = connect(port)
    r = LineReader(s)
    code, text = r.smtp_reply()
    if code != 220:
        raise BenchError(f"LMTP greeting: {text}")
    s.sendall(b"LHLO bench.example\r\n")
    code, text = r.smtp_reply()
    if code != 250:
        raise BenchError(f"LHLO: {text}")
    pipelining = "PIPELINING" in text.upper()
    envelope = f"MAIL FROM:<sender@example.org>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode()
    bodies = [dot_stuff(m) + b".\r\n" for m in messages]
    step = max(1, len(messages) // 10)
    t0 = time.perf_counter()
    for n, body in enumerate(bodies, 1):
        if pipelining:
            s.sendall(envelope)
            replies = [r.smtp_reply() for _ in range(3)]
        else:
            replies = []
            for cmd in envelope.split(b"\r\n")[:3]:
                s.sendall(cmd + b"\r\n")
                replies.append(r.smtp_reply())
        (c1, t1), (c2, t2), (c3, t3) = replies
        if c1 != 250 or c2 != 250 or c3 != 354:
            raise BenchError(f"message {n}: MAIL/RCPT/DATA answered {t1!r} / {t2!r} / {t3!r}")
        s.sendall(body)
        code, text = r.smtp_reply()  # one reply per accepted recipient (RFC 2033 4.2)
        if code != 250:
            raise BenchError(f"message {n}: DATA answered {text!r}")
        if n % step == 0:
            el = time.perf_counter() - t0
            log(f"  {n}/{len(bodies)} delivered, {n / el:.0f} msg/s")
    elapsed = time.perf_counter() - t0
    s.sendall(b"QUIT\r\n")
    try:
        r.smtp_reply()
    except (BenchError, OSError):
        pass
    s.close()
    return elapsed


@dataclass
class OpenResult:
    login: float
    select: float
    fetch: float
    fetched: int
    response_bytes: int

    @property
    def total(self) -> float:
        return self.select + self.fetch


def imap_open(port: int, expect: int) -> OpenResult:
    """Fresh connection, LOGIN, then timed SELECT INBOX + UID FETCH 1:* (...)."""
    s = connect(port)
    r = LineReader(s)
    greeting = r.line()
    if not greeting.startswith(b"* OK"):
        raise BenchError(f"IMAP greeting: {greeting!r}")
    t0 = time.perf_counter()
    s.sendall(f'L1 LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
    _, tagged = r.until_tagged(b"L1")
    if not tagged.startswith(b"L1 OK"):
        raise BenchError(f"LOGIN: {tagged!r}")
    t1 = time.perf_counter()
    s.sendall(b"S1 SELECT INBOX\r\n")
    untagged, tagged = r.until_tagged(b"S1")
    if not tagged.startswith(b"S1 OK"):
        raise BenchError(f"SELECT INBOX: {tagged!r}")
    t2 = time.perf_counter()
    s.sendall(b"F1 UID FETCH 1:* (FLAGS ENVELOPE INTERNALDATE RFC822.SIZE)\r\n")
    data, tagged = r.until_tagged(b"F1")
    t3 = time.perf_counter()
    if not tagged.startswith(b"F1 OK"):
        raise BenchError(f"UID FETCH: {tagged!r}")
    exists = [ln for ln in untagged.split(b"\r\n") if ln.endswith(b" EXISTS")]
    fetched = data.count(b" FETCH (")
    if fetched != expect:
        raise BenchError(f"UID FETCH returned {fetched} messages, expected {expect} "
                         f"(SELECT said {exists!r})")
    for item in (b"ENVELOPE (", b"INTERNALDATE ", b"RFC822.SIZE ", b"FLAGS ("):
        if data.count(item) < expect:
            raise BenchError(f"UID FETCH: {item.decode().strip()} missing from some responses")
    s.sendall(b"Z1 LOGOUT\r\n")
    try:
        r.until_tagged(b"Z1")
    except (BenchError, OSError):
        pass
    s.close()
    return OpenResult(login=t1 - t0, select=t2 - t1, fetch=t3 - t2, fetched=fetched,
                      response_bytes=len(data))


def greets(port: int, prefix: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            return LineReader(s).line().startswith(prefix)
    except (OSError, BenchError):
        return False


# --------------------------------------------------------------------------------------------
# servers


@dataclass
class Server:
    name: str
    workdir: Path
    lmtp_port: int = field(default_factory=free_port)
    imap_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    version: str = ""
    notes: str = ""

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        logf = open(self.log_path, "ab")
        logf.write(f"\n=== bench start {dt.datetime.now().isoformat()}\n".encode())
        logf.flush()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + START_TIMEOUT
        for port, prefix, proto in ((self.lmtp_port, b"220", "LMTP"),
                                    (self.imap_port, b"* OK", "IMAP")):
            while not greets(port, prefix):
                if self.proc.poll() is not None:
                    self.fail(f"exited with status {self.proc.returncode} during start-up")
                if time.monotonic() > deadline:
                    self.fail(f"{proto} on 127.0.0.1:{port} did not answer within {START_TIMEOUT:.0f} s")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def log_tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def fail(self, why: str) -> None:
        raise BenchError(f"{self.name} {why}\n----- last lines of {self.log_path} -----\n"
                         f"{self.log_tail()}")


class Dovecot(Server):
    def __init__(self, workdir: Path, mail_format: str):
        super().__init__("dovecot", workdir)
        self.mail_format = mail_format
        self.version = run_text(["dovecot", "--version"]) or "?"
        self.conf = workdir / "dovecot.conf"
        self.setup()

    def setup(self) -> None:
        try:
            import pwd
            pw = pwd.getpwnam(MAIL_OWNER)
        except KeyError:
            raise BenchError(f"user {MAIL_OWNER!r} not found (Dovecot's mail_uid)")
        home = self.workdir / "home"
        for d in ("run", "state", "home"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        passwd = self.workdir / "passwd"
        passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        location = {
            "maildir": f"maildir:{home}/%u/Maildir",
            "sdbox": f"sdbox:{home}/%u/sdbox",
            "mdbox": f"mdbox:{home}/%u/mdbox",
        }[self.mail_format]
        self.notes = f"{self.mail_format}, mail_fsync=optimized (default), index files on"
        self.conf.write_text(f"""# private Dovecot of bench/lmtp_imap.py; defaults except where noted
instance_name = bench-dovecot-{os.getpid()}
base_dir = {self.workdir}/run
state_dir = {self.workdir}/state
log_path = {self.log_path}
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# LMTP recipient bench@localhost and IMAP login bench are the same user
auth_username_format = %Ln
postmaster_address = postmaster@localhost
mail_location = {location}
mail_uid = {pw.pw_uid}
mail_gid = {pw.pw_gid}
first_valid_uid = {pw.pw_uid}
first_valid_gid = {pw.pw_gid}
passdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={pw.pw_uid} gid={pw.pw_gid} home={home}/%u
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
        check = subprocess.run(["doveconf", "-c", str(self.conf), "-n"], capture_output=True, text=True)
        if check.returncode != 0:
            raise BenchError(f"dovecot config rejected:\n{check.stderr}")

    def command(self) -> list[str]:
        return ["dovecot", "-F", "-c", str(self.conf)]


class Mailstored(Server):
    def __init__(self, workdir: Path, binary: Path):
        super().__init__("mailstored", workdir)
        # A private copy: a rebuild during the run must not swap the binary between the
        # delivery and the open phases.
        workdir.mkdir(parents=True, exist_ok=True)
        self.binary = workdir / "mailstored"
        shutil.copy2(binary, self.binary)
        self.pop3_port = free_port()
        self.conf = workdir / "mailstored.toml"
        self.version = git_describe()
        self.setup()

    def setup(self) -> None:
        h = subprocess.run([str(self.binary), "hash-password"], input=PASSWORD + "\n",
                           capture_output=True, text=True, timeout=60)
        pw_hash = h.stdout.strip()
        if h.returncode != 0 or not pw_hash.startswith("$argon2"):
            raise BenchError(f"'mailstored hash-password' failed: {h.stderr.strip() or pw_hash!r}")
        (self.workdir / "users").write_text(f"{USER}:{pw_hash}\n")
        self.notes = "per-user LMDB index, mail/ files fsynced before 250"
        self.conf.write_text(f"""# private mailstored of bench/lmtp_imap.py
name = "bench"
hostname = "localhost"
data_dir = "data"
users_file = "users"

[listen]
imap = "127.0.0.1:{self.imap_port}"
pop3 = "127.0.0.1:{self.pop3_port}"
lmtp = "127.0.0.1:{self.lmtp_port}"

[limits]
max_line_bytes = 65536
max_literal_bytes = 52428800
max_connections = 2000
imap_idle_timeout_secs = 1800
pop3_timeout_secs = 600
lmtp_timeout_secs = 300
write_timeout_secs = 60

[store]
expunge_retention_secs = 604800
purge_interval_secs = 3600
open_index_cache = 128
""")

    def command(self) -> list[str]:
        return [str(self.binary), "--config", str(self.conf)]


def run_text(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_describe() -> str:
    rev = run_text(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = run_text(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return (rev or "unknown") + ("+dirty" if dirty else "")


def drop_caches() -> str:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "yes"
    except OSError as e:
        log(f"WARNING: could not drop the page cache ({e}); first open is NOT cold")
        return f"no ({e.strerror})"


# --------------------------------------------------------------------------------------------
# report


def fmt_rate(x: float) -> str:
    return f"{x:,.0f} msg/s"


def fmt_secs(x: float) -> str:
    return f"{x * 1000:,.0f} ms" if x >= 0.1 else f"{x * 1000:,.1f} ms"


def report(args, servers: list[Server], rates: dict, opens: dict, dropped: dict,
           sizes: list[int]) -> str:
    names = [s.name for s in servers]
    both = len(servers) == 2 and servers[0].name == "dovecot"
    now = dt.datetime.now().astimezone()
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fs = run_text(["df", "--output=fstype", str(args.workdir)]).splitlines()[-1:] or ["?"]
    out = []
    out.append(f"### LMTP delivery + first/second open, {args.count:,} messages — {now:%Y-%m-%d %H:%M %Z}")
    out.append("")
    out.append(f"Command: `python3 bench/lmtp_imap.py --count {args.count}"
               + (f" --dovecot-format {args.dovecot_format}" if args.dovecot_format != "maildir" else "")
               + "`  ")
    out.append(f"Machine: {platform.node()}, {os.cpu_count()} CPUs ({cpu}), "
               f"{platform.system()} {platform.release()}, work dir on {fs[0]}, "
               f"load average at start {args.load_at_start:.2f}  ")
    out.append(f"Messages: {len(sizes):,}, {min(sizes):,}–{max(sizes):,} bytes "
               f"(mean {sum(sizes) / len(sizes):,.0f}), one recipient, one LMTP connection "
               f"(MAIL/RCPT/DATA pipelined)  ")
    for s in servers:
        out.append(f"{s.name}: {s.version} — {s.notes}; page cache dropped before first open: "
                   f"{dropped.get(s.name, '?')}  ")
    out.append("")
    head = "| | " + " | ".join(names)
    sep = "|---|" + "---:|" * len(names)
    if both:
        head += " | mailstored/dovecot | speed-up"
        sep += "---:|---:|"
    out.append(head + " |")
    out.append(sep)

    def row(label: str, values: list[float], fmt, higher_better: bool) -> None:
        cells = [fmt(v) for v in values]
        line = f"| {label} | " + " | ".join(cells)
        if both:
            d, m = values
            ratio = m / d if d else float("inf")
            speedup = ratio if higher_better else (d / m if m else float("inf"))
            line += f" | {ratio:.2f} | {speedup:.1f}×"
        out.append(line + " |")

    row("LMTP delivery", [rates[n] for n in names], fmt_rate, True)
    for phase in ("first", "second"):
        row(f"{phase} open: SELECT + UID FETCH", [opens[n][phase].total for n in names], fmt_secs, False)
        row(f"  of which SELECT", [opens[n][phase].select for n in names], fmt_secs, False)
        row(f"  of which UID FETCH", [opens[n][phase].fetch for n in names], fmt_secs, False)
    out.append("")
    out.append("Speed-up: how many times better mailstored is (rate ratio for delivery, "
               "dovecot time / mailstored time for opens). LOGIN is not in the timed part. "
               "FETCH response sizes: "
               + ", ".join(f"{n} {opens[n]['first'].response_bytes:,} bytes" for n in names) + ".")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------


def side_by_side_args(doc: str, count: int, count_help: str) -> argparse.ArgumentParser:
    """The options every side-by-side benchmark takes (this one, imap_sort.py, sieve.py)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=count, help=f"{count_help} (default {count})")
    ap.add_argument("--seed", type=int, default=2, help="seed of the message generator")
    ap.add_argument("--servers", default="dovecot,mailstored",
                    help="comma-separated subset of dovecot,mailstored (default both)")
    ap.add_argument("--mailstored", type=Path, default=ROOT / "target/release/mailstored",
                    help="mailstored binary (default target/release/mailstored)")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("BENCH_DIR", "/var/tmp")),
                    help="parent of the temporary directory (must be on a real disk; default /var/tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return ap


def in_work_dir(args, prefix: str, servers: list[Server], work) -> int:
    """Runs `work(tmp)` in a fresh directory under --workdir (which it becomes) and prints the
    report it returns. Whatever happens, every server in `servers` is killed and the directory
    removed (kept with --keep). Returns the exit status."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=args.workdir))
    os.chmod(tmp, 0o755)  # Dovecot's mail user must reach its home under it
    args.workdir = tmp
    log(f"work dir {tmp}")
    try:
        print(work(tmp))
        return 0
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        for s in servers:
            s.kill()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = side_by_side_args(__doc__, 10000, "messages to deliver")
    ap.add_argument("--dovecot-format", choices=["maildir", "sdbox", "mdbox"], default="maildir",
                    help="Dovecot mailbox format (default maildir)")
    args = ap.parse_args()

    wanted = [n.strip() for n in args.servers.split(",") if n.strip()]
    if not wanted or any(n not in ("dovecot", "mailstored") for n in wanted):
        ap.error("--servers takes dovecot and/or mailstored")
    if args.count < 1:
        ap.error("--count must be positive")
    if "dovecot" in wanted and os.geteuid() != 0:
        ap.error("run as root: the private Dovecot switches to mail_uid for mail access")
    if "dovecot" in wanted and not shutil.which("dovecot"):
        ap.error("dovecot not found: run scripts/install-deps.sh")
    if "mailstored" in wanted and not os.access(args.mailstored, os.X_OK):
        ap.error(f"{args.mailstored} not found: cargo build --release")

    args.load_at_start = os.getloadavg()[0]
    if args.load_at_start > 0.5 * (os.cpu_count() or 1):
        log(f"WARNING: load average {args.load_at_start:.2f} on {os.cpu_count()} CPUs: "
            "something else is running (a build?); figures will be low and noisy")
    servers: list[Server] = []

    def work(tmp: Path) -> str:
        log(f"generating {args.count} messages")
        messages = make_messages(args.count, args.seed)
        sizes = [len(m) for m in messages]
        for name in ("dovecot", "mailstored"):
            if name not in wanted:
                continue
            if name == "dovecot":
                servers.append(Dovecot(tmp / "dovecot", args.dovecot_format))
            else:
                servers.append(Mailstored(tmp / "mailstored", args.mailstored))

        rates: dict[str, float] = {}
        for s in servers:
            log(f"{s.name}: starting (LMTP {s.lmtp_port}, IMAP {s.imap_port})")
            s.start()
            log(f"{s.name}: delivering {args.count} messages over one LMTP connection")
            elapsed = lmtp_deliver(s.lmtp_port, RCPT, messages)
            rates[s.name] = args.count / elapsed
            log(f"{s.name}: {rates[s.name]:.0f} msg/s ({elapsed:.2f} s)")
            s.stop()

        opens: dict[str, dict[str, OpenResult]] = {}
        dropped: dict[str, str] = {}
        for s in servers:
            s.stop()
            dropped[s.name] = drop_caches()
            s.start()
            first = imap_open(s.imap_port, args.count)
            second = imap_open(s.imap_port, args.count)
            opens[s.name] = {"first": first, "second": second}
            log(f"{s.name}: first open {first.total * 1000:.1f} ms "
                f"(SELECT {first.select * 1000:.1f} + FETCH {first.fetch * 1000:.1f}), "
                f"second open {second.total * 1000:.1f} ms")
            s.stop()

        return report(args, servers, rates, opens, dropped, sizes)

    return in_work_dir(args, "mailscale-bench-", servers, work)

if __name__ == "__main__":
    sys.exit(main())
