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
#   dovecot-sieve           Pigeonhole, Dovecot's Sieve plugin: the Dovecot side of bench/sieve.py
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf 'install-bench-deps: %s\n' "$*" >&2; }
die() { printf 'install-bench-deps: error: %s\n' "$*" >&2; exit 1; }

# The project's installer does the work (apt-get update only when something is missing, no
# service started by package scripts); these are the benchmark's packages on top.
MAILSCALE_EXTRA_PACKAGES="libnginx-mod-http-lua libnginx-mod-http-ndk lua-resty-core libargon2-1 wrk redis-server curl dovecot-sieve" \
    "$ROOT/scripts/install-deps.sh"

for so in ndk_http_module.so ngx_http_lua_module.so; do
    [ -f "/usr/lib/nginx/modules/$so" ] || die "/usr/lib/nginx/modules/$so missing after install"
done
command -v wrk >/dev/null || die "wrk not found after install"
command -v redis-server >/dev/null || die "redis-server not found after install"
log "nginx: $(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'), lua module: $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua), wrk: $(dpkg-query -W -f='${Version}' wrk), redis: $(redis-server --version | awk '{print $3}')"
