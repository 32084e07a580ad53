#!/usr/bin/env bash
# Render the frontend nginx config into a runtime directory.
#
#   nginx-conf/render.sh RUNDIR MODULE_SO --roles DIR --users FILE --ticket-key FILE
#                        [--redis URL --cache-secret FILE] [--ldap URL BIND_DN_TEMPLATE]
#
# (each option may also come from the environment: ROLES_DB, USERS_FILE, TICKET_KEY, REDIS_URL,
# CACHE_SECRET, LDAP_URL + LDAP_BIND_DN)
#
# Writes RUNDIR/nginx.conf from nginx-conf/nginx.conf.in, creates RUNDIR/{logs,tmp,modules} and
# copies MODULE_SO (the built ngx-mailauth .so) to RUNDIR/modules/ (a fresh file each time, so
# a restarted nginx loads the new build and a later `cargo build` never rewrites a .so that a
# running nginx has mapped). Refuses a .so that is not the nginx module (built without
# `--features nginx`).
#
# Environment (defaults in brackets):
#   IMAP_LISTEN [127.0.0.1:1143]  POP3_LISTEN [127.0.0.1:1110]  AUTH_PORT [11080]
#   WORKERS [2]  MAIL_SO [/usr/lib/nginx/modules/ngx_mail_module.so]
#   NGINX_USER ["nobody nogroup" when run as root; unused otherwise]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="$ROOT/nginx-conf/nginx.conf.in"

die() { printf 'render: error: %s\n' "$*" >&2; exit 1; }

usage="usage: $0 RUNDIR MODULE_SO --roles DIR --users FILE --ticket-key FILE [--redis URL --cache-secret FILE] [--ldap URL BIND_DN_TEMPLATE]"
[ $# -ge 2 ] || die "$usage"
RUNDIR_ARG="$1"
MODULE_SRC="$2"
shift 2
ROLES_DB="${ROLES_DB:-}" USERS_FILE="${USERS_FILE:-}" TICKET_KEY="${TICKET_KEY:-}"
REDIS_URL="${REDIS_URL:-}" CACHE_SECRET="${CACHE_SECRET:-}" LDAP_URL="${LDAP_URL:-}" LDAP_BIND_DN="${LDAP_BIND_DN:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        --roles) ROLES_DB="${2:?}"; shift 2;;
        --users) USERS_FILE="${2:?}"; shift 2;;
        --ticket-key) TICKET_KEY="${2:?}"; shift 2;;
        --redis) REDIS_URL="${2:?}"; shift 2;;
        --cache-secret) CACHE_SECRET="${2:?}"; shift 2;;
        --ldap) LDAP_URL="${2:?}"; LDAP_BIND_DN="${3:?--ldap takes URL and BIND_DN_TEMPLATE}"; shift 3;;
        *) die "unknown option $1; $usage";;
    esac
