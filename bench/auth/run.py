#!/usr/bin/env python3
"""The auth_http benchmark of issue 3: ngx-mailauth vs the reference Lua script vs nginx's floor.

In ONE run, against ONE nginx instance whose one http server has three locations:

  /module  ngx-mailauth (`mailauth;`): roles in LMDB, Redis credential cache, MST1 tickets
  /lua     lua/auth.lua under Debian's libnginx-mod-http-lua: the same decision, Redis spoken
           over a cosocket, roles from a lua_shared_dict, MST1 tickets
  /floor   `return 200` with the same answer headers (`add_header ... always`): what nginx
           costs by itself

it measures requests/s and p50/p99 latency with wrk on the cache-hit path with a roles lookup
(every user logged in once first, so the credential is in Redis and, for the module, in its
worker tier), with keep-alive and with a new connection per request (`Connection: close`, what
nginx mail does: one auth_http connection per login).

Set-up, all private, in a fresh directory under /var/tmp: a roles database with --users users
(default 300) spread over 4 backends (`mailctl roles backend add` + `roles import`), a users
file (argon2id, `mailstored hash-password`), a ticket key (`mailctl ticket-key generate`), a
cache secret, redis-server on a free loopback port, nginx on a free loopback port. Everything
started is stopped at the end.

CPU placement (2-core machine): nginx runs --workers workers (default 1), pinned to CPU 0 with
`worker_cpu_affinity` when there is one worker; wrk (one thread) and redis-server are pinned to
the other CPU (taskset), so the load generator does not take the server's core. --no-pin lets
the scheduler place everything.

Checks: before measuring, every location must answer `Auth-Status: OK` for every user with the
user's backend and, for /module and /lua, a ticket that `mailctl ticket verify` accepts, and a
wrong password must be refused; then a 1 s wrk check run per location and mode looks at every
answer (`Auth-Status: OK`, no errors). Measured runs must report no wrk errors and no non-2xx
answers; a run that fails a check is reported as failed, never as a figure.

Besides req/s and latency, each measurement reads the CPU time (utime + stime, /proc) that the
nginx worker(s) and redis-server spent during it, per request: when the loader rather than nginx
is the limit (with a new connection per request, one wrk thread on one core tops out near the
floor's rate), the CPU per request still shows what each location costs. wrk's latency is from
the request's first byte written to the answer; the TCP connect of the new-connection mode is
not in it (it is in req/s).

Progress goes to stderr; a markdown section for BENCHMARKS.md goes to stdout.

    bench/install-bench-deps.sh                       # wrk, redis-server, libnginx-mod-http-lua
    . target/nginx-env.sh && cargo build --release -p ngx-mailauth --features nginx
    cargo build --release -p mailctl -p mailstored
    python3 bench/auth/run.py                         # 3 rounds x 10 s per measurement (~5 min)
    python3 bench/auth/run.py --duration 3 --without-module   # Lua and floor only
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NGINX = "/usr/sbin/nginx"
LUA_SO = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
NDK_SO = Path("/usr/lib/nginx/modules/ndk_http_module.so")
PASSWORD = "bench-password-1"
# 4 backends; the users are spread round-robin. Loopback addresses (nothing connects to them).
BACKENDS = [
    ("a1", "127.0.0.1", 10143, 10110),
    ("a2", "127.0.0.2", 11143, 11110),
    ("b1", "127.0.0.3", 12143, 12110),
    ("b2", "127.0.0.4", 13143, 13110),
]
LOCATIONS = ("floor", "module", "lua")

# The module's location. Directive names from ngx-mailauth/README.md.
MODULE_LOCATION = """        location = /module {{
            mailauth;
            mailauth_roles {rundir}/roles;
            mailauth_users {rundir}/users;
            mailauth_cache redis://127.0.0.1:{redis_port};
            mailauth_cache_secret {rundir}/cache.secret;
            mailauth_cache_ttl 1h;
            mailauth_ticket_key {rundir}/ticket.key;
            mailauth_ticket_ttl 60s;
            mailauth_lockout 10 15m;
            mailauth_fail_delay 3s;
        }}"""


def log(msg: str) -> None:
    print(f"bench-auth: {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, what: str, proc: subprocess.Popen | None = None, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} is not listening on 127.0.0.1:{port} after {timeout}s")


def run(cmd: list[str], **kw) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(map(str, cmd))}: exit {r.returncode}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def auth_request(port: int, location: str, user: str, password: str) -> dict[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "GET",
            f"/{location}",
            headers={
                "Auth-Method": "plain",
                "Auth-User": user,
                "Auth-Pass": password,
                "Auth-Protocol": "imap",
                "Auth-Login-Attempt": "1",
                "Client-IP": "192.0.2.7",
                "Client-Host": "[UNAVAILABLE]",
            },
        )
        resp = conn.getresponse()
        resp.read()
        return {k.lower(): v for k, v in resp.getheaders()} | {":status": str(resp.status)}
    finally:
        conn.close()


@dataclass
class Result:
    location: str
    mode: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    nginx_us: float  # nginx worker CPU time per request (user + system)
    redis_us: float  # redis-server CPU time per request
    errors: str


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes, from /proc/PID/stat."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / CLK_TCK


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="mailauth-bench.", dir=args.work_parent))
        self.work.chmod(0o755)  # nginx workers (nobody when run as root) read files in it
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.nginx_conf = self.work / "nginx.conf"
        self.users = [f"user{i:04d}@bench.example" for i in range(1, args.users + 1)]
        self.backend_of = {u: BACKENDS[i % len(BACKENDS)] for i, u in enumerate(self.users)}
        self.locations = [loc for loc in LOCATIONS if not (loc == "module" and args.without_module)]
        self.ncpu = os.cpu_count() or 1
        self.pin = not args.no_pin and self.ncpu >= 2
        self.rev = git_rev()

    # ---- set-up ------------------------------------------------------------------------------

    def prepare(self) -> None:
        a = self.args
        for tool in ("wrk", "redis-server", "taskset"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} not found: run bench/install-bench-deps.sh")
        for so in (NDK_SO, LUA_SO):
            if not so.exists():
                raise BenchError(f"{so} not found: run bench/install-bench-deps.sh")
        for exe in (a.mailctl, a.mailstored):
            if not Path(exe).is_file():
                raise BenchError(f"{exe} not found: cargo build --release -p mailctl -p mailstored")
        if "module" in self.locations:
            so = Path(a.module)
            if not so.is_file():
                raise BenchError(
                    f"{so} not found: . target/nginx-env.sh && cargo build --release -p ngx-mailauth "
                    "--features nginx (or --without-module)"
                )
            syms = run(["nm", "-D", "--defined-only", str(so)])
            if " ngx_http_mailauth_module" not in syms:
                raise BenchError(f"{so} is not the nginx module (built without --features nginx?)")
            # A copy: a later cargo build never rewrites the .so this nginx has mapped.
            (self.work / "modules").mkdir()
            copy = self.work / "modules" / "ngx_http_mailauth_module.so"
            shutil.copy2(so, copy)
            built = dt.datetime.fromtimestamp(copy.stat().st_mtime, dt.timezone.utc)
            self.module_id = f"built {built:%Y-%m-%d %H:%M} UTC (sha256 {hashlib.sha256(copy.read_bytes()).hexdigest()[:12]}…)"

        w = self.work
        mailctl = [a.mailctl, "roles", "--db", str(w / "roles")]
        for name, ip, imap, pop3 in BACKENDS:
            run(mailctl + ["backend", "add", "--imap", str(imap), "--pop3", str(pop3), "--lmtp", "10024", name, ip])
        (w / "roles-import.csv").write_text("".join(f"{u},{self.backend_of[u][0]}\n" for u in self.users))
        run(mailctl + ["import", str(w / "roles-import.csv")])
        # What the Lua script reads: the operator's own exports of the same database.
        (w / "roles.csv").write_text(run(mailctl + ["export"]))
        (w / "backends.txt").write_text(run(mailctl + ["backend", "list"]))
        hashed = run([a.mailstored, "hash-password"], input=PASSWORD + "\n").strip()
        if not hashed.startswith("$argon2"):
            raise BenchError(f"mailstored hash-password gave {hashed[:20]!r}")
        (w / "users").write_text("".join(f"{u}:{hashed}\n" for u in self.users))
        (w / "users.tsv").write_text("".join(f"{u}\t{PASSWORD}\n" for u in self.users))
        (w / "ticket.key").write_text(run([a.mailctl, "ticket-key", "generate"]))
        (w / "cache.secret").write_text(secrets.token_hex(32) + "\n")
        for p in w.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        if os.geteuid() == 0:
            # LMDB readers write their slot in lock.mdb: the workers (nobody) need write access.
            for p in [w / "roles", *(w / "roles").iterdir()]:
                shutil.chown(p, "nobody", "nogroup")
        for d in ("logs", "tmp"):
            (w / d).mkdir(exist_ok=True)
        log(f"work dir {w}: {len(self.users)} users on {len(BACKENDS)} backends")

    def start_redis(self) -> None:
        self.redis_port = free_port()
        cmd = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.work), "--daemonize", "no", "--loglevel", "warning"]
        if self.pin:
            cmd = ["taskset", "-c", str(self.ncpu - 1)] + cmd
        p = subprocess.Popen(cmd, stdout=open(self.work / "redis.log", "w"), stderr=subprocess.STDOUT)
        self.procs.append(("redis-server", p))
        self.redis_pid = p.pid  # taskset execs redis-server: same pid
        wait_port(self.redis_port, "redis-server", p)
        log(f"redis-server on 127.0.0.1:{self.redis_port}")

    def render(self) -> None:
        a = self.args
        self.port = free_port()
        floor_pass = run([a.mailctl, "ticket", "issue", "--key", str(self.work / "ticket.key"),
                          "--user", self.users[0], "--ttl", "3600"]).strip()
        module_load = module_loc = ""
        if "module" in self.locations:
            module_load = f"load_module {self.work}/modules/ngx_http_mailauth_module.so;"
            module_loc = MODULE_LOCATION.format(rundir=self.work, redis_port=self.redis_port)
        if os.geteuid() == 0:
            user_line = "user nobody nogroup;"
        else:
            user_line = "# not root: workers run as the current user"
        affinity = "worker_cpu_affinity 01;" if (self.pin and a.workers == 1) else ""
        text = (HERE / "nginx.conf.in").read_text()
        for k, v in {
            "@MODULE_LOAD@": module_load,
            "@MODULE_LOCATION@": module_loc,
            "@USER_LINE@": user_line,
            "@WORKERS@": str(a.workers),
            "@AFFINITY_LINE@": affinity,
            "@RUNDIR@": str(self.work),
            "@LUA_DIR@": str(ROOT / "lua"),
            "@REDIS_PORT@": str(self.redis_port),
            "@PORT@": str(self.port),
            "@FLOOR_PASS@": floor_pass,
        }.items():
            text = text.replace(k, v)
        self.nginx_conf.write_text(text)

    def start_nginx(self) -> None:
        r = subprocess.run([NGINX, "-t", "-q", "-c", str(self.nginx_conf)], capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"nginx -t failed:\n{r.stderr.strip()}")
        p = subprocess.Popen([NGINX, "-c", str(self.nginx_conf), "-g", "daemon off;"],
                             stdout=open(self.work / "nginx.out", "w"), stderr=subprocess.STDOUT)
        self.procs.append(("nginx", p))
        self.nginx_pid = p.pid
        wait_port(self.port, "nginx", p)
        log(f"nginx on 127.0.0.1:{self.port}, {self.args.workers} worker(s)"
            + (", worker on CPU 0, wrk and redis-server on CPU 1" if self.pin else ""))

    # ---- checks ------------------------------------------------------------------------------

    def redis_writes(self) -> int:
        """SET + SETEX calls Redis has served (INFO commandstats): credentials written."""
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=5) as sock:
            sock.sendall(b"INFO commandstats\r\n")
            data = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                header, _, body = data.partition(b"\r\n")
                if header.startswith(b"$") and len(body) >= int(header[1:]) + 2:
                    break
        calls = 0
        for line in data.decode(errors="replace").splitlines():
            if line.startswith(("cmdstat_set:", "cmdstat_setex:")):
                calls += int(line.split("calls=")[1].split(",")[0])
        return calls

    def check_answers(self) -> None:
        """Every user once per location: pre-warms the caches and checks the answers."""
        for loc in self.locations:
            t = time.monotonic()
            writes_before = self.redis_writes()
            for user in self.users:
                h = auth_request(self.port, loc, user, PASSWORD)
                if h.get("auth-status") != "OK":
                    raise BenchError(f"/{loc} refused {user}: {h.get('auth-status')!r} (see {self.work}/logs/error.log)")
                if loc == "floor":
                    continue
                _, ip, imap, _ = self.backend_of[user]
                if (h.get("auth-server"), h.get("auth-port")) != (ip, str(imap)):
                    raise BenchError(f"/{loc} routed {user} to {h.get('auth-server')}:{h.get('auth-port')}, want {ip}:{imap}")
            # Two tickets per location through mailstored's own verifier.
            for user in (self.users[0], self.users[-1]):
                if loc == "floor":
                    break
                ticket = auth_request(self.port, loc, user, PASSWORD)["auth-pass"]
                out = run([self.args.mailctl, "ticket", "verify", "--key", str(self.work / "ticket.key"), ticket])
                if f"user={user} " not in out:
                    raise BenchError(f"/{loc}: ticket for {user} verified as {out.strip()!r}")
            # Wrong password: refused (the cache is not a bypass).
            if loc != "floor":
                h = auth_request(self.port, loc, self.users[1], "wrong-password")
                if h.get("auth-status") == "OK":
                    raise BenchError(f"/{loc} accepted a wrong password")
            writes = self.redis_writes() - writes_before
            log(f"/{loc}: {len(self.users)} users answered OK and routed right "
                f"({time.monotonic() - t:.1f}s, warm-up included; {writes} credentials written to Redis)")
            if loc == "lua" and "module" in self.locations:
                # The module warmed Redis first: the script must hit its entries (same format).
                if writes != 0:
                    raise BenchError(f"/lua missed {writes} credentials the module had cached: cache formats differ")
                log("/lua hit every credential the module cached: same Redis key and value format")

    # ---- measuring ---------------------------------------------------------------------------

    def wrk(self, location: str, close: bool, duration: int, check: bool = False) -> dict:
        a = self.args
        cmd = ["wrk", "-t", str(a.threads), "-c", str(a.connections), "-d", f"{duration}s", "--timeout", "5s",
               "-s", str(HERE / "wrk_auth.lua"), f"http://127.0.0.1:{self.port}/{location}"]
        if self.pin:
            cmd = ["taskset", "-c", str(self.ncpu - 1)] + cmd
        env = os.environ | {"BENCH_USERS_FILE": str(self.work / "users.tsv"), "BENCH_CLOSE": "1" if close else "0",
                            "BENCH_CHECK": "1" if check else "0"}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise BenchError(f"wrk failed: {r.stderr.strip()}")
        for line in r.stdout.splitlines():
            if line.startswith("BENCH "):
                return json.loads(line[6:])
        raise BenchError(f"no BENCH line in wrk output:\n{r.stdout}")

    def measure(self) -> list[Result]:
        a = self.args
        results: list[Result] = []
        # Check runs: wrk looks at every answer (slower loader, not measured).
        for mode, close in (("keep-alive", False), ("new connection", True)):
            for loc in self.locations:
                w = self.wrk(loc, close, 1, check=True)
                errs = {k: w[k] for k in ("connect", "read", "write", "status", "timeout", "bad") if w[k]}
                if errs or w["requests"] == 0:
                    raise BenchError(f"check run {mode} /{loc}: {w['requests']} requests, {errs} "
                                     "(bad = answers without Auth-Status: OK)")
            log(f"check run {mode}: every answer of every location was Auth-Status: OK")
        for mode, close in (("keep-alive", False), ("new connection", True)):
            for rnd in range(a.rounds):
                for loc in self.locations:
                    if a.warmup > 0:
                        self.wrk(loc, close, a.warmup)
                    workers = children(self.nginx_pid)
                    redis_pid = [self.redis_pid]
                    cpu0 = (cpu_seconds(workers), cpu_seconds(redis_pid))
                    w = self.wrk(loc, close, a.duration)
                    cpu1 = (cpu_seconds(workers), cpu_seconds(redis_pid))
                    n = max(w["requests"], 1)
                    errs = {k: w[k] for k in ("connect", "read", "write", "status", "timeout") if w[k]}
                    rps = w["requests"] / (w["duration_us"] / 1e6)
                    res = Result(loc, mode, rps, w["p50_us"] / 1000, w["p90_us"] / 1000, w["p99_us"] / 1000,
                                 w["requests"], (cpu1[0] - cpu0[0]) / n * 1e6, (cpu1[1] - cpu0[1]) / n * 1e6, ", ".join(f"{k} {v}" for k, v in errs.items()))
                    log(f"{mode:14} /{loc:6} round {rnd + 1}: {rps:9,.0f} req/s  p50 {res.p50_ms:.3f} ms  "
                        f"p99 {res.p99_ms:.3f} ms  CPU/req nginx {res.nginx_us:.1f} µs redis {res.redis_us:.1f} µs  "
                        f"({w['requests']:,} requests"
                        + (f"; ERRORS {res.errors}" if errs else "") + ")")
                    results.append(res)
        return results

    def stop(self) -> None:
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.args.keep:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


# ---- report -----------------------------------------------------------------------------------

def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def pkg_version(pkg: str) -> str:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def report(b: Bench, results: list[Result], started: dt.datetime, load: str, argv: list[str]) -> str:
    load_end = f"{os.getloadavg()[0]:.2f}"
    rev_end = git_rev()
    a = b.args
    out = []
    out.append(f"#### {started:%Y-%m-%d %H:%M} UTC — {len(b.users)} users, {a.duration} s per measurement")
    out.append("")
    out.append(f"Command: `{' '.join(['python3 bench/auth/run.py', *argv])}`  ")
    out.append(f"Machine: {platform.node()}, {b.ncpu} CPUs ({cpu_model()}), Linux {platform.release()}, "
               f"load average at start {load}, at the end {load_end}  ")
    out.append(f"nginx {pkg_version('nginx-core')} ({a.workers} worker"
               f"{'' if a.workers == 1 else 's'}{', pinned to CPU 0' if b.pin and a.workers == 1 else ''}), "
               f"libnginx-mod-http-lua {pkg_version('libnginx-mod-http-lua')}, "
               f"redis-server {pkg_version('redis-server')}, wrk {pkg_version('wrk')} "
               f"({a.threads} thread, {a.connections} connections"
               f"{', wrk and redis-server pinned to CPU ' + str(b.ncpu - 1) if b.pin else ''}); "
               f"mailscale {b.rev}" + (f" at the start, {rev_end} at the end" if rev_end != b.rev else "") + "  ")
    if "module" in b.locations:
        so = Path(a.module)
        out.append(f"Module: `{so.relative_to(ROOT) if so.is_relative_to(ROOT) else so}` {b.module_id}  ")
    out.append("")
    out.append("| mode | location | req/s | p50 | p90 | p99 | vs floor | module vs Lua | nginx CPU/req | redis CPU/req |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    failed = []
    for mode in ("keep-alive", "new connection"):
        med = {}
        by_round: dict[str, list[float]] = {}
        for loc in b.locations:
            rs = [r for r in results if r.mode == mode and r.location == loc]
            if any(r.errors for r in rs):
                failed.append((mode, loc, [r.errors for r in rs]))
            by_round[loc] = [r.rps for r in rs]
            med[loc] = (median([r.rps for r in rs]), median([r.p50_ms for r in rs]),
                        median([r.p90_ms for r in rs]), median([r.p99_ms for r in rs]),
                        median([r.nginx_us for r in rs]), median([r.redis_us for r in rs]))

        # Ratios are taken within a round (the same minute of machine load), then the median.
        def ratio(x: str, y: str) -> float:
            return median([rx / ry for rx, ry in zip(by_round[x], by_round[y])])

        for loc in b.locations:
            rps, p50, p90, p99, nginx_us, redis_us = med[loc]
            vs_floor = f"{ratio(loc, 'floor'):.0%}" if loc != "floor" else "—"
            vs_lua = f"{ratio('module', 'lua'):.2f}×" if loc == "module" and "lua" in med else ""
            out.append(f"| {mode} | {loc} | {rps:,.0f} | {p50:.3f} ms | {p90:.3f} ms | {p99:.3f} ms "
                       f"| {vs_floor} | {vs_lua} | {nginx_us:.1f} µs | {redis_us:.1f} µs |")
    if "module" not in b.locations:
        out.append("| | module | module not yet measured | | | | | | | |")
    out.append("")
    if a.rounds > 1:
        out.append(f"Each figure is the median of {a.rounds} rounds (locations interleaved within a round); the "
                   "ratios are medians of the per-round ratios. Per round (req/s):")
        out.append("")
        for mode in ("keep-alive", "new connection"):
            for loc in b.locations:
                rs = [f"{r.rps:,.0f}" for r in results if r.mode == mode and r.location == loc]
                out.append(f"- {mode} /{loc}: {' · '.join(rs)}")
        out.append("")
    if failed:
        out.append("**CHECK FAILED** (wrk errors or non-2xx answers during the run): "
                   + "; ".join(f"{m} /{l}: {e}" for m, l, e in failed))
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=300, help="users in the roles DB, all pre-warmed (300)")
    p.add_argument("--duration", type=int, default=10, help="seconds per measurement (10)")
    p.add_argument("--warmup", type=int, default=2, help="unrecorded seconds before each measurement (2)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, locations interleaved; the table shows medians (3)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument("--workers", type=int, default=1, help="nginx worker processes (1)")
    p.add_argument("--no-pin", action="store_true", help="do not pin nginx to CPU 0 and wrk/redis to the last CPU")
    p.add_argument("--without-module", action="store_true", help="measure only /lua and /floor")
    p.add_argument("--module", default=str(ROOT / "target/release/libngx_mailauth.so"))
    p.add_argument("--mailctl", default=str(ROOT / "target/release/mailctl"))
    p.add_argument("--mailstored", default=str(ROOT / "target/release/mailstored"))
    p.add_argument("--work-parent", default="/var/tmp")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    if args.users < 1 or args.duration <= 0 or args.rounds < 1:
        p.error("--users, --duration and --rounds must be positive")

    started = dt.datetime.now(dt.timezone.utc)
    load = f"{os.getloadavg()[0]:.2f}"
    b = Bench(args)
    try:
        b.prepare()
        b.start_redis()
        b.render()
        b.start_nginx()
        b.check_answers()
        results = b.measure()
        for name, proc in b.procs:
            if proc.poll() is not None:
                raise BenchError(f"{name} died during the run (status {proc.returncode})")
    except BenchError as e:
        log(f"error: {e}")
        tail = b.work / "logs" / "error.log"
        if tail.exists():
            lines = tail.read_text(errors="replace").splitlines()[-10:]
            log("nginx error.log tail:\n  " + "\n  ".join(lines))
        return 1
    finally:
        b.stop()
    sys.stdout.write(report(b, results, started, load, sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
