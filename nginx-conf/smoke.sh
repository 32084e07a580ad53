#!/usr/bin/env bash
# End-to-end smoke check of the frontend: stock nginx + the built ngx-mailauth module in front of
# a mailstored with the demo users. Starts what it needs, checks, stops what it started.
#
#   nginx-conf/smoke.sh
#
# Uses a running `make up` backend on 127.0.0.1:10143/10110 when there is one (demo users
# demo1..demo3 / demo), else starts a private mailstored there from $MAILSTORED.
# Needs: vendor-nginx/prepare.sh done, the module built with --features nginx, python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAILSTORED="${MAILSTORED:-$ROOT/target/release/mailstored}"
MODULE_SO="${MODULE_SO:-$ROOT/target/release/libngx_mailauth.so}"
NGINX=/usr/sbin/nginx
AUTH_PORT="${AUTH_PORT:-11080}"

log() { printf 'smoke: %s\n' "$*" >&2; }
die() { printf 'smoke: error: %s\n' "$*" >&2; exit 1; }
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

WORK="$(mktemp -d /tmp/mailauth-smoke.XXXXXX)"
chmod 755 "$WORK"  # nginx workers (nobody when run as root) reach the auth socket in it
NGINX_PID=
BACKEND_PID=
cleanup() {
    [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null || true
    [ -n "$BACKEND_PID" ] && kill "$BACKEND_PID" 2>/dev/null || true
    sleep 0.3
    if [ "${KEEP:-}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

for p in 1143 1110 "$AUTH_PORT"; do
    ! port_open "$p" || die "127.0.0.1:$p is in use (another frontend running?)"
done

# --- backend -----------------------------------------------------------------------------------
if port_open 10143; then
    log "using the mailstored already on 127.0.0.1:10143"
else
    [ -x "$MAILSTORED" ] || die "$MAILSTORED not found: cargo build --release -p mailstored"
    mkdir -p "$WORK/backend"
    cp "$MAILSTORED" "$WORK/backend/mailstored"
    hash="$(echo demo | "$WORK/backend/mailstored" hash-password)"
    printf 'demo%s:%s\n' 1 "$hash" 2 "$hash" 3 "$hash" >"$WORK/backend/users"
    cat >"$WORK/backend/mailstored.toml" <<TOML
name = "smoke"
data_dir = "data"
users_file = "users"
[listen]
imap = "127.0.0.1:10143"
pop3 = "127.0.0.1:10110"
TOML
    NO_COLOR=1 "$WORK/backend/mailstored" --config "$WORK/backend/mailstored.toml" \
        >"$WORK/backend/log" 2>&1 &
    BACKEND_PID=$!
    for _ in $(seq 50); do port_open 10143 && break; sleep 0.1; done
    port_open 10143 || { cat "$WORK/backend/log" >&2; die "mailstored did not start"; }
    log "started mailstored (pid $BACKEND_PID)"
fi

# --- frontend ----------------------------------------------------------------------------------
AUTH_PORT="$AUTH_PORT" "$ROOT/nginx-conf/render.sh" "$WORK/nginx" "$MODULE_SO" >/dev/null
"$NGINX" -t -q -c "$WORK/nginx/nginx.conf" || die "nginx -t failed"
"$NGINX" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
for _ in $(seq 50); do port_open 1143 && port_open "$AUTH_PORT" && break; sleep 0.1; done
port_open 1143 || die "nginx did not start: $(tail -5 "$WORK/nginx/logs/error.log" 2>/dev/null)"
log "started nginx (pid $NGINX_PID)"

# --- checks ------------------------------------------------------------------------------------
answer="$(curl -s -i -H 'Auth-User: demo1' -H 'Auth-Pass: demo' -H 'Auth-Method: plain' \
    -H 'Auth-Protocol: imap' -H 'Client-IP: 127.0.0.1' "http://127.0.0.1:$AUTH_PORT/auth" | tr -d '\r')"
printf '%s\n' "$answer" | grep -q '^Auth-Status: OK$' || die "auth answer: $answer"
printf '%s\n' "$answer" | grep -q '^Auth-Pass: demo$' || die "auth answer: $answer"
# An escaped CR/LF in the user name must be refused, not copied into the answer.
answer="$(curl -s -i -H 'Auth-User: demo1%0D%0AAuth-Status: OK' -H 'Auth-Pass: demo' \
    -H 'Auth-Method: plain' -H 'Auth-Protocol: imap' "http://127.0.0.1:$AUTH_PORT/auth" | tr -d '\r')"
printf '%s\n' "$answer" | grep -q '^Auth-Status: Invalid login or password$' || die "injection: $answer"
log "auth_http answers OK"

python3 - <<'PY'
import imaplib, poplib, time

m = imaplib.IMAP4("127.0.0.1", 1143)
assert m.login("demo1", "demo")[0] == "OK"          # OK comes from mailstored
assert m.select("INBOX")[0] == "OK"
m.logout()

m = imaplib.IMAP4("127.0.0.1", 1143)
t = time.monotonic()
try:
    m.login("demo1", "wrong")
    raise SystemExit("wrong password was accepted")
except imaplib.IMAP4.error as e:
    assert b"Invalid login or password" in e.args[0], e
assert time.monotonic() - t >= 2.5, "no fail delay"
m.shutdown()

p = poplib.POP3("127.0.0.1", 1110)
p.user("demo3")
assert p.pass_("demo").startswith(b"+OK")
p.quit()
print("smoke: IMAP login, wrong password (delayed NO), POP3 login: OK")
PY
