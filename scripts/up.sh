#!/usr/bin/env bash
# Start the platform in the background: one mailstored instance ("primary") and the frontend in
# front of it (redis-server for the credential cache, stock nginx with the ngx-mailauth module:
# IMAP 127.0.0.1:1143, POP3 127.0.0.1:1110, auth location 127.0.0.1:11080).
#
# Expects built binaries and module (`make up` builds them first). Idempotent:
#   - run/primary/ is created on first use; the config is refreshed every time from the template
#     backend-daemon/conf/mailstored.toml plus a [frontend] section (ticket logins from the local
#     nginx); the TLS certificate, the users file and the data directory are created only when
#     missing (mail survives `make down && make up`);
#   - run/ticket.key (shared by nginx and mailstored), run/roles (demo users -> primary),
#     run/frontend/ (users file, cache secret, nginx runtime dir) and run/redis/ likewise;
#   - a process already running from the current binary and config is left alone; one started
#     from an older binary, config or module is restarted.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${MAILSTORED:-$ROOT/target/release/mailstored}"
INSTANCE="${INSTANCE:-primary}"
DIR="$ROOT/run/$INSTANCE"
CONF="$DIR/mailstored.toml"
PIDFILE="$DIR/mailstored.pid"
LOG="$DIR/mailstored.log"
TEMPLATE="$ROOT/backend-daemon/conf/mailstored.toml"
MAILCTL="${MAILCTL:-$ROOT/target/release/mailctl}"
MODULE_SO="${MODULE_SO:-$ROOT/target/release/libngx_mailauth.so}"
NGINX=/usr/sbin/nginx
REDIS_SERVER=/usr/bin/redis-server
RUN="$ROOT/run"
TICKET_KEY="$RUN/ticket.key"
ROLES_DB="$RUN/roles"                 # the follower's copy: what nginx and Postfix read
ROLES_PRIMARY_DB="$RUN/roles-primary" # where operators write (mailctl roles --db ...)
FRONTEND="$RUN/frontend"
NGINX_DIR="$FRONTEND/nginx"
REDIS_DIR="$RUN/redis"
# Ports are contracts (README): clients use 1143/1110; 11080 is the auth location on loopback.
# The MAILSCALE_* variables exist only to run a second copy next to a running one.
IMAP_PORT="${MAILSCALE_IMAP_PORT:-1143}"
POP3_PORT="${MAILSCALE_POP3_PORT:-1110}"
AUTH_PORT="${MAILSCALE_AUTH_PORT:-11080}"
REDIS_PORT="${MAILSCALE_REDIS_PORT:-16379}"
DEMO_USERS=(demo1 demo2 demo3)
DEMO_PASSWORD=demo
# name:port:expected start of the greeting
# LMTP answers 220, or 421 once a failover (mailctl failover primary) has made this backend the
# replica: any greeting line will do.
ENDPOINTS=("IMAP:10143:* OK" "POP3:10110:+OK" "LMTP:10024:")

