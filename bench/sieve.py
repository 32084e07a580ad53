#!/usr/bin/env python3
"""What Sieve costs per delivered message: mailstored vs Dovecot 2.3 + Pigeonhole, side by side
(issue 6, "Benchmark").

For each server, three fresh instances on the same disk, one after the other, each getting the
same N generated messages (bench/lmtp_imap.py's generator) for one user over one LMTP
connection: without Sieve; with the 50-rule script below (header, address, size and body tests)
but every `fileinto` turned into an `addflag`, so every message stays in INBOX and the folder
sizes match the run without Sieve (Dovecot's Maildir delivery slows as INBOX grows, which would
otherwise credit Sieve with the messages it files elsewhere); with the full script (fileinto +
stop into folders created over IMAP beforehand, so no delivery depends on folder
auto-creation).

The cost of Sieve per message is the difference of the per-message delivery times of the first
two runs (1/rate with − 1/rate without). Wall-clock time on a shared disk moves with other
fsync traffic, so the servers' CPU time (user + system, from /proc, over all their processes)
per message is reported too: the steadier measure of what Sieve adds.

The script reaches the servers the way a user's client puts it
there: ManageSieve PUTSCRIPT + SETACTIVE on mailstored, the file + the `active` link of
Pigeonhole's `sieve = file:...;active=...` on Dovecot (compiled by `sievec` first, so a syntax
error fails the run instead of silently delivering everything to INBOX).

Check: after the Sieve run, both servers must hold the same number of messages in every folder
(STATUS MESSAGES): the two implementations filed the same messages the same way.

Progress on stderr; a markdown section for BENCHMARKS.md on stdout.

    python3 bench/sieve.py                    # 5,000 messages per run
    python3 bench/sieve.py --count 500        # quick run
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import platform
import pwd
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import lmtp_imap  # noqa: E402
from lmtp_imap import (MAIL_OWNER, PASSWORD, RCPT, USER, BenchError, Dovecot, LineReader,  # noqa: E402
                       Mailstored, Server, connect, free_port, lmtp_deliver, log, make_messages,
                       run_text)

SCRIPT_NAME = "bench"


def keep_only(script: str) -> str:
    """The same 50 rules with every `fileinto "X"; stop;` turned into `addflag "$Filed-X";`:
    the same tests evaluated, every message kept in INBOX."""
    return re.sub(r'fileinto "([^"]+)";\n    stop;', r'addflag "$Filed-\1";', script)


def build_script() -> tuple[str, list[str]]:
    """The 50-rule script and the folders it files into.

    Shaped like a student's or lecturer's real filter set: list mail into per-course folders,
    colleagues' domains flagged, keywords in subjects and bodies flagged, big mail flagged, a few
    catch-alls at the end. Most rules do not match a given message (as in real scripts), so the
    cost measured is mostly that of evaluating tests.
    """
    rules: list[str] = []
    folders: list[str] = []
    # 1-12: mailing lists by List-Id, each into its folder (header :contains)
    for n in range(1, 13):
        folder = f"Course-{n}"
        folders.append(folder)
        rules.append(f'if header :contains "List-Id" "<course-{n}.lists.uni-example.de>" {{\n'
                     f'    fileinto "{folder}";\n    stop;\n}}')
    # 13-20: senders' domains flagged (address :domain :is)
    for d, kw in [("uni-example.de", "$Campus"), ("example.org", "$Partner"),
                  ("mail.example.com", "$Vendor"), ("students.example.edu", "$Students"),
                  ("cs.example.ac.uk", "$UK"), ("lists.example.net", "$ListsNet"),
                  ("example.invalid", "$Spam"), ("phish.example", "$Spam")]:
        rules.append(f'if address :domain :is "from" "{d}" {{\n    addflag "{kw}";\n}}')
    # 21-28: people (address :localpart / :all, header :matches on display names)
    for who, kw in [("anna.schmidt", "$Anna"), ("david.rossi", "$David"), ("lena.nowak", "$Lena"),
                    ("sven.smith", "$Sven")]:
        rules.append(f'if address :localpart :is "from" "{who}" {{\n    addflag "{kw}";\n}}')
    for name, kw in [("*Yamamoto*", "$Kenji"), ("*Okafor*", "$Okafor"), ("*Professor*", "$Prof"),
                     ("*Dean*", "$Dean")]:
        rules.append(f'if header :matches "From" "{name}" {{\n    addflag "{kw}";\n}}')
    # 29-38: subjects (header :contains / :matches / :is)
    for pat, kw in [("Exam", "$Exam"), ("Thesis", "$Thesis"), ("Build failed", "$CI"),
                    ("Grant", "$Grant"), ("deadline", "$Deadline"), ("Seminar", "$Seminar"),
                    ("Meeting", "$Meeting")]:
        rules.append(f'if header :contains "Subject" "{pat}" {{\n    addflag "{kw}";\n}}')
    rules.append('if header :matches "Subject" "Invoice 2024-*" {\n    addflag "$Invoice";\n}')
    rules.append('if header :is "Subject" "Kaffee?" {\n    addflag "$Coffee";\n}')
    rules.append('if header :matches "Subject" "[[]course-*] Assignment * feedback" {\n'
                 '    addflag "$Feedback";\n}')
    # 39-42: size
    rules.append('if size :over 100K {\n    addflag "$Big";\n}')
    rules.append('if size :over 4500 {\n    addflag "$Longish";\n}')
    rules.append('if size :under 3200 {\n    addflag "$Short";\n}')
    rules.append('if allof (size :over 4K, header :contains "Content-Type" "multipart/mixed") {\n'
                 '    addflag "$Attachment";\n}')
    # 43-46: bodies (body :contains, the expensive kind)
    for pat, kw in [("deadline", "$BodyDeadline"), ("replication", "$BodyRepl"),
                    ("unsubscribe", "$Unsub"), ("password", "$Password")]:
        rules.append(f'if body :contains "{pat}" {{\n    addflag "{kw}";\n}}')
    # 47-50: combined tests filing into folders
    folders += ["Invoices", "Travel", "Junk", "Automated"]
    rules.append('if anyof (header :contains "Subject" "Invoice", address :is "from" "billing@example.org") {\n'
                 '    fileinto "Invoices";\n    stop;\n}')
    rules.append('if allof (header :contains "Subject" "Conference", not header :contains "Subject" "Re:") {\n'
                 '    fileinto "Travel";\n    stop;\n}')
    rules.append('if anyof (header :contains "X-Spam-Flag" "YES", address :domain :is "from" "example.invalid") {\n'
                 '    fileinto "Junk";\n    stop;\n}')
    rules.append('if allof (exists "User-Agent", header :contains "User-Agent" "Outlook", '
                 'header :contains "Subject" "Server maintenance") {\n'
                 '    fileinto "Automated";\n    stop;\n}')
    assert len(rules) == 50, len(rules)
    script = ('require ["fileinto", "imap4flags", "body"];\n'
              "# bench/sieve.py: 50 rules\n" + "\n".join(rules) + "\n")
    return script, folders


class Session:
    def __init__(self, port: int):
        self.sock = connect(port)
        self.r = LineReader(self.sock)
        self.n = 0
        if not self.r.line().startswith(b"* OK"):
            raise BenchError("IMAP greeting")
        self.run(f'LOGIN "{USER}" "{PASSWORD}"')

    def run(self, command: str) -> bytes:
        self.n += 1
        tag = f"A{self.n}".encode()
        self.sock.sendall(tag + b" " + command.encode() + b"\r\n")
        data, tagged = self.r.until_tagged(tag)
        if not tagged.startswith(tag + b" OK"):
            raise BenchError(f"{command}: {tagged!r}")
        return data

    def close(self) -> None:
        self.sock.close()


def create_folders(server: Server, folders: list[str]) -> None:
    s = Session(server.imap_port)
    for f in folders:
        try:
            s.run(f'CREATE "{f}"')
        except BenchError as e:
            if "ALREADYEXISTS" not in str(e):  # mailstored's default Junk folder
                raise
    s.close()


def folder_counts(server: Server, folders: list[str]) -> dict[str, int]:
    s = Session(server.imap_port)
    out = {}
    for f in ["INBOX"] + folders:
        data = s.run(f'STATUS "{f}" (MESSAGES)').decode()
        out[f] = int(data.rsplit("MESSAGES", 1)[1].strip(" )\r\n").split(")")[0])
    s.close()
    return out


class SieveDovecot(Dovecot):
    """The benchmark's private Dovecot with Pigeonhole at LMTP delivery."""

    def __init__(self, workdir: Path, script: str | None):
        self.script = script
        super().__init__(workdir, "maildir")

    def setup(self) -> None:
        super().setup()
        pw = pwd.getpwnam(MAIL_OWNER)
        home = self.workdir / "home" / USER
        sieve_dir = home / "sieve"
        sieve_dir.mkdir(parents=True, exist_ok=True)
        active = home / ".dovecot.sieve"
        if self.script is not None:
            path = sieve_dir / f"{SCRIPT_NAME}.sieve"
            path.write_text(self.script)
            check = subprocess.run(["sievec", str(path)], capture_output=True, text=True)
            if check.returncode != 0:
                raise BenchError(f"sievec rejected the script:\n{check.stdout}{check.stderr}")
            active.symlink_to(f"sieve/{SCRIPT_NAME}.sieve")
        for p in [home, sieve_dir, *sieve_dir.iterdir()]:
            os.chown(p, pw.pw_uid, pw.pw_gid)
        if active.is_symlink():
            os.lchown(active, pw.pw_uid, pw.pw_gid)
        with open(self.conf, "a") as f:
            f.write(f"""
# Pigeonhole at LMTP delivery (bench/sieve.py)
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:{sieve_dir};active={active}
}}
""")
        self.notes += "; Pigeonhole " + (run_text(["dpkg-query", "-W", "-f=${Version}", "dovecot-sieve"]) or "?")
        check = subprocess.run(["doveconf", "-c", str(self.conf), "-n"], capture_output=True, text=True)
        if check.returncode != 0:
            raise BenchError(f"dovecot config rejected:\n{check.stderr}")


