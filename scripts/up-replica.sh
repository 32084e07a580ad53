#!/usr/bin/env bash
# The primary's partner for `make up` (issue 5, asynchronous replication): a second mailstored,
# run/replica/, on IMAP 11143, POP3 11110, LMTP 11024 (refused while it is a replica), IMAPS 11993,
# POP3S 11995, ManageSieve 11190 (read-only while it is a replica), taking the primary's changes on 127.0.0.1:11200 over mutual TLS (certificates of a
# private CA in run/repl/), admin API on 127.0.0.1:11180. Read-only IMAP, so operators can look. Sourced by scripts/up.sh
# (BIN, TEMPLATE, DEMO users, log, die, greeting, port_open exist).

REPLICA="$RUN/replica"
REPLICA_CONF="$REPLICA/mailstored.toml"
REPLICA_PID="$REPLICA/mailstored.pid"
REPLICA_LOG="$REPLICA/mailstored.log"

mkdir -p "$REPLICA"
[ -d "$REPLICA/tls" ] || cp -r "$DIR/tls" "$REPLICA/tls"
[ -s "$REPLICA/users" ] || cp -p "$DIR/users" "$REPLICA/users"
{
    sed -e 's/^name = "primary"/name = "replica"/' \
        -e 's/127\.0\.0\.1:10143/127.0.0.1:11143/; s/127\.0\.0\.1:10110/127.0.0.1:11110/' \
        -e 's/127\.0\.0\.1:10024/127.0.0.1:11024/; s/127\.0\.0\.1:10993/127.0.0.1:11993/' \
        -e 's/127\.0\.0\.1:10995/127.0.0.1:11995/' \
        -e 's/127\.0\.0\.1:10190/127.0.0.1:11190/' \
        -e 's|^# relay = "127\.0\.0\.1:25"|relay = "127.0.0.1:2525"|' "$TEMPLATE"
    cat <<'TOML'

# Added by scripts/up.sh: logins from the local frontend (signed tickets), as on the primary:
# after a failover the frontend sends the primary's users here.
[frontend]
ticket_key = "../ticket.key"
trusted = ["127.0.0.1"]

# Added by scripts/up.sh: the primary's replica (read-only IMAP, no LMTP). The partner address is
# used once a failover (mailctl failover primary) has made this side the primary.
[replication]
role = "replica"
listen = "127.0.0.1:11200"
partner = "127.0.0.1:10200"
server_name = "127.0.0.1"
cert = "../repl/replica.pem"
key = "../repl/replica.key"
ca = "../repl/ca.pem"

[admin]
listen = "127.0.0.1:11180"
TOML
} >"$REPLICA_CONF.new"
if cmp -s "$REPLICA_CONF.new" "$REPLICA_CONF"; then rm -f "$REPLICA_CONF.new"; else mv "$REPLICA_CONF.new" "$REPLICA_CONF"; fi

replica_pid() {
    [ -s "$REPLICA_PID" ] || return 1
    local p
    p="$(cat "$REPLICA_PID")"
    kill -0 "$p" 2>/dev/null || return 1
    [ "$(readlink -f "/proc/$p/exe" 2>/dev/null | sed 's/ (deleted)$//')" = "$(readlink -f "$BIN")" ] || return 1
    echo "$p"
}
if p="$(replica_pid)"; then
    if [ "$BIN" -nt "$REPLICA_PID" ] || [ "$REPLICA_CONF" -nt "$REPLICA_PID" ]; then
        log "restarting the replica (binary or config changed since pid $p started)"
        "$ROOT/scripts/down.sh" replica
    else
        log "replica already running (pid $p)"
    fi
fi
if ! replica_pid >/dev/null; then
    for port in 11143 11110 11024 11993 11995 11200 11180; do
        port_open "$port" && die "port $port (replica) is already in use: $(ss -ltnpH "sport = :$port" 2>/dev/null | head -n1)"
    done
    echo "=== $(date -Is) start: $BIN --config $REPLICA_CONF" >>"$REPLICA_LOG"
    NO_COLOR=1 setsid "$BIN" --config "$REPLICA_CONF" </dev/null >>"$REPLICA_LOG" 2>&1 &
    echo $! >"$REPLICA_PID"
    log "started the replica (pid $!), log: $REPLICA_LOG"
fi
deadline=$((SECONDS + 30))
until greeting 11143 "* OK"; do
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 12 "$REPLICA_LOG" >&2; die "the replica's IMAP 127.0.0.1:11143 did not answer within 30 s"; }
    sleep 0.2
done
