#!/usr/bin/env bash
# End-to-end smoke check of the frontend: stock nginx + the built ngx-mailauth module in front of
# a private mailstored, with a private roles database, users file, ticket key and (when
# redis-server is installed) a private Redis. Starts what it needs, checks, stops what it started.
#
#   nginx-conf/smoke.sh
#
# Needs: vendor-nginx/prepare.sh done, the module built with --features nginx, mailstored and
# mailctl built (cargo build --release -p mailstored -p mailctl), python3, curl.
# Ports: 1143, 1110, $AUTH_PORT (11080) for nginx; $BACKEND_IMAP/$BACKEND_POP3 (20143/20110) for
# mailstored; $REDIS_PORT (16379).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAILSTORED="${MAILSTORED:-$ROOT/target/release/mailstored}"
MAILCTL="${MAILCTL:-$ROOT/target/release/mailctl}"
MODULE_SO="${MODULE_SO:-$ROOT/target/release/libngx_mailauth.so}"
NGINX=/usr/sbin/nginx
AUTH_PORT="${AUTH_PORT:-11080}"
BACKEND_IMAP="${BACKEND_IMAP:-20143}"
BACKEND_POP3="${BACKEND_POP3:-20110}"
REDIS_PORT="${REDIS_PORT:-16379}"

log() { printf 'smoke: %s\n' "$*" >&2; }
die() { printf 'smoke: error: %s\n' "$*" >&2; exit 1; }
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

