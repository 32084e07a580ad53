#!/usr/bin/env bash
# The frontend Postfix of `make up` (issue 4): SMTP on 127.0.0.1:2525, no local delivery; every
# recipient is looked up in the roles database through the roles follower's socketmap and relayed
# by LMTP to the backend that holds the mailbox. A private instance (`postfix -c run/postfix/etc`),
# never the system one. Sourced by scripts/up.sh (log, die, port_free, port_open exist).

POSTFIX_DIR="$RUN/postfix"
SMTP_PORT="${MAILSCALE_SMTP_PORT:-2525}"
POSTFIX_BIN=/usr/sbin/postfix

[ -x "$POSTFIX_BIN" ] || die "postfix is not installed: run scripts/install-deps.sh"
mkdir -p "$POSTFIX_DIR/etc" "$POSTFIX_DIR/queue" "$POSTFIX_DIR/data"
chmod 755 "$POSTFIX_DIR" "$POSTFIX_DIR/etc" "$POSTFIX_DIR/queue"
chown postfix:postfix "$POSTFIX_DIR/data"
cat >"$POSTFIX_DIR/etc/main.cf.new" <<CONF
# Written by scripts/up-postfix.sh on every 'make up'.
compatibility_level = 3.6
queue_directory = $POSTFIX_DIR/queue
data_directory = $POSTFIX_DIR/data
maillog_file = $POSTFIX_DIR/maillog
maillog_file_prefixes = $POSTFIX_DIR
myhostname = frontend.mailscale.local
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
# Nothing is local: mailboxes live on the backends named by the roles database.
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery disabled
alias_maps =
alias_database =
relay_domains = localhost, example.org
transport_maps = socketmap:inet:127.0.0.1:$SOCKETMAP_PORT:transport
relay_transport = error:5.1.1 mailbox unknown
default_transport = error:5.7.1 outside delivery disabled
smtputf8_enable = no
biff = no
append_dot_mydomain = no
queue_run_delay = 10s
minimal_backoff_time = 10s
maximal_backoff_time = 60s
CONF
cat >"$POSTFIX_DIR/etc/master.cf.new" <<CONF
# Written by scripts/up-postfix.sh on every 'make up'.
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
CONF
grep -v '^#' "$ROOT/scripts/postfix-master.cf" >>"$POSTFIX_DIR/etc/master.cf.new"
changed=0
for f in main.cf master.cf; do
    if ! cmp -s "$POSTFIX_DIR/etc/$f.new" "$POSTFIX_DIR/etc/$f"; then
        mv "$POSTFIX_DIR/etc/$f.new" "$POSTFIX_DIR/etc/$f"
        changed=1
    else
        rm -f "$POSTFIX_DIR/etc/$f.new"
    fi
done
"$POSTFIX_BIN" -c "$POSTFIX_DIR/etc" check 2>&1 | tail -n 5 >&2 || die "postfix -c $POSTFIX_DIR/etc check failed"
if "$POSTFIX_BIN" -c "$POSTFIX_DIR/etc" status >/dev/null 2>&1; then
    if [ "$changed" = 1 ]; then
        log "postfix: configuration changed, reloading"
        "$POSTFIX_BIN" -c "$POSTFIX_DIR/etc" reload >/dev/null 2>&1 || die "postfix reload failed"
    else
        log "postfix (frontend) already running"
    fi
else
    port_free "$SMTP_PORT" "frontend Postfix SMTP"
    "$POSTFIX_BIN" -c "$POSTFIX_DIR/etc" start >/dev/null 2>&1 \
        || { tail -n 12 "$POSTFIX_DIR/maillog" >&2 || true; die "postfix did not start"; }
    log "started Postfix (frontend) on 127.0.0.1:$SMTP_PORT, log: $POSTFIX_DIR/maillog"
fi
deadline=$((SECONDS + 15))
until greeting "$SMTP_PORT" "220"; do
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 12 "$POSTFIX_DIR/maillog" >&2 || true; die "Postfix SMTP on 127.0.0.1:$SMTP_PORT did not answer within 15 s"; }
    sleep 0.2
done