class SieveMailstored(Mailstored):
    """The benchmark's private mailstored with a ManageSieve listener (PLAIN over loopback)."""

    def setup(self) -> None:
        super().setup()
        self.sieve_port = free_port()
        text = self.conf.read_text()
        text = text.replace(f'lmtp = "127.0.0.1:{self.lmtp_port}"\n',
                            f'lmtp = "127.0.0.1:{self.lmtp_port}"\n'
                            f'managesieve = "127.0.0.1:{self.sieve_port}"\n', 1)
        text += "\n[sieve]\nplaintext_auth = true\n"
        self.conf.write_text(text)

    def put_script(self, script: str) -> None:
        """PUTSCRIPT + SETACTIVE over ManageSieve (RFC 5804), as a user's client does."""
        s = connect(self.sieve_port)
        r = LineReader(s)

        def reply(what: str) -> None:
            while True:
                line = r.line()
                if line.startswith(b"OK"):
                    return
                if line.startswith((b"NO", b"BYE")):
                    raise BenchError(f"ManageSieve {what}: {line!r}")

        reply("greeting")
        blob = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
        s.sendall(f'AUTHENTICATE "PLAIN" "{blob}"\r\n'.encode())
        reply("AUTHENTICATE")
        body = script.encode()
        s.sendall(f'PUTSCRIPT "{SCRIPT_NAME}" {{{len(body)}+}}\r\n'.encode() + body + b"\r\n")
        reply("PUTSCRIPT")
        s.sendall(f'SETACTIVE "{SCRIPT_NAME}"\r\n'.encode())
        reply("SETACTIVE")
        s.sendall(b"LOGOUT\r\n")
        s.close()