log() { printf 'up: %s\n' "$*" >&2; }
die() { printf 'up: error: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN not found: build it with 'cargo build --release' (or run 'make up')"
[ -x "$MAILCTL" ] || die "$MAILCTL not found: build it with 'cargo build --release' (or run 'make up')"
[ -x "$NGINX" ] || die "$NGINX not found: run scripts/install-deps.sh"
[ -x "$REDIS_SERVER" ] || die "$REDIS_SERVER not found: run scripts/install-deps.sh"
nm -D --defined-only "$MODULE_SO" 2>/dev/null | grep -q ' ngx_http_mailauth_module$' \
    || die "$MODULE_SO is missing or not the nginx module: run 'make build' (it builds the module with --features nginx)"

# Files nginx's workers read run as "nobody:nogroup" when we are root: give them the group.
# share PATH [writable]
share() {
    [ "$(id -u)" = 0 ] || return 0
    chgrp -R nogroup "$1"
    if [ "${2:-}" = writable ]; then chmod -R g+rwX "$1"; else chmod -R g+rX "$1"; fi
}

# pid_of PIDFILE BINARY: the pid in PIDFILE if it is a live process of BINARY.
pid_of() {
    [ -s "$1" ] || return 1
    local pid exe
    pid="$(cat "$1")"
    kill -0 "$pid" 2>/dev/null || return 1
    exe="$(readlink -f "/proc/$pid/exe" 2>/dev/null | sed 's/ (deleted)$//')"
    [ "$exe" = "$(readlink -f "$2")" ] || return 1
    echo "$pid"
}

# port_free PORT NAME: dies when something else already listens on 127.0.0.1:PORT.
port_free() {
    if port_open "$1"; then
        die "port $1 ($2) is already in use by another program: $(ss -ltnpH "sport = :$1" 2>/dev/null | head -n1)"
    fi
}

running_pid() {
    [ -s "$PIDFILE" ] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: it must be our binary.
    [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null | sed 's/ (deleted)$//')" = "$(readlink -f "$BIN")" ] \
        || return 1
    echo "$pid"
}

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# greeting PORT PREFIX: succeeds when 127.0.0.1:PORT answers with a line starting with PREFIX.
greeting() {
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        IFS= read -r -t 2 line <&3 || exit 1
        exec 3>&-
        case "$line" in "$2"*) exit 0 ;; *) exit 1 ;; esac
    ' _ "$1" "$2" 2>/dev/null
}

mkdir -p "$DIR/tls"

# --- ticket key: nginx signs login tickets with it, mailstored verifies them ---------------------
if [ ! -s "$TICKET_KEY" ]; then
    log "ticket key: $TICKET_KEY (mailctl ticket-key generate)"
    (umask 077 && "$MAILCTL" ticket-key generate >"$TICKET_KEY.tmp") || die "mailctl ticket-key generate failed"
    mv "$TICKET_KEY.tmp" "$TICKET_KEY"
fi
chmod 640 "$TICKET_KEY"
share "$TICKET_KEY"

# --- replication certificates: a private CA, one certificate per partner (mutual TLS) -----------
REPL_DIR="$RUN/repl"
if [ ! -s "$REPL_DIR/ca.pem" ]; then
    log "replication: private CA and partner certificates in $REPL_DIR"
    mkdir -p "$REPL_DIR" && chmod 700 "$REPL_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=mailscale replication CA" -keyout "$REPL_DIR/ca.key" -out "$REPL_DIR/ca.pem" 2>/dev/null \
        || die "openssl could not create the replication CA"
    for side in primary replica; do
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$side" \
            -keyout "$REPL_DIR/$side.key" -out "$REPL_DIR/$side.csr" 2>/dev/null \
            && openssl x509 -req -in "$REPL_DIR/$side.csr" -CA "$REPL_DIR/ca.pem" -CAkey "$REPL_DIR/ca.key" \
                -CAcreateserial -days 3650 -out "$REPL_DIR/$side.pem" \
                -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n') 2>/dev/null \
            || die "openssl could not create the $side replication certificate"
        rm -f "$REPL_DIR/$side.csr"
    done
fi

# --- config ------------------------------------------------------------------------------------
{
    # Sieve redirects and vacation replies go out through the frontend Postfix (SMTP 2525).
    sed -e 's|^# relay = "127\.0\.0\.1:25"|relay = "127.0.0.1:2525"|' "$TEMPLATE"
    cat <<'TOML'

# Added by scripts/up.sh: logins from the local frontend (nginx + ngx-mailauth), which hands
# mailstored a signed login ticket instead of the user's password.
[frontend]
ticket_key = "../ticket.key"
trusted = ["127.0.0.1"]

# Added by scripts/up.sh: rolling replication to the replica of run/replica/. The listener
# (10200) takes the partner's updates once a failover has made this side the replica.
[replication]
role = "primary"
partner = "127.0.0.1:11200"
listen = "127.0.0.1:10200"
server_name = "127.0.0.1"
cert = "../repl/primary.pem"
key = "../repl/primary.key"
ca = "../repl/ca.pem"

# Added by scripts/up.sh: the operators' API (mailctl repl / check repl / failover; /metrics).
[admin]
listen = "127.0.0.1:10180"
TOML
} >"$CONF.new"
if cmp -s "$CONF.new" "$CONF"; then
    rm -f "$CONF.new"
