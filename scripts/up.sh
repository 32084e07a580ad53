#!/usr/bin/env bash
# Start the platform (for now: one mailstored instance, "primary") in the background.
#
# Expects a built binary (`make up` builds it first). Idempotent:
#   - run/primary/ is created on first use; the config is refreshed from the template
#     backend-daemon/conf/mailstored.toml every time; the TLS certificate, the users file and
#     the data directory are created only when missing (mail survives `make down && make up`);
#   - an instance that is already running from the current binary and config is left alone;
#     one started from an older binary or config is restarted.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${MAILSTORED:-$ROOT/target/release/mailstored}"
INSTANCE="${INSTANCE:-primary}"
DIR="$ROOT/run/$INSTANCE"
CONF="$DIR/mailstored.toml"
PIDFILE="$DIR/mailstored.pid"
LOG="$DIR/mailstored.log"
TEMPLATE="$ROOT/backend-daemon/conf/mailstored.toml"
DEMO_USERS=(demo1 demo2 demo3)
DEMO_PASSWORD=demo
# name:port:expected start of the greeting
ENDPOINTS=("IMAP:10143:* OK" "POP3:10110:+OK" "LMTP:10024:220")

log() { printf 'up: %s\n' "$*" >&2; }
die() { printf 'up: error: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN not found: build it with 'cargo build --release' (or run 'make up')"

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

# --- config ------------------------------------------------------------------------------------
if ! cmp -s "$TEMPLATE" "$CONF"; then
    cp "$TEMPLATE" "$CONF"
    log "config: $CONF (from backend-daemon/conf/mailstored.toml)"
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
    if [ "$BIN" -nt "$PIDFILE" ] || [ "$CONF" -nt "$PIDFILE" ] || [ "$DIR/users" -nt "$PIDFILE" ]; then
        log "restarting (binary, config or users changed since pid $pid started)"
        "$ROOT/scripts/down.sh"
    else
        log "already running (pid $pid)"
    fi
fi

if ! running_pid >/dev/null; then
    rm -f "$PIDFILE"
    for port in 10143 10110 10024 10993 10995; do
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

cat <<EOF

mailstored "$INSTANCE" is running (pid $pid); 'make down' stops it.
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