done
abspath() { [ -e "$1" ] || die "$2 $1 not found"; echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
[ -n "$ROLES_DB" ] || die "--roles DIR is required (create one with mailctl roles --db DIR backend add ...)"
[ -n "$USERS_FILE" ] || die "--users FILE is required (user:\$argon2id\$... lines)"
[ -n "$TICKET_KEY" ] || die "--ticket-key FILE is required (mailctl ticket-key generate > FILE)"
ROLES_DB="$(abspath "$ROLES_DB" "roles database")"
[ -f "$ROLES_DB/data.mdb" ] || die "$ROLES_DB is not a roles database (no data.mdb)"
USERS_FILE="$(abspath "$USERS_FILE" "users file")"
TICKET_KEY="$(abspath "$TICKET_KEY" "ticket key")"
if [ -n "$REDIS_URL" ]; then
    [ -n "$CACHE_SECRET" ] || die "--redis needs --cache-secret FILE (head -c 32 /dev/urandom > FILE)"
    CACHE_SECRET="$(abspath "$CACHE_SECRET" "cache secret")"
    CACHE="mailauth_cache $REDIS_URL timeout=500ms; mailauth_cache_secret $CACHE_SECRET;"
else
    CACHE="# mailauth_cache redis://127.0.0.1:6379/0 timeout=500ms; mailauth_cache_secret FILE;  (render.sh --redis)"
fi
if [ -n "$LDAP_URL" ]; then
    LDAP="mailauth_ldap $LDAP_URL \"bind_dn=$LDAP_BIND_DN\" timeout=5s;"
else
    LDAP="# mailauth_ldap ldap://127.0.0.1:389 \"bind_dn=uid=%u,ou=people,dc=example,dc=org\" timeout=5s;  (render.sh --ldap)"
fi
for v in "$ROLES_DB" "$USERS_FILE" "$TICKET_KEY" "$CACHE_SECRET" "$REDIS_URL" "$LDAP_URL" "$LDAP_BIND_DN"; do
    case "$v" in *[\;\{\}\"\'\ ]*) die "'$v': no spaces, quotes, ; { } in paths and URLs";; esac
done
# Escape for a sed replacement (delimiter |).
esc() { printf '%s' "$1" | sed -e 's/[&|\\]/\\&/g'; }
mkdir -p "$RUNDIR_ARG"
RUNDIR="$(cd "$RUNDIR_ARG" && pwd)"
MAIL_SO="${MAIL_SO:-/usr/lib/nginx/modules/ngx_mail_module.so}"
IMAP_LISTEN="${IMAP_LISTEN:-127.0.0.1:1143}"
POP3_LISTEN="${POP3_LISTEN:-127.0.0.1:1110}"
AUTH_PORT="${AUTH_PORT:-11080}"
WORKERS="${WORKERS:-2}"

case "$RUNDIR" in *[!A-Za-z0-9_./+-]*) die "RUNDIR '$RUNDIR': use only letters, digits and _./+-";; esac
# nginx's unix socket paths are limited by sun_path (108 bytes).
[ "${#RUNDIR}" -le 90 ] || die "RUNDIR '$RUNDIR' is too long for a unix socket path"
[ -f "$MODULE_SRC" ] || die "module $MODULE_SRC not found: build it with
  vendor-nginx/prepare.sh && . target/nginx-env.sh && cargo build --release -p ngx-mailauth --features nginx"
nm -D --defined-only "$MODULE_SRC" 2>/dev/null | grep -q ' ngx_http_mailauth_module$' \
    || die "$MODULE_SRC is not the nginx module (was it built without --features nginx?)"
[ -f "$MAIL_SO" ] || die "$MAIL_SO not found: apt-get install libnginx-mod-mail"

if [ "$(id -u)" = 0 ]; then
    NGINX_USER="${NGINX_USER:-nobody nogroup}"
    USER_LINE="user $NGINX_USER;"
    # Workers run as NGINX_USER and must reach the auth socket in RUNDIR.
    chmod 755 "$RUNDIR"
    worker="${NGINX_USER%% *}"
    if [ "$worker" != root ] && ! runuser -u "$worker" -- test -x "$RUNDIR"; then
        die "workers run as '$worker' but cannot enter $RUNDIR (a parent directory is closed);" \
            "make its parents searchable (chmod o+x) or set NGINX_USER=root"
    fi
    # Workers open the roles database read-only, which still registers readers in lock.mdb.
    if [ "$worker" != root ] && ! runuser -u "$worker" -- test -r "$ROLES_DB/data.mdb" -a -w "$ROLES_DB/lock.mdb"; then
        die "workers run as '$worker' but cannot read $ROLES_DB/data.mdb or write its lock.mdb;" \
            "e.g. chown -R ${NGINX_USER/ /:} $ROLES_DB, or set NGINX_USER"
    fi
else
    USER_LINE="# user: not root, workers run as $(id -un)"
fi

mkdir -p "$RUNDIR/logs" "$RUNDIR/tmp" "$RUNDIR/modules"
MODULE_SO="$RUNDIR/modules/ngx_http_mailauth_module.so"
cp "$MODULE_SRC" "$MODULE_SO.tmp" && mv -f "$MODULE_SO.tmp" "$MODULE_SO"

sed -e "s|@RUNDIR@|$RUNDIR|g" \
    -e "s|@MODULE_SO@|$MODULE_SO|g" \
    -e "s|@MAIL_SO@|$MAIL_SO|g" \
    -e "s|@USER_LINE@|$USER_LINE|g" \
    -e "s|@WORKERS@|$WORKERS|g" \
    -e "s|@IMAP_LISTEN@|$IMAP_LISTEN|g" \
    -e "s|@POP3_LISTEN@|$POP3_LISTEN|g" \
    -e "s|@AUTH_PORT@|$AUTH_PORT|g" \
    -e "s|@ROLES_DB@|$(esc "$ROLES_DB")|g" \
    -e "s|@USERS_FILE@|$(esc "$USERS_FILE")|g" \
    -e "s|@TICKET_KEY@|$(esc "$TICKET_KEY")|g" \
    -e "s|@CACHE@|$(esc "$CACHE")|g" \
    -e "s|@LDAP@|$(esc "$LDAP")|g" \
    "$TEMPLATE" >"$RUNDIR/nginx.conf.tmp"
mv -f "$RUNDIR/nginx.conf.tmp" "$RUNDIR/nginx.conf"
echo "$RUNDIR/nginx.conf"
