#!/usr/bin/env bash
# Install what building, testing and benchmarking mailscale needs on Debian 12 (bookworm).
#
# Idempotent and non-interactive: packages already present are not touched, and
# `apt-get update` runs only when something is missing. Safe to call from every `make` target.
#
# What it installs, and why:
#   build-essential pkg-config  C toolchain for crates with C parts (LMDB via heed, ring)
#   openssl                     the self-signed TLS certificate of `make up`
#   python3 + pytest            the end-to-end tests (`python3 -m pytest tests/`)
#   dovecot-core/-imapd/-lmtpd  the side-by-side benchmark (bench/lmtp_imap.py) only; the
#                               system Dovecot service is kept stopped and disabled so it never
#                               holds a port we use (the benchmark runs its own private instance)
#   nginx-core libnginx-mod-mail  the frontend: Debian's stock nginx + its mail proxy module,
#                               which load the ngx-mailauth module (`make up`, tests/frontend/)
#   redis-server                the frontend's credential cache and lockout counters
#   slapd ldap-utils            a real LDAP directory for tests/frontend/ (private instances)
#   curl                        nginx-conf/smoke.sh talks to the auth location with it
#   cyrus-clients               sivtest, the real ManageSieve client of tests/test_managesieve.py
#   postfix                     the frontend MTA of tests/postfix/ (private instances with their
#                               own config_directory); installed unconfigured (debconf preseed
#                               "No configuration": no /etc/postfix/main.cf, no system instance),
#                               and the system service is kept stopped and disabled (port 25)
#
# The system services of nginx, Redis and slapd are kept stopped and disabled, like Dovecot's:
# `make up` and the tests run private instances on their own ports, and the system ones would
# hold ports 80, 6379 and 389. slapd is installed unconfigured (debconf preseed
# slapd/no_configuration), so the package neither prompts nor creates a system directory.
# nginx-dev clang libclang-dev libpcre2-dev libssl-dev zlib1g-dev: what vendor-nginx/prepare.sh
# needs to prepare the nginx tree the module is compiled against (bindgen); the script runs last
# (a no-op when the tree is up to date).
#
# pytest goes to the python3 that is first on PATH, because that is the one `make test` runs:
# Debian's /usr/bin/python3 gets the python3-pytest package (pip is blocked there by PEP 668);
# any other python3 (pyenv, venv) gets `python3 -m pip install pytest`.
#
# Rust is not installed here: a toolchain is the developer's choice (rustup). The script only
# checks that `cargo` exists and says how to get it if not.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: run as root or install sudo"
    SUDO=(sudo)
fi

command -v dpkg-query >/dev/null 2>&1 || die "this script supports Debian/Ubuntu (dpkg/apt) only"

# --- Rust --------------------------------------------------------------------------------------
# Found on PATH or in rustup's default location (make may run with a minimal PATH).
if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found. Install Rust (>= 1.85) with
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
and open a new shell (or: source \$HOME/.cargo/env), then run this again."
log "rust: $(cargo --version)"

# --- Debian packages ---------------------------------------------------------------------------
is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

PACKAGES=(build-essential pkg-config openssl ca-certificates python3 curl
          dovecot-core dovecot-imapd dovecot-lmtpd
          nginx-core libnginx-mod-mail redis-server slapd ldap-utils
          nginx-dev clang libclang-dev libpcre2-dev libssl-dev zlib1g-dev
          postfix cyrus-clients)
# Extra packages a caller needs on top (bench/install-bench-deps.sh), installed the same way.
read -r -a extra <<<"${MAILSCALE_EXTRA_PACKAGES:-}"
PACKAGES+=("${extra[@]}")

python_needs_deb_pytest() {
    # True when python3 on PATH is Debian's own (or absent): then pytest comes from apt.
    local py
    py="$(command -v python3 || true)"
    [ -z "$py" ] && return 0
    case "$(readlink -f "$py")" in
        /usr/bin/python3*) return 0 ;;
        *) return 1 ;;
    esac
}
if python_needs_deb_pytest; then
    PACKAGES+=(python3-pytest)
fi