else
    mv "$CONF.new" "$CONF"
    log "config: $CONF (backend-daemon/conf/mailstored.toml + [frontend])"
fi

# --- TLS: self-signed certificate for localhost ------------------------------------------------
if [ ! -s "$DIR/tls/cert.pem" ] || [ ! -s "$DIR/tls/key.pem" ]; then
    log "tls: creating a self-signed certificate for localhost"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$DIR/tls/key.pem" -out "$DIR/tls/cert.pem" 2>/dev/null \
        || die "openssl could not create the certificate"
    chmod 600 "$DIR/tls/key.pem"
fi

# --- users -------------------------------------------------------------------------------------
if [ ! -s "$DIR/users" ]; then
    log "users: ${DEMO_USERS[*]} (password '$DEMO_PASSWORD')"
    tmp="$DIR/users.tmp"
    {
        echo "# mailstored users: username:<PHC hash from 'mailstored hash-password'>"
        echo "# demo users of 'make up', password '$DEMO_PASSWORD'"
        for u in "${DEMO_USERS[@]}"; do
            hash="$(printf '%s\n' "$DEMO_PASSWORD" | "$BIN" hash-password)" \
                || die "'mailstored hash-password' failed"
            case "$hash" in
                '$argon2'*) ;;
                *) die "'mailstored hash-password' printed '$hash', expected a \$argon2id\$... string" ;;
            esac
            echo "$u:$hash"
        done
    } >"$tmp"
    chmod 600 "$tmp"
    mv "$tmp" "$DIR/users"
fi

# --- start -------------------------------------------------------------------------------------
if pid="$(running_pid)"; then
    if [ "$BIN" -nt "$PIDFILE" ] || [ "$CONF" -nt "$PIDFILE" ] || [ "$DIR/users" -nt "$PIDFILE" ] \
        || [ "$TICKET_KEY" -nt "$PIDFILE" ]; then
        log "restarting (binary, config, users or ticket key changed since pid $pid started)"
        "$ROOT/scripts/down.sh" mailstored
    else
        log "already running (pid $pid)"
    fi
fi

if ! running_pid >/dev/null; then
    rm -f "$PIDFILE"
    for port in 10143 10110 10024 10993 10995 10200 10180; do
        if port_open "$port"; then
            die "port $port is already in use by another program: $(ss -ltnpH "sport = :$port" 2>/dev/null | head -n1)"
        fi
    done
    {
        echo
        echo "=== $(date -Is) start: $BIN --config $CONF"
    } >>"$LOG"
    # setsid: the daemon must not get the terminal's SIGINT when the user presses ^C later.
    # NO_COLOR: plain log file (tracing-subscriber honours it).
    NO_COLOR=1 setsid "$BIN" --config "$CONF" </dev/null >>"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    log "started mailstored (pid $pid), log: $LOG"
fi
pid="$(cat "$PIDFILE")"

# --- wait until every listener answers ---------------------------------------------------------
deadline=$((SECONDS + 30))
for ep in "${ENDPOINTS[@]}"; do
    IFS=: read -r name port prefix <<<"$ep"
    until greeting "$port" "$prefix"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            echo "----- last 12 lines of $LOG -----" >&2
            tail -n 12 "$LOG" >&2
            die "mailstored exited during start-up"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "----- last 12 lines of $LOG -----" >&2
            tail -n 12 "$LOG" >&2
            die "$name on 127.0.0.1:$port did not answer '$prefix...' within 30 s (mailstored pid $pid still running; 'make down' stops it)"
        fi
        sleep 0.2
    done
done

# --- the replica ---------------------------------------------------------------------------------
. "$ROOT/scripts/up-replica.sh"

# === frontend ===================================================================================

