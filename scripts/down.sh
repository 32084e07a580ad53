#!/usr/bin/env bash
# Stop the mailstored instance started by scripts/up.sh (SIGTERM, then SIGKILL after 15 s).
# Succeeds when nothing is running. Data in run/<instance>/ is kept.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INSTANCE="${INSTANCE:-primary}"
DIR="$ROOT/run/$INSTANCE"
PIDFILE="$DIR/mailstored.pid"

log() { printf 'down: %s\n' "$*" >&2; }

if [ ! -s "$PIDFILE" ]; then
    log "mailstored \"$INSTANCE\" is not running"
    exit 0
fi
pid="$(cat "$PIDFILE")"
exe="$(readlink -f "/proc/$pid/exe" 2>/dev/null | sed 's/ (deleted)$//' || true)"
if ! kill -0 "$pid" 2>/dev/null || [ "${exe##*/}" != mailstored ]; then
    log "stale pidfile (pid $pid is not mailstored); removing it"
    rm -f "$PIDFILE"
    exit 0
fi

kill -TERM "$pid"
for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still running 15 s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
fi
rm -f "$PIDFILE"
log "stopped mailstored \"$INSTANCE\" (pid $pid)"
