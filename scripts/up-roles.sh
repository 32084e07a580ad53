#!/usr/bin/env bash
# The roles database of `make up`, replicated as on a real site (issue 4):
#   rolesd primary   on run/roles-primary   — where operators write (mailctl roles --db run/roles-primary ...)
#   rolesd follower  into run/roles         — what the frontend reads: nginx's module (LMDB, read-only)
#                                             and Postfix, through the follower's socketmap
# over TLS (self-signed certificate in run/rolesd/) with a shared token. Sourced by scripts/up.sh
# after the primary's content is written, so its helpers (log, die, pid_of, port_free) exist.

ROLESD="${ROLESD:-$ROOT/target/release/rolesd}"
ROLES_PRIMARY_DB="$RUN/roles-primary"
ROLESD_DIR="$RUN/rolesd"
ROLES_PORT="${MAILSCALE_ROLES_PORT:-14700}"
SOCKETMAP_PORT="${MAILSCALE_SOCKETMAP_PORT:-14701}"
ROLES_STATUS_PORT="${MAILSCALE_ROLES_STATUS_PORT:-14702}"

[ -x "$ROLESD" ] || die "$ROLESD is missing: run 'make build'"
mkdir -p "$ROLESD_DIR"
if [ ! -s "$ROLESD_DIR/token" ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$ROLESD_DIR/token")
fi
if [ ! -s "$ROLESD_DIR/cert.pem" ]; then
    log "rolesd: self-signed certificate for 127.0.0.1 in $ROLESD_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=roles.mailscale.local" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -addext "basicConstraints=critical,CA:FALSE" \
        -keyout "$ROLESD_DIR/key.pem" -out "$ROLESD_DIR/cert.pem" 2>/dev/null \
        || die "openssl could not create the rolesd certificate"
    chmod 600 "$ROLESD_DIR/key.pem"
fi

# start_rolesd NAME PIDFILE PORT ARGS...: starts unless our rolesd already runs from PIDFILE.
start_rolesd() {
    local name="$1" pidfile="$2" port="$3" fpid
    shift 3
    if fpid="$(pid_of "$pidfile" "$ROLESD")"; then
        log "rolesd $name already running (pid $fpid)"
        return 0
    fi
    port_free "$port" "rolesd $name"
    nohup "$ROLESD" "$@" >>"$ROLESD_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    log "started rolesd $name (pid $!), log: $ROLESD_DIR/$name.log"
}

start_rolesd primary "$ROLESD_DIR/primary.pid" "$ROLES_PORT" primary --db "$ROLES_PRIMARY_DB" \
    --listen "127.0.0.1:$ROLES_PORT" --cert "$ROLESD_DIR/cert.pem" --key "$ROLESD_DIR/key.pem" \
    --token-file "$ROLESD_DIR/token" --retain 100000
start_rolesd follower "$ROLESD_DIR/follower.pid" "$SOCKETMAP_PORT" follower --db "$ROLES_DB" \
    --primary "127.0.0.1:$ROLES_PORT" --ca "$ROLESD_DIR/cert.pem" --token-file "$ROLESD_DIR/token" \
    --status "127.0.0.1:$ROLES_STATUS_PORT" --socketmap "127.0.0.1:$SOCKETMAP_PORT"

# The frontend starts only once the follower holds what the primary holds.
deadline=$((SECONDS + 15))
until [ -s "$ROLES_DB/data.mdb" ] && [ "$("$ROLESD" checksum --db "$ROLES_DB" 2>/dev/null)" = "$("$ROLESD" checksum --db "$ROLES_PRIMARY_DB" 2>/dev/null)" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 12 "$ROLESD_DIR/follower.log" >&2 || true
        die "the roles follower ($ROLES_DB) did not catch up with the primary within 15 s"
    fi
    sleep 0.2
done
log "roles follower in step with the primary: $("$ROLESD" checksum --db "$ROLES_DB")"