# --- roles: written on the roles primary, replicated to the follower the frontend reads ----------
# A run/roles written directly by an earlier 'make up' becomes the primary's database.
if [ -s "$ROLES_DB/data.mdb" ] && [ ! -e "$ROLES_PRIMARY_DB" ]; then
    log "roles: moving $ROLES_DB to $ROLES_PRIMARY_DB (it is the primary's database now)"
    mv "$ROLES_DB" "$ROLES_PRIMARY_DB"
fi
if ! "$MAILCTL" roles --db "$ROLES_PRIMARY_DB" backend list 2>/dev/null | grep -q '^primary '; then
    log "roles: $ROLES_PRIMARY_DB, backend primary = 127.0.0.1 imap 10143 pop3 10110 lmtp 10024"
    mkdir -p "$ROLES_PRIMARY_DB"
    "$MAILCTL" roles --db "$ROLES_PRIMARY_DB" backend add primary 127.0.0.1 --imap 10143 --pop3 10110 --lmtp 10024 >/dev/null \
        || die "mailctl roles backend add failed"
fi
if ! "$MAILCTL" roles --db "$ROLES_PRIMARY_DB" backend list 2>/dev/null | grep -q '^replica '; then
    log "roles: backend replica = 127.0.0.1 imap 11143 pop3 11110 lmtp 11024, partner of primary"
    "$MAILCTL" roles --db "$ROLES_PRIMARY_DB" backend add replica 127.0.0.1 --imap 11143 --pop3 11110 --lmtp 11024 \
        --partner primary >/dev/null || die "mailctl roles backend add replica failed"
    "$MAILCTL" roles --db "$ROLES_PRIMARY_DB" backend set primary --partner replica >/dev/null \
        || die "mailctl roles backend set primary --partner replica failed"
fi
for u in "${DEMO_USERS[@]}"; do
    if ! "$MAILCTL" roles --db "$ROLES_PRIMARY_DB" get "$u" >/dev/null 2>&1; then
        "$MAILCTL" roles --db "$ROLES_PRIMARY_DB" set "$u" primary >/dev/null || die "mailctl roles set $u failed"
        log "roles: $u -> primary"
    fi
done
mkdir -p "$ROLES_DB"
. "$ROOT/scripts/up-roles.sh"
# Workers open the follower's copy read-only, which still registers readers in lock.mdb.
share "$ROLES_DB" writable

# --- frontend users file and cache secret ---------------------------------------------------------
mkdir -p "$FRONTEND" "$REDIS_DIR"
if [ ! -s "$FRONTEND/users" ]; then
    log "frontend users: ${DEMO_USERS[*]} (password '$DEMO_PASSWORD')"
    # The frontend checks passwords (mailstored then sees tickets); the same format and demo
    # users as the backend's file.
    grep -v '^#' "$DIR/users" | {
        echo "# ngx-mailauth built-in directory (mailauth_users): username:<PHC hash>"
        cat
    } >"$FRONTEND/users.tmp"
    mv "$FRONTEND/users.tmp" "$FRONTEND/users"
