#!/usr/bin/env bash
# Render the frontend nginx config into a runtime directory.
#
#   nginx-conf/render.sh RUNDIR MODULE_SO
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

[ $# -eq 2 ] || die "usage: $0 RUNDIR MODULE_SO"
mkdir -p "$1"
RUNDIR="$(cd "$1" && pwd)"
MODULE_SRC="$2"
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
    "$TEMPLATE" >"$RUNDIR/nginx.conf.tmp"
mv -f "$RUNDIR/nginx.conf.tmp" "$RUNDIR/nginx.conf"
echo "$RUNDIR/nginx.conf"