missing=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    # Keep package scripts from starting services (Dovecot would take ports 143/110 and run as a
    # system daemon we do not want). policy-rc.d is honoured by invoke-rc.d and deb-systemd-invoke.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 755 "$policy"
        own_policy=1
    fi
    cleanup_policy() { [ "$own_policy" = 1 ] && "${SUDO[@]}" rm -f "$policy"; true; }
    trap cleanup_policy EXIT
    # slapd would ask for a domain and an admin password: install it unconfigured instead.
    echo 'slapd slapd/no_configuration boolean true' | "${SUDO[@]}" debconf-set-selections
    # Postfix would ask for a mailer type: none, the tests write their own main.cf.
    echo 'postfix postfix/main_mailer_type select No configuration' | "${SUDO[@]}" debconf-set-selections
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    cleanup_policy
    trap - EXIT
else
    log "debian packages: all present"
fi

# --- system services must not run ---------------------------------------------------------------
# Checked every time, not only after installing: someone may have started one since.
# stop_system_service SERVICE PACKAGE PIDFILE BINARY: disable SERVICE, and stop the system
# instance when PIDFILE names a live BINARY process (our own private instances use other
# pidfiles and are never touched).
stop_system_service() {
    local service="$1" package="$2" pidfile="$3" binary="$4" pid exe
    is_installed "$package" || return 0
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        "${SUDO[@]}" systemctl disable --now "$service.service" >/dev/null 2>&1 || true
        [ "$service" = dovecot ] && "${SUDO[@]}" systemctl disable --now dovecot.socket >/dev/null 2>&1 || true
    else
        # No systemd as PID 1 (containers, microVMs): drop the SysV links.
        if command -v update-rc.d >/dev/null 2>&1 && [ -x "/etc/init.d/$service" ]; then
            "${SUDO[@]}" update-rc.d "$service" disable >/dev/null 2>&1 || true
        fi
    fi
    [ -s "$pidfile" ] || return 0
    pid="$(tr -d '[:space:]' < "$pidfile" 2>/dev/null || true)"  # Postfix pads its pid with spaces
    case "$pid" in ''|*[!0-9]*) return 0 ;; esac
    exe="$(readlink -f "/proc/$pid/exe" 2>/dev/null | sed 's/ (deleted)$//' || true)"
    [ -n "$exe" ] && [ "$exe" = "$(readlink -f "$binary")" ] || return 0
    log "stopping the system $service (pid $pid)"
    "${SUDO[@]}" kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        "${SUDO[@]}" kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "warning: the system $service (pid $pid) is still running 5 s after SIGTERM"
}
stop_system_service dovecot dovecot-core /run/dovecot/master.pid /usr/sbin/dovecot
stop_system_service nginx nginx-core /run/nginx.pid /usr/sbin/nginx
stop_system_service redis-server redis-server /run/redis/redis-server.pid /usr/bin/redis-server
stop_system_service slapd slapd /run/slapd/slapd.pid /usr/sbin/slapd
stop_system_service postfix postfix /var/spool/postfix/pid/master.pid /usr/lib/postfix/sbin/master

# --- the nginx tree the module is built against --------------------------------------------------
# Its packages are in PACKAGES above, so it runs as the calling user (its files go to target/).
"$(dirname "${BASH_SOURCE[0]}")/../vendor-nginx/prepare.sh" >/dev/null || die "vendor-nginx/prepare.sh failed"

# --- pytest ------------------------------------------------------------------------------------
if ! python3 -m pytest --version >/dev/null 2>&1; then
    if python_needs_deb_pytest; then
        die "python3 -m pytest still fails after installing python3-pytest"
    fi
    log "installing pytest into $(command -v python3) with pip"
    python3 -m pip install --quiet --disable-pip-version-check pytest \
        || die "pip could not install pytest into $(command -v python3)"
fi
log "python: $(python3 --version 2>&1), $(python3 -m pytest --version 2>&1 | head -n1)"
log "dovecot: $(dovecot --version 2>/dev/null || echo 'not found')"
log "nginx: $(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //'), redis: $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p'), slapd: $(dpkg-query -W -f='${Version}' slapd)"