fi
chmod 640 "$FRONTEND/users"
share "$FRONTEND/users"
if [ ! -s "$FRONTEND/cache.secret" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$FRONTEND/cache.secret.tmp")
    mv "$FRONTEND/cache.secret.tmp" "$FRONTEND/cache.secret"
fi
chmod 640 "$FRONTEND/cache.secret"
share "$FRONTEND/cache.secret"

# --- redis-server: private, loopback only, no persistence (a cache) ------------------------------
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
if fpid="$(pid_of "$REDIS_PIDFILE" "$REDIS_SERVER")"; then
    log "redis-server already running (pid $fpid)"
else
    rm -f "$REDIS_PIDFILE"
    port_free "$REDIS_PORT" "redis-server of the frontend"
    setsid "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" --daemonize no </dev/null >/dev/null 2>&1 &
    echo $! >"$REDIS_PIDFILE"
    log "started redis-server (pid $!) on 127.0.0.1:$REDIS_PORT, log: $REDIS_DIR/redis.log"
fi
for _ in $(seq 100); do
    [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
done
[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] \
    || { tail -n 12 "$REDIS_DIR/redis.log" >&2; die "redis-server does not answer on 127.0.0.1:$REDIS_PORT"; }

# --- nginx with the module -----------------------------------------------------------------------
NGINX_PIDFILE="$NGINX_DIR/nginx.pid"
fingerprint() {
    { cat "$NGINX_DIR/nginx.conf" "$NGINX_DIR/modules/ngx_http_mailauth_module.so" 2>/dev/null || true; } | sha256sum
}
before="$(fingerprint)"
IMAP_LISTEN="127.0.0.1:$IMAP_PORT" POP3_LISTEN="127.0.0.1:$POP3_PORT" AUTH_PORT="$AUTH_PORT" \
    "$ROOT/nginx-conf/render.sh" "$NGINX_DIR" "$MODULE_SO" --roles "$ROLES_DB" --users "$FRONTEND/users" \
    --ticket-key "$TICKET_KEY" --redis "redis://127.0.0.1:$REDIS_PORT" --cache-secret "$FRONTEND/cache.secret" \
    >/dev/null || die "nginx-conf/render.sh failed"
"$NGINX" -t -q -c "$NGINX_DIR/nginx.conf" || die "nginx -t refused $NGINX_DIR/nginx.conf"
if fpid="$(pid_of "$NGINX_PIDFILE" "$NGINX")"; then
    if [ "$before" != "$(fingerprint)" ]; then
        # nginx does not reload a changed .so on SIGHUP: restart it.
        log "restarting nginx (config or module changed since pid $fpid started)"
        "$ROOT/scripts/down.sh" nginx
    else
        log "nginx already running (pid $fpid)"
    fi
fi
if ! pid_of "$NGINX_PIDFILE" "$NGINX" >/dev/null; then
    for port in "$IMAP_PORT" "$POP3_PORT" "$AUTH_PORT"; do port_free "$port" "frontend nginx"; done
    # nginx daemonizes and writes its pidfile; errors before the log is open go to stderr.
    "$NGINX" -c "$NGINX_DIR/nginx.conf" || die "nginx did not start; see $NGINX_DIR/logs/error.log"
    log "started nginx with ngx-mailauth, log: $NGINX_DIR/logs/error.log"
fi
deadline=$((SECONDS + 15))
for ep in "IMAP:$IMAP_PORT:* OK" "POP3:$POP3_PORT:+OK"; do
    IFS=: read -r name port prefix <<<"$ep"
    until greeting "$port" "$prefix"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 12 "$NGINX_DIR/logs/error.log" >&2 || true
            die "frontend $name on 127.0.0.1:$port did not answer within 15 s"
        fi
        sleep 0.2
    done
done
nginx_pid="$(cat "$NGINX_PIDFILE")"
redis_pid="$(cat "$REDIS_PIDFILE")"

# --- frontend Postfix: SMTP 2525 -> socketmap (roles follower) -> LMTP to the backend ------------
. "$ROOT/scripts/up-postfix.sh"

cat <<EOF

mailscale is running; 'make down' stops it all.

Through the frontend (nginx pid $nginx_pid with ngx-mailauth; Redis pid $redis_pid on 127.0.0.1:$REDIS_PORT):
  IMAP   127.0.0.1:$IMAP_PORT        POP3   127.0.0.1:$POP3_PORT
  users  demo1 demo2 demo3, password '$DEMO_PASSWORD' (checked by the frontend; the backend gets a ticket)
  python3 -c 'import imaplib; m=imaplib.IMAP4("127.0.0.1",$IMAP_PORT); print(m.login("demo1","demo")); m.select("INBOX"); print(m.fetch("1:*","(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")); m.logout()'
  python3 -c 'import poplib; p=poplib.POP3("127.0.0.1",$POP3_PORT); p.user("demo1"); print(p.pass_("demo")); print(p.list()); p.quit()'
  nc -C 127.0.0.1 $IMAP_PORT                                  # then: a LOGIN demo1 demo
  curl -si -H 'Auth-Method: plain' -H 'Auth-User: demo1' -H 'Auth-Pass: demo' -H 'Auth-Protocol: imap' \\
       -H 'Client-IP: 127.0.0.1' http://127.0.0.1:$AUTH_PORT/auth   # the auth location's answer
  files  $FRONTEND/ (users, cache.secret, nginx/nginx.conf, nginx/logs/error.log), $TICKET_KEY, $REDIS_DIR/

Mail in through the frontend Postfix (SMTP 127.0.0.1:$SMTP_PORT, routed by the roles database):
  python3 -c 'import smtplib; s=smtplib.SMTP("127.0.0.1",$SMTP_PORT); print(s.sendmail("alice@example.org",["demo1@example.org"],b"Subject: via Postfix\r\n\r\nHello!\r\n")); s.quit()'
  postmap -c $POSTFIX_DIR/etc -q demo1@example.org socketmap:inet:127.0.0.1:$SOCKETMAP_PORT:transport   # the LMTP route
  log    $POSTFIX_DIR/maillog

Roles (who lives where): written on the primary, replicated over TLS to the follower the frontend reads:
  $MAILCTL roles --db $ROLES_PRIMARY_DB list
  $MAILCTL roles --db $ROLES_PRIMARY_DB set demo2 primary     # reaches nginx and Postfix within a second
  $ROLESD status --status 127.0.0.1:$ROLES_STATUS_PORT     # replication lag (Nagios style)
  files  $ROLESD_DIR/ (primary.log, follower.log, token, cert.pem)

Its replica (run/replica/, read-only IMAP, LMTP refused, fed by the primary over mutual TLS):
  IMAP   127.0.0.1:11143    POP3   127.0.0.1:11110    LMTP   127.0.0.1:11024 (refused: it is a replica)
  python3 -c 'import imaplib; m=imaplib.IMAP4("127.0.0.1",11143); m.login("demo1","demo"); print(m.select("INBOX")); m.logout()'
  export MAILCTL_ADMIN=primary=127.0.0.1:10180,replica=127.0.0.1:11180
  $MAILCTL repl status                                 # role, epoch, link, pending users, lag
  $MAILCTL check repl --warn 30 --crit 120             # Nagios: exit 0/1/2, perfdata
  $MAILCTL repl sync --user demo1 --full               # compare (and repair) one user now
  $MAILCTL failover primary --db $ROLES_PRIMARY_DB     # the replica takes over; the primary steps down

mailstored "$INSTANCE" (pid $pid), straight to the backend:
  IMAP   127.0.0.1:10143  (STARTTLS)      IMAPS  127.0.0.1:10993
  POP3   127.0.0.1:10110  (STLS)          POP3S  127.0.0.1:10995
  LMTP   127.0.0.1:10024
  users  demo1 demo2 demo3, password '$DEMO_PASSWORD'; folder hierarchy separator '/'
  files  $DIR/  (mailstored.toml, users, tls/, data/mail, data/metadata, mailstored.log)

Deliver a message by LMTP:
  python3 -c 'import smtplib; l=smtplib.LMTP("127.0.0.1",10024); print(l.sendmail("alice@example.org",["demo1"],b"From: alice@example.org\r\nTo: demo1\r\nSubject: hello\r\n\r\nHello demo1!\r\n")); l.quit()'
  (or: swaks --protocol LMTP --server 127.0.0.1:10024 --to demo1 --from alice@example.org)

Read it by IMAP:
  python3 -c 'import imaplib; m=imaplib.IMAP4("127.0.0.1",10143); m.login("demo1","demo"); m.select("INBOX"); print(m.fetch("1:*","(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")); m.logout()'
  openssl s_client -quiet -connect 127.0.0.1:10993          # then: a LOGIN demo1 demo
  openssl s_client -quiet -starttls imap -connect 127.0.0.1:10143

Read it by POP3:
  python3 -c 'import poplib; p=poplib.POP3("127.0.0.1",10110); p.user("demo1"); p.pass_("demo"); print(p.list()); p.quit()'
  nc -C 127.0.0.1 10110                                       # then: USER demo1 / PASS demo / LIST
EOF