WORK="$(mktemp -d /tmp/mailauth-smoke.XXXXXX)"
chmod 755 "$WORK"  # nginx workers (nobody when run as root) reach the auth socket in it
NGINX_PID=
BACKEND_PID=
REDIS_PID=
cleanup() {
    [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null || true
    [ -n "$BACKEND_PID" ] && kill "$BACKEND_PID" 2>/dev/null || true
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
    sleep 0.3
    if [ "${KEEP:-}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

for p in 1143 1110 "$AUTH_PORT" "$BACKEND_IMAP" "$BACKEND_POP3"; do
    ! port_open "$p" || die "127.0.0.1:$p is in use (another frontend or backend running?)"
done
[ -x "$MAILSTORED" ] || die "$MAILSTORED not found: cargo build --release -p mailstored"
[ -x "$MAILCTL" ] || die "$MAILCTL not found: cargo build --release -p mailctl"

# --- shared secrets, roles, users --------------------------------------------------------------
"$MAILCTL" ticket-key generate >"$WORK/ticket.key"
head -c 32 /dev/urandom >"$WORK/cache.secret"
R=("$MAILCTL" roles --db "$WORK/roles")
"${R[@]}" backend add b1 127.0.0.1 --imap "$BACKEND_IMAP" --pop3 "$BACKEND_POP3" --lmtp 20024 >/dev/null
"${R[@]}" backend add b2 127.0.0.2 --imap "$BACKEND_IMAP" --pop3 "$BACKEND_POP3" --lmtp 20024 --state down >/dev/null
for u in demo1 demo2 demo4; do "${R[@]}" set "$u" b1 >/dev/null; done
"${R[@]}" set demo3 b2 >/dev/null   # backend down: temporary failure
hash="$(echo demo | "$MAILSTORED" hash-password)"
printf '%s:%s\n' demo1 "$hash" demo2 "$hash" demo3 "$hash" demo4 "$hash" norole "$hash" >"$WORK/users"
[ "$(id -u)" = 0 ] && chown -R nobody:nogroup "$WORK/roles"

# --- backend ----------------------------------------------------------------------------------
mkdir -p "$WORK/backend"
cp "$MAILSTORED" "$WORK/backend/mailstored"
cp "$WORK/users" "$WORK/backend/users"
cat >"$WORK/backend/mailstored.toml" <<TOML
name = "smoke"
data_dir = "data"
users_file = "users"
[listen]
imap = "127.0.0.1:$BACKEND_IMAP"
pop3 = "127.0.0.1:$BACKEND_POP3"
[frontend]
ticket_key = "$WORK/ticket.key"
TOML
NO_COLOR=1 "$WORK/backend/mailstored" --config "$WORK/backend/mailstored.toml" >"$WORK/backend/log" 2>&1 &
BACKEND_PID=$!
for _ in $(seq 50); do port_open "$BACKEND_IMAP" && break; sleep 0.1; done
port_open "$BACKEND_IMAP" || { cat "$WORK/backend/log" >&2; die "mailstored did not start"; }
log "started mailstored (pid $BACKEND_PID)"

REDIS_ARGS=()
if command -v redis-server >/dev/null && ! port_open "$REDIS_PORT"; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 50); do port_open "$REDIS_PORT" && break; sleep 0.1; done
    REDIS_ARGS=(--redis "redis://127.0.0.1:$REDIS_PORT/0" --cache-secret "$WORK/cache.secret")
    log "started redis-server (pid $REDIS_PID)"
else
    log "no private redis-server: running without mailauth_cache"
fi

# --- frontend ----------------------------------------------------------------------------------
AUTH_PORT="$AUTH_PORT" "$ROOT/nginx-conf/render.sh" "$WORK/nginx" "$MODULE_SO" --roles "$WORK/roles" \
    --users "$WORK/users" --ticket-key "$WORK/ticket.key" "${REDIS_ARGS[@]}" >/dev/null
"$NGINX" -t -q -c "$WORK/nginx/nginx.conf" || die "nginx -t failed"
"$NGINX" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
for _ in $(seq 50); do port_open 1143 && port_open "$AUTH_PORT" && break; sleep 0.1; done
port_open 1143 || die "nginx did not start: $(tail -5 "$WORK/nginx/logs/error.log" 2>/dev/null)"
log "started nginx (pid $NGINX_PID)"

# --- checks ------------------------------------------------------------------------------------
auth() {  # user pass [protocol]
    curl -s -i -H "Auth-User: $1" -H "Auth-Pass: $2" -H 'Auth-Method: plain' -H "Auth-Protocol: ${3:-imap}" \
        -H 'Client-IP: 127.0.0.1' "http://127.0.0.1:$AUTH_PORT/auth" | tr -d '\r'
}
answer="$(auth demo1 demo)"
printf '%s\n' "$answer" | grep -q '^Auth-Status: OK$' || die "auth answer: $answer"
printf '%s\n' "$answer" | grep -q "^Auth-Port: $BACKEND_IMAP$" || die "auth answer: $answer"
printf '%s\n' "$answer" | grep -q '^Auth-Pass: MST1\.' || die "no ticket: $answer"
# An escaped CR/LF in the user name must be refused, not copied into the answer.
answer="$(auth 'demo1%0D%0AAuth-Status: OK' demo)"
printf '%s\n' "$answer" | grep -q '^Auth-Status: Invalid login or password$' || die "injection: $answer"
answer="$(auth '*)(uid=*' demo)"
printf '%s\n' "$answer" | grep -q '^Auth-Status: Invalid login or password$' || die "filter injection: $answer"
answer="$(auth norole demo)"
printf '%s\n' "$answer" | grep -q '^Auth-Status: No mailbox for this user$' || die "no role: $answer"
answer="$(auth demo3 demo)"
printf '%s\n' "$answer" | grep -q '^Auth-Status: Mailbox temporarily unavailable' || die "backend down: $answer"
log "auth_http answers OK"

python3 - <<'PY'
import imaplib, poplib, time

m = imaplib.IMAP4("127.0.0.1", 1143)
assert m.login("demo1", "demo")[0] == "OK"          # OK from mailstored, which got a ticket
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
p.user("demo2")
assert p.pass_("demo").startswith(b"+OK")
p.quit()
print("smoke: IMAP login, wrong password (delayed NO), POP3 login: OK")
PY

if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=
    answer="$(auth demo4 demo pop3)"  # never logged in: not in any cache
    printf '%s\n' "$answer" | grep -q '^Auth-Status: OK$' || die "with Redis stopped: $answer"
    log "Redis stopped: logins still answered"
fi
