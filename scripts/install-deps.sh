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

PACKAGES=(build-essential pkg-config openssl ca-certificates python3
          dovecot-core dovecot-imapd dovecot-lmtpd)

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
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    cleanup_policy
    trap - EXIT
else
    log "debian packages: all present"
fi

# --- the system Dovecot must not run -----------------------------------------------------------
# Checked every time, not only after installing: someone may have started it since.
if is_installed dovecot-core; then
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        "${SUDO[@]}" systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
    else
        # No systemd as PID 1 (containers, microVMs): use the SysV script and drop its links.
        if [ -x /etc/init.d/dovecot ]; then
            "${SUDO[@]}" /etc/init.d/dovecot stop >/dev/null 2>&1 || true
        fi
        if command -v update-rc.d >/dev/null 2>&1; then
            "${SUDO[@]}" update-rc.d dovecot disable >/dev/null 2>&1 || true
        fi
    fi
    # A system instance keeps its master pid here; stop it if one is still alive.
    if [ -s /run/dovecot/master.pid ]; then
        pid="$(cat /run/dovecot/master.pid)"
        if "${SUDO[@]}" kill -0 "$pid" 2>/dev/null; then
            log "stopping system dovecot (pid $pid)"
            "${SUDO[@]}" kill "$pid" || true
        fi
    fi
fi

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
