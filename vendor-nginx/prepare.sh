#!/usr/bin/env bash
# Prepare an nginx build tree that matches the installed stock nginx (Debian), so that the
# ngx-mailauth module is compiled against the exact struct layout of the nginx that loads it.
#
#   vendor-nginx/prepare.sh            # tree in target/nginx-src, env in target/nginx-env.sh
#   . target/nginx-env.sh && cargo build --release -p ngx-mailauth
#
# Idempotent and non-interactive: missing apt packages are installed (apt-get update only then),
# the tree is copied and configured only when it is missing or the installed version changed.
# See vendor-nginx/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SRC_DIR="${NGINX_PREPARE_DIR:-$TARGET_DIR/nginx-src}"
ENV_FILE="${NGINX_ENV_FILE:-$TARGET_DIR/nginx-env.sh}"
DEBIAN_SRC=/usr/share/nginx/src
NGINX_BIN=/usr/sbin/nginx
PACKAGES=(nginx-core nginx-dev libnginx-mod-mail clang libclang-dev libpcre2-dev libssl-dev zlib1g-dev)

log() { printf 'vendor-nginx: %s\n' "$*" >&2; }
die() { printf 'vendor-nginx: error: %s\n' "$*" >&2; exit 1; }

# --- packages ----------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run as root or install them with apt-get"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian's nginx postinst starts the service; policy-rc.d 101 keeps it from doing so, so
    # the default site does not occupy port 80 on a build machine.
    policy=/usr/sbin/policy-rc.d
    created_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || { [ -n "$created_policy" ] && rm -f "$policy"; die "apt-get install failed"; }
    [ -n "$created_policy" ] && rm -f "$policy"
fi

[ -x "$NGINX_BIN" ] || die "$NGINX_BIN not found after installing nginx-core"
[ -f "$DEBIAN_SRC/conf_flags" ] || die "$DEBIAN_SRC/conf_flags not found (package nginx-dev)"

# --- versions must match -----------------------------------------------------------------------
tree_version() { sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$1/src/core/nginx.h"; }
installed="$("$NGINX_BIN" -v 2>&1 | sed -n 's|^nginx version: nginx/\([^ ]*\).*|\1|p')"
tree="$(tree_version "$DEBIAN_SRC")"
[ -n "$installed" ] || die "cannot read the version from '$NGINX_BIN -v'"
[ -n "$tree" ] || die "cannot read NGINX_VERSION from $DEBIAN_SRC/src/core/nginx.h"
if [ "$installed" != "$tree" ]; then
    die "installed nginx is $installed but the nginx-dev tree in $DEBIAN_SRC is $tree;" \
        "a module built against it would be refused by load_module (or crash)." \
        "Install matching packages: apt-get install nginx-core=<v> nginx-dev=<v>"
fi
pkg_version="$(dpkg-query -W -f='${Version}' nginx-dev)"
core_version="$(dpkg-query -W -f='${Version}' nginx-core)"
[ "$pkg_version" = "$core_version" ] \
    || die "nginx-core is $core_version but nginx-dev is $pkg_version (Debian patches differ); install the same version of both"

# --- copy + configure (only when needed) -------------------------------------------------------
stamp="$SRC_DIR/.mailscale-prepared"
want="nginx-dev=$pkg_version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$SRC_DIR/objs/ngx_auto_config.h" ]; then
    log "tree up to date: $SRC_DIR ($want)"
else
    log "copying $DEBIAN_SRC to $SRC_DIR"
    rm -rf "$SRC_DIR"
    mkdir -p "$(dirname "$SRC_DIR")"
    cp -a "$DEBIAN_SRC" "$SRC_DIR"
    # conf_flags defines the NGX_CONF_FLAGS array used to build Debian's nginx-core.
    # shellcheck disable=SC1091
    . "$SRC_DIR/conf_flags"
    flags=("${NGX_CONF_FLAGS[@]}")
    has() { local f; for f in "${flags[@]}"; do [ "$f" = "$1" ] && return 0; done; return 1; }
    # --with-compat: the module signature nginx checks at load_module time.
    # --with-threads: ngx_thread_pool_t / ngx_thread_task_post for off-loop work.
    # --with-mail(=dynamic): Debian builds the mail module dynamically; keep that.
    for f in --with-compat --with-threads; do has "$f" || flags+=("$f"); done
    has --with-mail=dynamic || has --with-mail || flags+=(--with-mail=dynamic)
    has --with-mail_ssl_module || flags+=(--with-mail_ssl_module)
    log "configure ${flags[*]}"
    (cd "$SRC_DIR" && ./configure "${flags[@]}" >configure.log 2>&1) \
        || die "configure failed, see $SRC_DIR/configure.log"
    echo "$want" >"$stamp"
fi

# --- env file ----------------------------------------------------------------------------------
mkdir -p "$(dirname "$ENV_FILE")"
cat >"$ENV_FILE.tmp" <<ENV
# Written by vendor-nginx/prepare.sh for nginx $installed ($want). Source before cargo build.
export NGINX_SOURCE_DIR=$SRC_DIR
export NGINX_BUILD_DIR=$SRC_DIR/objs
ENV
mv "$ENV_FILE.tmp" "$ENV_FILE"
log "nginx $installed ready; env in $ENV_FILE"
cat "$ENV_FILE"