def server_cpu(server: Server) -> float:
    """CPU seconds (user + system) used so far by the server: every live process of its session
    (mailstored's threads, Dovecot's master and its lmtp/auth/... children) plus the children
    the master has already reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    sid = server.proc.pid
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        # fields after the name: state(0) ppid(1) pgrp(2) session(3) ... utime(11) stime(12)
        # cutime(13) cstime(14)
        if int(f[3]) != sid:
            continue
        total += int(f[11]) + int(f[12])
        if int(d) == sid:
            total += int(f[13]) + int(f[14])
    return total / tick


def run_one(name: str, workdir: Path, args, messages: list[bytes], script: str | None,
            folders: list[str]) -> tuple[float, float, dict[str, int], Server]:
    if name == "dovecot":
        server: Server = SieveDovecot(workdir, script)
    else:
        server = SieveMailstored(workdir, args.mailstored)
    try:
        server.start()
        create_folders(server, folders)
        if script is not None and isinstance(server, SieveMailstored):
            server.put_script(script)
        label = "without" if script is None else ("with" if "fileinto" in script.split("\n", 1)[1] else "keep-only")
        log(f"{name}: delivering {len(messages)} messages, Sieve: {label}")
        cpu0 = server_cpu(server)
        rate = len(messages) / lmtp_deliver(server.lmtp_port, RCPT, messages)
        time.sleep(0.5)  # let Dovecot's lmtp process finish its QUIT
        cpu = (server_cpu(server) - cpu0) / len(messages)
        log(f"{name}, Sieve {label}: {rate:,.0f} msg/s, server CPU {cpu * 1e6:,.0f} µs/msg")
        counts = folder_counts(server, folders)
        if sum(counts.values()) != len(messages):
            raise BenchError(f"{name}: {sum(counts.values())} messages in the folders, expected "
                             f"{len(messages)} ({counts})")
        return rate, cpu, counts, server
    finally:
        server.kill()


def report(args, rates: dict, counts: dict, versions: dict, sizes: list[int], script: str) -> str:
    names = list(rates)
    both = names == ["dovecot", "mailstored"]
    now = dt.datetime.now().astimezone()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")
    fs = run_text(["df", "--output=fstype", str(args.workdir)]).splitlines()[-1:] or ["?"]
    out = [f"### Sieve at LMTP delivery, 50-rule script, {args.count:,} messages per run — "
           f"{now:%Y-%m-%d %H:%M %Z}", ""]
    out.append(f"Command: `python3 bench/sieve.py --count {args.count}`  ")
    out.append(f"Machine: {platform.node()}, {os.cpu_count()} CPUs ({cpu}), {platform.system()} "
               f"{platform.release()}, work dir on {fs[0]}, load average at start "
               f"{args.load_at_start:.2f}, at the end {os.getloadavg()[0]:.2f}  ")
    out.append(f"Messages: {len(sizes):,}, {min(sizes):,}–{max(sizes):,} bytes (mean "
               f"{sum(sizes) / len(sizes):,.0f}), one recipient, one LMTP connection; script "
               f"{len(script.encode()):,} bytes, 50 rules  ")
    for n in names:
        out.append(f"{n}: {versions[n]}  ")
    out.append("")
    head = "| | " + " | ".join(names)
    sep = "|---|" + "---:|" * len(names)
    if both:
        head += " | mailstored/dovecot"
        sep += "---:|"
    out += [head + " |", sep]

    def row(label: str, vals: list[float], fmt, ratio: bool = True) -> None:
        line = f"| {label} | " + " | ".join(fmt(v) for v in vals)
        if both:
            line += f" | {vals[1] / vals[0]:.2f}" if ratio and vals[0] else " | "
        out.append(line + " |")

    us = lambda v: f"{v:,.0f} µs"
    wall = {n: {k: 1e6 / rates[n][k] for k in ("without", "keep", "with")} for n in names}
    cpu = {n: {k: rates[n][f"cpu-{k}"] * 1e6 for k in ("without", "keep", "with")} for n in names}
    row("delivery without Sieve", [rates[n]["without"] for n in names], lambda v: f"{v:,.0f} msg/s")
    row("delivery, 50 rules, all kept in INBOX", [rates[n]["keep"] for n in names], lambda v: f"{v:,.0f} msg/s")
    row("delivery, 50 rules with fileinto", [rates[n]["with"] for n in names], lambda v: f"{v:,.0f} msg/s")
    row("wall time per message without Sieve", [wall[n]["without"] for n in names], us)
    row("wall time per message, 50 rules, all kept", [wall[n]["keep"] for n in names], us)
    row("**Sieve cost per message, wall time** (difference)",
        [wall[n]["keep"] - wall[n]["without"] for n in names], lambda v: f"**{v:,.0f} µs**")
    row("server CPU per message without Sieve", [cpu[n]["without"] for n in names], us)
    row("server CPU per message, 50 rules, all kept", [cpu[n]["keep"] for n in names], us)
    row("**Sieve cost per message, server CPU** (difference)",
        [cpu[n]["keep"] - cpu[n]["without"] for n in names], lambda v: f"**{v:,.0f} µs**")
    row("server CPU per message, 50 rules with fileinto", [cpu[n]["with"] for n in names], us)
    out.append("")
    filed = {n: {f: c for f, c in counts[n].items() if c} for n in names}
    out.append("Folders after the Sieve run (STATUS MESSAGES): " + "; ".join(
        f"{n}: " + ", ".join(f"{f} {c:,}" for f, c in filed[n].items()) for n in names) + ".")
    if both:
        out.append("Same counts in every folder on both servers: "
                   + ("yes." if counts["dovecot"] == counts["mailstored"] else "**no**."))
    return "\n".join(out)


def main() -> int:
    ap = lmtp_imap.side_by_side_args(__doc__, 5000, "messages per run")
    ap.add_argument("--print-script", action="store_true", help="print the script and exit")
    args = ap.parse_args()

    script, folders = build_script()
    if args.print_script:
        print(script, end="")
        return 0
    wanted = [n.strip() for n in args.servers.split(",") if n.strip()]
    if not wanted or any(n not in ("dovecot", "mailstored") for n in wanted):
        ap.error("--servers takes dovecot and/or mailstored")
    if "dovecot" in wanted:
        if os.geteuid() != 0:
            ap.error("run as root: the private Dovecot switches to mail_uid for mail access")
        if not shutil.which("sievec") or not Path("/usr/lib/dovecot/modules/lib90_sieve_plugin.so").exists():
            ap.error("Pigeonhole not found: run bench/install-bench-deps.sh (dovecot-sieve)")
    if "mailstored" in wanted and not os.access(args.mailstored, os.X_OK):
        ap.error(f"{args.mailstored} not found: cargo build --release -p backend-daemon")

    args.load_at_start = os.getloadavg()[0]
    if args.load_at_start > 0.5 * (os.cpu_count() or 1):
        log(f"WARNING: load average {args.load_at_start:.2f}: figures will be noisy")
    def work(tmp: Path) -> str:
        messages = make_messages(args.count, args.seed)
        rates: dict[str, dict[str, float]] = {}
        counts: dict[str, dict[str, int]] = {}
        versions: dict[str, str] = {}
        for name in ("dovecot", "mailstored"):
            if name not in wanted:
                continue
            rates[name] = {}
            for label, sc in (("without", None), ("keep", keep_only(script)), ("with", script)):
                rate, cpu, c, server = run_one(name, tmp / f"{name}-{label}", args, messages, sc, folders)
                rates[name][label] = rate
                rates[name][f"cpu-{label}"] = cpu
                if label == "with":
                    counts[name] = c
                    versions[name] = f"{server.version} — {server.notes}"
        return report(args, rates, counts, versions, [len(m) for m in messages], script)

    return lmtp_imap.in_work_dir(args, "mailscale-sieve-", [], work)

if __name__ == "__main__":
    sys.exit(main())
