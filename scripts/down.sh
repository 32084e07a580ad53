#!/usr/bin/env bash
# Stop what scripts/up.sh started: the frontend nginx, its redis-server, and the mailstored
# instance (SIGTERM; for nginx first SIGQUIT, a graceful stop, then SIGTERM; SIGKILL when a
# process is still there 10 s after the last signal).
#
#   scripts/down.sh [all|postfix|nginx|redis|rolesd|mailstored|replica]      (default: all, in that order)
#
# Succeeds when nothing is running. Data in run/ is kept. Only processes named by up.sh's
# pidfiles are signalled, and only when the pid still runs the expected binary.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INSTANCE="${INSTANCE:-primary}"
DIR="$ROOT/run/$INSTANCE"
WHAT="${1:-all}"

log() { printf 'down: %s\n' "$*" >&2; }

# stop NAME PIDFILE EXE_BASENAME "SIGNAL..." : each signal in turn, 10 s apart, then SIGKILL.
stop() {
    local name="$1" pidfile="$2" exe_name="$3" sigs="$4" pid exe sig
    if [ ! -s "$pidfile" ]; then
        log "$name is not running"
        return 0
    fi
    pid="$(cat "$pidfile")"
    exe="$(readlink -f "/proc/$pid/exe" 2>/dev/null | sed 's/ (deleted)$//' || true)"
    if ! kill -0 "$pid" 2>/dev/null || [ "${exe##*/}" != "$exe_name" ]; then
        log "stale pidfile $pidfile (pid $pid is not $exe_name); removing it"
        rm -f "$pidfile"
        return 0
    fi
    for sig in $sigs; do
        kill "-$sig" "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break 2
            sleep 0.1
        done
        log "$name (pid $pid) still running 10 s after SIG$sig"
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "sending SIGKILL to pid $pid"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$pidfile"
    log "stopped $name (pid $pid)"
}

case "$WHAT" in
    all|postfix|nginx|redis|rolesd|mailstored|replica) ;;
    *) log "usage: $0 [all|postfix|nginx|redis|rolesd|mailstored|replica]"; exit 2 ;;
esac

if [ "$WHAT" = all ] || [ "$WHAT" = postfix ]; then
    if [ -f "$ROOT/run/postfix/etc/main.cf" ] && /usr/sbin/postfix -c "$ROOT/run/postfix/etc" status >/dev/null 2>&1; then
        /usr/sbin/postfix -c "$ROOT/run/postfix/etc" stop >/dev/null 2>&1 || true
        log "stopped Postfix (frontend)"
    else
        log "Postfix (frontend) is not running"
    fi
fi

if [ "$WHAT" = all ] || [ "$WHAT" = nginx ]; then
    # SIGQUIT: graceful (workers stop accepting, finish what they do); SIGTERM: fast.
    stop "nginx (frontend)" "$ROOT/run/frontend/nginx/nginx.pid" nginx "QUIT TERM"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = redis ]; then
    # Debian's /usr/bin/redis-server is a symlink to redis-check-rdb.
    stop "redis-server (frontend cache)" "$ROOT/run/redis/redis.pid" \
        "$(basename "$(readlink -f /usr/bin/redis-server 2>/dev/null || echo redis-server)")" TERM
fi
if [ "$WHAT" = all ] || [ "$WHAT" = rolesd ]; then
    stop "rolesd follower" "$ROOT/run/rolesd/follower.pid" rolesd TERM
    stop "rolesd primary" "$ROOT/run/rolesd/primary.pid" rolesd TERM
fi
if [ "$WHAT" = all ] || [ "$WHAT" = mailstored ]; then
    stop "mailstored \"$INSTANCE\"" "$DIR/mailstored.pid" mailstored "TERM"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = replica ]; then
    stop "mailstored \"replica\"" "$ROOT/run/replica/mailstored.pid" mailstored "TERM"
fi
