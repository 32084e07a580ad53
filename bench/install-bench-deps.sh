#!/usr/bin/env bash
# Install what the auth benchmark (bench/auth/) and the reference Lua auth script (lua/) need on
# Debian 12 (bookworm). Idempotent and non-interactive: packages already present are not touched,
# `apt-get update` runs only when something is missing, and package scripts are kept from
# starting services (the benchmark runs its own private redis-server and nginx).
#
#   libnginx-mod-http-lua   ngx_http_lua_module.so for Debian's stock nginx 1.22.1 (pulls in
#                           libnginx-mod-http-ndk, its dependency, lua-resty-core and LuaJIT)
#   wrk                     the HTTP load generator (LuaJIT scripts vary Auth-User per request)
#   redis-server            the credential cache of both the module and the Lua script
#   libargon2-1             argon2id checks of lua/auth.lua on a cache miss (through the FFI)
#   curl                    manual checks of the auth locations
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

log() { printf 'install-bench-deps: %s\n' "$*" >&2; }
die() { printf 'install-bench-deps: error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: run as root or install sudo"
    SUDO=(sudo)
fi
command -v dpkg-query >/dev/null 2>&1 || die "this script supports Debian/Ubuntu (dpkg/apt) only"

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

PACKAGES=(libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core libargon2-1 wrk redis-server curl)
missing=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    # policy-rc.d exit 101: invoke-rc.d and deb-systemd-invoke start no service (no system
    # redis-server on 6379, no reload of a system nginx).
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        own_policy=1
    fi
    cleanup_policy() { [ "$own_policy" = 1 ] && "${SUDO[@]}" rm -f "$policy"; true; }
    trap cleanup_policy EXIT
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    cleanup_policy
    trap - EXIT
else
    log "debian packages: all present"
fi

for so in ndk_http_module.so ngx_http_lua_module.so; do
    [ -f "/usr/lib/nginx/modules/$so" ] || die "/usr/lib/nginx/modules/$so missing after install"
done
command -v wrk >/dev/null || die "wrk not found after install"
command -v redis-server >/dev/null || die "redis-server not found after install"
log "nginx: $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'), lua module: $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua), wrk: $(dpkg-query -W -f='${Version}' wrk), redis: $(redis-server --version | awk '{print $3}')"
